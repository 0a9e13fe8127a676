import Bytes

/// A storage backend that several hub nodes share (Redis): besides the ports every backend has, it
/// tells a node what the other nodes commit to, and relay in, the sessions it follows. Hub and Server
/// see only this protocol; with SQLite there is none and nothing here runs.
public protocol SharedLog: AnyObject {
    /// This node's id (random per process).
    var node: String { get }
    /// Delivers what other nodes commit to and relay in `session`, on `executor` (the session's
    /// loop), until `unfollow`. Events this node committed itself are not delivered.
    func follow(session: String, executor: Executor, _ sink: @escaping (SharedItem) -> Void)
    func unfollow(session: String, executor: Executor)
    /// Sends ephemeral traffic (one WebSocket frame, as every client gets it) to the other nodes.
    func relay(session: String, executor: Executor, traffic: Traffic, key: String, frame: [UInt8])
    /// A session whose row this node has not seen (created on another node): blocking, off the loops.
    func lookup(session: String) throws -> SessionInfo?
    /// Events with seq > `after` (blocking, off the loops), each marked if this node appended it.
    func events(session: String, after: Int, limit: Int) throws -> [(event: StoredEvent, own: Bool)]
    /// When anything was last committed to `session`, by any node (Unix ms; 0: never). Blocking.
    func lastActivity(session: String) throws -> Int64
    /// Members (identities) and their connections in each of `sessions`, on every node (blocking, off
    /// the loops; one round trip).
    func memberCounts(sessions: [String]) throws -> [String: (members: Int, connections: Int)]
    /// Who is in `session` on other nodes (blocking, off the loops): member id and member JSON.
    func remoteMembers(session: String) throws -> [(id: String, json: [UInt8])]
    /// Session rows saved on any node (created, changed, ended) reach `sink` on `executor`'s loop.
    func followDirectory(executor: Executor, _ sink: @escaping (SessionInfo) -> Void)
    /// The cluster's authorization mode (`open` or `closed`, nil: none recorded yet), after this node's
    /// `claim`: `closed` closes the cluster (every open node closes within seconds); `open` is recorded
    /// only when nothing is. Blocking, off the loops.
    func authMode(claim: String?) throws -> String?
}

/// What a followed session hears from the other nodes.
public enum SharedItem {
    /// A durable event another node committed (in the order it was published; seqs may have gaps).
    case committed(StoredEvent)
    /// Ephemeral traffic another node relayed: its frame and coalescing key (empty: none).
    case ephemeral(Traffic, key: RelayedKey, frame: Chunk)
    /// The subscription took effect (first, or again after the link was down): whatever was published
    /// before it was missed, and is read from the log.
    case subscribed
    /// The shared log lost the session's events (its epoch changed): seq goes on from `lastSeq`.
    case lost(lastSeq: Int)
    /// This node was declared lost and beats again: the session says again who it holds (`SharedRoster`).
    case reannounce
}
