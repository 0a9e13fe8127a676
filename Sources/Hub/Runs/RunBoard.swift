import Foundation
import WebSocket

/// What the run board asks of the process around it.
public protocol RunHost: AnyObject {
    var metrics: HubMetrics { get }
    /// A run attached to a session changed: status changes become durable events of that session,
    /// progress an ephemeral update (the host routes it to the session's loop).
    func runChanged(session: String, run: String, summary: [UInt8], event: String, durable: Bool)
    /// A cluster's run events after `after` are missing here (a gap in what was heard): the host reads
    /// them from the shared log and hands them to `heard` (one read per run at a time is enough).
    func runGap(_ run: String, after: Int)
}

extension RunHost {
    public func runGap(_ run: String, after: Int) {}
}

/// Runs, their watchers and the dashboards: the run state machine over the event log, and fan-out to
/// the clients watching (a run's channel gets every event in seq order, with resume; a dashboard gets
/// each run's status changes and, when it keeps up, its progress). Pure logic like `Session`: clients
/// are `HubClient`s, events go through an `EventLog` as the stream `run:ID` with its own contiguous
/// `seq`, time is injected. The server keeps it on loop 0 (watcher and publisher sockets are handed to
/// that loop before the upgrade).
public final class RunBoard {
    let store: EventLog
    let executor: Executor
    public weak var host: RunHost?
    let wallClockMillis: () -> Int64
    /// The same delivery policy as sessions (durable always, ephemeral coalesced, cut off past the hard limit).
    let fanout: Fanout
    /// What watchers are shown: state after the last committed event.
    public private(set) var committed: [String: Run] = [:]
    /// Committed plus events still being written: new events are checked against this.
    private var projected: [String: Run] = [:]
    /// Idempotency: event id -> seq, per run.
    private var seenIds: [String: [String: Int]] = [:]
    private var windows: [String: ResumeWindow] = [:]
    private var runWatchers: [String: [HubClient]] = [:]
    private var dashboards: [String: [HubClient]] = [:]
    /// The channels each watcher holds, and the runs each publisher speaks for (by client).
    private var watching: [ObjectIdentifier: Set<String>] = [:]
    private var publishing: [ObjectIdentifier: Set<String>] = [:]
    private var byOwner: [String: [String]] = [:]
    /// The publisher socket that last published for each run: where run_control goes.
    private var publishers: [String: HubClient] = [:]
    /// Events of each run handed to the store and not yet committed or failed.
    private var inFlight: [String: Int] = [:]
    /// Runs whose projection must be rebuilt from `committed` once nothing is in flight.
    private var projectionStale: Set<String> = []
    /// The shared log of a cluster (nil: this node's store alone). Appends go there, where each run's
    /// state machine is checked, and every node's board applies every run event it hears, in seq order
    /// (`heard`): the board is then this node's copy of every run.
    public var shared: SharedRuns?
    /// Cluster: events heard past a gap, by run and seq, until the ones before them are read.
    private var parked: [String: [Int: (event: StoredEvent, own: Bool)]] = [:]
    static let window = 1000
    /// Bytes of resume window per run (1,000 log lines of 16 KiB would be 16 MiB).
    static let windowBytes = 1 << 20
    static let dashboardRuns = 100

    /// `history` is every stored run stream (`TranscriptReads.streams(prefix: "run:")`), read before.
    public init(
        history: [(String, [StoredEvent])], store: EventLog, executor: Executor, policy: SessionPolicy,
        host: RunHost?, wallClockMillis: @escaping () -> Int64
    ) {
        self.store = store
        self.executor = executor
        self.host = host
        self.wallClockMillis = wallClockMillis
        fanout = Fanout(softLimit: policy.softOutputLimit, hardLimit: policy.hardOutputLimit)
        // Rebuild every run from its stored events.
        for (stream, events) in history {
            let id = String(stream.dropFirst(4))
            var run = Run(id: id)
            var ring = ResumeWindow(maxCount: Self.window, maxBytes: Self.windowBytes)
            for e in events {
                guard let ev = RunEvent.fromStored(e.body) else { continue }
                run.apply(ev, seq: e.seq, ts: e.ts)
                if let eid = ev.id { seenIds[id, default: [:]][eid] = e.seq }
                ring.append((e.seq, e.message.frame))
            }
            committed[id] = run; projected[id] = run; windows[id] = ring
            byOwner[run.owner, default: []].append(id)
        }
    }

