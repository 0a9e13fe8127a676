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
    /// What this node holds of the session, said again (after its link to Redis was down, or after it
    /// was declared lost): members the cluster lost are joined again, and what Redis has of this node
    /// beyond `holdings` leaves. `done` gets how many presence events were committed.
    func reassert(
        session: String, holdings: [RosterHolding], executor: Executor,
        done: @escaping (Result<Int, StoreFailure>) -> Void)
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
