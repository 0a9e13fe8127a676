import WebSocket

/// libFuzzer entry point for permessage-deflate (RFC 7692): the extension negotiation over any header
/// value, and the inflater over any compressed payload (bounded by a size limit), in both modes.
/// Whatever is negotiated must produce a response header that negotiates to the same parameters.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeflate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let selector = bytes.first else { return 0 }
    let rest = UnsafeRawBufferPointer(rebasing: bytes[1...])
    if selector & 1 == 0 {
        // Negotiation: the rest is a Sec-WebSocket-Extensions value, offers split at commas.
        let header = String(decoding: rest, as: UTF8.self)
        let offers = header.split(separator: ",").map { String($0) }
        for mode in [CompressionMode.shared, .context] {
            if let p = DeflateNegotiation.negotiate(offers, mode: mode) {
                precondition((9...15).contains(p.serverMaxWindowBits) && (8...15).contains(p.clientMaxWindowBits))
                let again = DeflateNegotiation.negotiate([p.responseHeader], mode: mode)
                precondition(again?.serverMaxWindowBits == p.serverMaxWindowBits, "response header does not round-trip")
            }
        }
    } else {
        // Inflation of hostile data, with and without context takeover, under a small limit.
        let inflater = Inflater(windowBits: 15, noContextTakeover: selector & 2 == 0)!
        for _ in 0..<2 {
            switch inflater.inflate(rest, limit: 64 * 1024) {
            case .ok(let out): precondition(out.count <= 64 * 1024)
            case .tooBig, .corrupt: break
            }
        }
        // What we compress, we can inflate back to the same bytes.
        let bits = 9 + Int(selector >> 4) % 7
        let deflater = Deflater(windowBits: bits, noContextTakeover: true)!
        let packed = deflater.deflate(rest)
        let back = Inflater(windowBits: bits, noContextTakeover: true)!
        packed.withUnsafeBytes { p in
            if case .ok(let out) = back.inflate(p, limit: 1 << 20) {
                precondition(out.elementsEqual(rest), "deflate/inflate round trip changed the bytes")
            } else {
                preconditionFailure("our own compressed output did not inflate")
            }
        }
    }
    return 0
}
