import WebSocket

/// A connection as the hub sees it. The server's `Connection` conforms; tests use a recording fake.
public protocol HubClient: AnyObject {
    /// Output queued for this client and not yet written: the backpressure measure.
    var queuedBytes: Int { get }
    /// The connection is being closed (or was cut off): nothing more is sent to it.
    var isDisconnecting: Bool { get }
    /// Queues a pre-framed message (the same chunk goes to every recipient of a broadcast).
    func deliver(_ frame: Chunk)
    /// Closes the connection with an application close code.
    func disconnect(_ code: CloseCode, _ reason: String)
    /// Holds an ephemeral update for a client that is behind: only the latest per `key` is kept, and
    /// it is sent when the client's output drains.
    func coalesce(_ frame: Chunk, key: String)
    /// Forgets what is held under `key` (a later message superseded it).
    func uncoalesce(key: String)
    /// The client's address (for the activity log).
    var address: String { get }
    /// Hub state attached to the connection.
    var membership: Membership? { get set }
    /// `membership?.member`: what every message reads first. (A conformer reads the one field; through
    /// the protocol, `membership` copies the whole struct, its unowned session reference included, ~200
    /// instructions per message.)
    var joinedMember: Member? { get }
    /// The fan-out's ephemeral delivery to one client: nothing for a client that is disconnecting; false,
    /// queueing nothing, for one with more than `softLimit` bytes queued or held back (the caller holds
    /// the frame back); else the frame is queued (`deliver`). One call through the protocol per recipient
    /// where `isDisconnecting`, `queuedBytes` and `deliver` were three (the conformer's reads inline).
    func offerEphemeral(_ frame: Chunk, softLimit: Int) -> Bool
}

extension HubClient {
    public var joinedMember: Member? { membership?.member }
    public func offerEphemeral(_ frame: Chunk, softLimit: Int) -> Bool {
        guard !isDisconnecting else { return true }
        if queuedBytes > softLimit { return false }
        deliver(frame)
        return true
    }
}

/// What the session asks of the loop that owns it.
public protocol SessionHost: AnyObject {
    /// Schedules a cursor flush soon (at most ~60 per second).
    func cursorsPending(_ session: Session)
    /// The session ended and has no members left: forget it.
    func sessionFinished(_ session: Session)
    var metrics: HubMetrics { get }
    /// Reads up to `limit` stored events of the session with seq > `after`, off the loop; `done` runs
    /// on the session's loop with them (nil: storage could not be read).
    func readEvents(_ session: Session, after: Int, limit: Int, done: @escaping ([StoredEvent]?) -> Void)
    /// A redaction committed: webhook deliveries of these events still queued in memory are dropped.
    func redacted(_ session: Session, seqs: Set<Int>)
    /// Reads one stored event and its author off the loop; `done` runs on the session's loop.
    func readEvent(
        _ session: Session, seq: Int,
        done: @escaping (Result<(event: StoredEvent, member: String?)?, StoreFailure>) -> Void)
    /// Records an administrative action in the activity log.
    func record(_ action: String, session: Session, actor: Member?, target: String?, details: String?, address: String?)
    /// Sends ephemeral traffic of the session to the other nodes (a shared log only).
    func relay(_ session: Session, traffic: Traffic, key: String?, frame: Chunk)
    func readLog(
        _ session: Session, after: Int, limit: Int, done: @escaping ([(event: StoredEvent, own: Bool)]?) -> Void)
    /// Forwards a run control request to the run's publisher; `reply` gets nil once forwarded.
    func controlRun(
        _ run: String, action: RunControlAction, session: Session, by: Member,
        reply: @escaping (MessageError?) -> Void)
    /// A cluster: asks every other node to remove its connections of member `memberID` (the host removed
    /// it); `done` gets nil once the request is out, else the refusal (`storage_unavailable`).
    func removeElsewhere(_ session: Session, memberID: String, done: @escaping (MessageError?) -> Void)
}

extension SessionHost {
    public func relay(_ session: Session, traffic: Traffic, key: String?, frame: Chunk) {}
    /// A shared log's gap read: events past `after`, each marked if this node appended it.
    public func readLog(
        _ session: Session, after: Int, limit: Int, done: @escaping ([(event: StoredEvent, own: Bool)]?) -> Void
    ) {
        readEvents(session, after: after, limit: limit) { done($0?.map { ($0, false) }) }
    }
}

/// Counters the session logic bumps.
public protocol HubMetrics: AnyObject {
    /// An ephemeral update for a client past the soft limit: held back (the latest per key) or dropped.
    func behind(_ traffic: Traffic, coalesced: Bool)
    func slowConsumer()
    /// A durable event committed, `latency` seconds after it was appended.
    func durableCommitted(latency: Double)
    func storeFailure()
    func resumed(_ outcome: ResumeOutcome)
    /// A join refused for its credential (`code`: the error sent back, `message` its text).
    func refusedJoin(_ code: String, session: String, message: String, address: String)
}

/// What an ephemeral broadcast carries (the label of the drop and coalesce counters).
public enum Traffic: String, CaseIterable, Sendable {
    case cursor, typing, event, presence, run
}

/// How a resume went: from the resume window, from the store, or `reset` (retention deleted it).
public enum ResumeOutcome: String, CaseIterable, Sendable {
    case exact
    /// Older than the resume window, read from the store.
    case fromStore = "from_store"
    case reset
}
