import CSQLite
import Foundation
import Hub

/// `--durability`: `normal` survives a crash of the process (WAL, synchronous=NORMAL); `full` also
/// survives power loss (an fsync on every group commit).
public enum Durability: String, Sendable { case normal, full }

/// The SQLite transcript store: sessions and every durable event, in WAL mode.
///
/// One writer thread owns the write connection. Appends queue up while a transaction commits and go
/// into the next one together (group commit: the batch is whatever arrived meanwhile, so there is no
/// added wait). The writer assigns each event its session's next `seq` inside the transaction; if the
/// commit fails, the batch is rolled back and the seq counters with it, so seqs stay contiguous and
/// nothing uncommitted is ever acknowledged. Completions go back to each session's loop, one wake-up
/// per loop per batch, in append order. Reads use a separate connection.
public final class TranscriptStore: EventStore, @unchecked Sendable {
    public static let schemaVersion = 1
    public let path: String
    private let writer: Database
    private let reader: Database
    private let readLock = NSLock()

    private enum Request {
        case append(DurableEvent, Executor, (Result<Committed, StoreFailure>) -> Void)
        case session(SessionInfo)
        case barrier(() -> Void)
    }
    private var queue: [Request] = []
    private let cond = NSCondition()
    private var stopping = false
    private var thread: Thread?
    /// Last committed seq per session, owned by the writer thread.
    private var seqs: [String: Int] = [:]
    /// Set when the last commit failed; appends fail fast until a commit succeeds again.
    public private(set) var lastError: String?
    public let durability: Durability
    /// Largest batch one transaction takes.
    static let maxBatch = 8192

    private var insertEvent: Statement!
    private var findDuplicate: Statement!
    private var maxSeq: Statement!
    private var upsertSession: Statement!

