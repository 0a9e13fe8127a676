/// What a node keeps its data in, port by port, put together once at start-up: one store for all
/// (`Backends(store)`: SQLite, or `MemoryStorage` in tests), or, in a cluster, Redis's shared ports
/// (the log, its reads, the session rows, `shared`, `runs`) beside SQLite's node-local ones. Any port
/// can be backed by any class. `shared` says whether other nodes append to the same log; nothing
/// finds that out by casting.
public struct Backends {
    public var events: EventLog
    public var reads: TranscriptReads
    public var sessions: SessionRecords
    /// Where session rows are also copied once `sessions` stored them (nil: none), so that node-local
    /// tables (webhooks, API keys, activity) can name the session.
    public var sessionCopies: SessionRecords?
    public var keys: APIKeyStore
    public var activity: ActivityLog
    public var webhooks: WebhookStore
    public var cursors: CursorSamples
    /// Every store's upkeep, in the order they are closed.
    public var maintenance: [StorageMaintenance]
    /// The log other nodes append to too (a cluster), or nil.
    public var shared: SharedLog?
    /// Runs shared with other nodes (a cluster), or nil.
    public var runs: SharedRuns?
    /// Members keyed by identity across the nodes (a cluster), or nil.
    public var roster: SharedRoster?
    /// Control messages between the nodes (a cluster), or nil.
    public var control: SharedControl?

    public init(
        events: EventLog, reads: TranscriptReads, sessions: SessionRecords, sessionCopies: SessionRecords? = nil,
        keys: APIKeyStore, activity: ActivityLog, webhooks: WebhookStore, cursors: CursorSamples,
        maintenance: [StorageMaintenance], shared: SharedLog? = nil, runs: SharedRuns? = nil,
        roster: SharedRoster? = nil, control: SharedControl? = nil
    ) {
        self.events = events
        self.reads = reads
        self.sessions = sessions
        self.sessionCopies = sessionCopies
        self.keys = keys
        self.activity = activity
        self.webhooks = webhooks
        self.cursors = cursors
        self.maintenance = maintenance
        self.shared = shared
        self.runs = runs
        self.roster = roster
        self.control = control
    }

    /// One store for every port, with no shared log.
    public init(_ store: Storage) {
        self.init(
            events: store, reads: store, sessions: store, keys: store, activity: store, webhooks: store,
            cursors: store, maintenance: [store])
    }
}

/// The node's storage as one `Storage`, each port answered by the backend `Backends` names for it.
public final class NodeStorage: Storage {
    public let backends: Backends
    public init(_ backends: Backends) { self.backends = backends }

    // EventLog
    public func append(
        _ event: DurableEvent, executor: Executor, done: @escaping (Result<Committed, StoreFailure>) -> Void
    ) { backends.events.append(event, executor: executor, done: done) }
    public func appendBatch(
        _ events: [DurableEvent], expectedLastSeq: Int?, executor: Executor,
        done: @escaping (Result<[Committed], StoreFailure>) -> Void
    ) { backends.events.appendBatch(events, expectedLastSeq: expectedLastSeq, executor: executor, done: done) }

    // TranscriptReads
    public func lastSeq(session: String) throws -> Int { try backends.reads.lastSeq(session: session) }
    public func tail(session: String, limit: Int) throws -> [StoredEvent] {
        try backends.reads.tail(session: session, limit: limit)
    }
    public func events(session: String, after: Int, limit: Int) throws -> [StoredEvent] {
        try backends.reads.events(session: session, after: after, limit: limit)
    }
    public func events(session: String, after: Int, limit: Int, maxBytes: Int) throws -> [StoredEvent] {
        try backends.reads.events(session: session, after: after, limit: limit, maxBytes: maxBytes)
    }
    public func event(session: String, seq: Int) throws -> (event: StoredEvent, member: String?)? {
        try backends.reads.event(session: session, seq: seq)
    }
    public func streams(prefix: String) throws -> [(String, [StoredEvent])] {
        try backends.reads.streams(prefix: prefix)
    }

    // SessionRecords
    public func save(_ info: SessionInfo, created: Bool, done: ((Bool) -> Void)?) {
        guard let copies = backends.sessionCopies else {
            return backends.sessions.save(info, created: created, done: done)
        }
        backends.sessions.save(info, created: created) { saved in
            if saved { copies.save(info, created: created, done: nil) }
            done?(saved)
        }
    }
    public func sessions() throws -> [(SessionInfo, events: Int)] { try backends.sessions.sessions() }

