import CSQLite
import Foundation
import Hub

extension SQLiteStore {
    /// go through the sessions in key order, finding each next one with an index seek).
    struct RetentionPass {
        let policy: RetentionPolicy
        let cutoff: Int64?
        /// The session being trimmed ("" before the first: session codes are never empty).
        var session = ""
        /// Time-ordered tables still to trim by age (activity entries and cursor samples, numbered in
        /// time order), with the id of their first young row once known.
        var tables: [(name: String, firstYoung: Int64?)] = []
    }

    func startRetention(_ policy: RetentionPolicy) {
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
    func retentionStep() {
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
                let del = try writer.prepare(
                    "DELETE FROM \(table) WHERE id IN (SELECT id FROM \(table) WHERE id < ? ORDER BY id LIMIT ?)")
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
            logFault("retention pass failed", error, requests: 0)
            retentionPass = nil
        }
    }

    /// Deletes a chunk of `pass.session`'s events that the policy no longer keeps; true if it deleted
    /// a full chunk (more may remain).
    func deleteOldEvents(_ pass: RetentionPass) throws -> Bool {
        let session = pass.session, chunk = RetentionPolicy.chunk
        let st = try retentionStatements()
        defer { for s in [st.bounds, st.young, st.floor, st.delete, st.cursors] { s.reset() } }
        st.bounds.bind(1, session)
        guard try st.bounds.step(), !st.bounds.isNull(0) else { return false }
        let first = Int(st.bounds.int(0)), last = Int(st.bounds.int(1))  // seqs in between are all there
        let window = first + chunk - 1
        var upTo = first - 1  // delete seq <= upTo
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
            let deleted = writer.changes
            cond.lock(); retentionDeleted += deleted; cond.unlock()
            st.cursors.bind(1, session)
            _ = try st.cursors.step()
            try run(commitTx)
        } catch {
            try? writer.exec("ROLLBACK")
            throw error
        }
        return end == window
    }

    struct RetentionStatements { let next, bounds, young, floor, delete, cursors: Statement }
    func retentionStatements() throws -> RetentionStatements {
        if let s = retentionStatementsCache { return s }
        let s = RetentionStatements(
            next: try writer.prepare("SELECT session FROM events WHERE session > ? ORDER BY session LIMIT 1"),
            bounds: try writer.prepare("SELECT MIN(seq), MAX(seq) FROM events WHERE session = ?"),
            young: try writer.prepare(
                "SELECT seq FROM events WHERE session = ? AND seq BETWEEN ? AND ? AND ts >= ? ORDER BY seq LIMIT 1"),
            floor: try writer.prepare(
                "INSERT INTO seq_floor(session, seq) VALUES(?, ?) ON CONFLICT(session) DO UPDATE SET seq = excluded.seq"
            ),
            delete: try writer.prepare("DELETE FROM events WHERE session = ? AND seq <= ?"),
            // Cursor samples older than the oldest event kept have nothing left to play against.
            cursors: try writer.prepare(
                """
                DELETE FROM cursors WHERE session = ?1
                AND ts < COALESCE((SELECT ts FROM events WHERE session = ?1 ORDER BY seq LIMIT 1), 9223372036854775807)
                """))
        retentionStatementsCache = s
        return s
    }

}
