/// Who may do what: the one table (Protocol/PROTOCOL.md, "Authorization") every transport consults.
/// Pure: the HTTP API and the WebSocket endpoints turn what a request presents into a `Principal`,
/// name the `Surface` it touches, and ask `Authorization.allows`.

/// What an API key may do. A key holds a set of these; the operator's admin key holds every one.
public enum Scope: String, CaseIterable, Sendable {
    /// `POST /api/sessions`.
    case sessionsCreate = "sessions:create"
    /// `GET /api/sessions` (the codes are guest credentials) and `GET /api/sessions/{code}`.
    case sessionsRead = "sessions:read"
    /// `PATCH` and `end` of any session (its host key does it for one).
    case sessionsWrite = "sessions:write"
    /// Transcripts, exports and replays of any session.
    case transcriptsRead = "transcripts:read"
    /// Publishing run events (limited to the key's runs, and its runs' owners, when it names some).
    case runsPublish = "runs:publish"
    /// `GET /api/runs*` and `/watch` of any run or dashboard.
    case runsRead = "runs:read"
    /// `GET /api/activity` (it holds client addresses).
    case activityRead = "activity:read"
    /// Managing API keys.
    case keysAdmin = "keys:admin"
    /// Managing webhooks.
    case webhooksAdmin = "webhooks:admin"
    /// `GET /metrics` (a Prometheus scraper's key).
    case metricsRead = "metrics:read"

    public struct Unknown: Error { public let name: String }

    /// Parses a comma-separated list (`sessions:read,runs:read`); a failure names the first unknown scope.
    public static func parseList(_ s: String) -> Result<Set<Scope>, Unknown> {
        var out = Set<Scope>()
        for part in s.split(separator: ",") {
            let name = part.trimmingCharacters(in: " ")
            guard let scope = Scope(rawValue: name) else { return .failure(Unknown(name: name)) }
            out.insert(scope)
        }
        return .success(out)
    }
}

/// Who is asking, from what the request presented (nothing, an API key, a token, a host key).
public enum Principal: Equatable, Sendable {
    /// Nothing valid was presented. `openMode`: the hub has no credentials configured at all.
    case anonymous(openMode: Bool)
    /// The operator's admin key: every scope.
    case admin
    /// An API key with its scopes; `runs` limits `runs:publish` to those run ids, `owners` the runs it
    /// starts to those owners (a trailing `*` is a prefix in both).
    case apiKey(id: String, scopes: Set<Scope>, runs: [String]?, owners: [String]? = nil)
    /// A session's host key.
    case host(session: String)
    /// A verified member token (`session` is a code or `*`).
    case member(session: String, role: MemberRole)
    /// A verified watcher token: the channels it may watch (a trailing `*` is a prefix).
    case watcher(channels: [String])
    /// A share link's token (`scope: replay`): that session's playback and transcript, and nothing live
    /// (not who is there now, nor the session's settings).
    case replay(session: String)
}

extension Principal {
    /// Whether it may publish to any run at all (a `/publish` socket is refused otherwise; each event is
    /// then checked against its run).
    public var mayPublishSomeRun: Bool {
        switch self {
        case .admin, .anonymous(openMode: true): return true
        case .apiKey(_, let scopes, _, _): return scopes.contains(.runsPublish)
        default: return false
        }
    }
}

/// What a request touches.
public enum Surface: Equatable, Sendable {
    case createSession
    case listSessions
    case describeSession(String)
    case changeSession(String)
    case endSession(String)
    case readTranscript(String)
    /// Making a share link for a session's playback: a host, or whoever may read any transcript (not a
    /// member token of another role, nor a share link's own token, which would renew itself).
    case shareSession(String)
    case readActivity
    case publishRun(String)
    /// Starting a run for an owner (a `started` event's `owner`): whose dashboards it appears on.
    case startRun(owner: String)
    case readRuns
    case readRun(String)
    /// `/watch` of `run:ID` or `dashboard:OWNER`.
    case watch(String)
    case manageKeys
    case manageWebhooks
    case readMetrics
}

public enum Authorization {
    /// Whether `p` may read the transcript of every session (a webhook subscribed to chat content does,
    /// from then on): the admin key, a `transcripts:read` key, or anyone in open mode.
    public static func mayReadEveryTranscript(_ p: Principal) -> Bool {
        switch p {
        case .admin: return true
        case .anonymous(let open): return open
        case .apiKey(_, let scopes, _, _): return scopes.contains(.transcriptsRead)
        default: return false
        }
    }