    public struct Rejection: Error {
        public let status: HTTPStatus
        public let code: String
        public let message: String
    }

    /// Validates and stores `events` for `runId` in order; `done` gets each event's seq (and whether it
    /// was a retry), or the first rejection. Nothing of a rejected batch is stored.
    public func publish(
        _ runId: String, _ events: [RunEvent],
        done: @escaping (Result<[(seq: Int, duplicate: Bool)], Rejection>) -> Void
    ) {
        if let shared { return publishShared(shared, runId, events, done: done) }
        var state = projected[runId] ?? Run(id: runId)
        var results: [(seq: Int, duplicate: Bool)?] = Array(repeating: nil, count: events.count)
        var toStore: [(Int, RunEvent)] = []
        for (i, e) in events.enumerated() {
            if let id = e.id, let seq = seenIds[runId]?[id] { results[i] = (seq, true); continue }
            if let problem = state.check(e) {
                return done(.failure(Rejection(status: .conflict, code: "illegal_transition", message: problem)))
            }
            state.apply(e, seq: state.seq, ts: wallClockMillis())
            toStore.append((i, e))
        }
        if toStore.isEmpty { return done(.success(results.map { $0! })) }
        // Stored all or nothing, and only on top of the state it was checked against: if an earlier
        // batch of this run is still being written and fails, this one is refused too.
        // (Every stored run is loaded at start-up and retention keeps run streams whole, so a run not
        // in `committed` has no events yet.)
        let expected = (committed[runId]?.seq ?? 0) + (inFlight[runId] ?? 0)
        projected[runId] = state
        inFlight[runId, default: 0] += toStore.count
        let bodies = toStore.map { $0.1.body(run: runId) }
        let stored = zip(toStore, bodies).map { item, body in
            DurableEvent(
                session: "run:" + runId, type: "run_event", member: "publisher", clientId: item.1.id, body: body)
        }
        store.appendBatch(stored, expectedLastSeq: expected, executor: executor) { [self] result in
            inFlight[runId, default: 0] -= toStore.count
            switch result {
            case .success(let commits):
                for ((i, e), (c, body)) in zip(toStore, zip(commits, bodies)) {
                    results[i] = (c.seq, c.duplicate)
                    if !c.duplicate { committedEvent(runId, e, body: body, c) }
                }
                done(.success(results.map { $0 ?? (0, false) }))
            case .failure(let f):
                // What could not be stored did not happen; batches checked on top of it fail as well,
                // so the projection starts again from what is committed once none is in flight.
                if inFlight[runId] == 0 { projected[runId] = committed[runId] } else { projectionStale.insert(runId) }
                done(.failure(Rejection(status: .serviceUnavailable, code: "storage_unavailable", message: f.message)))
            }
            if inFlight[runId] == 0 {
                inFlight[runId] = nil
                if projectionStale.remove(runId) != nil { projected[runId] = committed[runId] }
            }
        }
    }

