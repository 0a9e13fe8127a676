/// A durable event on its way to the store: its session, kind, author and the JSON members that
/// follow `"type"`, `"seq"` and `"ts"` in the message everyone receives.
public struct DurableEvent: Sendable {
    public let session: String
    public let type: String
    public let member: String?
    /// The client's message id: a resend with the same (session, member, id) is not stored twice.
    public let clientId: String?
    public let body: [UInt8]
    /// Committed with this event, in its transaction: the body of the earlier event `seq` of the same
    /// stream becomes `body` (a redaction or a deletion), its edits lose their text the same way
    /// (`EventBody.editTombstone`), and the hub's webhook copies of them (outbox, delivery log) are deleted.
    public var replaces: Replacement?
    public init(session: String, type: String, member: String?, clientId: String?, body: [UInt8]) {
        self.session = session; self.type = type; self.member = member; self.clientId = clientId; self.body = body
    }
}

/// A stored event's new body (`DurableEvent.replaces`), with what the frame of it needs.
public struct Replacement: Sendable, Equatable {
    /// Why the content goes, which is the flag its tombstones carry (`"redacted":true`, `"deleted":true`).
    /// A redaction also purges the store's files at once (SQLite: the WAL is checkpointed and emptied).
    public enum Reason: String, Sendable, Equatable { case redacted, deleted }
    public let seq: Int
    public let type: String
    public let ts: Int64
    public let body: [UInt8]
    public let reason: Reason
    public init(seq: Int, type: String, ts: Int64, body: [UInt8], reason: Reason = .redacted) {
        self.seq = seq; self.type = type; self.ts = ts; self.body = body; self.reason = reason
    }
}

/// What the store says once an event is committed.
public struct Committed: Sendable, Equatable {
    public let seq: Int
    /// Server time, milliseconds since the Unix epoch.
    public let ts: Int64
    /// True when the client id was seen before: `seq` and `ts` are the original's.
    public let duplicate: Bool
    public init(seq: Int, ts: Int64, duplicate: Bool) { self.seq = seq; self.ts = ts; self.duplicate = duplicate }
}

public struct StoreFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Runs work on the thread that owns a session (its loop).
public protocol Executor: AnyObject {
    func execute(_ work: @escaping () -> Void)
}

/// The event log: where durable events go, the session's only contract with storage. `append`
/// assigns the stream's next `seq` inside the transaction that commits the event (a resend of a known
/// client id gets the original's seq back, marked `duplicate`) and calls back on `executor` only after
/// the commit, in the order events were appended. A failed commit takes its seq back, so seq stays
/// contiguous. Streams are sessions (by code) and runs (`run:<id>`).
public protocol EventLog: AnyObject {
    func append(_ event: DurableEvent, executor: Executor, done: @escaping (Result<Committed, StoreFailure>) -> Void)
    /// Events of one stream stored all or nothing, and only if the stream's last seq is still
    /// `expectedLastSeq` (nil: whatever it is): a batch checked against state that an earlier, failed
    /// batch would have made is refused.
    func appendBatch(
        _ events: [DurableEvent], expectedLastSeq: Int?, executor: Executor,
        done: @escaping (Result<[Committed], StoreFailure>) -> Void)
}
