import Cluster
import Hub
import WebSocket

/// libFuzzer entry point for what a cluster node parses from Redis (a shared trust boundary, but a
/// Redis reachable by others, or a bug in another version of the hub, must not crash a node): log
/// entries, channel messages, session rows, the `--redis` URL, run events as published on `chub:runs`,
/// the run append script's reply, and control messages between nodes (`chub:ctl`); a loop's publication of
/// many sessions' relays (`NodeBatch`) goes with the channel messages. The first byte picks
/// which. Nothing may crash; whatever decodes encodes back to the same value; a URL's description never
/// shows its password; a relayed frame is one whole server text frame; an accepted append reply has one
/// commit per event.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCluster(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch data[0] % 7 {
    case 0:
        if let e = LogEntry.decode(bytes[...]) {
            precondition(e.seq > 0 && e.ts >= 0)
            precondition(LogEntry.decode(e.encode()[...]) == e)
        }
        if bytes.count > 3, let e = LogEntry.decode(bytes[3...]) { precondition(e.seq > 0) }
    case 1:
        _ = ChannelMessage.ownCommit(bytes, node: "node")
        // The receiving fast path reads exactly what decode reads (`RelayedBatch`).
        let decoded = ChannelMessage.decode(bytes)
        switch RelayedBatch.read(bytes, node: Array("node".utf8)) {
        case .items(let items):
            guard case .ephemeral(let origin, let expected)? = decoded, origin != "node" else {
                preconditionFailure("RelayedBatch read what decode refused")
            }
            precondition(items.count == expected.count)
            for (a, b) in zip(items, expected) {
                precondition(a.traffic == b.traffic && a.key == b.key)
                precondition(withExtendedLifetime(a.frame) { Array(a.frame.bytes) } == b.frame)
            }
        case .own:
            // Dropped unread, as decode's reading of it would be (or its refusal).
            precondition(bytes.starts(with: Array("enode ".utf8)))
            if case .ephemeral(let origin, _)? = decoded { precondition(origin == "node") }
        case .malformed:
            guard bytes.first == UInt8(ascii: "e"), decoded == nil else { preconditionFailure("refused a batch") }
        case .notEphemeral:
            precondition(bytes.first != UInt8(ascii: "e"))
        }
        // A loop's publication of many sessions' relays (`E...`, `NodeBatch`): what reads encodes back to
        // bytes that read to the same sessions and items; anything else (every other tag) is refused whole.
        if let (origin, sections) = NodeBatch.read(bytes) {
            precondition(bytes.first == UInt8(ascii: "E") && !sections.isEmpty)
            let values = sections.map { s in
                (
                    s.channel,
                    s.items.map {
                        Relayed($0.traffic, key: $0.key, frame: withExtendedLifetime($0.frame) { Array($0.bytes) })
                    }
                )
            }
            for (channel, items) in values {
                precondition(channel.first == UInt8(ascii: "{") && channel.count <= NodeBatch.maxChannel)
                precondition(!items.isEmpty && items.count <= ChannelMessage.maxBatch)
                for r in items { precondition(ChannelMessage.isServerTextFrame(r.frame)) }
            }
            let again = NodeBatch.encode(origin: String(decoding: origin, as: UTF8.self), values)
            guard let (origin2, sections2) = NodeBatch.read(again) else { preconditionFailure("re-encoded refused") }
            precondition(origin2 == origin && sections2.count == sections.count)
            for (x, (channel, items)) in zip(sections2, values) {
                precondition(x.channel == channel && x.items.count == items.count)
                for (a, b) in zip(x.items, items) {
                    precondition(a.traffic == b.traffic && a.key == b.key)
                    precondition(withExtendedLifetime(a.frame) { Array($0.bytes) } == b.frame)
                }
            }
        } else {
            precondition(bytes.first != UInt8(ascii: "E") || decoded == nil)
        }
        if let m = decoded {
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
    case 4:
        if let p = RunPublication.decode(bytes) {
            precondition(p.entry.type == "run_event" && p.entry.seq > 0 && Run.isValidId(p.run))
            precondition(RunPublication.decode(p.encode()) == p)
        }
    case 5:
        // The reply as the RESP parser hands it over: the first byte is the number of events, the rest a tree.
        guard !bytes.isEmpty else { return 0 }
        var reader = ReplyReader(bytes: bytes[1...])
        let count = Int(bytes[0] % 8) + 1
        let reply = reader.reply(depth: 0)
        switch RedisStorage.runAppendReply(reply, count: count) {
        case .failure: break
        case .success((.illegal(let why), let epoch)):
            precondition(epoch.isEmpty)
            let again = RedisStorage.runAppendReply(.array([.integer(0), .string(Array(why.utf8))]), count: count)
            guard case .success((.illegal(let why2), _)) = again else { preconditionFailure("illegal lost") }
            precondition(why2 == why)
        case .success((.appended(let commits), let epoch)):
            precondition(commits.count == count && commits.allSatisfy { $0.seq > 0 })
            precondition(commits.allSatisfy { $0.ts == commits[0].ts })
            // What parses is re-encoded as the script writes it and parses to the same value.
            var items: [RedisReply] = [.integer(1), .integer(Int(commits[0].ts)), .string(Array(epoch.utf8))]
            for c in commits { items += [.integer(c.seq), .integer(c.duplicate ? 1 : 0)] }
            guard case .success((let again, let epoch2)) = RedisStorage.runAppendReply(.array(items), count: count)
            else { preconditionFailure("an append reply did not parse again") }
            precondition(again == .appended(commits) && epoch2 == epoch)
        }
    case 6:
        if let m = ControlMessage.decode(bytes) { precondition(ControlMessage.decode(m.encode()) == m) }
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

/// Builds a Redis reply tree from fuzzer bytes: a tag byte, then the value (a length byte and bytes for
/// strings, statuses and errors; eight bytes for integers; a count byte and items for arrays).
private struct ReplyReader {
    var bytes: ArraySlice<UInt8>

    mutating func byte() -> UInt8 { bytes.popFirst() ?? 0 }

    mutating func text() -> [UInt8] {
        let n = min(Int(byte()), bytes.count)
        defer { bytes = bytes.dropFirst(n) }
        return Array(bytes.prefix(n))
    }

    mutating func reply(depth: Int) -> RedisReply {
        switch byte() % 6 {
        case 0: return .string(text())
        case 1:
            var n: UInt64 = 0
            for _ in 0..<8 { n = n << 8 | UInt64(byte()) }
            return .integer(Int(truncatingIfNeeded: n))
        case 2:
            guard depth < 3 else { return .null }
            return .array((0..<Int(byte() % 32)).map { _ in reply(depth: depth + 1) })
        case 3: return .status(String(decoding: text(), as: UTF8.self))
        case 4: return .error(String(decoding: text(), as: UTF8.self))
        default: return .null
        }
    }
}
