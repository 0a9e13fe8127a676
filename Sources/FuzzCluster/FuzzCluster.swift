import Cluster
import Hub
import WebSocket

/// libFuzzer entry point for what a cluster node parses from Redis (a shared trust boundary, but a
/// Redis reachable by others, or a bug in another version of the hub, must not crash a node): log
/// entries, channel messages, session rows, and the `--redis` URL. The first byte picks which.
/// Nothing may crash; whatever decodes encodes back to the same value; a URL's description never
/// shows its password; a relayed frame is one whole server text frame.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCluster(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch data[0] % 4 {
    case 0:
        if let e = LogEntry.decode(bytes[...]) {
            precondition(e.seq > 0 && e.ts >= 0)
            precondition(LogEntry.decode(e.encode()[...]) == e)
        }
        if bytes.count > 3, let e = LogEntry.decode(bytes[3...]) { precondition(e.seq > 0) }
    case 1:
        _ = ChannelMessage.ownCommit(bytes, node: "node")
        if let m = ChannelMessage.decode(bytes) {
            precondition(ChannelMessage.decode(m.encode()) == m)
            if case .ephemeral(_, let items) = m {
                precondition(!items.isEmpty && items.count <= ChannelMessage.maxBatch)
                for r in items { precondition(ChannelMessage.isServerTextFrame(r.frame)) }
            }
        }
    case 2:
        if let info = SessionInfoJSON.decode(bytes) {
            // A plaintext host key (a row from before keys were hashed) leaves hashed; all else round-trips.
            var expected = info
            if !info.hostKey.isEmpty && !HostKey.isHashed(info.hostKey) {
                expected.hostKey = HostKey.stored(info.hostKey)
            }
            let encoded = SessionInfoJSON.encode(info)
            precondition(SessionInfoJSON.decode(encoded) == expected)
        }
    default:
        if let url = try? RedisURL(String(decoding: bytes, as: UTF8.self)) {
            precondition(url.port > 0 && url.port < 65536 && url.db >= 0 && url.db <= 15 && !url.host.isEmpty)
            var other = url
            other.password = url.password.map { $0 + "x" }
            precondition(other.description == url.description, "the description shows the password")
            precondition(url.host.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7F })
        }
    }
    return 0
}
