import Hub
import WebSocket

/// An event as the session's log in Redis holds it: `seq ts type origin mlen\n` then the member's
/// stable key (`mlen` bytes) and the body. The append script writes it, the nodes read it back from
/// the log and from the channel; both are checked here before anything meets an index.
public struct LogEntry: Equatable, Sendable {
    public var seq: Int
    public var ts: Int64
    public var type: String
    public var origin: String
    public var member: String?
    public var body: [UInt8]

    public init(seq: Int, ts: Int64, type: String, origin: String, member: String?, body: [UInt8]) {
        self.seq = seq; self.ts = ts; self.type = type; self.origin = origin; self.member = member; self.body = body
    }

    public static func decode(_ bytes: ArraySlice<UInt8>) -> LogEntry? {
        guard let nl = bytes.firstIndex(of: 0x0A), nl - bytes.startIndex <= 512 else { return nil }
        let head = bytes[bytes.startIndex..<nl].split(separator: 0x20, omittingEmptySubsequences: false)
        guard head.count == 5, let seq = Int(ascii: head[0]), seq > 0, let ts = Int(ascii: head[1]),
            let mlen = Int(ascii: head[4]), mlen >= 0, mlen <= bytes.endIndex - nl - 1,
            isToken(head[2]), isToken(head[3])
        else { return nil }
        let memberStart = nl + 1
        let member = bytes[memberStart..<memberStart + mlen]
        return LogEntry(
            seq: seq, ts: Int64(ts), type: String(decoding: head[2], as: UTF8.self),
            origin: String(decoding: head[3], as: UTF8.self),
            member: mlen == 0 ? nil : String(decoding: member, as: UTF8.self),
            body: Array(bytes[(memberStart + mlen)...]))
    }

    public func encode() -> [UInt8] {
        let m = Array((member ?? "").utf8)
        return Array("\(seq) \(ts) \(type) \(origin) \(m.count)\n".utf8) + m + body
    }

    var stored: StoredEvent { StoredEvent(seq: seq, ts: ts, type: type, body: body) }
}

/// Ephemeral traffic relayed to other nodes: what it is, its coalescing key ("" none), and the
/// WebSocket frame every client gets.
public struct Relayed: Equatable, Sendable {
    public var traffic: Traffic
    public var key: String
    public var frame: [UInt8]
    public init(_ traffic: Traffic, key: String, frame: [UInt8]) {
        self.traffic = traffic; self.key = key; self.frame = frame
    }
}

/// What goes over a session's channel: `d<epoch> <entry>` (a committed event) or
/// `e<origin> <count>\n` then per item `<traffic> <keylen> <framelen>\n<key><frame>` (one node's
/// ephemeral traffic of one tick, each frame whole).
public enum ChannelMessage: Equatable, Sendable {
    case committed(epoch: String, LogEntry)
    case ephemeral(origin: String, [Relayed])

    /// Items per batch at most (a tick of one session's traffic is far less).
    public static let maxBatch = 4096

