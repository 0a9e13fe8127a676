import Bytes
import Hub

/// One loop iteration's ephemeral traffic for one destination (another node's loop), all sessions in
/// one publication on that loop's own channel (`EphemeralRoutes`): `E<origin>\n`, then per session
/// `<chlen> <count>\n<channel>` and its items as in a session's batch (`<traffic> <keylen>
/// <framelen>\n<key><frame>`), sections up to the end. The whole publication is checked before any
/// item is handed on; each frame is copied once, into the `Chunk` the members share.
public enum NodeBatch {
    /// A session's channel name: `{CODE}:ch`, at most this long.
    public static let maxChannel = 512

    /// A destination's publication starts with this (then its sections).
    public static func header(origin: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "E")]
        out.appendUTF8(origin)
        out.append(0x0A)
        return out
    }

    /// One session's section, appended to `out` (encoded once per iteration, copied to each destination).
    public static func appendSection(_ channel: [UInt8], _ items: [Relayed], to out: inout [UInt8]) {
        out.reserveCapacity(
            out.count + items.reduce(channel.count + 24) { $0 + $1.key.utf8.count + $1.frame.count + 24 })
        out.appendDecimal(channel.count)
        out.append(0x20)
        out.appendDecimal(items.count)
        out.append(0x0A)
        out.append(contentsOf: channel)
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

    /// The whole publication, encoded (tests and the fuzz target's round trip).
    public static func encode(origin: String, _ sections: [(channel: [UInt8], items: [Relayed])]) -> [UInt8] {
        var out = header(origin: origin)
        for s in sections { appendSection(s.channel, s.items, to: &out) }
        return out
    }

    public struct Section {
        /// The session's channel (`{CODE}:ch`).
        public let channel: [UInt8]
        public let items: [RelayedBatch]
    }

    /// The sessions' items of a well-formed publication, or nil (nothing of it is handed on): the origin
    /// a token, each section's channel 1-512 bytes starting with `{`, 1-`ChannelMessage.maxBatch` items
    /// each as `RelayedBatch` checks them, nothing left over.
    public static func read(_ bytes: [UInt8]) -> (origin: [UInt8], sections: [Section])? {
        bytes.withUnsafeBufferPointer { p -> (origin: [UInt8], sections: [Section])? in
            guard p.first == UInt8(ascii: "E") else { return nil }
            let end = p.count
            guard let nl = RelayedBatch.index(of: 0x0A, in: p, from: 1, to: min(end, 1 + 129)),
                RelayedBatch.isToken(p, 1, nl)
            else { return nil }
            var sections: [Section] = []
            var at = nl + 1
            guard at < end else { return nil }
            while at < end {
                // `<chlen> <count>\n`, at most 32 bytes.
                guard let e = RelayedBatch.index(of: 0x0A, in: p, from: at, to: min(end, at + 33)),
                    let sp = RelayedBatch.index(of: 0x20, in: p, from: at, to: e),
                    let clen = RelayedBatch.number(p, at, sp), clen > 0, clen <= maxChannel, clen <= end - e - 1,
                    let count = RelayedBatch.number(p, sp + 1, e), count > 0, count <= ChannelMessage.maxBatch,
                    p[e + 1] == UInt8(ascii: "{")
                else { return nil }
                let channel = Array(p[(e + 1)..<(e + 1 + clen)])
                guard let (items, next) = RelayedBatch.readItems(p, of: bytes, from: e + 1 + clen, count: count)
                else { return nil }
                sections.append(Section(channel: channel, items: items))
                at = next
            }
            return (Array(p[1..<nl]), sections)
        }
    }
}
