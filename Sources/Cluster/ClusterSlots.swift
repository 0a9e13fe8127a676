import Foundation
import Logging

/// Redis Cluster's key slots, as the cluster specification defines them: a key's slot is CRC16 (XMODEM:
/// polynomial 0x1021, initial value 0) of the key, modulo 16384; a key with a hash tag (the bytes
/// between its first `{` and the first `}` after it, if there is at least one) hashes only the tag. So
/// every `{S}:…` key of session S, and its channel `{S}:ch`, is in one slot. Pure, unit-tested
/// (`ClusterSlotsTests`).
public enum KeySlot {
    public static let count = 16384

    private static let table: [UInt16] = (0..<256).map { byte in
        var crc = UInt16(byte) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }

    public static func crc16<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var crc: UInt16 = 0
        for b in bytes { crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ b)] }
        return crc
    }

    /// The part of `key` that is hashed: its hash tag if it has a non-empty one, else all of it.
    public static func hashed(_ key: [UInt8]) -> ArraySlice<UInt8> {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        else { return key[...] }
        return key[(open + 1)..<close]
    }

    public static func of(_ key: [UInt8]) -> Int { Int(crc16(hashed(key)) & 0x3FFF) }
    public static func of(_ key: String) -> Int { of(Array(key.utf8)) }
}

/// What Redis Cluster commands mean for routing: the key a command is routed by, the redirections a
/// node answers with, and the slot map read from `CLUSTER SLOTS`. Pure (unit-tested).
public enum ClusterRouting {
    /// The key whose slot decides where `args` go; nil for a command any master can run (PING, SCRIPT,
    /// PUBLISH: Redis Cluster broadcasts it) or a script without keys.
    public static func key(_ args: [[UInt8]]) -> [UInt8]? {
        guard let first = args.first, args.count > 1 else { return nil }
        switch String(decoding: first, as: UTF8.self).uppercased() {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL":
            guard args.count > 3, let n = Int(String(decoding: args[2], as: UTF8.self)), n > 0 else { return nil }
            return args[3]
        case "XREADGROUP", "XREAD":
            guard let at = args.firstIndex(where: { String(decoding: $0, as: UTF8.self).uppercased() == "STREAMS" }),
                at + 1 < args.count
            else { return nil }
            return args[at + 1]
        case "PING", "SCRIPT", "PUBLISH", "AUTH", "SELECT", "CLUSTER", "INFO", "ASKING", "SCAN", "SUBSCRIBE",
            "UNSUBSCRIBE", "TIME", "WAIT":
            return nil
        default: return args[1]
        }
    }

    /// A redirection: `MOVED <slot> <host>:<port>` (the slot lives there now) or `ASK <slot> <host>:<port>`
    /// (this once, during a migration, after ASKING).
    public struct Redirect: Equatable {
        public let ask: Bool
        public let slot: Int
        public let address: String
    }

    public static func redirect(_ error: String) -> Redirect? {
        let parts = error.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
            slot >= 0, slot < KeySlot.count, parseAddress(String(parts[2])) != nil
        else { return nil }
        return Redirect(ask: parts[0] == "ASK", slot: slot, address: String(parts[2]))
    }

    /// `host:port` (the host may be an IPv6 address: the port is after the last colon).
    public static func parseAddress(_ s: String) -> (host: String, port: Int)? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), port > 0,
            port < 65536
        else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return nil }
        return (host, port)
    }

    public static func address(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The ranges of `CLUSTER SLOTS` (`[[start, end, [host, port, id…], replicas…]…]`) and their masters'
    /// `host:port`; a master given with an empty host or `?` is the node that was asked (`asked`). Nil if
    /// the reply is not that shape or names a host that is no address.
    static func slots(_ reply: RedisReply, asked: String) -> [(ClosedRange<Int>, String)]? {
        guard case .array(let ranges) = reply else { return nil }
        var out: [(ClosedRange<Int>, String)] = []
        let askedHost = parseAddress(asked)?.host ?? ""
        for r in ranges {
            let items = r.items
            guard items.count >= 3, let start = items[0].int, let end = items[1].int, start >= 0, start <= end,
                end < KeySlot.count
            else { return nil }
            let master = items[2].items
            guard master.count >= 2, var host = master[0].text, let port = master[1].int, port > 0, port < 65536
            else { return nil }
            if host.isEmpty || host == "?" { host = askedHost }
            // A host that would not parse back (spaces, control bytes) is no address to route to.
            guard !host.isEmpty, parseAddress(address(host, port)) != nil else { return nil }
            out.append((start...end, address(host, port)))
        }
        return out
    }
}

/// The slot map of one node's Redis Cluster, shared by its loops and worker threads: which master
/// (`host:port`) serves each slot. Filled from `CLUSTER SLOTS`; a MOVED updates one slot at once
/// (`moved`), and a full read follows (`ClusterSync.refreshSoon`).
final class ClusterMap: @unchecked Sendable {
    private let lock = NSLock()
    private var owner = [Int32](repeating: -1, count: KeySlot.count)
    private var masterList: [String] = []
    /// Counts changes: a loop compares it with the one it placed its subscriptions for. Read under the
    /// lock like the rest: the loops read it while a refresh (on its own queue) changes the map.
    var version: Int { lock.withLock { changes } }
    private var changes = 0

    func master(slot: Int) -> String? {
        lock.withLock {
            let i = owner[slot]
            return i < 0 ? nil : masterList[Int(i)]
        }
    }

    var masters: [String] { lock.withLock { masterList } }

    /// Replaces the map; true if it changed.
    @discardableResult
    func set(_ ranges: [(ClosedRange<Int>, String)]) -> Bool {
        var list: [String] = []
        var next = [Int32](repeating: -1, count: KeySlot.count)
        for (range, master) in ranges {
            let i = list.firstIndex(of: master) ?? list.count
            if i == list.count { list.append(master) }
            for s in range { next[s] = Int32(i) }
        }
        return lock.withLock {
            guard next != owner || list != masterList else { return false }
            (owner, masterList) = (next, list)
            changes += 1
            return true
        }
    }

    /// A MOVED: the slot is served by `master` now.
    func moved(slot: Int, to master: String) {
        let changed = lock.withLock { () -> Bool in
            let i = masterList.firstIndex(of: master) ?? masterList.count
            if i == masterList.count { masterList.append(master) }
            guard owner[slot] != Int32(i) else { return false }
            owner[slot] = Int32(i)
            changes += 1
            return true
        }
        if changed { log.notice("redis cluster slot moved", metadata: ["slot": "\(slot)", "master": "\(master)"]) }
    }
    private let log = Logger(label: "collabhub.redis")
}
