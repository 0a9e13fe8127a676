import EventLoop
import Foundation
import Logging
import Hub
import WebSocket

/// Runs hub callbacks on a loop's thread.
final class LoopExecutor: Executor {
    let loop: Loop
    init(_ loop: Loop) { self.loop = loop }
    func execute(_ work: @escaping () -> Void) { loop.post(work) }
}

/// The sessions one loop owns (a session lives on the loop its code hashes to), and the timers that
/// drive them: cursor flushes at most every 1/60 s while cursors move, and a 4 Hz tick for typing
/// expiry and reconnect grace.
final class LoopHub: SessionHost, HubMetrics {
    unowned let context: LoopContext
    let directory: SessionDirectory
    let store: Storage
    /// The log other nodes append to too (a cluster), or nil.
    let shared: SharedLog?
    /// Members keyed by identity across the nodes (a cluster), or nil.
    let roster: SharedRoster?
    let executor: LoopExecutor
    private(set) var sessions: [String: Session] = [:]
    private var dirtyCursors: [Session] = []
    private var cursorTimer: Loop.Timer?
    private var tickTimer: Loop.Timer?
    private let windowPacker = WindowPacker()
    var metrics: HubMetrics { self }
    let wall: () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }

    init(context: LoopContext, directory: SessionDirectory, store: Storage, shared: SharedLog?, roster: SharedRoster?) {
        self.context = context
        self.directory = directory
        self.store = store
        self.shared = shared
        self.roster = roster
        executor = context.executor
        tickTimer = Loop.Timer(loop: context.loop, after: 0.25, repeat: 0.25) { [unowned self] in self.tick() }
        tickTimer?.unref()
    }

    /// Calls `body` with the live session for a code, woken up first if needed: its history (last seq,
    /// newest events for the resume window) is read on the wake-up worker, never on this loop, and
    /// whatever asks for the session meanwhile waits in line. `body` gets nil for a code that is not a
    /// live session of this loop, or when storage could not be read (`wakeFailed` then says so).
    func withSession(_ code: String, _ body: @escaping (Session?) -> Void) {
        if let s = sessions[code] { return body(s) }
        // One live Session per code in the process: only the loop the code hashes to may hold it.
        guard owns(code) else { return body(nil) }
        guard let info = directory.info(code) else { return lookUp(code, body) }
        guard info.endedAt == nil else { return body(nil) }
        if waiting[code] != nil { waiting[code]!.append(body); return }
        waiting[code] = [body]
        let reads = context.server.wakeups, storage: TranscriptReads = store, loop = context.loop
        let limit = context.sessionPolicy.resumeWindow
        let shared = shared
        let queued = reads.submit { [unowned self] in
            let history = Result { try SessionHistory.read(code, from: storage, limit: limit) }
            let roster = (try? shared?.remoteMembers(session: code)) ?? []
            loop.post { self.woke(code, history, roster) }
        }
        // Refused (the queue is full): like a failed read, so the joins waiting get `storage_unavailable`.
        if !queued { loop.post { self.woke(code, .failure(WorkerBusy())) } }
    }
    private var waiting: [String: [(Session?) -> Void]] = [:]

    /// A code this node has not seen may be a session another node created (a shared log only): its
    /// row is read on the wake-up worker, and a code that is not one is counted like any other miss.
    private func lookUp(_ code: String, _ body: @escaping (Session?) -> Void) {
        guard let shared, SessionCode.normalize(code) == code else { return body(nil) }
        if lookingUp[code] != nil { lookingUp[code]!.append(body); return }
        lookingUp[code] = [body]
        let loop = context.loop, directory = directory
        let queued = context.server.wakeups.submit { [unowned self] in
            let found = Result { try shared.lookup(session: code) }
            let info = try? found.get()
            loop.post {
                // Redis unreachable: `storage_unavailable`, not an unknown code counted against the client.
                if case .failure = found { self.wakeFailed.insert(code) } else { self.wakeFailed.remove(code) }
                if let info { directory.learn(info) }
                for b in self.lookingUp.removeValue(forKey: code) ?? [] {
                    if info != nil { self.withSession(code, b) } else { b(nil) }
                }
            }
        }
        guard !queued else { return }
        loop.post {  // refused (the queue is full): `storage_unavailable`, as when Redis cannot be read
            self.wakeFailed.insert(code)
            for b in self.lookingUp.removeValue(forKey: code) ?? [] { b(nil) }
        }
    }
    private var lookingUp: [String: [(Session?) -> Void]] = [:]
    /// Codes whose last wake-up failed to read storage (cleared by the next attempt).
    private(set) var wakeFailed: Set<String> = []

    private func woke(
        _ code: String, _ history: Result<SessionHistory, Error>, _ roster: [(id: String, json: [UInt8])] = []
    ) {
        let queued = waiting.removeValue(forKey: code) ?? []
        var session: Session?
        switch history {
        case .success(let h):
            wakeFailed.remove(code)
            // Ended (or forgotten) while its history was read: nothing to wake.
            if let info = directory.info(code), info.endedAt == nil {
                let loop = context.loop
                let s = Session(
                    info: info, history: h, policy: context.sessionPolicy, store: store, executor: executor,
                    host: self, clock: { loop.now }, wallClockMillis: wall)
                sessions[code] = s
                session = s
                if let shared {
                    s.relays = true
                    s.remoteMembers = roster
                    s.roster = self.roster
                    shared.follow(session: code, executor: executor) { [weak s] item in s?.shared(item) }
                }
            }
        case .failure(let error):
            wakeFailed.insert(code)
            context.metrics.storeFailures.add()
            // Summed up: every join retries while storage is down.
            context.server.logSummary.count("cannot wake sessions (storage)", "\(error)")
        }
        for body in queued { body(session) }
    }

    /// Whether `code` lives on this loop.
    func owns(_ code: String) -> Bool {
        let all = context.server.contexts
        return all[SessionCode.owner(of: code, loops: all.count)] === context
    }

    func cursorsPending(_ session: Session) {
        dirtyCursors.append(session)
        if cursorTimer == nil {
            cursorTimer = Loop.Timer(loop: context.loop, after: 1.0 / 60) { [unowned self] in
                self.cursorTimer = nil
                let sessions = self.dirtyCursors
                self.dirtyCursors.removeAll(keepingCapacity: true)
                for s in sessions { s.flushCursors() }
            }
        }
    }

    func sessionFinished(_ session: Session) {
        // Only this object: an evicted session finishing late must not remove its successor.
        if sessions[session.code] === session {
            sessions[session.code] = nil
            emptySince[session.code] = nil
            shared?.unfollow(session: session.code, executor: executor)
        }
        directory.ended(session.info, store: store)
        context.server.log.info(
            "session ended",
            metadata: [
                "session": .string(session.code), "reason": .string(session.info.endReason ?? "ended"),
            ])
    }

    func updateInfo(_ info: SessionInfo) {
        sessions[info.code]?.update(info)
    }

    private func tick() {
        let wallNow = Date().timeIntervalSince1970, now = context.loop.now
        var evict: [String] = []
        for s in sessions.values {
            if s.needsTick { s.tick() }
            // Members on other nodes count too (a cluster: the session's members, from any node).
            directory.updateCounts(
                s.code, members: s.memberCount + s.remoteMembers.count, connections: s.connectionCount)
            if s.memberCount > 0 {
                directory.touch(s.code, at: wallNow)
                emptySince[s.code] = nil
            } else if let since = emptySince[s.code] {
                if now - since >= Self.evictAfter && !s.rosterPending { evict.append(s.code) }
            } else {
                emptySince[s.code] = now
            }
        }
        // Sessions nobody is in are woken from the store again on the next join: memory follows what is
        // in use, not every code anyone ever tried (refused joins wake a session too). A minute of
        // emptiness means every write of theirs has long been committed.
        for code in evict {
            sessions[code] = nil
            emptySince[code] = nil
            shared?.unfollow(session: code, executor: executor)
        }
        windowPacker.tick(sessions.values, metrics: context.metrics)
    }
    private var emptySince: [String: Double] = [:]
    static let evictAfter = 60.0

    /// Ends a session nobody used for the idle TTL (checked again here, on the owning loop).
    func endIfIdle(_ code: String, ttl: Double) {
        guard let info = directory.info(code), info.endedAt == nil else { return }
        if let live = sessions[code], live.memberCount > 0 { return }
        guard Date().timeIntervalSince1970 - directory.lastActive(code) >= ttl else { return }
        store.record(
            ActivityEntry(
                actor: "system", action: "session_ended", target: code, session: code, details: "idle for \(Int(ttl)) s"
            ))
        end(code, reason: "idle for \(Int(ttl)) s")
    }

    /// Ends a session (host request over HTTP, or idle TTL).
    func end(_ code: String, reason: String) {
        withSession(code) { [self] session in
            if let session { return session.end(reason: reason) }
            // Its history could not be read (storage is failing): it still ends, without the closing
            // system message, so an ended session never takes joins.
            guard wakeFailed.contains(code), var info = directory.info(code), info.endedAt == nil else { return }
            info.endedAt = Int64(Date().timeIntervalSince1970 * 1000)
            info.endReason = reason
            directory.ended(info, store: store)
        }
    }

    func record(_ action: String, session: Session, actor: Member?, target: String?, details: String?, address: String?)
    {
        store.record(
            ActivityEntry(
                actor: actor.map { "\($0.name) (\($0.id))" } ?? "system", action: action, target: target,
                session: session.code, address: address, details: details))
    }

    func controlRun(
        _ run: String, action: RunControlAction, session: Session, by: Member, reply: @escaping (MessageError?) -> Void
    ) {
        let loop0 = context.server.contexts[0], here = context.loop, code = session.code
        let who = (id: by.id, name: by.name)
        loop0.loop.post {
            // A cluster: the run's publisher socket may be on another node (ClusterControl).
            if let control = loop0.control {
                return control.runControl(run, action: action, session: code, by: who) { e in here.post { reply(e) } }
            }
            let error =
                loop0.runs?.board.control(run, action: action, session: code, by: who)
                ?? (loop0.runs == nil ? MessageError("unavailable", "runs are not available") : nil)
            here.post { reply(error) }
        }
    }

    func readEvents(_ session: Session, after: Int, limit: Int, done: @escaping ([StoredEvent]?) -> Void) {
        let reads = context.server.historyReads, storage: TranscriptReads = store, loop = context.loop
        let code = session.code
        let queued = reads.submit {
            let events = try? storage.events(session: code, after: after, limit: limit)
            loop.post { done(events) }
        }
        if !queued { loop.post { done(nil) } }  // refused: as a failed read
    }

    func readEvent(
        _ session: Session, seq: Int,
        done: @escaping (Result<(event: StoredEvent, member: String?)?, StoreFailure>) -> Void
    ) {
        let reads = context.server.historyReads, storage: TranscriptReads = store, loop = context.loop
        let code = session.code
        let queued = reads.submit {
            let result = Result { try storage.event(session: code, seq: seq) }.mapError { StoreFailure("\($0)") }
            loop.post { done(result) }
        }
        if !queued { loop.post { done(.failure(StoreFailure("\(WorkerBusy())"))) } }
    }

    func relay(_ session: Session, traffic: Traffic, key: String?, frame: Chunk) {
        shared?.relay(
            session: session.code, executor: executor, traffic: traffic, key: key ?? "", frame: Array(frame.bytes))
    }

    func readLog(
        _ session: Session, after: Int, limit: Int, done: @escaping ([(event: StoredEvent, own: Bool)]?) -> Void
    ) {
        guard let shared else {
            return readEvents(session, after: after, limit: limit) { done($0?.map { ($0, false) }) }
        }
        let loop = context.loop, code = session.code
        let queued = context.server.historyReads.submit {
            let events = try? shared.events(session: code, after: after, limit: limit)
            loop.post { done(events) }
        }
        if !queued { loop.post { done(nil) } }
    }

    func redacted(_ session: Session, seqs: Set<Int>) {
        let code = session.code, server = context.server!
        server.contexts[0].loop.post { server.webhooks?.forget(stream: code, seqs: seqs) }
    }

    // HubMetrics
    func behind(_ traffic: Traffic, coalesced: Bool) {
        context.metrics.droppedEphemeral.add()
        (coalesced ? context.metrics.coalesced : context.metrics.dropped)[traffic]?.add()
    }
    func resumed(_ outcome: ResumeOutcome) { context.metrics.resumes[outcome]?.add() }
    func refusedJoin(_ code: String, session: String, message: String, address: String) {
        context.server.authFailures.refused(code)
        // One line per refused join at debug (info has the per-minute summary).
        context.server.log.debug(
            "refused",
            metadata: [
                "session": .string(session), "reason": .string(code), "message": .string(message),
                "peer": .string(address),
            ])
    }
    func slowConsumer() { context.metrics.slowConsumerDrops.add() }
    func durableCommitted(latency: Double) {
        context.metrics.durableEvents.add()
        context.metrics.commitLatency.shard.observe(latency)
    }
    func storeFailure() { context.metrics.storeFailures.add() }
}

