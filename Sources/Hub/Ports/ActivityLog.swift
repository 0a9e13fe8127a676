import Foundation

/// One administrative action: who (`actor`), what (`action`), on what (`target`), in which session,
/// from which client address, when.
public struct ActivityEntry: Sendable {
    public var id: Int?
    public var ts: Int64
    public var actor: String
    public var action: String
    public var target: String?
    public var session: String?
    public var address: String?
    public var details: String?
    public init(
        actor: String, action: String, target: String? = nil, session: String? = nil, address: String? = nil,
        details: String? = nil, ts: Int64 = Int64(Date().timeIntervalSince1970 * 1000)
    ) {
        self.actor = actor; self.action = action; self.target = target; self.session = session
        self.address = address; self.details = details; self.ts = ts
    }
}

/// Which activity entries to read: newest first, filtered; `before` pages by id.
public struct ActivityQuery: Sendable {
    public var session: String?
    public var actor: String?
    public var since: Int64?
    public var before: Int?
    public var limit: Int
    public init(session: String? = nil, actor: String? = nil, since: Int64? = nil, before: Int? = nil, limit: Int = 100)
    {
        self.session = session; self.actor = actor; self.since = since; self.before = before; self.limit = limit
    }
}

/// The activity log: who did what. Entries are written with the next group commit (never waited for).
public protocol ActivityLog: AnyObject {
    func record(_ entry: ActivityEntry)
    /// Blocking: off the loops.
    func activity(_ query: ActivityQuery) throws -> [ActivityEntry]
}