    public static func decode(_ bytes: [UInt8]) -> ChannelMessage? {
        guard let tag = bytes.first else { return nil }
        let rest = bytes[1...]
        switch tag {
        case UInt8(ascii: "d"):
            guard let sp = rest.firstIndex(of: 0x20), sp > rest.startIndex,
                let e = LogEntry.decode(rest[(sp + 1)...])
            else { return nil }
            return .committed(epoch: String(decoding: rest[..<sp], as: UTF8.self), e)
        case UInt8(ascii: "e"):
            guard let nl = rest.firstIndex(of: 0x0A), nl - rest.startIndex <= 256 else { return nil }
            let head = rest[rest.startIndex..<nl].split(separator: 0x20, omittingEmptySubsequences: false)
            guard head.count == 2, isToken(head[0]), let count = Int(ascii: head[1]), count > 0,
                count <= maxBatch
            else { return nil }
            var items: [Relayed] = []
            var at = nl + 1
            for _ in 0..<count {
                guard let end = rest[at...].firstIndex(of: 0x0A), end - at <= 64 else { return nil }
                let h = rest[at..<end].split(separator: 0x20, omittingEmptySubsequences: false)
                guard h.count == 3, let traffic = Traffic(rawValue: String(decoding: h[0], as: UTF8.self)),
                    let klen = Int(ascii: h[1]), let flen = Int(ascii: h[2]),
                    klen <= rest.endIndex - end - 1, flen <= rest.endIndex - end - 1 - klen
                else { return nil }
                let keyStart = end + 1, frameStart = keyStart + klen
                let frame = Array(rest[frameStart..<(frameStart + flen)])
                guard isServerTextFrame(frame) else { return nil }
                items.append(
                    Relayed(traffic, key: String(decoding: rest[keyStart..<frameStart], as: UTF8.self), frame: frame))
                at = frameStart + flen
            }
            guard at == rest.endIndex else { return nil }
            return .ephemeral(origin: String(decoding: head[0], as: UTF8.self), items)
        default: return nil
        }
    }

    /// The epoch and seq of a committed event published by `node` itself (nil for anything else),
    /// read from the header alone.
    public static func ownCommit(_ bytes: [UInt8], node: String) -> (epoch: String, seq: Int)? {
        guard bytes.first == UInt8(ascii: "d"), let sp = bytes.firstIndex(of: 0x20), sp > 1,
            let nl = bytes[sp...].firstIndex(of: 0x0A), nl - sp <= 512
        else { return nil }
        let head = bytes[(sp + 1)..<nl].split(separator: 0x20, omittingEmptySubsequences: false)
        guard head.count == 5, head[3].elementsEqual(node.utf8), let seq = Int(ascii: head[0]), seq > 0 else {
            return nil
        }
        return (String(decoding: bytes[1..<sp], as: UTF8.self), seq)
    }

    public func encode() -> [UInt8] {
        switch self {
        case .committed(let epoch, let e): return Array("d\(epoch) ".utf8) + e.encode()
        case .ephemeral(let origin, let items):
            // One buffer, sized first: a node encodes one of these per session per loop iteration.
            var out: [UInt8] = []
            out.reserveCapacity(origin.utf8.count + 16 + Relayed.capacity(items))
            out.append(UInt8(ascii: "e"))
            out.appendUTF8(origin)
            out.append(0x20)
            out.appendDecimal(items.count)
            out.append(0x0A)
            Relayed.append(items, to: &out)
            return out
        }
    }

    /// One whole, unmasked, final text frame, its length exactly the bytes after its header (what
    /// `Chunk.text` makes): anything else from the channel is dropped, never sent to a client.
    public static func isServerTextFrame(_ f: [UInt8]) -> Bool {
        f.withUnsafeBufferPointer { isServerTextFrame($0) }
    }

    /// The same, on bytes in place (`RelayedBatch` reads a publication without copying it).
    static func isServerTextFrame(_ f: UnsafeBufferPointer<UInt8>) -> Bool {
        guard f.count >= 2, f[0] == 0x81, f[1] & 0x80 == 0 else { return false }
        let len7 = Int(f[1] & 0x7F)
        switch len7 {
        case 126:
            guard f.count >= 4 else { return false }
            return Int(f[2]) << 8 | Int(f[3]) == f.count - 4
        case 127:
            guard f.count >= 10 else { return false }
            var n = 0
            for i in 2..<10 { n = n << 8 | Int(f[i]) }
            return n == f.count - 10
        default: return len7 == f.count - 2
        }
    }
}

/// A type or a node id: printable ASCII, no spaces (what the hub writes there).
func isToken(_ bytes: ArraySlice<UInt8>) -> Bool {
    !bytes.isEmpty && bytes.count <= 128 && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F }
}