/// Every session the hub knows (live or ended), shared by all loops behind a lock: creation and look-up
/// are rare next to messages, which never touch it. Also throttles failed joins per client address.
final class SessionDirectory: @unchecked Sendable {
    private let lock = NSLock()
    private var infos: [String: SessionInfo] = [:]
    private var counts: [String: (members: Int, connections: Int)] = [:]
    /// Wall-clock seconds when each session last had a member (or was created / loaded).
    private var active: [String: Double] = [:]
    /// Failed joins per address (`AddressKey`) in its current minute, and the order those minutes began
    /// in (oldest first, from `failureHead`): expired entries, and the oldest when the table is full,
    /// go in constant time each, with no sweep over the table.
    private var failures: [String: (count: Int, since: Double)] = [:]
    private var failureOrder: [(key: String, since: Double)] = []
    private var failureHead = 0
    let codeLength: Int
    /// Failed joins allowed per address per minute before further joins are refused.
    let maxFailedJoinsPerMinute: Int
    /// Addresses whose failed joins are counted at once.
    let maxFailureEntries: Int

    init(codeLength: Int, maxFailedJoinsPerMinute: Int = 20, maxFailureEntries: Int = 100_000, existing: [SessionInfo])
    {
        self.codeLength = codeLength
        self.maxFailedJoinsPerMinute = maxFailedJoinsPerMinute
        self.maxFailureEntries = max(1, maxFailureEntries)
        let now = Date().timeIntervalSince1970
        for i in existing { infos[i.code] = i; active[i.code] = now }
    }

