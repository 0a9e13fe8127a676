/// A durable event on its way to the store: its session, kind, author and the JSON members that
/// follow `"type"`, `"seq"` and `"ts"` in the message everyone receives.
public struct DurableEvent: Sendable {
    public let session: String
    public let type: String
    public let member: String?
    /// The client's message id: a resend with the same (session, member, id) is not stored twice.
    public let clientId: String?
    public let body: [UInt8]
    public init(session: String, type: String, member: String?, clientId: String?, body: [UInt8]) {
        self.session = session; self.type = type; self.member = member; self.clientId = clientId; self.body = body
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

/// A stored event read back (history, replay, export).
public struct StoredEvent: Sendable, Equatable {
    public let seq: Int
    public let ts: Int64
    public let type: String
    public let body: [UInt8]
    public init(seq: Int, ts: Int64, type: String, body: [UInt8]) { self.seq = seq; self.ts = ts; self.type = type; self.body = body }

    /// The message as clients receive it: `{"type":..,"seq":..,"ts":..,<body>}`.
    public var json: [UInt8] { Wire.event(type: type, seq: seq, ts: ts, body: body) }
}

/// Runs work on the thread that owns a session (its loop).
public protocol Executor: AnyObject {
    func execute(_ work: @escaping () -> Void)
}

/// Where durable events go. The session's only contract with storage: `append` assigns the session's
/// next `seq` inside the transaction that commits the event and calls back on `executor` only after
/// the commit, in the order events were appended. A failed commit takes its seq back, so seq stays
/// contiguous.
public protocol EventStore: AnyObject {
    func append(_ event: DurableEvent, executor: Executor, done: @escaping (Result<Committed, StoreFailure>) -> Void)
    /// The last `limit` events of a session (to refill the resume window when a session wakes up).
    func tail(session: String, limit: Int) -> [StoredEvent]
    /// The highest committed seq of a session (0 when it has none).
    func lastSeq(session: String) -> Int
    /// Stores sampled cursor positions (a JSON array of cursor updates) for playback. Not part of the
    /// seq order and never acknowledged: losing a sample loses nothing anyone was promised.
    func recordCursors(session: String, ts: Int64, updates: [UInt8])
}

extension EventStore {
    public func recordCursors(session: String, ts: Int64, updates: [UInt8]) {}
}

/// Cursor positions sampled at `ts` (milliseconds since the Unix epoch): a JSON array of updates.
public struct CursorSample: Sendable, Equatable {
    public let ts: Int64
    public let updates: [UInt8]
    public init(ts: Int64, updates: [UInt8]) { self.ts = ts; self.updates = updates }
}

/// Builders for the messages the hub sends.
public enum Wire {
    public static func event(type: String, seq: Int, ts: Int64, body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + type.utf8.count + 48)
        out.append(contentsOf: "{\"type\":\"".utf8); out.append(contentsOf: type.utf8)
        out.append(contentsOf: "\",\"seq\":".utf8); out.appendDecimal(seq)
        out.append(contentsOf: ",\"ts\":".utf8); out.appendDecimal(Int(ts))
        if !body.isEmpty { out.append(UInt8(ascii: ",")); out += body }
        out.append(UInt8(ascii: "}"))
        return out
    }

    public static func error(_ code: String, _ message: String, ref: String? = nil, field: String? = nil) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.field("type", "error")
        w.field("code", code)
        w.field("message", message)
        if let ref { w.field("ref", ref) }
        if let field { w.field("field", field) }
        w.endObject()
        return w.bytes
    }
}