    /// Cluster: the shared log checks the transitions and numbers the events (this node's copy may be
    /// behind another node's appends, so it decides nothing); what it stored is applied when heard.
    private func publishShared(
        _ shared: SharedRuns, _ runId: String, _ events: [RunEvent],
        done: @escaping (Result<[(seq: Int, duplicate: Bool)], Rejection>) -> Void
    ) {
        let bodies = events.map { $0.body(run: runId) }
        let seed = committed[runId]?.seed ?? RunSeed()
        shared.appendRun(runId, events, bodies: bodies, seed: seed, executor: executor) { [self] result in
            switch result {
            case .failure(let f):
                done(.failure(Rejection(status: .serviceUnavailable, code: "storage_unavailable", message: f.message)))
            case .success(.illegal(let why)):
                done(.failure(Rejection(status: .conflict, code: "illegal_transition", message: why)))
            case .success(.appended(let commits)):
                for (c, body) in zip(commits, bodies) where !c.duplicate {
                    heard(runId, StoredEvent(seq: c.seq, ts: c.ts, type: "run_event", body: body), own: true)
                }
                done(.success(commits.map { ($0.seq, $0.duplicate) }))
            }
        }
    }

    /// Cluster: a run event appended by any node (`own`: by this one), applied once and in seq order;
    /// one past a gap waits for the host to read the missing ones (`RunHost.runGap`).
    public func heard(_ runId: String, _ e: StoredEvent, own: Bool) {
        let last = committed[runId]?.seq ?? 0
        guard e.seq > last else { return }
        guard e.seq == last + 1 else {
            parked[runId, default: [:]][e.seq] = (e, own)
            host?.runGap(runId, after: last)
            return
        }
        applyHeard(runId, e, own: own)
        while let next = parked[runId]?.removeValue(forKey: (committed[runId]?.seq ?? 0) + 1) {
            applyHeard(runId, next.event, own: next.own)
        }
        let now = committed[runId]?.seq ?? 0
        parked[runId] = parked[runId]?.filter { $0.key > now }
        if parked[runId]?.isEmpty == true { parked[runId] = nil }
    }

    /// Cluster: whether events of `runId` wait past a gap (the host reads again until none do).
    public func hasGap(_ runId: String) -> Bool { parked[runId] != nil }

    private func applyHeard(_ runId: String, _ e: StoredEvent, own: Bool) {
        guard let event = RunEvent.fromStored(e.body) else {
            // Not an event this hub wrote: numbered past, shown to nobody.
            var run = committed[runId] ?? Run(id: runId)
            run.continueAt(e.seq)
            committed[runId] = run
            projected[runId] = run
            return
        }
        committedEvent(runId, event, body: e.body, Committed(seq: e.seq, ts: e.ts, duplicate: false), own: own)
        projected[runId] = committed[runId]
    }

    /// Cluster: the shared log lost the run's events (Redis restarted without them) and numbers on from
    /// `lastSeq`. When that is not where this copy was, its watchers are told with a new snapshot (the
    /// state goes on as this node knew it) and resume starts over.
    public func lost(_ runId: String, lastSeq: Int) {
        parked[runId] = nil
        var run = committed[runId] ?? Run(id: runId)
        guard run.seq != lastSeq else { return }
        run.continueAt(lastSeq)
        committed[runId] = run
        projected[runId] = run
        windows[runId] = ResumeWindow(maxCount: Self.window, maxBytes: Self.windowBytes)
        let snapshot = ServerMessage.runSnapshot(channel: "run:" + runId, seq: lastSeq, run: run.stateJSON).frame
        for w in runWatchers[runId] ?? [] { w.deliver(snapshot) }
    }

