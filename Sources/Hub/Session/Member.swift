import WebSocket

/// Which session and member a connection belongs to: a value kept in the connection (a change is
/// written back through `HubClient.membership`), not an object of its own per joined connection.
public struct Membership {
    public unowned let session: Session
    public let member: Member
    /// The resume secret the hub made up for this connection's join, until `joined` has carried it.
    var issuedSecret: String?
    /// When this connection's token expires (Unix seconds), if it joined with one.
    public var tokenExpiry: Int64?
    var warnedExpiry = false
    /// Joined with the session's host key (its role is host whatever a token says).
    var viaHostKey = false
    public init(session: Session, member: Member) { self.session = session; self.member = member }
}

/// One participant of a session: possibly several connections (tabs) of the same person.
/// (Stored properties are ordered so the one-byte ones share words: every joined member has one.)
public final class Member {
    /// Set once more only in a cluster, to the member's id and colour there (`SharedRoster.join`).
    public internal(set) var id: String
    public let key: String
    public let name: String
    public internal(set) var color: String
    public internal(set) var connections = MemberConnections()
    /// `{id, name, color}`: the `from` of everything the member sends (built once).
    lazy var fromJSON: [UInt8] = {
        var w = JSONWriter(capacity: 64)
        w.beginObject(); w.field("id", id); w.field("name", name); w.field("color", color); w.endObject()
        return w.bytes
    }()
    var cursor: [UInt8]?
    /// Presence state: where the member is (JSON), and what its client last said (`status`, below).
    var location: [UInt8]?
    /// When this member's cursor was last sampled into the transcript (`--record-cursors`), and whether
    /// it moved since without being sampled (the interval had not passed): `tick` stores that position.
    var cursorRecordedAt = -Double.infinity
    var typingUntil: Double?
    /// Follows the member's current token: a refresh or a new tab with another role changes it.
    public internal(set) var role: MemberRole
    /// False until the member's join is committed and announced to the others.
    public internal(set) var announced = false
    var cursorDirty = false
    var cursorUnsampled = false
    var status = PresenceStatus.active
    var leaving = false
    var graceDeadline: Double?

    init(id: String, key: String, name: String, color: String, role: MemberRole) {
        self.id = id; self.key = key; self.name = name; self.color = color; self.role = role
    }

    var json: [UInt8] {
        var w = JSONWriter(capacity: 96)
        w.beginObject()
        w.field("id", id); w.field("name", name); w.field("color", color); w.field("role", role.rawValue)
        w.field("connections", connections.count)
        w.field("status", connections.isEmpty && graceDeadline != nil ? "stale" : status.rawValue)
        if let location { w.raw("location", location) }
        w.endObject()
        return w.bytes
    }
}
