import CSQLite
import Foundation
import Logging
import Hub

/// The SQLite store: every port of `Storage` (sessions, durable events, runs, keys, activity) in one
/// database file, in WAL mode. This file holds the writer thread and its queue; each concern has its
/// own file (`EventWriter`, `Retention`, `Checkpointer`, `TranscriptReads`, `APIKeys`, `ActivityLog`,
/// `Schema`).
///
/// One writer thread owns the write connection. Appends queue up while a transaction commits and go
/// into the next one together (group commit: the batch is whatever arrived meanwhile, plus, only while
/// more than 5,000 requests/s arrive, up to 1 ms of waiting for company). The writer assigns each
/// event its session's next `seq` inside the transaction; if the commit fails, the batch is rolled
/// back and the seq counters with it, so seqs stay contiguous and nothing uncommitted is ever
/// acknowledged. Completions go back to each session's loop, one wake-up per loop per batch, in append
/// order. Reads use connections of their own (`ReaderPool`): no read waits for another.
public final class SQLiteStore: EventLog, SessionRecords, CursorSamples, StorageMaintenance, @unchecked Sendable {
    public let path: String
    /// Active webhook endpoints (read by other threads: a shared log builds webhooks only if any).
    let activeWebhooks = LockedCount()
    let writer: Database
    let readers: ReaderPool

    enum Request {
        case append(DurableEvent, Executor, (Result<Committed, StoreFailure>) -> Void)
        /// Events of one stream stored all or nothing, only if the stream's last seq is still the one
        /// they were checked against (nil: any).
        case appendBatch([DurableEvent], Int?, Executor, (Result<[Committed], StoreFailure>) -> Void)
        /// A session row; `done` (on the writer thread) learns whether it committed. Rows without one
        /// are queued again when their batch fails.
        case session(SessionInfo, created: Bool, ((Bool) -> Void)?)
        /// The endpoints the outbox is written for (replaces the writer's copy).
        case webhooks([WebhookEndpoint])
        /// What a delivery attempt found.
        case attempt(WebhookDelivery)
        case health(String, WebhookHealth)
        case trimDeliveries(before: Int64, limit: Int)
        case barrier((Bool) -> Void)
        case retention(RetentionPolicy)
        case activity(ActivityEntry)
        case cursors(String, Int64, [UInt8])
        /// Webhooks of events committed in a shared log (cluster mode), for the outbox.
        case outbox([WebhookMessage])
        case keyUsage(String, String, String)
    }
    var queue: [Request] = []
    /// Storage of the last committed batch, empty, for the next `takeBatch` (under `cond`'s lock).
    var spareQueue: [Request] = []
    let cond = NSCondition()
    var stopping = false
    var thread: Thread?
    /// Last committed seq per session, owned by the writer thread.
    var seqs: [String: (seq: Int, lastWrite: Double)] = [:]
    /// Set when the last commit failed; appends fail fast until a commit succeeds again.
    public internal(set) var lastError: String?
    /// Storage faults are logged at most once per 10 s (writer thread only); the rest are counted.
    var faultsSuppressed = 0
    var lastFaultLogged = -Double.infinity
    let log = Logger(label: "collabhub.store")

    /// Logs a storage fault (writer thread): the first at once, then one line per 10 s with a count.
    func logFault(_ what: String, _ error: Error, requests: Int) {
        let now = ProcessInfo.processInfo.systemUptime
        guard now - lastFaultLogged >= 10 else {
            faultsSuppressed += 1
            return
        }
        log.error(
            "\(what)",
            metadata: [
                "error": .string("\(error)"), "requests": .stringConvertible(requests),
                "faults_since_last_line": .stringConvertible(faultsSuppressed),
            ])
        lastFaultLogged = now
        faultsSuppressed = 0
    }
    public let durability: Durability
    /// Largest batch one transaction takes.
    static let maxBatch = 8192
    static let smallBatch = 64
    static let batchWait = 0.001
    /// Below this many requests per second a commit starts at once: waiting for company only pays when
    /// company comes (at 1,000 run events/s it would add up to a millisecond to each for nothing).
    static let busyRate = 5_000.0
    /// Requests per second over the last ~100 ms (writer thread only).
    var arrivalRate = 0.0
    var rateWindowStart = ProcessInfo.processInfo.systemUptime
    var rateWindowCount = 0

