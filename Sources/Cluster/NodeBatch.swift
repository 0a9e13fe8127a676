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
        out.reserveCapacity(out.count + channel.count + 24 + Relayed.capacity(items))
        out.appendDecimal(channel.count)
        out.append(0x20)
        out.appendDecimal(items.count)
        out.append(0x0A)
        out.append(contentsOf: channel)
        Relayed.append(items, to: &out)
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

    /// Where an item lies in a publication (`scan`).
    struct ItemSpan {
        var traffic: Traffic
        var key: Range<Int>
        var frame: Range<Int>
    }

    /// Where a section lies: its channel's bytes, and its items' spans (indices into the item spans).
    struct SectionSpan {
        var channel: Range<Int>
        var items: Range<Int>
    }

    /// The sessions' items of a well-formed publication, or nil (nothing of it is handed on). What the
    /// receiving loop reads (`LoopLink.nodeBatch`) without the arrays: `scan`.
    public static func read(_ bytes: [UInt8]) -> (origin: [UInt8], sections: [Section])? {
        var sections: [SectionSpan] = []
        var items: [ItemSpan] = []
        guard let origin = scan(bytes, &sections, &items) else { return nil }
        return (
            Array(bytes[origin]),
            sections.map { s in
                Section(
                    channel: Array(bytes[s.channel]),
                    items: items[s.items].map { i in
                        RelayedBatch(
                            traffic: i.traffic, relayedKey: RelayedKey(bytes, i.key),
                            frame: bytes.withUnsafeBytes { Chunk(UnsafeRawBufferPointer(rebasing: $0[i.frame])) })
                    })
            }
        )
    }

    /// Checks a whole publication and records where its sections and items lie (into the caller's
    /// reused arrays, emptied first); returns the origin's range, or nil if anything is malformed: the
    /// origin a token, each section's channel 1-512 bytes starting with `{`, 1-`ChannelMessage.maxBatch`
    /// items each as `RelayedBatch` checks them (one whole server text frame), nothing left over.
    static func scan(_ bytes: [UInt8], _ sections: inout [SectionSpan], _ items: inout [ItemSpan]) -> Range<Int>? {
        sections.removeAll(keepingCapacity: true)
        items.removeAll(keepingCapacity: true)
        return bytes.withUnsafeBufferPointer { p -> Range<Int>? in
            guard p.first == UInt8(ascii: "E") else { return nil }
            let end = p.count
            guard let nl = RelayedBatch.index(of: 0x0A, in: p, from: 1, to: min(end, 1 + 129)),
                RelayedBatch.isToken(p, 1, nl)
            else { return nil }
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
                let first = items.count
                at = e + 1 + clen
                for _ in 0..<count {
                    guard let (item, next) = scanItem(p, at) else { return nil }
                    items.append(item)
                    at = next
                }
                sections.append(SectionSpan(channel: (e + 1)..<(e + 1 + clen), items: first..<items.count))
            }
            return 1..<nl
        }
    }

    /// One item, `<traffic> <keylen> <framelen>\n<key><frame>` (its header at most 64 bytes), as
    /// `RelayedBatch` checks it.
    private static func scanItem(_ p: UnsafeBufferPointer<UInt8>, _ at: Int) -> (ItemSpan, Int)? {
        let end = p.count
        guard let e = RelayedBatch.index(of: 0x0A, in: p, from: at, to: min(end, at + 65)),
            let s1 = RelayedBatch.index(of: 0x20, in: p, from: at, to: e),
            let s2 = RelayedBatch.index(of: 0x20, in: p, from: s1 + 1, to: e),
            RelayedBatch.index(of: 0x20, in: p, from: s2 + 1, to: e) == nil,
            let traffic = RelayedBatch.traffic(p, at, s1), let klen = RelayedBatch.number(p, s1 + 1, s2),
            let flen = RelayedBatch.number(p, s2 + 1, e), klen <= end - e - 1, flen <= end - e - 1 - klen
        else { return nil }
        let keyStart = e + 1, frameStart = keyStart + klen, frameEnd = frameStart + flen
        guard ChannelMessage.isServerTextFrame(UnsafeBufferPointer(rebasing: p[frameStart..<frameEnd])) else {
            return nil
        }
        return (ItemSpan(traffic: traffic, key: keyStart..<frameStart, frame: frameStart..<frameEnd), frameEnd)
    }
}