    public init(directory: String, durability: Durability = .normal) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/collabhub.sqlite"
        self.durability = durability
        writer = try Database(path: path)
        try Self.configure(writer, durability: durability)
        try Self.migrate(writer)
        reader = try Database(path: path, readOnly: true)
        try reader.exec("PRAGMA query_only=ON")
        insertEvent = try writer.prepare("INSERT INTO events(session, seq, ts, type, member, client_id, body) VALUES(?,?,?,?,?,?,?)")
        findDuplicate = try writer.prepare("SELECT seq, ts FROM events WHERE session=? AND member IS ? AND client_id=?")
        maxSeq = try writer.prepare("SELECT COALESCE(MAX(seq), 0) FROM events WHERE session=?")
        upsertSession = try writer.prepare("""
            INSERT INTO sessions(code, title, max_participants, guest_policy, host_key, created_at, ended_at, end_reason)
            VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(code) DO UPDATE SET title=excluded.title,
            max_participants=excluded.max_participants, guest_policy=excluded.guest_policy,
            ended_at=excluded.ended_at, end_reason=excluded.end_reason
            """)
        let t = Thread { [unowned self] in self.run() }
        t.name = "sqlite-writer"
        thread = t
        t.start()
    }

    static func configure(_ db: Database, durability: Durability) throws {
        try db.exec("PRAGMA journal_mode=WAL")
        try db.exec("PRAGMA synchronous=\(durability == .full ? "FULL" : "NORMAL")")
        try db.exec("PRAGMA foreign_keys=ON")
    }

    /// Schema migrations, numbered by `PRAGMA user_version`.
    static func migrate(_ db: Database) throws {
        let version = try db.scalar("PRAGMA user_version")
        if version > Int64(schemaVersion) {
            throw Database.Error(code: 0, message: "database schema \(version) is newer than this build (\(schemaVersion))")
        }
        if version < 1 {
            try db.exec("""
                BEGIN;
                CREATE TABLE sessions(code TEXT PRIMARY KEY, title TEXT NOT NULL, max_participants INTEGER NOT NULL,
                  guest_policy TEXT NOT NULL, host_key TEXT NOT NULL, created_at INTEGER NOT NULL,
                  ended_at INTEGER, end_reason TEXT);
                CREATE TABLE events(session TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, type TEXT NOT NULL,
                  member TEXT, client_id TEXT, body BLOB NOT NULL, PRIMARY KEY(session, seq)) WITHOUT ROWID;
                CREATE INDEX events_client ON events(session, client_id) WHERE client_id IS NOT NULL;
                PRAGMA user_version=1;
                COMMIT;
                """)
        }
    }

    // MARK: - Writing

    public func append(_ event: DurableEvent, executor: Executor, done: @escaping (Result<Committed, StoreFailure>) -> Void) {
        enqueue(.append(event, executor, done))
    }

    /// Saves (creates or updates) a session's row; durable before any later append commits.
    public func save(_ info: SessionInfo) { enqueue(.session(info)) }

    /// Calls `done` (on the writer thread) once everything queued before it is committed.
    public func barrier(_ done: @escaping () -> Void) { enqueue(.barrier(done)) }

    private func enqueue(_ r: Request) {
        cond.lock()
        queue.append(r)
        cond.signal()
        cond.unlock()
    }

    /// Commits what is queued and stops the writer (graceful shutdown).
    public func close() {
        cond.lock()
        stopping = true
        cond.signal()
        cond.unlock()
        while thread?.isFinished == false { usleep(1000) }
    }

    private func run() {
        while true {
            cond.lock()
            while queue.isEmpty && !stopping { cond.wait() }
            if queue.isEmpty && stopping { cond.unlock(); return }
            let take = min(queue.count, Self.maxBatch)
            let batch = Array(queue[..<take])
            queue.removeFirst(take)
            cond.unlock()
            commit(batch)
        }
    }

    private struct Completion { let executor: Executor; let done: (Result<Committed, StoreFailure>) -> Void; let result: Result<Committed, StoreFailure> }

    private func commit(_ batch: [Request]) {
        let before = seqs
        var results: [Completion] = []
        results.reserveCapacity(batch.count)
        var barriers: [() -> Void] = []
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var failure: String?
        do {
            try writer.exec("BEGIN IMMEDIATE")
            for request in batch {
                switch request {
                case .barrier(let b): barriers.append(b)
                case .session(let info):
                    let s = upsertSession!
                    s.bind(1, info.code); s.bind(2, info.title); s.bind(3, info.maxParticipants); s.bind(4, info.guestPolicy)
                    s.bind(5, info.hostKey); s.bind(6, info.createdAt)
                    if let e = info.endedAt { s.bind(7, e) } else { s.bind(7, nil as String?) }
                    s.bind(8, info.endReason)
                    defer { s.reset() }
                    _ = try s.step()
                case .append(let event, let executor, let done):
                    if let cid = event.clientId {
                        let d = findDuplicate!
                        d.bind(1, event.session); d.bind(2, event.member); d.bind(3, cid)
                        defer { d.reset() }
                        if try d.step() {
                            results.append(Completion(executor: executor, done: done,
                                                      result: .success(Committed(seq: Int(d.int(0)), ts: d.int(1), duplicate: true))))
                            continue
                        }
                    }
                    let seq = try nextSeq(event.session)
                    let s = insertEvent!
                    s.bind(1, event.session); s.bind(2, seq); s.bind(3, now); s.bind(4, event.type)
                    s.bind(5, event.member); s.bind(6, event.clientId); s.bind(7, blob: event.body)
                    defer { s.reset() }
                    _ = try s.step()
                    seqs[event.session] = seq
                    results.append(Completion(executor: executor, done: done, result: .success(Committed(seq: seq, ts: now, duplicate: false))))
                }
            }
            try writer.exec("COMMIT")
            lastError = nil
        } catch {
            failure = "\(error)"
            try? writer.exec("ROLLBACK")
            seqs = before
            lastError = failure
            FileHandle.standardError.write(Data("collabhub: transcript store: commit failed, \(batch.count) requests rejected: \(error)\n".utf8))
        }
        if let failure {
            results = batch.compactMap {
                if case .append(_, let ex, let done) = $0 { return Completion(executor: ex, done: done, result: .failure(StoreFailure(failure))) }
                return nil
            }
        }
        // One wake-up per loop, completions in append order.
        var byExecutor: [ObjectIdentifier: (Executor, [Completion])] = [:]
        var order: [ObjectIdentifier] = []
        for r in results {
            let id = ObjectIdentifier(r.executor)
            if byExecutor[id] == nil { byExecutor[id] = (r.executor, []); order.append(id) }
            byExecutor[id]!.1.append(r)
        }
        for id in order {
            let (executor, list) = byExecutor[id]!
            executor.execute { for c in list { c.done(c.result) } }
        }
        for b in barriers { b() }
    }

    private func nextSeq(_ session: String) throws -> Int {
        if let s = seqs[session] { return s + 1 }
        let m = maxSeq!
        m.bind(1, session)
        defer { m.reset() }
        _ = try m.step()
        let last = Int(m.int(0))
        seqs[session] = last
        return last + 1
    }

    // MARK: - Reading (separate connection)

    private func read<T>(_ body: (Database) throws -> T) rethrows -> T {
        readLock.lock()
        defer { readLock.unlock() }
        return try body(reader)
    }

    public func lastSeq(session: String) -> Int {
        (try? read { db -> Int in
            let s = try db.prepare("SELECT COALESCE(MAX(seq), 0) FROM events WHERE session=?")
            s.bind(1, session)
            _ = try s.step()
            return Int(s.int(0))
        }) ?? 0
    }

    public func tail(session: String, limit: Int) -> [StoredEvent] {
        let rows = (try? read { db -> [StoredEvent] in
            let s = try db.prepare("SELECT seq, ts, type, body FROM events WHERE session=? ORDER BY seq DESC LIMIT ?")
            s.bind(1, session); s.bind(2, limit)
            var out: [StoredEvent] = []
            while try s.step() { out.append(StoredEvent(seq: Int(s.int(0)), ts: s.int(1), type: s.string(2) ?? "", body: s.blob(3))) }
            return out
        }) ?? []
        return rows.reversed()
    }

    /// Events with seq > `after`, at most `limit`, in order.
    public func events(session: String, after: Int, limit: Int) throws -> [StoredEvent] {
        try read { db in
            let s = try db.prepare("SELECT seq, ts, type, body FROM events WHERE session=? AND seq>? ORDER BY seq LIMIT ?")
            s.bind(1, session); s.bind(2, after); s.bind(3, limit)
            var out: [StoredEvent] = []
            while try s.step() { out.append(StoredEvent(seq: Int(s.int(0)), ts: s.int(1), type: s.string(2) ?? "", body: s.blob(3))) }
            return out
        }
    }

    /// Every session row (live and ended) with its event count.
    public func sessions() throws -> [(SessionInfo, events: Int)] {
        try read { db in
            let s = try db.prepare("""
                SELECT code, title, max_participants, guest_policy, host_key, created_at, ended_at, end_reason,
                  (SELECT COUNT(*) FROM events e WHERE e.session = s.code) FROM sessions s ORDER BY created_at
                """)
            var out: [(SessionInfo, Int)] = []
            while try s.step() {
                var info = SessionInfo(code: s.string(0) ?? "", title: s.string(1) ?? "", maxParticipants: Int(s.int(2)),
                                       guestPolicy: s.string(3) ?? "allow", hostKey: s.string(4) ?? "", createdAt: s.int(5))
                info.endedAt = s.isNull(6) ? nil : s.int(6)
                info.endReason = s.string(7)
                out.append((info, Int(s.int(8))))
            }
            return out
        }
    }
}