    var insertEvent: Statement!
    var recentIds: Statement!
    var idAt: Statement!
    /// BEGIN and COMMIT, prepared once (parsing them cost ~2,800 instructions a commit).
    var begin: Statement!, commitTx: Statement!
    /// How remembered ids are hashed (tests make every id collide).
    var idHash: (String?, String) -> UInt64 = RecentIds.key
    var insertActivity: Statement!
    var insertCursors: Statement!
    var addKeyUsage: Statement!
    /// Per session: client ids of its most recent durable events (hashed, -> committed), owned by
    /// the writer thread. A resend after a lost ack comes within seconds; 10,000 ids per session cover
    /// far more than any client keeps pending.
    var seen: [String: RecentIds] = [:]
    static let rememberedIds = 10_000
    /// Sessions not written for this long have their seq and id memories dropped (refilled from the
    /// table if they are written again), and at most `rememberedTotal` ids are kept over all sessions,
    /// the least recently written sessions' forgotten first: a long-running hub sees unboundedly many
    /// sessions. Swept every `sweepInterval` seconds.
    var forgetAfter = 300.0
    var rememberedTotal = 1_000_000
    var sweepInterval = 30.0
    var lastSweep = ProcessInfo.processInfo.systemUptime
    /// The retention pass in progress (writer thread): a session at a time, a bounded chunk per step.
    var retentionPass: RetentionPass?
    var maxSeq: Statement!
    var upsertSession: Statement!

    /// Background WAL checkpoints (see `Checkpointer`); the writer restarts the WAL when idle.
    var checkpointer: Checkpointer!
    /// Pages in the WAL after the last commit (writer thread, from SQLite's WAL hook).
    var walPages = 0
    /// Pages were cached since the writer last gave its cache back (`CacheRelease`).
    var cacheHeld = false
    /// A redaction's old page images may still be in the WAL: truncate it when no read holds it.
    var truncatePending = false
    let checkpointPages: Int
    /// The writer restarts the WAL after this long without work.
    static let idleRestart = 0.2
    static var walHardLimit: Int { walBoundPages }
    /// A WAL file larger than this (the old bound) is truncated when the writer is idle (`WALBound`).
    var walKeptBytes = 256 << 20
    var walFileLarge = false
    /// Active webhook endpoints (writer thread): each committed event is written to the outbox of
    /// every one that wants it, in the same transaction.
    var subscriptions: [WebhookEndpoint] = []
    /// Set at start-up, read by the writer after each commit: under `cond`'s lock.
    public var onOutbox: (([WebhookDelivery]) -> Void)? {
        get { cond.lock(); defer { cond.unlock() }; return outboxListener }
        set { cond.lock(); outboxListener = newValue; cond.unlock() }
    }
    private var outboxListener: (([WebhookDelivery]) -> Void)?
    var insertOutbox: Statement!
    var updateAttempt: Statement!
    /// The retention pass's statements, prepared on first use.
    var retentionStatementsCache: RetentionStatements?