    private func committedEvent(_ runId: String, _ e: RunEvent, body: [UInt8], _ c: Committed, own: Bool = true) {
        var run = committed[runId] ?? Run(id: runId)
        let isNew = run.status == .pending
        run.apply(e, seq: c.seq, ts: c.ts)
        committed[runId] = run
        if let id = e.id { seenIds[runId, default: [:]][id] = c.seq }
        let frame = ServerMessage.durable(type: "run_event", seq: c.seq, ts: c.ts, body: body).frame
        windows[runId, default: ResumeWindow(maxCount: Self.window, maxBytes: Self.windowBytes)].append((c.seq, frame))
        if isNew { byOwner[run.owner, default: []].append(runId) }
        let metrics = host?.metrics
        for w in runWatchers[runId] ?? [] { fanout.deliver(frame, to: w, .durable, metrics: metrics) }
        // Dashboards: every status change goes; a watcher that is behind gets only the latest progress of
        // each run (held until it catches up, and dropped when a status change, which carries the whole
        // state, overtakes it). One that falls past the hard limit is closed and resubscribes.
        if let watchers = dashboards[run.owner], !watchers.isEmpty {
            let statusChange = Run.isStatusChange(e.kind)
            if statusChange || e.kind == .progress {
                let summary = run.summaryJSON, key = "run:" + runId
                let f = (statusChange ? ServerMessage.runStatus(run: summary) : .runProgress(run: summary)).frame
                for w in watchers {
                    fanout.deliver(
                        f, to: w, statusChange ? .durable : .ephemeral(.run, key: key),
                        supersedes: statusChange ? key : nil, metrics: metrics)
                }
            }
        }
        // A run started in a session shows up in that session's stream (in a cluster, written by the
        // node that appended the event: every node applies it).
        if own, let code = run.session, Run.isStatusChange(e.kind) || e.kind == .progress {
            host?.runChanged(
                session: code, run: runId, summary: run.summaryJSON, event: e.kind.rawValue,
                durable: Run.isStatusChange(e.kind))
        }
    }

    /// Remembers which publisher socket speaks for a run.
    public func publisherSeen(_ c: HubClient, run: String) {
        guard !c.isDisconnecting else { return }
        if let old = publishers[run], old !== c { publishing[ObjectIdentifier(old)]?.remove(run) }
        publishers[run] = c
        publishing[ObjectIdentifier(c), default: []].insert(run)
    }

    /// A session member asks for a pause/resume/cancel: forwarded to the run's publisher socket, which
    /// decides (it publishes `paused`/`resumed`/`completed` itself).
    public func control(
        _ runId: String, action: RunControlAction, session: String,
        by: (id: String, name: String)
    ) -> MessageError? {
        if let refusal = controlRefusal(runId, action: action, session: session) { return refusal }
        guard deliverControl(runId, action: action, session: session, by: by) else {
            return Self.noPublisher(runId)
        }
        return nil
    }

    /// Why the run's state refuses `action` from `session` (nil: it may be asked of the publisher).
    public func controlRefusal(_ runId: String, action: RunControlAction, session: String) -> MessageError? {
        guard let run = committed[runId] else { return MessageError("unknown_run", "no run \(runId)", field: "run") }
        guard run.session == session else {
            return MessageError("forbidden", "run \(runId) is not attached to this session", field: "run")
        }
        switch action {
        case .pause where run.status != .running:
            return MessageError(
                "illegal_transition", "run \(runId) is \(run.status.rawValue); only a running run can be paused")
        case .resume where run.status != .paused:
            return MessageError(
                "illegal_transition", "run \(runId) is \(run.status.rawValue); only a paused run can be resumed")
        case .cancel where run.isFinished:
            return MessageError("illegal_transition", "run \(runId) is already completed")
        default: break
        }
        return nil
    }

    /// Hands the control to the run's publisher socket on this node: false if there is none.
    public func deliverControl(
        _ runId: String, action: RunControlAction, session: String, by: (id: String, name: String)
    ) -> Bool {
        guard let publisher = publishers[runId], !publisher.isDisconnecting else { return false }
        publisher.deliver(ServerMessage.control(run: runId, action: action, session: session, by: by).frame)
        return true
    }

    public static func noPublisher(_ runId: String) -> MessageError {
        MessageError("no_publisher", "no publisher is connected for run \(runId) (it must hold a /publish socket)")
    }

    /// The runs a publisher socket on this node speaks for.
    public var publishedRuns: [String] { Array(publishers.keys) }

    // MARK: Watching

    /// Channels one `/watch` connection may hold.
    public static let maxChannelsPerConnection = 100

