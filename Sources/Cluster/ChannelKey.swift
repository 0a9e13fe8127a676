/// A channel's name as a dictionary key, hashed as one block of bytes: an `[UInt8]` key is hashed a
/// byte at a time, which a node paid on every publication it sent or received (cross-node fan-out).
struct ChannelKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func == (a: ChannelKey, b: ChannelKey) -> Bool { a.bytes == b.bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    /// A session's (or run's) channel, `{STREAM}:ch` (what `RedisStorage.keys(_:).channel` names),
    /// built without the other keys' strings.
    static func session(_ stream: String) -> ChannelKey {
        var b: [UInt8] = []
        b.reserveCapacity(stream.utf8.count + 5)
        b.append(UInt8(ascii: "{"))
        b.appendUTF8(stream)
        b.append(contentsOf: [UInt8(ascii: "}"), UInt8(ascii: ":"), UInt8(ascii: "c"), UInt8(ascii: "h")])
        return ChannelKey(b)
    }

    /// Session and run channels start with `{`; the node-wide ones (`chub:...`) never do.
    var isSession: Bool { bytes.first == UInt8(ascii: "{") }
}
