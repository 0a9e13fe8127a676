import CSQLite
import Foundation
import Logging
import Hub

/// The event log's write side, on the writer thread: one transaction per batch, seq assignment,
/// resend recognition, and the completions sent back to each loop after the commit.
extension SQLiteStore {
    /// What one append learns, run on its loop after the commit: its callback and its result side by side,
    /// not a closure over both (that was a heap context per event, made here and freed on the loop).
    enum Completion {
        case one(Executor, (Result<Committed, StoreFailure>) -> Void, Result<Committed, StoreFailure>)
        case many(Executor, (Result<[Committed], StoreFailure>) -> Void, Result<[Committed], StoreFailure>)

        var executor: Executor {
            switch self {
            case .one(let e, _, _): return e
            case .many(let e, _, _): return e
            }
        }

        func run() {
            switch self {
            case .one(_, let done, let result): done(result)
            case .many(_, let done, let result): done(result)
            }
        }
    }

    /// A refused batch (its stream moved on since it was checked).
    struct Conflict: Error, CustomStringConvertible { let description: String }

    func commit(_ batch: [Request]) {
        var undo: [(String, (seq: Int, lastWrite: Double)?)] = []
        let clock = ProcessInfo.processInfo.systemUptime
        var remembered: [(RecentIds, UInt64)] = []
        var results: [Completion] = []
        results.reserveCapacity(batch.count)
        // (Sized once per batch: grown one append at a time they were reallocated ~8 times in a busy batch.)
        undo.reserveCapacity(batch.count)
        remembered.reserveCapacity(batch.count)
        var barriers: [(Bool) -> Void] = []
        var batchResults: [(Executor, (Result<[Committed], StoreFailure>) -> Void, [Committed])] = []
        var conflicts: [Completion] = []
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var failure: String?
        var redacted = false
        var outbox: [WebhookDelivery] = []
        /// Writes the webhooks a committed event makes to the outbox of every endpoint that wants them.
        func report(_ messages: [WebhookMessage]) throws {
            for m in messages {
                for e in subscriptions where e.wants(m.type) {
                    let st = insertOutbox!
                    st.bind(1, e.id); st.bind(2, m.id); st.bind(3, m.type.rawValue); st.bind(4, m.stream)
                    st.bind(5, m.seq); st.bind(6, blob: m.body); st.bind(7, now); st.bind(8, now)
                    defer { st.reset() }
                    _ = try st.step()
                    outbox.append(
                        WebhookDelivery(
                            id: Int(sqlite3_last_insert_rowid(writer.db)), webhook: e.id,
                            message: m, nextAttempt: now, createdAt: now))
                }
            }
        }
        /// Inserts one event (or recognises a resend) inside the open transaction.
        func store(_ event: DurableEvent) throws -> Committed {
            // The session's id memory and seq state are looked up once per event (each lookup hashes the
            // session's code: five of them were ~2,500 instructions an event on the writer).
            let idKey = event.clientId.map { idHash(event.member, $0) }
            let ids = idKey == nil ? nil : try recent(event.session)
            if let idKey, let ids, let original = ids.lookup(idKey),
                try isResend(of: original.seq, session: event.session, member: event.member, clientId: event.clientId!)
            {
                return Committed(seq: original.seq, ts: original.ts, duplicate: true)
            }
            let prior = seqs[event.session]
            let seq = try nextSeq(event.session, after: prior)
            if let r = event.replaces {
                if r.reason == .redacted { redacted = true }
                // A redaction or a deletion: the earlier event's content goes in this transaction, with
                // the hub's webhook copies of it (pending and delivered).
                let up = try writer.prepare("UPDATE events SET body=? WHERE session=? AND seq=?")
                up.bind(1, blob: r.body); up.bind(2, event.session); up.bind(3, r.seq)
                _ = try up.step()
                // Its edits go too (their text is the message's text).
                let edits = try writer.prepare(
                    "SELECT seq, body FROM events WHERE session=? AND type='chat_edit' AND seq>? AND instr(body, ?)>0")
                edits.bind(1, event.session); edits.bind(2, r.seq);
                edits.bind(3, blob: Array("\"target\":\(r.seq),".utf8))
                var seqs = [r.seq]
                var rewrites: [(Int, [UInt8])] = []
                while try edits.step() {
                    if let t = EventBody.editTombstone(edits.blob(1), r.reason) {
                        rewrites.append((Int(edits.int(0)), t))
                    }
                }
                for (seq, body) in rewrites {
                    let u = try writer.prepare("UPDATE events SET body=? WHERE session=? AND seq=?")
                    u.bind(1, blob: body); u.bind(2, event.session); u.bind(3, seq)
                    _ = try u.step()
                    seqs.append(seq)
                }
                for seq in seqs {
                    let del = try writer.prepare("DELETE FROM webhook_outbox WHERE stream=? AND seq=?")
                    del.bind(1, event.session); del.bind(2, seq)
                    _ = try del.step()
                }
            }
            try insert(event, seq: seq, ts: now)
            undo.append((event.session, prior))
            seqs[event.session] = (seq, clock)
            if let idKey, let ids {
                ids.remember(idKey, Committed(seq: seq, ts: now, duplicate: true))
                ids.lastWrite = clock
                remembered.append((ids, idKey))
            }
            let committed = Committed(seq: seq, ts: now, duplicate: false)
            if !subscriptions.isEmpty {
                try report(
                    Webhook.messages(for: event, committed: committed) { t in subscriptions.contains { $0.wants(t) } })
            }
            return committed
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
                case .webhooks(let endpoints):
                    subscriptions = endpoints.filter(\.active)
                case .outbox(let messages):
                    try report(messages)
                case .trimDeliveries(let before, let limit):
                    let st = try writer.prepare(
                        """
                        DELETE FROM webhook_outbox WHERE id IN (SELECT id FROM webhook_outbox
                          WHERE status != 'pending' AND created_at < ? ORDER BY id LIMIT ?)
                        """)
                    st.bind(1, before); st.bind(2, limit)
                    _ = try st.step()
                case .health(let id, let health):
                    try recordHealth(id, health, now: now)
                case .attempt(let d):
                    let st = updateAttempt!
                    st.bind(1, d.status.rawValue); st.bind(2, d.attempts); st.bind(3, d.nextAttempt)
                    if let s = d.lastStatus { st.bind(4, s) } else { st.bind(4, nil as String?) }
                    st.bind(5, d.lastError)
                    if let ms = d.durationMillis { st.bind(6, ms) } else { st.bind(6, nil as String?) }
                    if let at = d.deliveredAt { st.bind(7, at) } else { st.bind(7, nil as String?) }
                    st.bind(8, d.id)
                    defer { st.reset() }
                    _ = try st.step()
                case .session(let info, let created, let done):
                    if let done { barriers.append(done) }
                    if created && !subscriptions.isEmpty { try report([Webhook.sessionStarted(info)]) }
                    let s = upsertSession!
                    s.bind(1, info.code); s.bind(2, info.title); s.bind(3, info.maxParticipants);
                    s.bind(4, info.guestPolicy.rawValue)
                    s.bind(5, info.hostKey); s.bind(6, info.createdAt)
                    if let e = info.endedAt { s.bind(7, e) } else { s.bind(7, nil as String?) }
                    s.bind(8, info.endReason)
                    s.bind(9, Self.options(of: info))
                    defer { s.reset() }
                    _ = try s.step()
                case .append(let event, let executor, let done):
                    let c = try store(event)
                    results.append(.one(executor, done, .success(c)))
                case .appendBatch(let events, let expected, let executor, let done):
                    if let expected, let first = events.first, try nextSeq(first.session) != expected + 1 {
                        let message = "\(first.session) moved on since this batch was checked; retry"
                        conflicts.append(.many(executor, done, .failure(StoreFailure(message))))
                        continue
                    }
                    batchResults.append((executor, done, try events.map { try store($0) }))
                }
            }
            try run(commitTx)
            lastError = nil
            if redacted {
                // The redacted content's old page images are in the WAL: copy the new ones into the
                // database and empty the WAL, now if no read holds it, else when the writer is idle.
                truncatePending = true
                tryTruncate()
            }
        } catch {
            failure = "\(error)"
            try? writer.exec("ROLLBACK")
            for (session, state) in undo.reversed() { seqs[session] = state }
            for (ids, key) in remembered { ids.forget(key) }
            lastError = failure
            logFault("commit failed; its requests were rejected", error, requests: batch.count)
        }
        if let failure {
            // Nothing of the batch is stored: every append fails, every barrier learns it, and session
            // rows nobody waits for are queued again (an `end` or a settings change must not be lost).
            let f = StoreFailure(failure)
            results = batch.compactMap {
                switch $0 {
                case .append(_, let ex, let done): return .one(ex, done, .failure(f))
                case .appendBatch(_, _, let ex, let done): return .many(ex, done, .failure(f))
                default: return nil
                }
            }
            let retry = batch.filter {
                switch $0 {
                case .session(_, _, nil), .webhooks, .attempt, .health: return true
                default: return false
                }
            }
            if !retry.isEmpty {
                cond.lock(); queue.insert(contentsOf: retry, at: 0); cond.unlock()
                Thread.sleep(forTimeInterval: 0.05)  // the disk is failing: retry, but do not spin
            }
        } else {
            results += batchResults.map { r in .many(r.0, r.1, .success(r.2)) }
        }
        if failure == nil { results += conflicts }  // a failed commit already failed every batch in it
        // One wake-up per loop, completions in append order. With one loop (or a batch from one) the
        // grouping below is skipped: it cost a dictionary update per event.
        if let only = results.first?.executor, results.allSatisfy({ $0.executor === only }) {
            only.execute { [results] in for c in results { c.run() } }
            results = []
        }
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
        if failure == nil && !outbox.isEmpty { onOutbox?(outbox) }  // (the getter takes the lock)
    }

    /// Where a retention pass stands: the policy, its age cut-off, and the session it works on (passes

    func recent(_ session: String) throws -> RecentIds {
        if let r = seen[session] { return r }
        let r = RecentIds(capacity: Self.rememberedIds)
        let q = recentIds!
        q.bind(1, session); q.bind(2, Self.rememberedIds)
        defer { q.reset() }
        var rows: [(UInt64, Committed)] = []
        while try q.step() {
            rows.append(
                (idHash(q.string(0), q.string(1) ?? ""), Committed(seq: Int(q.int(2)), ts: q.int(3), duplicate: true)))
        }
        for (key, c) in rows.reversed() { r.remember(key, c) }
        seen[session] = r
        return r
    }

    func run(_ statement: Statement) throws {
        defer { statement.reset() }
        _ = try statement.step()
    }

    /// Inserts one event, binding its strings and body without copies (SQLite copied each, after a
    /// strlen, and the bridge to C strings made one more): they stay alive around the step, and the
    /// statement is reset inside their scope.
    func insert(_ event: DurableEvent, seq: Int, ts: Int64) throws {
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
    func isResend(of seq: Int, session: String, member: String?, clientId: String) throws -> Bool {
        let q = idAt!
        q.bind(1, session); q.bind(2, seq)
        defer { q.reset() }
        guard try q.step() else { return false }
        return q.string(0) == member && q.string(1) == clientId
    }

    func nextSeq(_ session: String) throws -> Int { try nextSeq(session, after: seqs[session]) }

    /// The seq after `prior`, the session's entry in `seqs` the caller already looked up (nil: from the store).
    func nextSeq(_ session: String, after prior: (seq: Int, lastWrite: Double)?) throws -> Int {
        if let prior { return prior.seq + 1 }
        return try storedLastSeq(session) + 1
    }

    /// A session's last seq: its newest event, or, when retention deleted all of them, the seq floor
    /// it recorded, so seq never starts over.
    static let lastSeqSQL = """
        SELECT MAX(COALESCE((SELECT MAX(seq) FROM events WHERE session=?1), 0),
                   COALESCE((SELECT seq FROM seq_floor WHERE session=?1), 0))
        """

    /// The writer's view of a session's last seq (the table and its seq floor).
    func storedLastSeq(_ session: String) throws -> Int {
        let m = maxSeq!
        m.bind(1, session)
        defer { m.reset() }
        _ = try m.step()
        return Int(m.int(0))
    }
}
