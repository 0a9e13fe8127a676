/// Runs in a cluster (Redis): a run's events are appended where its state machine is checked (the
/// append script, not the node), and every node hears every appended run event, so each node's
/// `RunBoard` is a copy that its watchers, dashboards and the API read. With SQLite there is none.
public protocol SharedRuns: AnyObject {
    /// Appends `events` (their stored `bodies`) to run `run` atomically: each checked against the
    /// run's state in the shared log (the same rules as `Run.check`), all or none, a known event id
    /// answered as a duplicate. `seed` is what this node knows of the run, used only if the shared log
    /// has no state for it (it lost its data): the numbering and the state machine go on from there.
    /// `done` runs on `executor`.
    func appendRun(
        _ run: String, _ events: [RunEvent], bodies: [[UInt8]], seed: RunSeed, executor: Executor,
        done: @escaping (Result<RunAppend, StoreFailure>) -> Void)
    /// Every run event appended by any node (this node's own included) reaches `sink` on `executor`'s
    /// loop, in the order each run's events were appended.
    func followRuns(executor: Executor, _ sink: @escaping (RunItem) -> Void)
    /// A run's events with seq > `after` (blocking, off the loops), at most `limit`, each marked if
    /// this node appended it; if the log's epoch changed, `lost` says where it goes on from.
    func runEvents(run: String, after: Int, limit: Int) throws -> RunRead
    /// Every run's last seq in the shared log (blocking, off the loops): what a node compares its
    /// copies with after its subscription was down.
    func runHeads() throws -> [(run: String, seq: Int)]
}

/// What the shared log starts a run from when it has no state for it.
public struct RunSeed: Equatable, Sendable {
    public var seq: Int
    public var status: RunStatus
    public var owner: String
    /// Steps running, in the order they started.
    public var running: [String]
    public init(seq: Int = 0, status: RunStatus = .pending, owner: String = "", running: [String] = []) {
        self.seq = seq; self.status = status; self.owner = owner; self.running = running
    }
}

/// The answer of a run append.
public enum RunAppend: Equatable, Sendable {
    /// Each event's seq and time, and whether it was stored before (by its id).
    case appended([Committed])
    /// An event the run's state does not allow: why (`Run.check`'s words); nothing was stored.
    case illegal(String)
}

/// What a node hears of the runs.
public enum RunItem: Sendable {
    /// A run event appended by a node (`own`: this one, whose answer applies it too).
    case committed(run: String, StoredEvent, own: Bool)
    /// The subscription took effect (first, or again after the link was down): what was published
    /// meanwhile was missed, and is read from the log.
    case subscribed
    /// The shared log lost the run's events (its epoch changed): seq goes on from `lastSeq`.
    case lost(run: String, lastSeq: Int)
}

/// What a read of a run's log found.
public struct RunRead {
    /// The log lost the run's events (a new epoch): it numbers on from this seq, and `events` follow it.
    public var lost: Int?
    public var events: [(event: StoredEvent, own: Bool)]
    public init(lost: Int?, events: [(event: StoredEvent, own: Bool)]) { self.lost = lost; self.events = events }
}
