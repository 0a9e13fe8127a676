import Bytes
import Hub

/// The receiving end of relayed ephemeral traffic: the hot path of cross-node fan-out. Redis sends
/// every publication back to its sender too, so a node's own batches are recognised from the header
/// alone, before anything is decoded; another node's are checked by the same rules as
/// `ChannelMessage.decode` (the whole batch, before any item is handed on), and each item's frame goes
/// from the publication straight into the one `Chunk` every member's queue shares: one copy, no
/// intermediate arrays.
public struct RelayedBatch {
    public let traffic: Traffic
    /// The coalescing key, left in the publication's bytes until read.
    public let relayedKey: RelayedKey
    public let frame: Chunk
    public var key: String { relayedKey.string }

    /// The items of an ephemeral batch (`e<origin> <count>\n...`) sent by a node other than `node`.
    /// `.own`: this node's own batch (nothing decoded); `.malformed`: not a well-formed ephemeral batch
    /// (exactly what `ChannelMessage.decode` refuses); `.notEphemeral`: another kind of message.
    public enum Outcome {
        case items([RelayedBatch])
        case own
        case malformed
        case notEphemeral
    }

    public static func read(_ bytes: [UInt8], node: [UInt8]) -> Outcome {
        bytes.withUnsafeBufferPointer { read($0, of: bytes, node: node) }
    }

    /// `p`: the bytes of `bytes`, which the items' keys keep.
    static func read(_ p: UnsafeBufferPointer<UInt8>, of bytes: [UInt8], node: [UInt8]) -> Outcome {
        guard p.first == UInt8(ascii: "e") else { return .notEphemeral }
        let end = p.count
        // The header: `e<origin> <count>\n`, at most 256 bytes after the tag.
        guard let nl = index(of: 0x0A, in: p, from: 1, to: min(end, 1 + 257)) else { return .malformed }
        guard let sp = index(of: 0x20, in: p, from: 1, to: nl), index(of: 0x20, in: p, from: sp + 1, to: nl) == nil
        else { return .malformed }
        guard isToken(p, 1, sp), let count = number(p, sp + 1, nl), count > 0, count <= ChannelMessage.maxBatch
        else { return .malformed }
        if sp - 1 == node.count, node.withUnsafeBufferPointer({ equal(p, 1, $0) }) { return .own }
        guard let (items, at) = readItems(p, of: bytes, from: nl + 1, count: count), at == end else {
            return .malformed
        }
        return .items(items)
    }

    /// `count` items (`<traffic> <keylen> <framelen>\n<key><frame>`) from `from`, each checked, and where
    /// they end; nil if any is malformed. Shared with `NodeBatch` (a node's batch of many sessions).
    static func readItems(
        _ p: UnsafeBufferPointer<UInt8>, of bytes: [UInt8], from: Int, count: Int
    ) -> ([RelayedBatch], Int)? {
        let end = p.count
        var items: [RelayedBatch] = []
        items.reserveCapacity(count)
        var at = from
        for _ in 0..<count {
            // `<traffic> <keylen> <framelen>\n`, at most 64 bytes.
            guard let e = index(of: 0x0A, in: p, from: at, to: min(end, at + 65)),
                let s1 = index(of: 0x20, in: p, from: at, to: e),
                let s2 = index(of: 0x20, in: p, from: s1 + 1, to: e),
                index(of: 0x20, in: p, from: s2 + 1, to: e) == nil,
                let traffic = traffic(p, at, s1), let klen = number(p, s1 + 1, s2), let flen = number(p, s2 + 1, e),
                klen <= end - e - 1, flen <= end - e - 1 - klen
            else { return nil }
            let keyStart = e + 1, frameStart = keyStart + klen
            let frame = UnsafeBufferPointer(rebasing: p[frameStart..<(frameStart + flen)])
            guard ChannelMessage.isServerTextFrame(frame) else { return nil }
            items.append(
                RelayedBatch(
                    traffic: traffic, relayedKey: RelayedKey(bytes, keyStart..<frameStart),
                    frame: Chunk(UnsafeRawBufferPointer(frame))))
            at = frameStart + flen
        }
        return (items, at)
    }

    static func index(of b: UInt8, in p: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
        var i = from
        while i < to {
            if p[i] == b { return i }
            i += 1
        }
        return nil
    }

    private static func equal(_ p: UnsafeBufferPointer<UInt8>, _ from: Int, _ q: UnsafeBufferPointer<UInt8>) -> Bool {
        for i in 0..<q.count where p[from + i] != q[i] { return false }
        return true
    }

    /// What `isToken` accepts: 1-128 printable ASCII bytes, no spaces.
    static func isToken(_ p: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Bool {
        guard to > from, to - from <= 128 else { return false }
        for i in from..<to where p[i] <= 0x20 || p[i] >= 0x7F { return false }
        return true
    }

    /// What `Int(ascii:)` accepts: 1-18 decimal digits.
    static func number(_ p: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Int? {
        guard to > from, to - from <= 18 else { return nil }
        var n = 0
        for i in from..<to {
            let b = p[i]
            guard b >= 0x30 && b <= 0x39 else { return nil }
            n = n * 10 + Int(b - 0x30)
        }
        return n
    }

    private static let trafficNames: [(traffic: Traffic, name: [UInt8])] = Traffic.allCases.map {
        ($0, Array($0.rawValue.utf8))
    }

    static func traffic(_ p: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Traffic? {
        for (t, name) in trafficNames where name.count == to - from {
            if name.withUnsafeBufferPointer({ equal(p, from, $0) }) { return t }
        }
        return nil
    }
}
