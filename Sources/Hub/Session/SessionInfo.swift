/// Static facts about a session, shared with the HTTP API.
public struct SessionInfo: Sendable, Equatable {
    public var code: String
    public var title: String
    public var maxParticipants: Int
    public var guestPolicy: GuestPolicy
    public var hostKey: String
    public var createdAt: Int64
    public var endedAt: Int64?
    public var endReason: String?
    /// Which app-event names each role may send (`role -> names`; a name ending in `*` is a prefix).
    /// A role not listed may send any name.
    public var eventPolicy: [String: [String]] = [:]
    /// Share links revoked before they expired (their ids, `share:<id>` tokens): at most `maxRevokedShares`.
    public var revokedShares: [String] = []
    public static let maxRevokedShares = 100
    public init(
        code: String, title: String, maxParticipants: Int, guestPolicy: GuestPolicy, hostKey: String,
        createdAt: Int64
    ) {
        self.code = code; self.title = title; self.maxParticipants = maxParticipants; self.guestPolicy = guestPolicy
        self.hostKey = hostKey; self.createdAt = createdAt
    }
}

/// Tunables of the session logic (defaults from the product spec).
public struct SessionPolicy: Sendable {
    /// A member whose last connection dropped stays present this long, so a reconnect is seamless.
    public var reconnectGrace = 10.0
    /// A typing "start" not refreshed within this is expired and a "stop" broadcast.
    public var typingTimeout = 5.0
    /// Recent durable events kept in memory for resume; older resumes get a reset.
    public var resumeWindow = 1000
    /// ... and at most this many bytes of them (1,000 events of 64 KiB would be 64 MiB per session).
    /// Half the hard output limit: a resume must fit in what a client may have queued.
    public var resumeWindowBytes = 2 << 20
    /// Output past which a client's cursor/typing updates are dropped.
    public var softOutputLimit = 256 * 1024
    /// Output past which a client is disconnected (4000) and must resume.
    public var hardOutputLimit = 4 * 1024 * 1024
    public var limits = MessageLimits()
    /// Access-token verification; without keys, tokens are refused and only guests/host keys join.
    public var tokens = TokenVerifier(keys: [:])
    /// A connection is warned this many seconds before its token expires.
    public var tokenWarning: Int64 = 30
    /// Stores each member's cursor at most this often (seconds) for playback; nil stores none.
    public var cursorSampleInterval: Double?
    public init() {}
}

/// What storage holds of a session when it wakes up: its last seq and its newest events.
public struct SessionHistory: Sendable {
    public var lastSeq: Int
    public var tail: [StoredEvent]
    public init(lastSeq: Int, tail: [StoredEvent]) { self.lastSeq = lastSeq; self.tail = tail }

    /// Reads it (blocking: call off the loop).
    public static func read(_ code: String, from reads: TranscriptReads, limit: Int) throws -> SessionHistory {
        SessionHistory(lastSeq: try reads.lastSeq(session: code), tail: try reads.tail(session: code, limit: limit))
    }
}