    func touch(_ code: String, at time: Double) { lock.lock(); active[code] = time; lock.unlock() }
    func lastActive(_ code: String) -> Double { lock.lock(); defer { lock.unlock() }; return active[code] ?? 0 }

    /// Live sessions whose last activity is older than `ttl` seconds.
    func idle(ttl: Double, now: Double) -> [String] {
        lock.lock(); defer { lock.unlock() }
        return infos.values.filter {
            $0.endedAt == nil && now - (active[$0.code] ?? 0) >= ttl && (counts[$0.code]?.members ?? 0) == 0
        }.map(\.code)
    }

    func info(_ code: String) -> SessionInfo? { lock.lock(); defer { lock.unlock() }; return infos[code] }

    /// Whether `given` is the host key of session `code` (its hash compared in constant time).
    func isHostKey(_ given: String?, of code: String) -> Bool {
        guard let given, let info = info(code) else { return false }
        return HostKey.matches(given, stored: info.hostKey)
    }

    func counts(_ code: String) -> (members: Int, connections: Int) {
        lock.lock(); defer { lock.unlock() }
        return counts[code] ?? (0, 0)
    }

    func updateCounts(_ code: String, members: Int, connections: Int) {
        lock.lock(); counts[code] = (members, connections); lock.unlock()
    }

