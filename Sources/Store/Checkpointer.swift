import CSQLite
import Foundation
import Hub

/// WAL checkpoints off the commit path.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so that commit (and
/// every append queued behind it) waits for the copy and two fsyncs: tens of milliseconds. Instead a
/// thread of its own with its own connection checkpoints (PASSIVE: alongside the writer, which keeps
/// appending) whenever `pages` of the WAL are not yet copied. The WAL only starts over once a
/// checkpoint has caught up with its end, which a background pass under steady load never quite does,
/// so the writer finishes the job itself after `idleRestart` seconds without work (then nobody waits
/// for it), or at once past `walHardLimit` (1 GiB of WAL; `WALBound` says why): `SQLiteStore.restartWAL`.
final class Checkpointer: @unchecked Sendable {
    private let db: Database
    private var thread: Thread?
    private let cond = NSCondition()
    private var wanted = false, running = false, stopping = false
    /// WAL frames already copied into the database by the last background pass.
    private var backfilled = 0
    private var completedCount = 0
    let pages: Int

    init(path: String, durability: Durability, pages: Int) throws {
        self.pages = pages
        db = try Database(path: path)
        try db.exec("PRAGMA synchronous=\(durability == .full ? "FULL" : "NORMAL")")
        let t = Thread { [unowned self] in self.loop() }
        t.name = "sqlite-checkpoint"
        thread = t
        t.start()
    }

    /// Checkpoints completed (background passes and the writer's catch-ups).
    var completed: Int { cond.lock(); defer { cond.unlock() }; return completedCount }
    var isRunning: Bool { cond.lock(); defer { cond.unlock() }; return running }
    func countCompleted() { cond.lock(); completedCount += 1; cond.unlock() }

    /// After each commit, on the writer thread: asks for a background pass once enough of the WAL is
    /// not yet copied into the database.
    func walGrew(_ walPages: Int) {
        cond.lock()
        if walPages < backfilled { backfilled = 0 }  // the WAL started over
        if walPages - backfilled >= pages && !running && !wanted {
            wanted = true
            cond.signal()
        }
        cond.unlock()
    }

    func stop() {
        cond.lock(); stopping = true; cond.signal(); cond.unlock()
        while thread?.isFinished == false { usleep(1000) }
    }

    private func loop() {
        while true {
            cond.lock()
            while !wanted && !stopping { cond.wait() }
            if stopping { cond.unlock(); return }
            wanted = false
            running = true
            cond.unlock()
            var log: Int32 = 0, copied: Int32 = 0
            let rc = sqlite3_wal_checkpoint_v2(db.db, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
            cond.lock()
            running = false
            if rc == SQLITE_OK { backfilled = Int(copied); completedCount += 1 }
            cond.unlock()
        }
    }
}

extension SQLiteStore {
    /// The writer's part: a checkpoint on its own connection, which nothing appends to meanwhile, so it
    /// reaches the end of the WAL and the next commit starts the WAL over. Run when the writer has been
    /// idle for a while with at least `checkpointPages` in the WAL (a smaller WAL is left alone: the
    /// appends that end the idle time would wait for this checkpoint's fsyncs), or at once past
    /// `walHardLimit`.
    func restartWAL(idle: Bool = false) {
        // After a burst the WAL file keeps its size (up to `walBoundBytes`): an idle writer gives it back.
        if idle && walFileLarge && walFileBytes > walKeptBytes { truncatePending = true }
        if truncatePending { tryTruncate() }
        if idle { walFileLarge = truncatePending }  // a read held the WAL: tried again at the next idle spell
        guard !checkpointer.isRunning, walPages > 0 else { return }
        if (try? writer.exec("PRAGMA wal_checkpoint(PASSIVE)")) != nil {
            walPages = 0
            checkpointer.countCompleted()
        }
    }

    /// Copies the WAL into the database and truncates it, without waiting: a read in progress (or the
    /// background checkpoint) makes it give up until the next try (writer thread).
    func tryTruncate() {
        guard !checkpointer.isRunning else { return }
        sqlite3_busy_timeout(writer.db, 0)
        defer { sqlite3_busy_timeout(writer.db, 5000) }
        guard let st = try? writer.prepare("PRAGMA wal_checkpoint(TRUNCATE)"), (try? st.step()) == true,
            st.int(0) == 0
        else { return }
        truncatePending = false
        walPages = 0
        checkpointer.countCompleted()
    }

    /// Checkpoints completed so far.
    public var checkpoints: Int { checkpointer.completed }
}

/// Read connections, one per reading thread at a time: a read takes an idle connection (or opens one)
/// and gives it back, so a long scan (an export, a replay's page) never makes another read wait. The
/// lock guards only the list of idle connections.
final class ReaderPool: @unchecked Sendable {
    private let path: String
    private let lock = NSLock()
    private var idle: [Database] = []
    /// Idle connections kept open at most (more may exist while many threads read at once).
    static let maxIdle = 4

    init(path: String) { self.path = path }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        lock.lock()
        let db = idle.popLast()
        lock.unlock()
        let conn = try db ?? open()
        defer {
            lock.lock()
            if idle.count < Self.maxIdle { idle.append(conn) }
            lock.unlock()
        }
        return try body(conn)
    }

    private func open() throws -> Database {
        let db = try Database(path: path, readOnly: true)
        try db.exec("PRAGMA query_only=ON")
        try db.exec("PRAGMA mmap_size=\(SQLiteStore.mmapLimit)")
        return db
    }
}