    /// Whether a key made by `maker` may hold `scopes`, `runs` and `quotas` (N7): only the admin key
    /// grants anything; a `keys:admin` key grants a subset of its own scopes (never `keys:admin`), for
    /// runs within its own, at quotas no higher than its own (`makerQuotas`). nil: allowed; otherwise
    /// the reason, naming the field.
    public static func mayGrant(
        _ maker: Principal, scopes: Set<Scope>, runs: [String]?, owners: [String]? = nil, quotas: [Int],
        makerQuotas: [Int]?
    ) -> (field: String, message: String)? {
        switch maker {
        case .admin: return nil
        case .apiKey(_, let own, let ownRuns, let ownOwners):
            if scopes.contains(.keysAdmin) { return ("scopes", "only the admin key grants keys:admin") }
            let extra = scopes.subtracting(own)
            if !extra.isEmpty {
                let names = Scope.allCases.filter(extra.contains).map(\.rawValue).joined(separator: ", ")
                return ("scopes", "a key can grant only scopes it holds itself (not \(names))")
            }
            if let ownRuns, scopes.contains(.runsPublish) {
                guard let runs, runs.allSatisfy({ r in ownRuns.contains { covers($0, r) } }) else {
                    return (
                        "runs", "the new key's runs must lie within this key's runs (\(ownRuns.joined(separator: ",")))"
                    )
                }
            }
            if let ownOwners, scopes.contains(.runsPublish) {
                guard let owners, owners.allSatisfy({ o in ownOwners.contains { covers($0, o) } }) else {
                    return (
                        "owners",
                        "the new key's owners must lie within this key's owners (\(ownOwners.joined(separator: ",")))"
                    )
                }
            }
            if let makerQuotas, zip(quotas, makerQuotas).contains(where: { $0 > $1 }) {
                return (
                    "per_minute",
                    "a key can grant at most its own quotas ("
                        + "\(makerQuotas.map(String.init).joined(separator: "/")) per minute/hour/month)"
                )
            }
            return nil
        default:
            return ("scopes", "only the admin key or a keys:admin key makes keys")
        }
    }

    /// Whether run pattern `outer` (an id, or a prefix with a trailing `*`) covers every id `inner` does.
    static func covers(_ outer: String, _ inner: String) -> Bool {
        guard outer.hasSuffix("*") else { return outer == inner }
        let prefix = outer.dropLast()
        return inner.hasPrefix(prefix)
    }

    /// The table. Joining a session is not here: the session's own admission (token, host key, guest
    /// policy) decides it, and `replay` goes through the same admission.
    public static func allows(_ p: Principal, _ s: Surface) -> Bool {
        switch p {
        case .anonymous(let open):
            // Open mode opens the hub, not other people's sessions: changing or ending one still
            // takes its host key (or a host token).
            // Nor does it hand out keys: a key made in open mode would close the hub with its maker
            // holding the only credential (keys are made with the CLI, or with keys:admin).
            switch s {
            case .changeSession, .endSession, .manageKeys: return false
            default: return open
            }
        case .admin:
            return true
        case .apiKey(_, let scopes, let runs, let owners):
            switch s {
            case .createSession: return scopes.contains(.sessionsCreate)
            case .listSessions, .describeSession: return scopes.contains(.sessionsRead)
            case .changeSession, .endSession: return scopes.contains(.sessionsWrite)
            case .readTranscript, .shareSession: return scopes.contains(.transcriptsRead)
            case .readActivity: return scopes.contains(.activityRead)
            case .publishRun(let id): return scopes.contains(.runsPublish) && (runs.map { matches($0, id) } ?? true)
            case .startRun(let owner):
                return scopes.contains(.runsPublish) && (owners.map { matches($0, owner) } ?? true)
            case .readRuns, .readRun, .watch: return scopes.contains(.runsRead)
            case .manageKeys: return scopes.contains(.keysAdmin)
            case .manageWebhooks: return scopes.contains(.webhooksAdmin)
            case .readMetrics: return scopes.contains(.metricsRead)
            }
        case .host(let session):
            switch s {
            case .describeSession(let c), .changeSession(let c), .endSession(let c), .readTranscript(let c),
                .shareSession(let c):
                return c == session
            default: return false
            }
        case .member(let session, let role):
            switch s {
            case .describeSession(let c), .readTranscript(let c): return session == "*" || session == c
            case .changeSession(let c), .endSession(let c), .shareSession(let c):
                return role == .host && (session == "*" || session == c)
            default: return false
            }
        case .watcher(let channels):
            if case .watch(let channel) = s { return matches(channels, channel) }
            if case .readRun(let id) = s { return matches(channels, "run:" + id) }
            return false
        case .replay(let session):
            if case .readTranscript(let c) = s { return c == session }
            return false
        }
    }

    /// Whether a pattern list covers `name`: equal, or a pattern ending in `*` that is a prefix of it.
    public static func matches(_ patterns: [String], _ name: String) -> Bool {
        patterns.contains { p in p.hasSuffix("*") ? name.hasPrefix(p.dropLast()) : p == name }
    }
}

private extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}
