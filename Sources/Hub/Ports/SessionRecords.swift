/// The session directory's durable side: one row per session (live and ended) with its settings.
public protocol SessionRecords: AnyObject {
    /// Creates or updates a session's row; durable before any later append commits. `done` (on a
    /// storage thread) learns whether it committed; rows nobody waits for are retried when a commit fails.
    /// `created`: the session is new (reported to webhooks as `session.started`).
    func save(_ info: SessionInfo, created: Bool, done: ((Bool) -> Void)?)
    /// Every session row with its stored event count (blocking: off the loops).
    func sessions() throws -> [(SessionInfo, events: Int)]
}

extension SessionRecords {
    public func save(_ info: SessionInfo) { save(info, created: false, done: nil) }
    public func save(_ info: SessionInfo, done: ((Bool) -> Void)?) { save(info, created: false, done: done) }
}
