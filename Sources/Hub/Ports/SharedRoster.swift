/// A session's members as the whole cluster has them (Redis): one member per identity whatever node
/// its connections are on, `max_participants` counted session-wide and colours distinct session-wide.
/// A session gets one only with a shared log (`Session.roster`); with SQLite it has none and joins as
/// before. Every call answers on `executor`'s loop (the session's).
public protocol SharedRoster: AnyObject {
    /// A member of `identity` joins on this node. `json` is its member JSON around its colour (which
    /// the roster picks). Atomically: an identity any node has is that member (no event); else a full
    /// session refuses; else the member is admitted with a free colour and its join event committed
    /// (under `memberID`, as `persist` would).
    func join(
        session: String, identity: String, memberID: String, json: (before: [UInt8], after: [UInt8]),
        maxParticipants: Int, executor: Executor, done: @escaping (Result<RosterJoin, StoreFailure>) -> Void)
    /// This node's member of `identity` leaves: its leave event is committed only if no other node
    /// holds the identity.
    func leave(
        session: String, identity: String, memberID: String, name: String, reason: String, executor: Executor,
        done: @escaping (Result<RosterLeave, StoreFailure>) -> Void)
    /// What this node holds of the session, said again (after its link to Redis was down, after it
    /// was declared lost, or after its control subscription was made again): members the cluster lost
    /// are joined again while the session has room (`maxParticipants`; `holdings` in the order the node
    /// admitted them, the last ones refused), members a host removed are refused, and what Redis has of
    /// this node beyond the rest leaves.
    func reassert(
        session: String, holdings: [RosterHolding], maxParticipants: Int, executor: Executor,
        done: @escaping (Result<RosterReassert, StoreFailure>) -> Void)
    /// A host removes member `memberID`: kept in the shared store (before the other nodes are told) so
    /// that a node that did not hear it refuses the member when it says again who it holds.
    func recordRemoval(session: String, memberID: String, executor: Executor, done: @escaping (StoreFailure?) -> Void)
}

/// How a `reassert` went: presence events committed, and the members refused.
public struct RosterReassert {
    public let committed: Int
    public let refused: [RosterRefusal]
    public init(committed: Int, refused: [RosterRefusal]) { self.committed = committed; self.refused = refused }
}

/// A member a `reassert` refused: the session is full (it lost its place meanwhile) or a host removed it.
public struct RosterRefusal: Equatable {
    public let identity: String
    public let removed: Bool
    public init(identity: String, removed: Bool) { self.identity = identity; self.removed = removed }
}

/// How a join through the roster went.
public enum RosterJoin {
    /// A new member, with this colour; its join event is committed.
    case admitted(color: String, Committed)
    /// The identity is a member already (connected to another node): its member JSON.
    case existing(json: [UInt8])
    /// The session has `max_participants` members.
    case full
}

/// How a leave through the roster went.
public enum RosterLeave {
    /// The member left the session; its leave event is committed.
    case left(Committed)
    /// Another node still holds the identity: the member stays (its JSON), no event.
    case stillPresent(json: [UInt8])
    /// The identity was no member any more (a survivor declared this node lost): no event.
    case gone
}

/// One member a node holds: its identity, id, connections there and member JSON.
public struct RosterHolding {
    public let identity: String
    public let memberID: String
    public let connections: Int
    public let json: [UInt8]
    public init(identity: String, memberID: String, connections: Int, json: [UInt8]) {
        self.identity = identity; self.memberID = memberID; self.connections = connections; self.json = json
    }
}
