import CSQLite
import Foundation
import Hub
import WebSocket

/// `--durability`: `normal` survives a crash of the process (WAL, synchronous=NORMAL); `full` also
/// survives power loss (an fsync on every group commit).
public enum Durability: String, Sendable { case normal, full }

/// The SQLite transcript store: sessions and every durable event, in WAL mode.
///
/// One writer thread owns the write connection. Appends queue up while a transaction commits and go
/// into the next one together (group commit: the batch is whatever arrived meanwhile, plus, only while
/// more than 5,000 requests/s arrive, up to 1 ms of waiting for company). The writer assigns each event its session's next `seq` inside the transaction; if the
/// commit fails, the batch is rolled back and the seq counters with it, so seqs stay contiguous and
/// nothing uncommitted is ever acknowledged. Completions go back to each session's loop, one wake-up
/// per loop per batch, in append order. Reads use a separate connection.
public final class TranscriptStore: EventStore, @unchecked Sendable {
    public static let schemaVersion = 8
    public let path: String
    private let writer: Database
    private let reader: Database
    private let readLock = NSLock()

    private enum Request {
        case append(DurableEvent, Executor, (Result<Committed, StoreFailure>) -> Void)
        /// Events of one stream stored all or nothing, only if the stream's last seq is still the one
        /// they were checked against (nil: any).
        case appendBatch([DurableEvent], Int?, Executor, (Result<[Committed], StoreFailure>) -> Void)
        /// A session row; `done` (on the writer thread) learns whether it committed. Rows without one
        /// are queued again when their batch fails.
        case session(SessionInfo, ((Bool) -> Void)?)
        case barrier((Bool) -> Void)
        case retention(RetentionPolicy)
        case activity(ActivityEntry)
        case cursors(String, Int64, [UInt8])
        case keyUsage(String, String, String)
    }
    private var queue: [Request] = []
    private let cond = NSCondition()
    private var stopping = false
    private var thread: Thread?
    /// Last committed seq per session, owned by the writer thread.
    private var seqs: [String: (seq: Int, lastWrite: Double)] = [:]
    /// Set when the last commit failed; appends fail fast until a commit succeeds again.
    public private(set) var lastError: String?
    public let durability: Durability
    /// Largest batch one transaction takes.
    static let maxBatch = 8192
    static let smallBatch = 64
    static let batchWait = 0.001
    /// Below this many requests per second a commit starts at once: waiting for company only pays when
    /// company comes (at 1,000 run events/s it would add up to a millisecond to each for nothing).
    static let busyRate = 5_000.0
    /// Requests per second over the last ~100 ms (writer thread only).
    private var arrivalRate = 0.0
    private var rateWindowStart = ProcessInfo.processInfo.systemUptime
    private var rateWindowCount = 0

    private var insertEvent: Statement!
    private var recentIds: Statement!
    private var idAt: Statement!
    /// BEGIN and COMMIT, prepared once (parsing them cost ~2,800 instructions a commit).
    private var begin: Statement!, commitTx: Statement!
    /// How remembered ids are hashed (tests make every id collide).
    var idHash: (String?, String) -> UInt64 = RecentIds.key
    private var insertActivity: Statement!
    private var insertCursors: Statement!
    private var addKeyUsage: Statement!
    /// Per session: client ids of its most recent durable events (hashed, -> committed), owned by
    /// the writer thread. A resend after a lost ack comes within seconds; 10,000 ids per session cover
    /// far more than any client keeps pending.
    private var seen: [String: RecentIds] = [:]
    static let rememberedIds = 10_000
    /// Sessions not written for this long have their seq and id memories dropped (refilled from the
    /// table if they are written again), and at most `rememberedTotal` ids are kept over all sessions,
    /// the least recently written sessions' forgotten first: a long-running hub sees unboundedly many
    /// sessions. Swept every `sweepInterval` seconds.
    var forgetAfter = 300.0
    var rememberedTotal = 1_000_000
    var sweepInterval = 30.0
    private var lastSweep = ProcessInfo.processInfo.systemUptime
    /// The retention pass in progress (writer thread): a session at a time, a bounded chunk per step.
    private var retentionPass: RetentionPass?
    private var maxSeq: Statement!
    private var upsertSession: Statement!

    // Checkpoints: SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so
    // that commit (and every append queued behind it) waits for the copy and two fsyncs: tens of
    // milliseconds. Instead a thread of its own with its own connection checkpoints (PASSIVE: alongside
    // the writer, which keeps appending) whenever `checkpointPages` of the WAL are not yet copied. The
    // WAL only starts over once a checkpoint has caught up with its end, which a background pass under
    // steady load never quite does, so the writer finishes the job itself after `idleRestart` seconds
    // without work (then nobody waits for it), or at once past `walHardLimit` (256 MiB of WAL).
    private var checkpointer: Database!
    private var checkpointThread: Thread?
    private let checkpointCond = NSCondition()
    private var checkpointWanted = false, checkpointRunning = false, checkpointStopping = false
    /// WAL frames already copied into the database by the last background pass.
    private var backfilled = 0
    /// Pages in the WAL after the last commit (writer thread, from SQLite's WAL hook).
    private var walPages = 0
    let checkpointPages: Int
    /// The writer restarts the WAL after this long without work.
    static let idleRestart = 0.2
    static let walHardLimit = 65_536
    /// Checkpoints completed (background passes and the writer's catch-ups).
    public private(set) var checkpoints = 0

