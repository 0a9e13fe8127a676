import CSQLite
import Foundation
import Hub

/// Reads, each on a connection of its own from the pool (`ReaderPool`), off the loop threads.
extension SQLiteStore: TranscriptReads {
    func read<T>(_ body: (Database) throws -> T) throws -> T { try readers.read(body) }

    public func lastSeq(session: String) throws -> Int {
        try read { db -> Int in
            let s = try db.prepare(Self.lastSeqSQL)
            s.bind(1, session)
            _ = try s.step()
            return Int(s.int(0))
        }
    }

    public func tail(session: String, limit: Int) throws -> [StoredEvent] {
        try read { db -> [StoredEvent] in
            let s = try db.prepare("SELECT seq, ts, type, body FROM events WHERE session=? ORDER BY seq DESC LIMIT ?")
            s.bind(1, session); s.bind(2, limit)
            var out: [StoredEvent] = []
            while try s.step() { out.append(Self.event(s)) }
            return out.reversed()
        }
    }

    public func events(session: String, after: Int, limit: Int) throws -> [StoredEvent] {
        try read { db in
            let s = try db.prepare(
                "SELECT seq, ts, type, body FROM events WHERE session=? AND seq>? ORDER BY seq LIMIT ?")
            s.bind(1, session); s.bind(2, after); s.bind(3, limit)
            var out: [StoredEvent] = []
            while try s.step() { out.append(Self.event(s)) }
            return out
        }
    }

    /// Stops stepping at the byte budget: rows past it are never read.
    public func events(session: String, after: Int, limit: Int, maxBytes: Int) throws -> [StoredEvent] {
        try read { db in
            let s = try db.prepare(
                "SELECT seq, ts, type, body FROM events WHERE session=? AND seq>? ORDER BY seq LIMIT ?")
            s.bind(1, session); s.bind(2, after); s.bind(3, limit)
            var out: [StoredEvent] = []
            var bytes = 0
            while try s.step() {
                let e = Self.event(s)
                if !out.isEmpty && bytes + e.body.count > maxBytes { break }
                bytes += e.body.count
                out.append(e)
            }
            return out
        }
    }

    public func event(session: String, seq: Int) throws -> (event: StoredEvent, member: String?)? {
        try read { db in
            let s = try db.prepare("SELECT seq, ts, type, body, member FROM events WHERE session=? AND seq=?")
            s.bind(1, session); s.bind(2, seq)
            return try s.step() ? (Self.event(s), s.string(4)) : nil
        }
    }

    public func cursorSamples(session: String, from: Int64, to: Int64, limit: Int) throws -> [CursorSample] {
        try read { db in
            let s = try db.prepare(
                "SELECT ts, updates FROM cursors WHERE session=? AND ts>=? AND ts<=? ORDER BY ts LIMIT ?")
            s.bind(1, session); s.bind(2, from); s.bind(3, to); s.bind(4, limit)
            var out: [CursorSample] = []
            while try s.step() { out.append(CursorSample(ts: s.int(0), updates: s.blob(1))) }
            return out
        }
    }

    public func streams(prefix: String) throws -> [(String, [StoredEvent])] {
        try read { db in
            let s = try db.prepare(
                """
                SELECT session, seq, ts, type, body FROM events WHERE session >= ? AND session < ? ORDER BY session, seq
                """)
            s.bind(1, prefix); s.bind(2, prefix + "\u{10FFFF}")
            var out: [(String, [StoredEvent])] = []
            while try s.step() {
                let key = s.string(0) ?? ""
                let e = StoredEvent(seq: Int(s.int(1)), ts: s.int(2), type: s.string(3) ?? "", body: s.blob(4))
                if out.last?.0 == key { out[out.count - 1].1.append(e) } else { out.append((key, [e])) }
            }
            return out
        }
    }

    /// A row of `seq, ts, type, body`.
    static func event(_ s: Statement) -> StoredEvent {
        StoredEvent(seq: Int(s.int(0)), ts: s.int(1), type: s.string(2) ?? "", body: s.blob(3))
    }
}

/// Session rows: written by the writer thread with the next batch, read on the pool.
extension SQLiteStore {
    public func save(_ info: SessionInfo, created: Bool, done: ((Bool) -> Void)?) {
        enqueue(.session(info, created: created, done))
    }

    public func sessions() throws -> [(SessionInfo, events: Int)] {
        try read { db in
            let s = try db.prepare(
                """
                SELECT code, title, max_participants, guest_policy, host_key, created_at, ended_at, end_reason,
                  (SELECT COUNT(*) FROM events e WHERE e.session = s.code), options FROM sessions s ORDER BY created_at
                """)
            var out: [(SessionInfo, Int)] = []
            while try s.step() {
                var info = SessionInfo(
                    code: s.string(0) ?? "", title: s.string(1) ?? "", maxParticipants: Int(s.int(2)),
                    guestPolicy: GuestPolicy(rawValue: s.string(3) ?? "") ?? .deny, hostKey: s.string(4) ?? "",
                    createdAt: s.int(5))
                info.endedAt = s.isNull(6) ? nil : s.int(6)
                info.endReason = s.string(7)
                if let options = s.string(9) {
                    info.eventPolicy = Self.eventPolicy(fromOptions: options)
                    info.revokedShares = Self.revokedShares(fromOptions: options)
                }
                out.append((info, Int(s.int(8))))
            }
            return out
        }
    }

    /// The `options` column: `{"events": {role: [names]}, "revoked_shares": [ids]}`, or nil when there is
    /// nothing to keep.
    static func options(of info: SessionInfo) -> String? {
        guard !info.eventPolicy.isEmpty || !info.revokedShares.isEmpty else { return nil }
        var w = JSONWriter()
        w.beginObject(); w.beginObject("events")
        for role in info.eventPolicy.keys.sorted() {
            w.beginArray(role)
            for name in info.eventPolicy[role] ?? [] { w.element(name) }
            w.endArray()
        }
        w.endObject()
        if !info.revokedShares.isEmpty {
            w.beginArray("revoked_shares"); for id in info.revokedShares { w.element(id) }; w.endArray()
        }
        w.endObject()
        return String(decoding: w.bytes, as: UTF8.self)
    }

    static func revokedShares(fromOptions options: String) -> [String] {
        guard let root = try? JSONReader.readObject(Array(options.utf8)) else { return [] }
        return Array((root["revoked_shares"]?.array?.compactMap(\.string) ?? []).prefix(SessionInfo.maxRevokedShares))
    }

    static func eventPolicy(fromOptions options: String) -> [String: [String]] {
        guard let root = try? JSONReader.readObject(Array(options.utf8)), let events = root["events"]?.object else {
            return [:]
        }
        var out: [String: [String]] = [:]
        for (role, names) in events.members {
            out[role] = names.array?.compactMap(\.string) ?? []
        }
        return out
    }
}