    public init(directory: String, durability: Durability = .normal, checkpointPages: Int = 8192) throws {
        self.checkpointPages = checkpointPages
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/collabhub.sqlite"
        self.durability = durability
        writer = try Database(path: path)
        try Self.configure(writer, durability: durability)
        try Self.migrate(writer)
        readers = ReaderPool(path: path)
        insertEvent = try writer.prepare(
            "INSERT INTO events(session, seq, ts, type, member, client_id, body) VALUES(?,?,?,?,?,?,?)",
            persistent: true)
        insertCursors = try writer.prepare("INSERT INTO cursors(session, ts, updates) VALUES(?,?,?)", persistent: true)
        addKeyUsage = try writer.prepare(
            """
            INSERT INTO api_key_usage(key_id, window, count) VALUES(?,?,1)
            ON CONFLICT(key_id, window) DO UPDATE SET count = count + 1
            """, persistent: true)
        insertActivity = try writer.prepare(
            "INSERT INTO activity(ts, actor, action, target, session, address, details) VALUES(?,?,?,?,?,?,?)",
            persistent: true)
        idAt = try writer.prepare("SELECT member, client_id FROM events WHERE session=? AND seq=?", persistent: true)
        begin = try writer.prepare("BEGIN IMMEDIATE", persistent: true)
        commitTx = try writer.prepare("COMMIT", persistent: true)
        recentIds = try writer.prepare(
            "SELECT member, client_id, seq, ts FROM events WHERE session=? AND client_id IS NOT NULL ORDER BY seq "
                + "DESC LIMIT ?",
            persistent: true)
        maxSeq = try writer.prepare(Self.lastSeqSQL, persistent: true)
        upsertSession = try writer.prepare(
            """
            INSERT INTO sessions(code, title, max_participants, guest_policy, host_key, created_at, ended_at,
              end_reason, options)
            VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(code) DO UPDATE SET title=excluded.title,
            max_participants=excluded.max_participants, guest_policy=excluded.guest_policy,
            ended_at=excluded.ended_at, end_reason=excluded.end_reason, options=excluded.options
            """, persistent: true)
        insertOutbox = try writer.prepare(
            """
            INSERT INTO webhook_outbox(webhook, message_id, type, stream, seq, body, status, attempts, next_attempt,
              created_at) VALUES(?,?,?,?,?,?,'pending',0,?,?)
            """, persistent: true)
        updateAttempt = try writer.prepare(
            """
            UPDATE webhook_outbox SET status=?, attempts=?, next_attempt=?, last_status=?, last_error=?, duration_ms=?,
              delivered_at=? WHERE id=?
            """, persistent: true)
        subscriptions = try Self.loadWebhooks(writer).filter(\.active)
        activeWebhooks.set(subscriptions.count)
        try writer.exec("PRAGMA wal_autocheckpoint=0")
        // Deleted and overwritten content is zeroed, not left in free space: a redacted message (or one
        // retention deleted) is gone from the file, not just from the table.
        try writer.exec("PRAGMA secure_delete=ON")
        checkpointer = try Checkpointer(path: path, durability: durability, pages: checkpointPages)
        sqlite3_wal_hook(
            writer.db,
            { context, _, _, pages in
                let store = Unmanaged<SQLiteStore>.fromOpaque(context!).takeUnretainedValue()
                store.walPages = Int(pages)
                store.checkpointer.walGrew(Int(pages))
                return SQLITE_OK
            }, Unmanaged.passUnretained(self).toOpaque())
        let t = Thread { [unowned self] in self.run() }
        t.name = "sqlite-writer"
        thread = t
        t.start()
    }

    // MARK: - Writing

    public func append(
        _ event: DurableEvent, executor: Executor, done: @escaping (Result<Committed, StoreFailure>) -> Void
    ) {
        if !enqueueAppend(.append(event, executor, done)) { executor.execute { done(.failure(self.overloaded)) } }
    }