    public init(directory: String, durability: Durability = .normal, checkpointPages: Int = 8192) throws {
        self.checkpointPages = checkpointPages
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/collabhub.sqlite"
        self.durability = durability
        writer = try Database(path: path)
        try Self.configure(writer, durability: durability)
        try Self.migrate(writer)
        reader = try Database(path: path, readOnly: true)
        try reader.exec("PRAGMA query_only=ON")
        try reader.exec("PRAGMA mmap_size=1073741824")
        insertEvent = try writer.prepare("INSERT INTO events(session, seq, ts, type, member, client_id, body) VALUES(?,?,?,?,?,?,?)")
        insertCursors = try writer.prepare("INSERT INTO cursors(session, ts, updates) VALUES(?,?,?)")
        addKeyUsage = try writer.prepare("""
            INSERT INTO api_key_usage(key_id, window, count) VALUES(?,?,1)
            ON CONFLICT(key_id, window) DO UPDATE SET count = count + 1
            """)
        insertActivity = try writer.prepare("INSERT INTO activity(ts, actor, action, target, session, address, details) VALUES(?,?,?,?,?,?,?)")
        idAt = try writer.prepare("SELECT member, client_id FROM events WHERE session=? AND seq=?")
        begin = try writer.prepare("BEGIN IMMEDIATE")
        commitTx = try writer.prepare("COMMIT")
        recentIds = try writer.prepare(
            "SELECT member, client_id, seq, ts FROM events WHERE session=? AND client_id IS NOT NULL ORDER BY seq DESC LIMIT ?")
        maxSeq = try writer.prepare(Self.lastSeqSQL)
        upsertSession = try writer.prepare("""
            INSERT INTO sessions(code, title, max_participants, guest_policy, host_key, created_at, ended_at, end_reason, options)
            VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(code) DO UPDATE SET title=excluded.title,
            max_participants=excluded.max_participants, guest_policy=excluded.guest_policy,
            ended_at=excluded.ended_at, end_reason=excluded.end_reason, options=excluded.options
            """)
        try writer.exec("PRAGMA wal_autocheckpoint=0")
        checkpointer = try Database(path: path)
        try checkpointer.exec("PRAGMA synchronous=\(durability == .full ? "FULL" : "NORMAL")")
        sqlite3_wal_hook(writer.db, { context, _, _, pages in
            Unmanaged<TranscriptStore>.fromOpaque(context!).takeUnretainedValue().walGrew(Int(pages))
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
        let c = Thread { [unowned self] in self.checkpointLoop() }
        c.name = "sqlite-checkpoint"
        checkpointThread = c
        c.start()
        let t = Thread { [unowned self] in self.run() }
        t.name = "sqlite-writer"
        thread = t
        t.start()
    }

    /// After each commit, on the writer thread: asks for a background pass once enough of the WAL is
    /// not yet copied into the database.
    private func walGrew(_ pages: Int) {
        walPages = pages
        checkpointCond.lock()
        if pages < backfilled { backfilled = 0 }  // the WAL started over
        if pages - backfilled >= checkpointPages && !checkpointRunning && !checkpointWanted {
            checkpointWanted = true
            checkpointCond.signal()
        }
        checkpointCond.unlock()
    }

    private func checkpointLoop() {
        while true {
            checkpointCond.lock()
            while !checkpointWanted && !checkpointStopping { checkpointCond.wait() }
            if checkpointStopping { checkpointCond.unlock(); return }
            checkpointWanted = false
            checkpointRunning = true
            checkpointCond.unlock()
            var log: Int32 = 0, copied: Int32 = 0
            let rc = sqlite3_wal_checkpoint_v2(checkpointer.db, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
            checkpointCond.lock()
            checkpointRunning = false
            if rc == SQLITE_OK { backfilled = Int(copied); checkpoints += 1 }
            checkpointCond.unlock()
        }
    }

    /// The writer's part: a checkpoint on its own connection, which nothing appends to meanwhile, so it
    /// reaches the end of the WAL and the next commit starts the WAL over. Run when the writer has been
    /// idle for a while with at least `checkpointPages` in the WAL (a smaller WAL is left alone: the
    /// appends that end the idle time would wait for this checkpoint's fsyncs), or at once past
    /// `walHardLimit`.
    private func restartWAL() {
        checkpointCond.lock()
        let running = checkpointRunning
        checkpointCond.unlock()
        guard !running, walPages > 0 else { return }
        if (try? writer.exec("PRAGMA wal_checkpoint(PASSIVE)")) != nil {
            walPages = 0
            checkpointCond.lock(); checkpoints += 1; checkpointCond.unlock()
        }
    }

    static func configure(_ db: Database, durability: Durability) throws {
        try db.exec("PRAGMA journal_mode=WAL")
        try db.exec("PRAGMA synchronous=\(durability == .full ? "FULL" : "NORMAL")")
        try db.exec("PRAGMA foreign_keys=ON")
        // With many live sessions every group commit touches a B-tree page per session; SQLite's default
        // 2 MB cache then re-reads pages from the kernel on every batch. Keep 64 MiB of pages, and map
        // the file so reads need no copy.
        try db.exec("PRAGMA cache_size=-65536")
        try db.exec("PRAGMA mmap_size=1073741824")
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
        if version < 2 {
            // v2: no index on client ids. Resends are recognised from the writer's memory of each session's
            // recent ids (refilled from the table when a session is first written after a start): an index
            // would dirty one more B-tree page per session on every group commit.
            try db.exec("""
                BEGIN;
                DROP INDEX IF EXISTS events_client;
                PRAGMA user_version=2;
                COMMIT;
                """)
        }
        if version < 3 {
            // v3: the activity log (who did what, when, from where) and per-session options.
            try db.exec("""
                BEGIN;
                CREATE TABLE activity(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
                  target TEXT, session TEXT, address TEXT, details TEXT);
                CREATE INDEX activity_session ON activity(session, id);
                CREATE INDEX activity_actor ON activity(actor, id);
                ALTER TABLE sessions ADD COLUMN options TEXT;
                PRAGMA user_version=3;
                COMMIT;
                """)
        }
        if version < 4 {
            // v4: API keys (only a SHA-256 of the secret is stored).
            try db.exec("""
                BEGIN;
                CREATE TABLE api_keys(id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_sha256 BLOB NOT NULL, created_at INTEGER NOT NULL,
                  revoked_at INTEGER, per_minute INTEGER NOT NULL, per_hour INTEGER NOT NULL, per_month INTEGER NOT NULL);
                PRAGMA user_version=4;
                COMMIT;
                """)
        }
        if version < 5 {
            // v5: sampled cursor positions for playback (`--record-cursors`), outside the seq order.
            try db.exec("""
                BEGIN;
                CREATE TABLE cursors(id INTEGER PRIMARY KEY, session TEXT NOT NULL, ts INTEGER NOT NULL, updates BLOB NOT NULL);
                CREATE INDEX cursors_session ON cursors(session, ts);
                PRAGMA user_version=5;
                COMMIT;
                """)
        }
        if version < 6 {
            // v6: API key usage per hour and per month ("h<hour>", "m<month>"), so quotas survive restarts.
            try db.exec("""
                BEGIN;
                CREATE TABLE api_key_usage(key_id TEXT NOT NULL, window TEXT NOT NULL, count INTEGER NOT NULL,
                  PRIMARY KEY(key_id, window)) WITHOUT ROWID;
                PRAGMA user_version=6;
                COMMIT;
                """)
        }
        if version < 7 {
            // v7: the last seq of sessions whose events retention deleted entirely (seq continues).
            try db.exec("""
                BEGIN;
                CREATE TABLE seq_floor(session TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
                PRAGMA user_version=7;
                COMMIT;
                """)
        }
        if version < 8 {
            // v8: API key scopes (comma-separated; keys made before scopes existed only publish runs, as
            // they always did) and the runs a key may publish to (NULL: any).
            try db.exec("""
                BEGIN;
                ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'runs:publish';
                ALTER TABLE api_keys ADD COLUMN runs TEXT;
                PRAGMA user_version=8;
                COMMIT;
                """)
        }
    }

    // MARK: - Writing

    public func append(_ event: DurableEvent, executor: Executor, done: @escaping (Result<Committed, StoreFailure>) -> Void) {
        cond.lock()
        if queue.count >= maxQueued {
            cond.unlock()
            // The disk cannot keep up: refuse instead of queueing without bound (memory, latency).
            executor.execute { done(.failure(StoreFailure("store overloaded (\(self.maxQueued) events waiting); retry"))) }
            return
        }
        queue.append(.append(event, executor, done))
        wakeWriterIfNeeded()
        cond.unlock()
    }

    /// Under `cond`'s lock. Wakes the writer only when the queue becomes non-empty or reaches a full
    /// batch: a signal per append would end the writer's wait for company at every message, so at
    /// moderate rates every commit would carry one or two events (and, on one core, preempt the loop).
    private func wakeWriterIfNeeded() {
        if queue.count == 1 || queue.count == Self.smallBatch { cond.signal() }
    }

    /// Appends waiting beyond this are refused (about a second of the writer's throughput).
    public var maxQueued = 100_000

    /// Saves (creates or updates) a session's row; durable before any later append commits.
    public func save(_ info: SessionInfo, done: ((Bool) -> Void)? = nil) { enqueue(.session(info, done)) }

    /// Appends events of one stream in one transaction: all are stored, or none (`done` gets the
    /// failure). With `expectedLastSeq`, the batch is refused unless the stream's last seq is that one:
    /// a batch checked against state that an earlier, failed batch would have made is not stored.
    public func appendBatch(_ events: [DurableEvent], expectedLastSeq: Int?, executor: Executor,
                            done: @escaping (Result<[Committed], StoreFailure>) -> Void) {
        cond.lock()
        if queue.count >= maxQueued {
            cond.unlock()
            executor.execute { done(.failure(StoreFailure("store overloaded (\(self.maxQueued) events waiting); retry"))) }
            return
        }
        queue.append(.appendBatch(events, expectedLastSeq, executor, done))
        wakeWriterIfNeeded()
        cond.unlock()
    }

    /// Queues a cursor sample; dropped (not queued) while the writer is overloaded.
    public func recordCursors(session: String, ts: Int64, updates: [UInt8]) {
        cond.lock()
        defer { cond.unlock() }
        guard queue.count < maxQueued / 2 else { cursorSamplesDropped += 1; return }
        queue.append(.cursors(session, ts, updates))
        wakeWriterIfNeeded()
    }
    /// Cursor samples not stored because the writer was behind.
    public private(set) var cursorSamplesDropped = 0

    /// Deletes events past the retention policy, on the writer thread between batches, in chunks of
    /// `RetentionPolicy.chunk` rows so appends never wait long behind it.
    public func enforce(_ policy: RetentionPolicy) { enqueue(.retention(policy)) }

    /// Rows deleted by retention so far.
    public private(set) var retentionDeleted = 0

    /// Records an administrative action (committed with the next group).
    public func record(_ entry: ActivityEntry) { enqueue(.activity(entry)) }

    /// Activity entries, newest first, filtered; `before` pages by id.
    public func activity(session: String?, actor: String?, since: Int64?, before: Int?, limit: Int) throws -> [ActivityEntry] {
        try read { db in
            var sql = "SELECT id, ts, actor, action, target, session, address, details FROM activity WHERE 1=1"
            var binds: [Any?] = []
            if let session { sql += " AND session = ?"; binds.append(session) }
            if let actor { sql += " AND actor = ?"; binds.append(actor) }
            if let since { sql += " AND ts >= ?"; binds.append(since) }
            if let before { sql += " AND id < ?"; binds.append(before) }
            sql += " ORDER BY id DESC LIMIT ?"
            binds.append(limit)
            let s = try db.prepare(sql)
            for (i, b) in binds.enumerated() {
                if let v = b as? String { s.bind(Int32(i + 1), v) } else if let v = b as? Int64 { s.bind(Int32(i + 1), v) } else if let v = b as? Int { s.bind(Int32(i + 1), v) }
            }
            var out: [ActivityEntry] = []
            while try s.step() {
                var e = ActivityEntry(actor: s.string(2) ?? "", action: s.string(3) ?? "", target: s.string(4), session: s.string(5),
                                      address: s.string(6), details: s.string(7), ts: s.int(1))
                e.id = Int(s.int(0))
                out.append(e)
            }
            return out
        }
    }

    /// Calls `done` (on the writer thread) once everything queued before it is committed.
    public func barrier(_ done: @escaping (Bool) -> Void) { enqueue(.barrier(done)) }

    private func enqueue(_ r: Request) {
        cond.lock()
        queue.append(r)
        wakeWriterIfNeeded()
        cond.unlock()
    }

    /// Commits what is queued and stops the writer (graceful shutdown).
    public func close() {
        cond.lock()
        stopping = true
        cond.signal()
        cond.unlock()
        while thread?.isFinished == false { usleep(1000) }
        checkpointCond.lock()
        checkpointStopping = true
        checkpointCond.signal()
        checkpointCond.unlock()
        while checkpointThread?.isFinished == false { usleep(1000) }
    }

    private func run() {
        while true {
            cond.lock()
            if queue.isEmpty && !stopping && retentionPass == nil && walPages >= checkpointPages
                && !cond.wait(until: Date().addingTimeInterval(Self.idleRestart)) && queue.isEmpty && !stopping {
                cond.unlock()
                restartWAL()
                continue
            }
            while queue.isEmpty && !stopping && retentionPass == nil { cond.wait() }
            if queue.isEmpty && stopping { cond.unlock(); return }
            // Group commit with a bounded wait: a small batch waits up to 1 ms for company, because every
            // commit writes each B-tree page it touched to the WAL, whether it carries one event or a hundred.
            if !queue.isEmpty && queue.count < Self.smallBatch && !stopping && arrivalRate >= Self.busyRate {
                let deadline = Date().addingTimeInterval(Self.batchWait)
                while queue.count < Self.smallBatch && !stopping && cond.wait(until: deadline) {}
            }
            let take = min(queue.count, Self.maxBatch)
            rateWindowCount += take
            let now = ProcessInfo.processInfo.systemUptime
            if now - rateWindowStart >= 0.1 || rateWindowCount >= 1000 {
                arrivalRate = Double(rateWindowCount) / max(now - rateWindowStart, 0.001)
                rateWindowStart = now; rateWindowCount = 0
            }
            var batch = Array(queue[..<take])
            queue.removeFirst(take)
            cond.unlock()
            if batch.contains(where: { if case .retention = $0 { return true } else { return false } }) {
                for case .retention(let policy) in batch where retentionPass == nil { startRetention(policy) }
                batch.removeAll { if case .retention = $0 { return true } else { return false } }
            }
            if !batch.isEmpty { commit(batch) }
            // One bounded step of retention per batch: appends wait at most one chunk behind it.
            if retentionPass != nil { retentionStep() }
            if now - lastSweep >= sweepInterval { lastSweep = now; forgetIdleSessions(now: now) }
            if walPages >= Self.walHardLimit { restartWAL() }
        }
    }

    /// Drops the seq and id memories of sessions not written for `forgetAfter` seconds, then, while more
    /// than `rememberedTotal` ids are kept, those of the least recently written sessions idle for a minute.
    private func forgetIdleSessions(now: Double) {
        for (session, state) in seqs where now - state.lastWrite >= forgetAfter { seqs[session] = nil; seen[session] = nil }
        for (session, ids) in seen where now - ids.lastWrite >= forgetAfter { seen[session] = nil }  // only resends came
        var total = seen.values.reduce(0) { $0 + $1.count }
        guard total > rememberedTotal else { return }
        // Sessions being written are never forgotten for the budget: each would reload its ids from the
        // table on its next append, tens of milliseconds of the writer's time.
        for (session, ids) in seen.sorted(by: { $0.value.lastWrite < $1.value.lastWrite }) where now - ids.lastWrite >= 60 {
            seen[session] = nil
            total -= ids.count
            if total <= rememberedTotal * 3 / 4 { break }
        }
    }

    private struct Completion { let executor: Executor; let run: () -> Void }

    /// A refused batch (its stream moved on since it was checked).
    struct Conflict: Error, CustomStringConvertible { let description: String }

    private func commit(_ batch: [Request]) {
        var undo: [(String, (seq: Int, lastWrite: Double)?)] = []
        let clock = ProcessInfo.processInfo.systemUptime
        var remembered: [(RecentIds, UInt64)] = []
        var results: [Completion] = []
        results.reserveCapacity(batch.count)
        var barriers: [(Bool) -> Void] = []
        var batchResults: [(Executor, (Result<[Committed], StoreFailure>) -> Void, [Committed])] = []
        var conflicts: [Completion] = []
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var failure: String?
        /// Inserts one event (or recognises a resend) inside the open transaction.
        func store(_ event: DurableEvent) throws -> Committed {
            let idKey = event.clientId.map { idHash(event.member, $0) }
            if let idKey, let original = try recent(event.session).lookup(idKey),
               try isResend(of: original.seq, session: event.session, member: event.member, clientId: event.clientId!) {
                return Committed(seq: original.seq, ts: original.ts, duplicate: true)
            }
            let seq = try nextSeq(event.session)
            try insert(event, seq: seq, ts: now)
            undo.append((event.session, seqs[event.session]))
            seqs[event.session] = (seq, clock)
            if let idKey {
                let ids = try recent(event.session)
                ids.remember(idKey, Committed(seq: seq, ts: now, duplicate: true))
                ids.lastWrite = clock
                remembered.append((ids, idKey))
            }
            return Committed(seq: seq, ts: now, duplicate: false)
        }
        do {
            try run(begin)
            for request in batch {
                switch request {
                case .barrier(let b): barriers.append(b)
                case .retention: break  // taken out of the batch by run()
                case .activity(let a):
                    let st = insertActivity!
                    st.bind(1, a.ts); st.bind(2, a.actor); st.bind(3, a.action); st.bind(4, a.target)
                    st.bind(5, a.session); st.bind(6, a.address); st.bind(7, a.details)
                    defer { st.reset() }
                    _ = try st.step()
                case .keyUsage(let id, let a, let b):
                    let st = addKeyUsage!
                    for window in [a, b] {
                        st.bind(1, id); st.bind(2, window)
                        defer { st.reset() }
                        _ = try st.step()
                    }
                case .cursors(let session, let ts, let updates):
                    let st = insertCursors!
                    st.bind(1, session); st.bind(2, ts); st.bind(3, blob: updates)
                    defer { st.reset() }
                    _ = try st.step()
                case .session(let info, let done):
                    if let done { barriers.append(done) }
                    let s = upsertSession!
                    s.bind(1, info.code); s.bind(2, info.title); s.bind(3, info.maxParticipants); s.bind(4, info.guestPolicy)
                    s.bind(5, info.hostKey); s.bind(6, info.createdAt)
                    if let e = info.endedAt { s.bind(7, e) } else { s.bind(7, nil as String?) }
                    s.bind(8, info.endReason)
                    let options = info.eventPolicy.isEmpty ? nil
                        : (try? JSONSerialization.data(withJSONObject: ["events": info.eventPolicy], options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
                    s.bind(9, options)
                    defer { s.reset() }
                    _ = try s.step()
                case .append(let event, let executor, let done):
                    let c = try store(event)
                    results.append(Completion(executor: executor, run: { done(.success(c)) }))
                case .appendBatch(let events, let expected, let executor, let done):
                    if let expected, let first = events.first, try nextSeq(first.session) != expected + 1 {
                        let message = "\(first.session) moved on since this batch was checked; retry"
                        conflicts.append(Completion(executor: executor, run: { done(.failure(StoreFailure(message))) }))
                        continue
                    }
                    batchResults.append((executor, done, try events.map { try store($0) }))
                }
            }
            try run(commitTx)
            lastError = nil
        } catch {
            failure = "\(error)"
            try? writer.exec("ROLLBACK")
            for (session, state) in undo.reversed() { seqs[session] = state }
            for (ids, key) in remembered { ids.forget(key) }
            lastError = failure
            FileHandle.standardError.write(Data("collabhub: transcript store: commit failed, \(batch.count) requests rejected: \(error)\n".utf8))
        }
        if let failure {
            // Nothing of the batch is stored: every append fails, every barrier learns it, and session
            // rows nobody waits for are queued again (an `end` or a settings change must not be lost).
            let f = StoreFailure(failure)
            results = batch.compactMap {
                switch $0 {
                case .append(_, let ex, let done): return Completion(executor: ex, run: { done(.failure(f)) })
                case .appendBatch(_, _, let ex, let done): return Completion(executor: ex, run: { done(.failure(f)) })
                default: return nil
                }
            }
            let retry = batch.filter { if case .session(_, nil) = $0 { return true } else { return false } }
            if !retry.isEmpty {
                cond.lock(); queue.insert(contentsOf: retry, at: 0); cond.unlock()
                Thread.sleep(forTimeInterval: 0.05)  // the disk is failing: retry, but do not spin
            }
        } else {
            results += batchResults.map { r in Completion(executor: r.0, run: { r.1(.success(r.2)) }) }
        }
        if failure == nil { results += conflicts }   // a failed commit already failed every batch in it
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
            executor.execute { for c in list { c.run() } }
        }
        for b in barriers { b(failure == nil) }
    }

    /// Where a retention pass stands: the policy, its age cut-off, and the session it works on (passes
    /// go through the sessions in key order, finding each next one with an index seek).
    private struct RetentionPass {
        let policy: RetentionPolicy
        let cutoff: Int64?
        /// The session being trimmed ("" before the first: session codes are never empty).
        var session = ""
        /// Time-ordered tables still to trim by age (activity entries and cursor samples, numbered in
        /// time order), with the id of their first young row once known.
        var tables: [(name: String, firstYoung: Int64?)] = []
    }

    private func startRetention(_ policy: RetentionPolicy) {
        let cutoff = policy.maxAgeMillis.map { Int64(Date().timeIntervalSince1970 * 1000) - $0 }
        var pass = RetentionPass(policy: policy, cutoff: cutoff)
        if cutoff != nil { pass.tables = [("activity", nil), ("cursors", nil)] }
        retentionPass = pass
    }

    /// One bounded step of the retention pass, then the writer goes back to its queue: a chunk of
    /// `RetentionPolicy.chunk` old rows of the activity log or the cursor samples (their old rows are a
    /// run at the front, found once per pass), or at most a chunk of one session's events (one
    /// transaction). Events of a session are in seq order and their times grow with seq, so what age
    /// deletes is a run at the front; what count deletes is everything up to `last - keep`. When age
    /// deletes a session's every event, its last seq is kept in `seq_floor`.
    private func retentionStep() {
        guard var pass = retentionPass else { return }
        do {
            let st = try retentionStatements()
            if let (table, known) = pass.tables.first, let cutoff = pass.cutoff {
                var firstYoung = known ?? Int64.max
                if known == nil {
                    let young = try writer.prepare("SELECT id FROM \(table) WHERE ts >= ? ORDER BY id LIMIT 1")
                    young.bind(1, cutoff)
                    if try young.step() { firstYoung = young.int(0) }
                    pass.tables[0].firstYoung = firstYoung
                }
                let del = try writer.prepare("DELETE FROM \(table) WHERE id IN (SELECT id FROM \(table) WHERE id < ? ORDER BY id LIMIT ?)")
                del.bind(1, firstYoung); del.bind(2, RetentionPolicy.chunk)
                _ = try del.step()
                if writer.changes < RetentionPolicy.chunk { pass.tables.removeFirst() }
                retentionPass = pass
                return
            }
            let more = pass.session.isEmpty ? false : try deleteOldEvents(pass)
            if !more {
                // This session is done (or none was chosen yet): on to the next one.
                defer { st.next.reset() }
                st.next.bind(1, pass.session)
                guard try st.next.step(), var session = st.next.string(0) else { retentionPass = nil; return }
                // Run streams keep every event: a run's state is rebuilt from them, `started` first.
                // ("run;" sorts right after every "run:..." stream, so the walk goes on past them.)
                if session.hasPrefix("run:") { session = "run;" }
                pass.session = session
                retentionPass = pass
            }
        } catch {
            FileHandle.standardError.write(Data("collabhub: retention failed: \(error)\n".utf8))
            retentionPass = nil
        }
    }

    /// Deletes a chunk of `pass.session`'s events that the policy no longer keeps; true if it deleted
    /// a full chunk (more may remain).
    private func deleteOldEvents(_ pass: RetentionPass) throws -> Bool {
        let session = pass.session, chunk = RetentionPolicy.chunk
        let st = try retentionStatements()
        defer { for s in [st.bounds, st.young, st.floor, st.delete, st.cursors] { s.reset() } }
        st.bounds.bind(1, session)
        guard try st.bounds.step(), !st.bounds.isNull(0) else { return false }
        let first = Int(st.bounds.int(0)), last = Int(st.bounds.int(1))   // seqs in between are all there
        let window = first + chunk - 1
        var upTo = first - 1   // delete seq <= upTo
        if let keep = pass.policy.maxEventsPerSession { upTo = max(upTo, last - keep) }
        if let cutoff = pass.cutoff {
            // Only the chunk at the front is examined: the walk never passes more rows than it deletes.
            st.young.bind(1, session); st.young.bind(2, first); st.young.bind(3, window); st.young.bind(4, cutoff)
            upTo = max(upTo, try st.young.step() ? Int(st.young.int(0)) - 1 : min(last, window))
        }
        guard upTo >= first else { return false }
        let end = min(upTo, window)
        try run(begin)
        do {
            if end == last {
                st.floor.bind(1, session); st.floor.bind(2, last)
                _ = try st.floor.step()
            }
            st.delete.bind(1, session); st.delete.bind(2, end)
            _ = try st.delete.step()
            retentionDeleted += writer.changes
            st.cursors.bind(1, session)
            _ = try st.cursors.step()
            try run(commitTx)
        } catch {
            try? writer.exec("ROLLBACK")
            throw error
        }
        return end == window
    }

    private struct RetentionStatements { let next, bounds, young, floor, delete, cursors: Statement }
    private var retentionStatementsCache: RetentionStatements?
    private func retentionStatements() throws -> RetentionStatements {
        if let s = retentionStatementsCache { return s }
        let s = RetentionStatements(
            next: try writer.prepare("SELECT session FROM events WHERE session > ? ORDER BY session LIMIT 1"),
            bounds: try writer.prepare("SELECT MIN(seq), MAX(seq) FROM events WHERE session = ?"),
            young: try writer.prepare("SELECT seq FROM events WHERE session = ? AND seq BETWEEN ? AND ? AND ts >= ? ORDER BY seq LIMIT 1"),
            floor: try writer.prepare("INSERT INTO seq_floor(session, seq) VALUES(?, ?) ON CONFLICT(session) DO UPDATE SET seq = excluded.seq"),
            delete: try writer.prepare("DELETE FROM events WHERE session = ? AND seq <= ?"),
            // Cursor samples older than the oldest event kept have nothing left to play against.
            cursors: try writer.prepare("""
                DELETE FROM cursors WHERE session = ?1
                AND ts < COALESCE((SELECT ts FROM events WHERE session = ?1 ORDER BY seq LIMIT 1), 9223372036854775807)
                """))
        retentionStatementsCache = s
        return s
    }

    private func recent(_ session: String) throws -> RecentIds {
        if let r = seen[session] { return r }
        let r = RecentIds(capacity: Self.rememberedIds)
        let q = recentIds!
        q.bind(1, session); q.bind(2, Self.rememberedIds)
        defer { q.reset() }
        var rows: [(UInt64, Committed)] = []
        while try q.step() {
            rows.append((idHash(q.string(0), q.string(1) ?? ""), Committed(seq: Int(q.int(2)), ts: q.int(3), duplicate: true)))
        }
        for (key, c) in rows.reversed() { r.remember(key, c) }
        seen[session] = r
        return r
    }

    private func run(_ statement: Statement) throws {
        defer { statement.reset() }
        _ = try statement.step()
    }

    /// Inserts one event, binding its strings and body without copies (SQLite copied each, after a
    /// strlen, and the bridge to C strings made one more): they stay alive around the step, and the
    /// statement is reset inside their scope.
    private func insert(_ event: DurableEvent, seq: Int, ts: Int64) throws {
        let s = insertEvent!
        var session = event.session, type = event.type, member = event.member ?? "", clientId = event.clientId ?? ""
        try session.withUTF8 { sp in
            try type.withUTF8 { tp in
                try member.withUTF8 { mp in
                    try clientId.withUTF8 { cp in
                        try event.body.withUnsafeBytes { bp in
                            s.bindUnowned(1, text: sp); s.bind(2, seq); s.bind(3, ts); s.bindUnowned(4, text: tp)
                            if event.member == nil { s.bind(5, nil as String?) } else { s.bindUnowned(5, text: mp) }
                            if event.clientId == nil { s.bind(6, nil as String?) } else { s.bindUnowned(6, text: cp) }
                            s.bindUnowned(7, blob: bp)
                            defer { s.reset() }
                            _ = try s.step()
                        }
                    }
                }
            }
        }
    }

    /// The remembered ids are 64-bit hashes: a match is confirmed against the stored event, so a hash
    /// collision can never acknowledge a new message as an old one. An original that retention already
    /// deleted cannot be confirmed; the message is then stored again (a duplicate, never a loss).
    private func isResend(of seq: Int, session: String, member: String?, clientId: String) throws -> Bool {
        let q = idAt!
        q.bind(1, session); q.bind(2, seq)
        defer { q.reset() }
        guard try q.step() else { return false }
        return q.string(0) == member && q.string(1) == clientId
    }

    private func nextSeq(_ session: String) throws -> Int {
        if let s = seqs[session] { return s.seq + 1 }
        return try storedLastSeq(session) + 1
    }

    /// A session's last seq: its newest event, or, when retention deleted all of them, the seq floor
    /// it recorded, so seq never starts over.
    static let lastSeqSQL = """
        SELECT MAX(COALESCE((SELECT MAX(seq) FROM events WHERE session=?1), 0),
                   COALESCE((SELECT seq FROM seq_floor WHERE session=?1), 0))
        """

    /// The writer's view of a session's last seq (the table and its seq floor).
    private func storedLastSeq(_ session: String) throws -> Int {
        let m = maxSeq!
        m.bind(1, session)
        defer { m.reset() }
        _ = try m.step()
        return Int(m.int(0))
    }

    // MARK: - Reading (separate connection)

    private func read<T>(_ body: (Database) throws -> T) rethrows -> T {
        readLock.lock()
        defer { readLock.unlock() }
        return try body(reader)
    }

    public func lastSeq(session: String) -> Int {
        (try? read { db -> Int in
            let s = try db.prepare(Self.lastSeqSQL)
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

    /// Cursor samples of a session with `from <= ts <= to`, oldest first, at most `limit`.
    public func cursorSamples(session: String, from: Int64, to: Int64, limit: Int) throws -> [CursorSample] {
        try read { db in
            let s = try db.prepare("SELECT ts, updates FROM cursors WHERE session=? AND ts>=? AND ts<=? ORDER BY ts LIMIT ?")
            s.bind(1, session); s.bind(2, from); s.bind(3, to); s.bind(4, limit)
            var out: [CursorSample] = []
            while try s.step() { out.append(CursorSample(ts: s.int(0), updates: s.blob(1))) }
            return out
        }
    }

    /// Every event of every stream whose key starts with `prefix`, grouped by stream, in seq order
    /// (rebuilding run state at start-up).
    public func streams(prefix: String) throws -> [(String, [StoredEvent])] {
        try read { db in
            let s = try db.prepare("SELECT session, seq, ts, type, body FROM events WHERE session >= ? AND session < ? ORDER BY session, seq")
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

    /// Every session row (live and ended) with its event count.
    public func sessions() throws -> [(SessionInfo, events: Int)] {
        try read { db in
            let s = try db.prepare("""
                SELECT code, title, max_participants, guest_policy, host_key, created_at, ended_at, end_reason,
                  (SELECT COUNT(*) FROM events e WHERE e.session = s.code), options FROM sessions s ORDER BY created_at
                """)
            var out: [(SessionInfo, Int)] = []
            while try s.step() {
                var info = SessionInfo(code: s.string(0) ?? "", title: s.string(1) ?? "", maxParticipants: Int(s.int(2)),
                                       guestPolicy: s.string(3) ?? "allow", hostKey: s.string(4) ?? "", createdAt: s.int(5))
                info.endedAt = s.isNull(6) ? nil : s.int(6)
                info.endReason = s.string(7)
                if let o = s.string(9), let obj = try? JSONSerialization.jsonObject(with: Data(o.utf8)) as? [String: Any],
                   let events = obj["events"] as? [String: [String]] {
                    info.eventPolicy = events
                }
                out.append((info, Int(s.int(8))))
            }
            return out
        }
    }
}

/// An API key as stored: the secret itself is never kept, only its SHA-256.
public struct APIKeyRecord: Sendable, Equatable {
    public var id: String
    public var name: String
    public var secretSHA256: [UInt8]
    public var createdAt: Int64
    public var revokedAt: Int64?
    public var perMinute: Int
    public var perHour: Int
    public var perMonth: Int
    /// Scope names (`sessions:read`, ...), as stored.
    public var scopes: [String] = ["runs:publish"]
    /// Run ids (a trailing `*` is a prefix) this key may publish to; nil: any.
    public var runs: [String]?
}

extension TranscriptStore {
    /// Opens the database directly (for the `collabhub keys` command, which may run beside a live hub:
    /// SQLite's locking serialises it with the hub's writer).
    static func openDirect(_ directory: String) throws -> Database {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let db = try Database(path: directory + "/collabhub.sqlite")
        try configure(db, durability: .full)
        try migrate(db)
        return db
    }

    /// Creates a key; returns the record and the full key to hand out (`chk_<id>_<secret>`), shown once.
    /// The data directory this store lives in.
    public var directory: String { String(path.dropLast("/collabhub.sqlite".count)) }

    public static func createKey(directory: String, name: String, perMinute: Int, perHour: Int, perMonth: Int,
                                 scopes: [String] = ["runs:publish"], runs: [String]? = nil, actor: String = "admin (cli)") throws -> (APIKeyRecord, String) {
        let db = try openDirect(directory)
        let id = Base64.encodeID(Crypto.randomBytes(6))
        let secret = Base64.encodeID(Crypto.randomBytes(24))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let record = APIKeyRecord(id: id, name: name, secretSHA256: Crypto.sha256(Array(secret.utf8)), createdAt: now, revokedAt: nil,
                                  perMinute: perMinute, perHour: perHour, perMonth: perMonth, scopes: scopes, runs: runs)
        let s = try db.prepare("INSERT INTO api_keys(id, name, secret_sha256, created_at, per_minute, per_hour, per_month, scopes, runs) VALUES(?,?,?,?,?,?,?,?,?)")
        s.bind(1, id); s.bind(2, name); s.bind(3, blob: record.secretSHA256); s.bind(4, now); s.bind(5, perMinute); s.bind(6, perHour); s.bind(7, perMonth)
        s.bind(8, scopes.joined(separator: ",")); s.bind(9, runs?.joined(separator: ","))
        _ = try s.step()
        try logActivity(db, ActivityEntry(actor: actor, action: "api_key_created", target: id, details: name))
        return (record, "chk_\(id)_\(secret)")
    }

    public static func revokeKey(directory: String, id: String, actor: String = "admin (cli)") throws -> Bool {
        let db = try openDirect(directory)
        let s = try db.prepare("UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL")
        s.bind(1, Int64(Date().timeIntervalSince1970 * 1000)); s.bind(2, id)
        _ = try s.step()
        let changed = db.changes > 0
        if changed { try logActivity(db, ActivityEntry(actor: actor, action: "api_key_revoked", target: id)) }
        return changed
    }

    public static func listKeys(directory: String) throws -> [APIKeyRecord] {
        let db = try openDirect(directory)
        let s = try db.prepare("SELECT id, name, secret_sha256, created_at, revoked_at, per_minute, per_hour, per_month, scopes, runs FROM api_keys ORDER BY created_at")
        var out: [APIKeyRecord] = []
        while try s.step() { out.append(record(s)) }
        return out
    }

    static func record(_ s: Statement) -> APIKeyRecord {
        APIKeyRecord(id: s.string(0) ?? "", name: s.string(1) ?? "", secretSHA256: s.blob(2), createdAt: s.int(3),
                     revokedAt: s.isNull(4) ? nil : s.int(4), perMinute: Int(s.int(5)), perHour: Int(s.int(6)), perMonth: Int(s.int(7)),
                     scopes: (s.string(8) ?? "").split(separator: ",").map(String.init),
                     runs: s.isNull(9) ? nil : (s.string(9) ?? "").split(separator: ",").map(String.init))
    }

    static func logActivity(_ db: Database, _ a: ActivityEntry) throws {
        let st = try db.prepare("INSERT INTO activity(ts, actor, action, target, session, address, details) VALUES(?,?,?,?,?,?,?)")
        st.bind(1, a.ts); st.bind(2, a.actor); st.bind(3, a.action); st.bind(4, a.target); st.bind(5, a.session); st.bind(6, a.address); st.bind(7, a.details)
        _ = try st.step()
    }

    /// Counts one request of an API key in two usage windows (e.g. "h493817", "m24323"); committed with
    /// the next batch.
    public func recordKeyUse(id: String, windows: (String, String)) {
        enqueue(.keyUsage(id, windows.0, windows.1))
    }

    /// The stored request count of a key in a usage window (0 when none).
    public func keyUse(id: String, window: String) -> Int {
        (try? read { db -> Int in
            let s = try db.prepare("SELECT count FROM api_key_usage WHERE key_id=? AND window=?")
            s.bind(1, id); s.bind(2, window)
            return try s.step() ? Int(s.int(0)) : 0
        }) ?? 0
    }

    /// A key by id (read connection; the hub caches the answer briefly).
    /// Whether any key that is not revoked exists (a hub with keys is not in open mode).
    public func anyActiveKey() -> Bool {
        (try? read { db -> Bool in
            let s = try db.prepare("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1")
            return try s.step()
        }) ?? true   // a failed read fails closed
    }

    public func key(id: String) -> APIKeyRecord? {
        try? read { db -> APIKeyRecord? in
            let s = try db.prepare("SELECT id, name, secret_sha256, created_at, revoked_at, per_minute, per_hour, per_month, scopes, runs FROM api_keys WHERE id=?")
            s.bind(1, id)
            return try s.step() ? Self.record(s) : nil
        }
    }
}

extension Base64 {
    /// URL-safe base64 without padding, letters and digits only: no `_` (keys split on it) and no `-`
    /// (an id starting with one reads as an option on the command line: `collabhub keys revoke -jW5...`).
    static func encodeID(_ bytes: [UInt8]) -> String {
        encode(bytes, urlSafe: true).replacingOccurrences(of: "_", with: "x").replacingOccurrences(of: "-", with: "y")
    }
}

/// One administrative action: who (`actor`), what (`action`), on what (`target`), in which session,
/// from which client address, when.
public struct ActivityEntry: Sendable {
    public var id: Int?
    public var ts: Int64
    public var actor: String
    public var action: String
    public var target: String?
    public var session: String?
    public var address: String?
    public var details: String?
    public init(actor: String, action: String, target: String? = nil, session: String? = nil, address: String? = nil,
                details: String? = nil, ts: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {
        self.actor = actor; self.action = action; self.target = target; self.session = session
        self.address = address; self.details = details; self.ts = ts
    }
}

/// How long transcripts are kept: events older than `maxAgeMillis`, and all but the newest
/// `maxEventsPerSession` of a session, are deleted in the background. Seqs are never reused.
public struct RetentionPolicy: Sendable {
    public var maxAgeMillis: Int64?
    public var maxEventsPerSession: Int?
    public init(maxAgeMillis: Int64? = nil, maxEventsPerSession: Int? = nil) {
        self.maxAgeMillis = maxAgeMillis; self.maxEventsPerSession = maxEventsPerSession
    }
    public var isEnabled: Bool { maxAgeMillis != nil || maxEventsPerSession != nil }
    /// Events deleted per transaction (the most an append waits behind retention).
    static let chunk = 1000
}

/// A bounded memory of recent client ids (insertion order, oldest forgotten first), kept as 64-bit
/// hashes of member and id (about 60 bytes an id instead of ~250 with the strings). A failed batch
/// forgets the ids it added.
final class RecentIds {
    /// Each remembered id with the stamp of its slot in `order`: a slot whose stamp no longer matches
    /// (the id was forgotten, or remembered again later) evicts nothing when its turn comes.
    private var map: [UInt64: (committed: Committed, stamp: Int)] = [:]
    /// When the writer last added an id (uptime seconds).
    var lastWrite = ProcessInfo.processInfo.systemUptime
    var count: Int { map.count }
    private var order: [(key: UInt64, stamp: Int)] = []
    private var head = 0
    private var nextStamp = 0
    let capacity: Int
    init(capacity: Int) { self.capacity = capacity }

    static func key(member: String?, clientId: String) -> UInt64 {
        var h = Hasher()
        h.combine(member ?? "")
        h.combine(clientId)
        return UInt64(bitPattern: Int64(h.finalize()))
    }

    func lookup(_ key: UInt64) -> Committed? { map[key]?.committed }
    func forget(_ key: UInt64) { map[key] = nil }

    func remember(_ key: UInt64, _ c: Committed) {
        nextStamp += 1
        let slot = (key: key, stamp: nextStamp)
        if order.count < capacity {
            order.append(slot)
        } else {
            let old = order[head]
            if map[old.key]?.stamp == old.stamp { map[old.key] = nil }
            order[head] = slot
            head = (head + 1) % capacity
        }
        map[key] = (c, nextStamp)
    }
}
