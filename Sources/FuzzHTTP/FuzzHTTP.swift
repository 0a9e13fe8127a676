import WebSocket

/// libFuzzer entry point for the HTTP head parser and the handshake negotiation on top of it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var parser = HTTPHeadParser(maxHeadSize: 1024)
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    // Feed it growing prefixes, as a socket would, then the whole.
    for cut in [size / 3, size / 2, size] {
        switch parser.parse(UnsafeRawBufferPointer(rebasing: bytes[..<cut])) {
        case .needMore: continue
        case .failure(let status, _): precondition(status.code >= 400); return 0
        case .complete(let head, let length):
            precondition(length <= cut)
            if case .success(let accepted) = Handshake.negotiate(
                head, options: .init(subprotocols: ["collabhub.v1"], allowedOrigins: ["http://a"]))
            {
                // The extension offers of an accepted handshake go through negotiation, as in the hub.
                _ = DeflateNegotiation.negotiate(accepted.extensionOffers, mode: .shared)
                _ = DeflateNegotiation.negotiate(accepted.extensionOffers, mode: .context)
            }
            _ = head.query
            // The cross-site gate's parsers, on whatever Host and Origin the head carries.
            if let host = head.header("Host"), let name = Authority.hostName(host) {
                precondition(!name.isEmpty && !name.contains("/"))
                _ = Authority.isLoopbackIPv4(name)
            }
            if let origin = head.header("Origin"), let o = Authority.origin(of: origin) {
                precondition(o.hasPrefix("http://") || o.hasPrefix("https://"))
            }
            return 0
        }
    }
    return 0
}
