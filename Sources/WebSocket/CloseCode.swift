/// A WebSocket close status code (RFC 6455 §7.4, IANA registry) plus CollabHub's application codes.
public struct CloseCode: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static let normal = CloseCode(1000)
    public static let goingAway = CloseCode(1001)
    public static let protocolError = CloseCode(1002)
    public static let unsupportedData = CloseCode(1003)
    /// 1005 "no status received": reported locally, never sent on the wire.
    public static let noStatus = CloseCode(1005)
    /// 1006 "abnormal closure": the connection dropped without a close frame (local use only).
    public static let abnormal = CloseCode(1006)
    public static let invalidPayload = CloseCode(1007)
    public static let policyViolation = CloseCode(1008)
    public static let messageTooBig = CloseCode(1009)
    public static let internalError = CloseCode(1011)
    public static let tryAgainLater = CloseCode(1013)

    // Application codes (4000-4999), documented in Protocol/PROTOCOL.md.
    /// The client fell too far behind (output past the hard limit); it may resume from its last seq.
    public static let slowConsumer = CloseCode(4000)
    public static let unauthorized = CloseCode(4001)
    public static let badRequest = CloseCode(4002)
    public static let forbidden = CloseCode(4003)
    public static let sessionEnded = CloseCode(4004)
    public static let removed = CloseCode(4005)
    /// A join refused because the session has no free seat (`session_full`): join again later.
    public static let sessionFull = CloseCode(4006)
    public static let rateLimited = CloseCode(4008)
    public static let idleTimeout = CloseCode(4009)
    /// A join (or a code) naming no session this hub knows (`unknown_session`).
    public static let unknownSession = CloseCode(4404)

    /// Whether a peer may send this code in a close frame. 1004-1006 and 1015 are reserved for
    /// local use, 1016-2999 are unassigned, below 1000 and above 4999 are invalid.
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }

    public var description: String { String(rawValue) }
}
