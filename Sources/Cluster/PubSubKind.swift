/// The first item of a pub/sub message from Redis (`message`, `subscribe`, ...), recognised from its
/// bytes: a subscriber link classifies every reply it reads, so no string is made or hashed for it.
enum PubSubKind: CaseIterable {
    case message, pmessage, smessage, subscribe, unsubscribe, psubscribe, punsubscribe, ssubscribe, sunsubscribe

    var name: String { "\(self)" }

    private static let names: [(kind: PubSubKind, bytes: [UInt8])] = allCases.map { ($0, Array($0.name.utf8)) }

    init?(_ bytes: [UInt8]) {
        // The commonest first: a publication.
        guard let found = Self.names.first(where: { $0.bytes == bytes }) else { return nil }
        self = found.kind
    }

    /// The kind of a RESP2 pub/sub array (nil: not one; a PING's `["pong", ""]` is not).
    init?(reply: RedisReply) {
        guard case .array(let items) = reply, items.count >= 3, case .string(let kind) = items[0] else { return nil }
        self.init(kind)
    }
}