    // CursorSamples
    public func recordCursors(session: String, ts: Int64, updates: [UInt8]) {
        backends.cursors.recordCursors(session: session, ts: ts, updates: updates)
    }
    public func cursorSamples(session: String, from: Int64, to: Int64, limit: Int) throws -> [CursorSample] {
        try backends.cursors.cursorSamples(session: session, from: from, to: to, limit: limit)
    }

    // ActivityLog
    public func record(_ entry: ActivityEntry) { backends.activity.record(entry) }
    public func activity(_ query: ActivityQuery) throws -> [ActivityEntry] { try backends.activity.activity(query) }

    // APIKeyStore
    public func allKeys() throws -> [APIKeyRecord] { try backends.keys.allKeys() }
    public func createKey(_ spec: APIKeySpec, actor: String) throws -> (APIKeyRecord, String) {
        try backends.keys.createKey(spec, actor: actor)
    }
    public func revokeKey(id: String, actor: String) throws -> Bool {
        try backends.keys.revokeKey(id: id, actor: actor)
    }
    public func usage(window: String) throws -> [String: Int] { try backends.keys.usage(window: window) }
    public func recordUse(id: String, windows: (String, String)) { backends.keys.recordUse(id: id, windows: windows) }
    public var accounting: SharedAccounting? { backends.keys.accounting }

    // WebhookStore
    public func webhooks() throws -> [WebhookEndpoint] { try backends.webhooks.webhooks() }
    public func saveWebhook(_ endpoint: WebhookEndpoint, actor: String, action: String?) throws {
        try backends.webhooks.saveWebhook(endpoint, actor: actor, action: action)
    }
    public func deleteWebhook(id: String, actor: String) throws -> Bool {
        try backends.webhooks.deleteWebhook(id: id, actor: actor)
    }
    public func deliveries(webhook: String, status: DeliveryStatus?, before: Int?, limit: Int) throws
        -> [WebhookDelivery]
    { try backends.webhooks.deliveries(webhook: webhook, status: status, before: before, limit: limit) }
    public func pendingDeliveries(webhook: String?, after: Int, limit: Int) throws -> [WebhookDelivery] {
        try backends.webhooks.pendingDeliveries(webhook: webhook, after: after, limit: limit)
    }
    public func delivery(id: Int) throws -> WebhookDelivery? { try backends.webhooks.delivery(id: id) }
    public func enqueue(_ message: WebhookMessage, webhook: String) throws -> WebhookDelivery {
        try backends.webhooks.enqueue(message, webhook: webhook)
    }
    public func retryDelivery(id: Int) throws -> WebhookDelivery? { try backends.webhooks.retryDelivery(id: id) }
    public func recordAttempt(_ delivery: WebhookDelivery) { backends.webhooks.recordAttempt(delivery) }
    public func recordHealth(_ id: String, _ health: WebhookHealth) { backends.webhooks.recordHealth(id, health) }
    public func trimDeliveryLog(before: Int64, limit: Int) {
        backends.webhooks.trimDeliveryLog(before: before, limit: limit)
    }
    public func outboxDepth() throws -> [String: Int] { try backends.webhooks.outboxDepth() }
    public func report(_ messages: [WebhookMessage]) { backends.webhooks.report(messages) }
    public var reportsWebhooks: Bool { backends.webhooks.reportsWebhooks }
    public var onOutbox: (([WebhookDelivery]) -> Void)? {
        get { backends.webhooks.onOutbox }
        set { backends.webhooks.onOutbox = newValue }
    }
    public var onEndpoints: ((String, WebhookEndpoint?) -> Void)? {
        get { backends.webhooks.onEndpoints }
        set { backends.webhooks.onEndpoints = newValue }
    }

    // StorageMaintenance
    public func enforce(_ policy: RetentionPolicy) { for m in backends.maintenance { m.enforce(policy) } }
    /// Once every store committed what was queued before it (false if any failed).
    public func barrier(_ done: @escaping (Bool) -> Void) {
        let all = backends.maintenance
        func next(_ i: Int, _ ok: Bool) {
            guard i < all.count else { return done(ok) }
            all[i].barrier { next(i + 1, ok && $0) }
        }
        next(0, true)
    }
    public func close() { for m in backends.maintenance { m.close() } }
    public var gauges: [(name: String, help: String, value: Int)] { backends.maintenance.flatMap(\.gauges) }
}
