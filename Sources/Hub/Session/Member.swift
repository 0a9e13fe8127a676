import WebSocket

/// Which session and member a connection belongs to: a value kept in the connection (a change is
/// written back through `HubClient.membership`), not an object of its own per joined connection.
public struct Membership {
    public unowned let session: Session
    public let member: Member
    /// The resume secret the hub made up for this connection's join, until `joined` has carried it
    /// (boxed: a word, not a string's two, in every joined connection).
    var issuedSecret: String? {
        get { issued?.secret }
        set { issued = newValue.map(IssuedSecret.init) }
    }
    private var issued: IssuedSecret?
    /// When this connection's token expires (Unix seconds), if it joined with one.
    public var tokenExpiry: Int64? {
        get { expiry == .min ? nil : expiry }
        set { expiry = newValue ?? .min }
    }
    /// `tokenExpiry`, `Int64.min` for none (8 bytes, not an optional's 9: the flags below share its word).
    private var expiry = Int64.min
    var warnedExpiry = false
    /// Joined with the session's host key (its role is host whatever a token says).
    var viaHostKey = false
    public init(session: Session, member: Member) { self.session = session; self.member = member }
}

/// A resume secret on its way to the `joined` message (`Membership.issuedSecret`).
final class IssuedSecret {
    let secret: String
    init(_ secret: String) { self.secret = secret }
}

/// One participant of a session: possibly several connections (tabs) of the same person.
/// (Stored properties are ordered so the one-byte ones share words: every joined member has one.)
public final class Member {
    /// Set once more only in a cluster, to the member's id and colour there (`SharedRoster.join`).
    public internal(set) var id: String
    /// The stable identity, held compactly (`MemberKey`: a guest's key is made into text when asked).
    public let memberKey: MemberKey
    public var key: String { memberKey.text }
    public let name: String
    public internal(set) var connections = MemberConnections()
    /// The cursor, the location, typing and the reconnect grace (`MemberExtras`), made on first use:
    /// an idle member has none of them.
    var rare: MemberExtras?
    /// Follows the member's current token: a refresh or a new tab with another role changes it.
    public internal(set) var role: MemberRole
    /// False until the member's join is committed and announced to the others.
    public internal(set) var announced = false
    /// Presence state: what its client last said (where it is: `location`, in `MemberExtras`).
    var status = PresenceStatus.active
    var leaving = false
    /// The colour's place in `Session.palette` (`MemberExtras.otherColor` when not in it: `color`).
    var colorIndex: UInt8 = 0

    convenience init(id: String, key: String, name: String, color: String, role: MemberRole) {
        self.init(id: id, memberKey: MemberKey(key), name: name, color: color, role: role)
    }

    init(id: String, memberKey: MemberKey, name: String, color: String, role: MemberRole) {
        self.id = id; self.memberKey = memberKey; self.name = name; self.role = role; self.color = color
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