    /// Creates a session with a fresh code, unique among the sessions known. Its row holds the host
    /// key's hash; the key itself is returned to be shown once.
    func create(
        title: String, maxParticipants: Int, guestPolicy: GuestPolicy, now: Int64
    ) -> (info: SessionInfo, hostKey: String) {
        lock.lock(); defer { lock.unlock() }
        var code = SessionCode.generate(length: codeLength)
        while infos[code] != nil { code = SessionCode.generate(length: codeLength) }
        let key = HostKey.generate()
        let info = SessionInfo(
            code: code, title: title, maxParticipants: maxParticipants, guestPolicy: guestPolicy,
            hostKey: key.stored, createdAt: now)
        infos[code] = info
        active[code] = Date().timeIntervalSince1970
        return (info, key.key)
    }

    /// A row another node saved (a shared log): created, changed or ended there. An ended session
    /// stays ended (an older row arriving late never brings it back). Returns the row as kept.
    @discardableResult
    func learn(_ info: SessionInfo) -> SessionInfo {
        lock.lock()
        defer { lock.unlock() }
        var next = Self.keepingRevocations(info, infos[info.code])
        if let current = infos[info.code] {
            if current.endedAt != nil && next.endedAt == nil {
                next.endedAt = current.endedAt
                next.endReason = current.endReason
            }
        } else {
            active[info.code] = Date().timeIntervalSince1970
        }
        infos[info.code] = next
        return next
    }

