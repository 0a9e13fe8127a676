import Hub

extension Relayed {
    /// Appends `items` as both relayed encodings carry them, a session's batch (`ChannelMessage.ephemeral`)
    /// and a node's publication (`NodeBatch`): per item `<traffic> <keylen> <framelen>\n<key><frame>`. One
    /// writer, so the two cannot drift apart (`RelayedItemBytesTests` pins the bytes).
    static func append(_ items: [Relayed], to out: inout [UInt8]) {
        for r in items {
            out.appendUTF8(r.traffic.rawValue)
            out.append(0x20)
            out.appendDecimal(r.key.utf8.count)
            out.append(0x20)
            out.appendDecimal(r.frame.count)
            out.append(0x0A)
            out.appendUTF8(r.key)
            out.append(contentsOf: r.frame)
        }
    }

    /// Room enough for `items` as `append` writes them (each item's header under 24 bytes), so that the
    /// buffer is sized once.
    static func capacity(_ items: [Relayed]) -> Int {
        items.reduce(0) { $0 + $1.key.utf8.count + $1.frame.count + 24 }
    }
}