    public func subscribe(_ c: HubClient, _ channel: WatchMessage.Channel, resumeFrom: Int?) -> MessageError? {
        let name = channel.name, id = ObjectIdentifier(c)
        if watching[id]?.contains(name) != true && (watching[id]?.count ?? 0) >= Self.maxChannelsPerConnection {
            return MessageError(
                "too_many_channels", "at most \(Self.maxChannelsPerConnection) channels per connection",
                field: "channel")
        }
        watching[id, default: []].insert(name)
        switch channel {
        case .run(let id):
            let run = committed[id] ?? Run(id: id)
            if !(runWatchers[id]?.contains { $0 === c } ?? false) { runWatchers[id, default: []].append(c) }
            // A position past the run's last seq is not this run's history: the watcher gets a snapshot.
            if let from = resumeFrom, from <= run.seq, let missed = windows[id]?.missing(after: from, through: run.seq)
            {
                for frame in missed { c.deliver(frame) }
                c.deliver(ServerMessage.subscribed(channel: name, seq: run.seq).frame)
            } else {
                c.deliver(ServerMessage.runSnapshot(channel: name, seq: run.seq, run: run.stateJSON).frame)
            }
        case .dashboard(let owner):
            if !(dashboards[owner]?.contains { $0 === c } ?? false) { dashboards[owner, default: []].append(c) }
            var runs = JSONWriter()
            runs.beginArray()
            for id in (byOwner[owner] ?? []).suffix(Self.dashboardRuns).reversed() {
                if let summary = committed[id]?.summaryJSON { runs.rawElement(summary) }
            }
            runs.endArray()
            c.deliver(ServerMessage.dashboard(owner: owner, runs: runs.bytes).frame)
        }
        return nil
    }

    /// The channels `c` watches.
    public func channels(of c: HubClient) -> Set<String> { watching[ObjectIdentifier(c)] ?? [] }

    public func unsubscribe(_ c: HubClient, channel: String) {
        let id = ObjectIdentifier(c)
        guard watching[id]?.remove(channel) != nil else { return }
        if watching[id]?.isEmpty == true { watching[id] = nil }
        // Keys go with their last watcher: the maps hold only channels someone watches.
        func drop(_ map: inout [String: [HubClient]], _ key: String) {
            map[key]?.removeAll { $0 === c }
            if map[key]?.isEmpty == true { map[key] = nil }
        }
        if channel.hasPrefix("run:") { drop(&runWatchers, String(channel.dropFirst(4))) }
        if channel.hasPrefix("dashboard:") { drop(&dashboards, String(channel.dropFirst(10))) }
    }

    /// A watcher or publisher is gone.
    public func closed(_ c: HubClient) {
        for ch in watching[ObjectIdentifier(c)] ?? [] { unsubscribe(c, channel: ch) }
        publisherClosed(c)
    }

    /// A publisher socket closed: it no longer speaks for its runs.
    /// Returns the runs it spoke for.
    @discardableResult
    public func publisherClosed(_ c: HubClient) -> [String] {
        var gone: [String] = []
        for run in publishing.removeValue(forKey: ObjectIdentifier(c)) ?? [] where publishers[run] === c {
            publishers[run] = nil
            gone.append(run)
        }
        return gone
    }

    /// Channels watched and publishers known (for `/metrics`).
    public var trackedChannels: Int { runWatchers.count + dashboards.count }
    public var trackedPublishers: Int { publishers.count }

    public static func isValidId(_ s: String) -> Bool { Run.isValidId(s) }

    /// Runs filtered for `GET /api/runs`, newest first.
    public func list(owner: String?, status: RunStatus?) -> [Run] {
        committed.values.filter { (owner == nil || $0.owner == owner) && (status == nil || $0.status == status) }
            .sorted { ($0.startedAt ?? 0) > ($1.startedAt ?? 0) }
    }
}