    /// Replaces a session's settings (guest policy, title, event policy).
    func update(_ info: SessionInfo) {
        lock.lock(); infos[info.code] = Self.keepingRevocations(info, infos[info.code]); lock.unlock()
    }

    /// `info` with every share link `current` had revoked: a row written from an older copy (a live
    /// session's, another node's) never brings a revoked link back.
    static func keepingRevocations(_ info: SessionInfo, _ current: SessionInfo?) -> SessionInfo {
        guard let current, !current.revokedShares.isEmpty else { return info }
        var next = info
        for id in current.revokedShares where !next.revokedShares.contains(id) { next.revokedShares.append(id) }
        next.revokedShares = Array(next.revokedShares.suffix(SessionInfo.maxRevokedShares))
        return next
    }

    /// Replaces a live session's settings; false (and nothing changes) once it has ended, so a change
    /// racing an end never brings the session back.
    func updateIfLive(_ info: SessionInfo) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard let current = infos[info.code], current.endedAt == nil else { return false }
        var next = Self.keepingRevocations(info, current)
        next.endedAt = nil; next.endReason = nil
        infos[info.code] = next
        return true
    }

    /// Revokes a share link of a session, live or ended (playback outlives the session): the row to
    /// store, or nil when there is no such session or too many links are revoked already.
    func revokeShare(_ code: String, id: String) -> SessionInfo? {
        lock.lock(); defer { lock.unlock() }
        guard var info = infos[code] else { return nil }
        if !info.revokedShares.contains(id) {
            guard info.revokedShares.count < SessionInfo.maxRevokedShares else { return nil }
            info.revokedShares.append(id)
            infos[code] = info
        }
        return info
    }

    /// Forgets a session whose creation could not be stored.
    func forget(_ code: String) {
        lock.lock(); infos[code] = nil; active[code] = nil; counts[code] = nil; lock.unlock()
    }

    func ended(_ info: SessionInfo, store: SessionRecords) {
        lock.lock()
        let next = Self.keepingRevocations(info, infos[info.code])
        infos[info.code] = next; counts[info.code] = nil
        lock.unlock()
        store.save(next)
    }

    /// Records a failed join from `address`; returns false when the address is over its budget.
    func failedJoin(from address: String, now: Double) -> Bool {
        lock.lock(); defer { lock.unlock() }
        while failureHead < failureOrder.count, now - failureOrder[failureHead].since > 60 { _ = popFailureOrder() }
        var entry = failures[address] ?? (0, now)
        if now - entry.since > 60 { entry = (0, now) }
        if entry.count == 0 {
            // A full table (a flood from more addresses than it holds) forgets its oldest address, which
            // starts again from zero: refusing instead would lock out every new address, legitimate
            // users first, for as long as the flood lasts.
            if failures[address] == nil && failures.count >= maxFailureEntries { dropOldestFailure() }
            failureOrder.append((address, now))
        }
        entry.count += 1
        failures[address] = entry
        return entry.count <= maxFailedJoinsPerMinute
    }

    /// Forgets the address whose minute began first.
    private func dropOldestFailure() {
        while failureHead < failureOrder.count && !popFailureOrder() {}
    }

    /// Takes the oldest start of a minute off the order, and its address off the table unless that
    /// address has begun a newer minute since (then the entry is stale); true if an address went.
    private func popFailureOrder() -> Bool {
        let (key, since) = failureOrder[failureHead]
        failureHead += 1
        let live = failures[key]?.since == since
        if live { failures[key] = nil }
        if failureHead >= 1024 && failureHead * 2 >= failureOrder.count {
            failureOrder.removeFirst(failureHead)
            failureHead = 0
        }
        return live
    }

    /// The cluster's count of `address`'s failed joins in its window (learned from Redis): this node's
    /// count becomes it if higher. Returns whether the address is still within its budget.
    func learnFailedJoins(_ address: String, count: Int, now: Double) -> Bool {
        lock.lock(); defer { lock.unlock() }
        if var e = failures[address], now - e.since <= 60, e.count < count {
            e.count = count
            failures[address] = e
        }
        return count <= maxFailedJoinsPerMinute
    }

    var failedJoinAddresses: Int { lock.lock(); defer { lock.unlock() }; return failures.count }

    func isThrottled(_ address: String, now: Double) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard let e = failures[address], now - e.since <= 60 else { return false }
        return e.count >= maxFailedJoinsPerMinute
    }

    func all() -> [SessionInfo] { lock.lock(); defer { lock.unlock() }; return Array(infos.values) }
}
