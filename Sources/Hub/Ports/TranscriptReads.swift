/// A stored event read back (history, replay, export).
public struct StoredEvent: Sendable, Equatable {
    public let seq: Int
    public let ts: Int64
    public let type: String
    public let body: [UInt8]
    public init(seq: Int, ts: Int64, type: String, body: [UInt8]) {
        self.seq = seq; self.ts = ts; self.type = type; self.body = body
    }

    /// The message as clients receive it: `{"type":..,"seq":..,"ts":..,<body>}`.
    public var message: ServerMessage { .durable(type: type, seq: seq, ts: ts, body: body) }
    public var json: [UInt8] { message.json }
}

/// Cursor positions sampled at `ts` (milliseconds since the Unix epoch): a JSON array of updates.
public struct CursorSample: Sendable, Equatable {
    public let ts: Int64
    public let updates: [UInt8]
    public init(ts: Int64, updates: [UInt8]) { self.ts = ts; self.updates = updates }
}

/// Reading transcripts back: history, export, playback, and waking a session up. These calls block
/// on storage, so they are made off the loop threads (a worker, or a session's wake-up read), never
/// from a loop; one long read never holds up another.
public protocol TranscriptReads: AnyObject {
    /// The highest committed seq of a stream (0 when it has none; retention never lowers it).
    func lastSeq(session: String) throws -> Int
    /// The last `limit` events of a stream, oldest first (to refill a session's resume window).
    func tail(session: String, limit: Int) throws -> [StoredEvent]
    /// Events with seq > `after`, at most `limit`, in seq order.
    func events(session: String, after: Int, limit: Int) throws -> [StoredEvent]
    /// The same, stopping before the event that would take the bodies past `maxBytes` (the first is
    /// always returned): a page of bounded size whatever the events weigh (exports and playback).
    func events(session: String, after: Int, limit: Int, maxBytes: Int) throws -> [StoredEvent]
    /// One event and who sent it (the member's stable key), or nil when there is none at `seq`.
    func event(session: String, seq: Int) throws -> (event: StoredEvent, member: String?)?
    /// Every event of every stream whose key starts with `prefix`, grouped by stream, in seq order
    /// (rebuilding run state at start-up).
    func streams(prefix: String) throws -> [(String, [StoredEvent])]
}

extension TranscriptReads {
    /// Reads `limit` events and keeps what fits (a backend that cannot stop early).
    public func events(session: String, after: Int, limit: Int, maxBytes: Int) throws -> [StoredEvent] {
        var bytes = 0
        var out: [StoredEvent] = []
        for e in try events(session: session, after: after, limit: limit) {
            if !out.isEmpty && bytes + e.body.count > maxBytes { break }
            bytes += e.body.count
            out.append(e)
        }
        return out
    }
}