extension Int {
    /// A non-negative decimal of at most 18 digits.
    init?(ascii: ArraySlice<UInt8>) {
        guard !ascii.isEmpty, ascii.count <= 18 else { return nil }
        var n = 0
        for b in ascii {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            n = n * 10 + Int(b - 0x30)
        }
        self = n
    }
}

/// A session's row as JSON (the `{CODE}:info` key and the directory channel).
public enum SessionInfoJSON {
    public static func encode(_ i: SessionInfo) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.field("code", i.code); w.field("title", i.title); w.field("max", i.maxParticipants)
        // A row from before host keys were hashed is hashed on its way out: no plaintext key reaches
        // Redis or the directory channel again.
        w.field("guests", i.guestPolicy.rawValue)
        w.field("host_key", i.hostKey.isEmpty || HostKey.isHashed(i.hostKey) ? i.hostKey : HostKey.stored(i.hostKey))
        w.field("created", Int(i.createdAt))
        if let e = i.endedAt { w.field("ended", Int(e)) }
        if let r = i.endReason { w.field("reason", r) }
        w.beginObject("events")
        for (role, names) in i.eventPolicy.sorted(by: { $0.key < $1.key }) {
            w.beginArray(role); for n in names { w.element(n) }; w.endArray()
        }
        w.endObject()
        if !i.revokedShares.isEmpty {
            w.beginArray("revoked_shares"); for id in i.revokedShares { w.element(id) }; w.endArray()
        }
        w.endObject()
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) -> SessionInfo? {
        guard let o = try? JSONReader.readObject(bytes), let code = o["code"]?.string, let title = o["title"]?.string,
            let max = o["max"]?.int, let guests = o["guests"]?.string.flatMap(GuestPolicy.init(rawValue:)),
            let hostKey = o["host_key"]?.string, let created = o["created"]?.int
        else { return nil }
        var info = SessionInfo(
            code: code, title: title, maxParticipants: max, guestPolicy: guests, hostKey: hostKey,
            createdAt: Int64(created))
        info.endedAt = o["ended"]?.int.map(Int64.init)
        info.endReason = o["reason"]?.string
        for (role, names) in o["events"]?.object?.members ?? [] {
            info.eventPolicy[role] = names.array?.compactMap(\.string) ?? []
        }
        info.revokedShares = Array(
            (o["revoked_shares"]?.array?.compactMap(\.string) ?? []).prefix(SessionInfo.maxRevokedShares))
        return info
    }
}

/// A run event as the run append script publishes it on `chub:runs`: `r<epoch> <run> <entry>` (the
/// run's id, then the entry as its log holds it). Checked here before anything meets the board.
public struct RunPublication: Equatable, Sendable {
    public var epoch: String
    public var run: String
    public var entry: LogEntry

    public init(epoch: String, run: String, entry: LogEntry) {
        self.epoch = epoch; self.run = run; self.entry = entry
    }

    public static func decode(_ bytes: [UInt8]) -> RunPublication? {
        guard bytes.first == UInt8(ascii: "r"), let sp = bytes.firstIndex(of: 0x20), sp > 1,
            isToken(bytes[1..<sp]), let sp2 = bytes[(sp + 1)...].firstIndex(of: 0x20), sp2 > sp + 1
        else { return nil }
        let run = String(decoding: bytes[(sp + 1)..<sp2], as: UTF8.self)
        guard Run.isValidId(run), let entry = LogEntry.decode(bytes[(sp2 + 1)...]), entry.type == "run_event" else {
            return nil
        }
        return RunPublication(epoch: String(decoding: bytes[1..<sp], as: UTF8.self), run: run, entry: entry)
    }

    public func encode() -> [UInt8] { Array("r\(epoch) \(run) ".utf8) + entry.encode() }
}

extension [UInt8] {
    /// A string's UTF-8 bytes appended as one block (`append(contentsOf: s.utf8)` goes a byte at a time:
    /// ~180 instructions for a coalescing key, on every relayed item).
    mutating func appendUTF8(_ s: String) {
        var s = s
        s.withUTF8 { append(contentsOf: $0) }
    }
}
