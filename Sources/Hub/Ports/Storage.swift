/// `--durability`: `normal` survives a crash of the process; `full` also survives power loss (an fsync
/// on every group commit).
public enum Durability: String, Sendable { case normal, full }

/// How long transcripts are kept: events older than `maxAgeMillis`, and all but the newest
/// `maxEventsPerSession` of a session, are deleted in the background. Seqs are never reused; run
/// streams keep every event (a run's state is rebuilt from them).
public struct RetentionPolicy: Sendable {
    public var maxAgeMillis: Int64?
    public var maxEventsPerSession: Int?
    public init(maxAgeMillis: Int64? = nil, maxEventsPerSession: Int? = nil) {
        self.maxAgeMillis = maxAgeMillis; self.maxEventsPerSession = maxEventsPerSession
    }
    public var isEnabled: Bool { maxAgeMillis != nil || maxEventsPerSession != nil }
    /// Events deleted per transaction (the most an append waits behind retention).
    public static let chunk = 1000
}

/// The storage engine's own upkeep and gauges.
public protocol StorageMaintenance: AnyObject {
    /// Deletes what the policy no longer keeps, in the background, in bounded steps.
    func enforce(_ policy: RetentionPolicy)
    /// Calls `done` (on a storage thread) once everything queued before it is committed.
    func barrier(_ done: @escaping (Bool) -> Void)
    /// Commits what is queued and stops (graceful shutdown).
    func close()
    /// Gauges for `/metrics`, by name (`store_checkpoints`, ...), each with its help text.
    var gauges: [(name: String, help: String, value: Int)] { get }
}

/// Everything the hub keeps durably, as the ports Hub and Server depend on. The SQLite store
/// (`Store` module) implements all of them; `MemoryStorage` does for tests; a node puts its own together
/// from several (`Backends`: Redis's shared ports beside SQLite's) without touching Hub or Server.
public typealias Storage = EventLog & TranscriptReads & SessionRecords & ActivityLog & APIKeyStore & WebhookStore
    & CursorSamples & StorageMaintenance