    /// Queues an append, or (false) refuses it when the writer is `maxQueued` behind: the disk cannot
    /// keep up, and queueing without bound would cost memory and latency.
    private func enqueueAppend(_ r: Request) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        guard queue.count < maxQueued else { return false }
        queue.append(r)
        wakeWriterIfNeeded()
        return true
    }

    private var overloaded: StoreFailure { StoreFailure("store overloaded (\(maxQueued) events waiting); retry") }

    /// Under `cond`'s lock. Wakes the writer only when the queue becomes non-empty or reaches a full
    /// batch: a signal per append would end the writer's wait for company at every message, so at
    /// moderate rates every commit would carry one or two events (and, on one core, preempt the loop).
    func wakeWriterIfNeeded() {
        if queue.count == 1 || queue.count == Self.smallBatch { cond.signal() }
    }

    /// Appends waiting beyond this are refused (about a second of the writer's throughput).
    public var maxQueued = 100_000

    /// Appends events of one stream in one transaction: all are stored, or none (`done` gets the
    /// failure). With `expectedLastSeq`, the batch is refused unless the stream's last seq is that one:
    /// a batch checked against state that an earlier, failed batch would have made is not stored.
    public func appendBatch(
        _ events: [DurableEvent], expectedLastSeq: Int?, executor: Executor,
        done: @escaping (Result<[Committed], StoreFailure>) -> Void
    ) {
        if !enqueueAppend(.appendBatch(events, expectedLastSeq, executor, done)) {
            executor.execute { done(.failure(self.overloaded)) }
        }
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
    public internal(set) var cursorSamplesDropped = 0

    /// Deletes events past the retention policy, on the writer thread between batches, in chunks of
    /// `RetentionPolicy.chunk` rows so appends never wait long behind it.
    public func enforce(_ policy: RetentionPolicy) { enqueue(.retention(policy)) }

    /// Rows deleted by retention so far.
    public internal(set) var retentionDeleted = 0

    public var gauges: [(name: String, help: String, value: Int)] {
        cond.lock()
        let dropped = cursorSamplesDropped, deleted = retentionDeleted
        cond.unlock()
        return [
            (
                "store_checkpoints",
                "WAL checkpoints completed off the commit path (background passes and the writer's restarts).",
                checkpoints
            ),
            (
                "cursor_samples_dropped", "Cursor samples (--record-cursors) not stored because the writer was behind.",
                dropped
            ),
            ("retention_deleted", "Events deleted by retention since start.", deleted),
        ]
    }

    public func barrier(_ done: @escaping (Bool) -> Void) { enqueue(.barrier(done)) }

    func enqueue(_ r: Request) {
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
        checkpointer.stop()
    }

    func run() {
        while true {
            cond.lock()
            if queue.isEmpty && !stopping && retentionPass == nil && (walPages >= checkpointPages || walFileLarge)
                && !cond.wait(until: Date().addingTimeInterval(Self.idleRestart)) && queue.isEmpty && !stopping
            {
                cond.unlock()
                restartWAL(idle: true)
                continue
            }
            if queue.isEmpty && !stopping && retentionPass == nil && cacheHeld
                && !cond.wait(until: Date().addingTimeInterval(Self.idleRelease)) && queue.isEmpty && !stopping
            {
                if queue.capacity > Self.smallBatch { queue = [] }  // a burst's queue storage goes too
                spareQueue = []
                cond.unlock()
                releaseCache()  // `CacheRelease`: nothing to do for a while
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
            var batch = takeBatch(take)
            cond.unlock()
            if batch.contains(where: { if case .retention = $0 { return true } else { return false } }) {
                for case .retention(let policy) in batch where retentionPass == nil { startRetention(policy) }
                batch.removeAll { if case .retention = $0 { return true } else { return false } }
            }
            if !batch.isEmpty { commit(batch); cacheHeld = true }
            recycle(&batch)
            // One bounded step of retention per batch: appends wait at most one chunk behind it.
            if retentionPass != nil { retentionStep() }
            if now - lastSweep >= sweepInterval { lastSweep = now; forgetIdleSessions(now: now) }
            if walPages >= Self.walHardLimit { restartWAL() }
            if walPages * 4096 > walKeptBytes { walFileLarge = true }
        }
    }

    /// Drops the seq and id memories of sessions not written for `forgetAfter` seconds, then, while more
    /// than `rememberedTotal` ids are kept, those of the least recently written sessions idle for a minute.
    func forgetIdleSessions(now: Double) {
        for (session, state) in seqs where now - state.lastWrite >= forgetAfter {
            seqs[session] = nil; seen[session] = nil
        }
        // only resends came
        for (session, ids) in seen where now - ids.lastWrite >= forgetAfter { seen[session] = nil }
        var total = seen.values.reduce(0) { $0 + $1.count }
        guard total > rememberedTotal else { return }
        // Sessions being written are never forgotten for the budget: each would reload its ids from the
        // table on its next append, tens of milliseconds of the writer's time.
        for (session, ids) in seen.sorted(by: { $0.value.lastWrite < $1.value.lastWrite })
        where now - ids.lastWrite >= 60 {
            seen[session] = nil
            total -= ids.count
            if total <= rememberedTotal * 3 / 4 { break }
        }
    }

}

/// An integer shared between threads (written rarely, read often).
final class LockedCount: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    var get: Int { lock.lock(); defer { lock.unlock() }; return value }
    func set(_ v: Int) { lock.lock(); value = v; lock.unlock() }
}
