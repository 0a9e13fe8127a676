import Foundation
import EventLoop
import Hub
import WebSocket

/// What a request presented, resolved to principals: the one place where credentials are read, for
/// HTTP requests and WebSocket upgrades alike. `check` asks the table (`Authorization.allows`).
struct Access {
    var principals: [Principal] = []
    /// Some credential was presented (valid or not): a refusal is then 403, not 401.
    var presented = false
    /// Rate-limit headers of the API key used.
    var headers: [(String, String)] = []
    /// An unknown or revoked key (401) or one over its quota (429): answered whatever the surface.
    var failure: Response?
    /// The API key used, if any (its id, for the activity log).
    var keyId: String?
    /// A well-formed API key whose id the hub does not know (yet: see `APIKeys.refreshNow`).
    var unknownKeyId: String?
    /// A verified API key whose request is still to be charged (in a cluster, against Redis's counts:
    /// `APIKeys.chargeShared`).
    var unchargedKey: String?
    /// The token principals among `principals`, with their expiry (a socket drops them then).
    var tokens: [(principal: Principal, exp: Int64)] = []

    /// nil when some principal may touch `surface`; otherwise the answer (401 without credentials, 403 with).
    func check(_ surface: Surface) -> Response? {
        if let failure { return failure }
        if allows(surface) { return nil }
        if !presented {
            return .error(
                .unauthorized, "unauthorized",
                "\(surface.describe) needs a credential (X-API-Key, Authorization: Bearer, or the session's "
                    + "X-Host-Key)",
                headers: [("WWW-Authenticate", "Bearer")])
        }
        return .error(.forbidden, "forbidden", "the credential presented does not allow \(surface.describe)")
    }

    func allows(_ surface: Surface) -> Bool { principals.contains { Authorization.allows($0, surface) } }
}

extension Surface {
    var describe: String {
        switch self {
        case .createSession: return "creating a session (scope sessions:create)"
        case .listSessions: return "listing sessions (scope sessions:read)"
        case .describeSession(let c):
            return "reading session \(c) (scope sessions:read, its host key or a member token)"
        case .changeSession(let c): return "changing session \(c) (its host key, a host token, or scope sessions:write)"
        case .endSession(let c): return "ending session \(c) (its host key, a host token, or scope sessions:write)"
        case .readTranscript(let c):
            return "reading the transcript of \(c) (its host key, a member token, or scope transcripts:read)"
        case .shareSession(let c):
            return "sharing the playback of \(c) (its host key, a host token, or scope transcripts:read)"
        case .readActivity: return "reading the activity log (scope activity:read)"
        case .publishRun(let r): return "publishing to run \(r) (scope runs:publish, for this run)"
        case .startRun(let o): return "starting a run for owner \(o) (scope runs:publish, for this owner)"
        case .readRuns: return "listing runs (scope runs:read)"
        case .readRun(let r): return "reading run \(r) (scope runs:read or a watcher token for run:\(r))"
        case .watch(let ch): return "watching \(ch) (a watcher token whose channels cover it, or scope runs:read)"
        case .manageKeys: return "managing API keys (scope keys:admin)"
        case .manageWebhooks: return "managing webhooks (scope webhooks:admin)"
        case .readMetrics: return "reading /metrics (scope metrics:read)"
        }
    }
}

extension Server {
    /// Anyone who reaches the port may do anything: decided once, at start (`decideAuth`), and never
    /// opened by keys coming and going; a cluster that closes closes this node too.
    public var openMode: Bool { !closedLatch.isSet }

    public static let openModeNotice = "open mode: anyone who reaches this port can read and write everything"

    /// Whether `host` (a `--host` value) listens on loopback only.
    static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        return h == "localhost" || h == "::1" || h == "[::1]" || Authority.isLoopbackIPv4(h)
    }

    /// The authorization mode, decided once (security review N1): open only when chosen (`--auth open`),
    /// or with `auto` on loopback when no credential is configured, none was ever stored (revoked keys
    /// count) and the hub never ran closed (the mark `auth-closed` in the data directory). In a cluster
    /// the mode is the cluster's (Redis): a closed cluster is never joined open, and a cluster node opens
    /// only when the cluster was opened on purpose. Throws the sentence that refuses to start.
    /// Returns a notice for the start-up output, if any.
    static func decideAuth(
        config: Config, store: Storage, shared: SharedLog?, sessionsStored: Bool
    ) throws -> (open: Bool, notice: String?) {
        let keys: [APIKeyRecord]
        // A table that cannot be read is no proof that no key exists: no start, rather than an open one.
        do { keys = try store.allKeys() } catch {
            throw ListenError(description: "cannot read the API key table to decide the authorization mode: \(error)")
        }
        let configured = config.sessionPolicy.tokens.isEnabled || config.adminKey != nil
        // Revoked keys count: revoking the last one never opens the hub.
        let hasCredential = configured || !keys.isEmpty
        let hasActiveCredential = configured || keys.contains { $0.revokedAt == nil }
        let directory = URL(fileURLWithPath: config.dataDirectory)
        let mark = directory.appendingPathComponent("auth-closed").path
        let openMark = directory.appendingPathComponent("auth-open").path
        let ranClosed = FileManager.default.fileExists(atPath: mark)
        // A store with sessions and neither mark comes from a hub of before the marks: how it ran is
        // unknown, so it is not opened by itself (it may have run closed with a flag now forgotten).
        let unknownPast = sessionsStored && !FileManager.default.fileExists(atPath: openMark)
        // Reached through a proxy or under a public name: loopback says nothing about who connects.
        let exposed = config.publicURL != nil || !config.trustedProxies.isEmpty || !config.allowedHosts.isEmpty
        let cluster: String?
        do { cluster = try shared?.authMode(claim: nil) } catch {
            throw ListenError(description: "cannot read the cluster's authorization mode from Redis: \(error)")
        }
        let open: Bool
        switch config.authMode {
        case .required:
            guard hasCredential else {
                throw ListenError(
                    description: "--auth required, but no credential is configured (--jwt-secret, --admin-key or "
                        + "`collabhub keys create`)")
            }
            open = false
        case .open:
            if cluster == "closed" {
                throw ListenError(
                    description: "this cluster runs closed (Redis key \(clusterAuthKey)): a node cannot join it "
                        + "with --auth open; give it the cluster's credentials (--admin-key, --jwt-secret)")
            }
            open = true
        case .auto:
            if hasCredential || ranClosed || cluster == "closed" || unknownPast {
                open = false
            } else if cluster == "open" {
                open = true  // opened on purpose by a node started with --auth open
            } else if shared != nil {
                throw ListenError(
                    description: "no credential is configured, and a cluster node without one would serve every "
                        + "session in Redis to anyone: configure --admin-key, --jwt-secret or API keys, or say "
                        + "--auth open to run the cluster open")
            } else if !Self.isLoopback(config.host) {
                throw ListenError(
                    description: "no credential is configured and --host \(config.host) is not a loopback address: "
                        + "anyone who reaches it could read and write everything. Configure --admin-key, "
                        + "--jwt-secret or API keys (`collabhub keys create`), or say --auth open")
            } else if exposed {
                throw ListenError(
                    description: "no credential is configured, and the hub is reached through a proxy or a public "
                        + "name (--public-url, --trusted-proxies or --allowed-hosts): anyone could read and write "
                        + "everything. Configure --admin-key, --jwt-secret or API keys, or say --auth open")
            } else {
                open = true
            }
        }
        // Open beyond loopback, without a Host allow-list, a page on any site could reach the hub through
        // DNS rebinding (its "own" origin would be whatever name the attacker points at it).
        if open && SiteGate(config: config).hosts == nil {
            throw ListenError(
                description: "open mode on \(config.host) needs --allowed-hosts or --public-url (the names browsers "
                    + "use to reach it): without them any web page could reach it through DNS rebinding")
        }
        if open {
            if !FileManager.default.fileExists(atPath: openMark) {
                _ = FileManager.default.createFile(atPath: openMark, contents: Data("open\n".utf8))
            }
            do { _ = try shared?.authMode(claim: "open") } catch {
                throw ListenError(description: "cannot record the cluster's authorization mode in Redis: \(error)")
            }
            return (true, nil)
        }
        // Remembered: this hub does not open by itself again (a restart after the last key is revoked,
        // a flag forgotten). `--auth open` is the way back.
        if !ranClosed { _ = FileManager.default.createFile(atPath: mark, contents: Data("closed\n".utf8)) }
        do { _ = try shared?.authMode(claim: "closed") } catch {
            throw ListenError(description: "cannot record the cluster's authorization mode in Redis: \(error)")
        }
        if !hasActiveCredential {
            return (
                false,
                "closed, and no credential is configured here: requests are refused until an API key is made "
                    + "(`collabhub keys create`) or --admin-key / --jwt-secret is given"
            )
        }
        return (false, nil)
    }
    static let clusterAuthKey = "chub:auth"

    /// Resolves what a request presents: `X-API-Key` and `Authorization: Bearer` (the admin key, an
    /// API key `chk_...`, or a token), `?key=` / `?token=` on WebSocket upgrades (browsers cannot set
    /// headers there), and a session's host key (`X-Host-Key`, or `hostKey` from a body) for `session`.
    func access(
        _ head: HTTPRequestHead, session: String? = nil, hostKey bodyHostKey: String? = nil, upgrade: Bool = false,
        chargeKeys: Bool = true
    ) -> Access {
        var a = Access()
        var bearers: [String] = []
        if let k = head.header("X-API-Key") { bearers.append(k) }
        // Bearer credentials only (the scheme is case-insensitive); other schemes (a proxy's Basic
        // auth, say) are not ours and are left alone.
        if let auth = head.header("Authorization"), auth.utf8.count > 7, auth.prefix(7).lowercased() == "bearer " {
            bearers.append(String(auth.dropFirst(7)).trimmingCharacters(in: .whitespaces))
        }
        if upgrade {
            let q = head.query
            if let k = q["key"] { bearers.append(k) }
            if let t = q["token"] { bearers.append(t) }
        }
        for given in bearers {
            a.presented = true
            if let p = principal(bearer: given, access: &a, charge: chargeKeys) {
                a.principals.append(p)
            } else if a.failure == nil {
                a.failure = .error(
                    .unauthorized, "unauthorized", "unknown, revoked or expired credential",
                    headers: [("WWW-Authenticate", "Bearer")])
            }
        }
        if head.header("X-Host-Key") != nil { a.presented = true }
        if let code = session, let given = head.header("X-Host-Key") ?? bodyHostKey {
            a.presented = true
            if isHostKey(given, of: code) {
                a.principals.append(.host(session: code))
            } else if a.failure == nil && a.principals.isEmpty {
                // A host key that opens nothing is no credential: 401, counted like any failed one.
                a.failure = .error(.unauthorized, "unauthorized", "wrong host key for session \(code)")
            }
        }
        if openMode { a.principals.append(.anonymous(openMode: true)) }
        return a
    }

    /// The client's address for the activity log: the socket's peer, unless that peer is a proxy named in
    /// `--trusted-proxies`, whose `X-Forwarded-For` then names the client (its last entry: the one the
    /// trusted proxy added; earlier ones are whatever the client sent).
    func clientAddress(_ head: HTTPRequestHead, peer: String) -> String {
        guard config.trustedProxies.contains(peer), let xff = head.header("X-Forwarded-For") else { return peer }
        let last = xff.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return last.isEmpty || last.utf8.count > 64 ? peer : last
    }

    /// Whether `given` is the host key of session `code` (its hash compared in constant time).
    func isHostKey(_ given: String?, of code: String) -> Bool { directory.isHostKey(given, of: code) }

    /// What a long-lived socket presented, less the API keys revoked since (checked per message, so a
    /// revocation reaches open sockets too).
    func current(_ principals: [Principal]) -> [Principal] {
        principals.filter {
            if case .apiKey(let id, _, _, _) = $0 { return api?.keys.isActive(id) ?? false }
            // A socket opened while the hub was open keeps nothing of it once the cluster closed it.
            if case .anonymous(true) = $0 { return openMode }
            return true
        }
    }

    /// One bearer credential: the admin key, an API key (checked against its quota), or a token.
    /// `charge` false: an API key is verified, and left for the caller to charge (`Access.unchargedKey`).
    func principal(bearer given: String, access a: inout Access, charge: Bool = true) -> Principal? {
        if let admin = config.adminKey, Crypto.constantTimeEquals(Array(given.utf8), Array(admin.utf8)) {
            return .admin
        }
        if given.hasPrefix("chk_"), let keys = api?.keys {
            switch keys.check(given, charge: charge) {
            case .allowed(let h, let record):
                a.headers = h
                a.keyId = record.id
                if !charge { a.unchargedKey = record.id }
                let scopes = Set(record.scopes.compactMap(Scope.init(rawValue:)))
                return .apiKey(id: record.id, scopes: scopes, runs: record.runs, owners: record.owners)
            case .limited(let h, let message):
                a.failure = .error(.tooManyRequests, "rate_limited", message, headers: h)
                return nil
            case .unknown:
                return nil
            case .unknownId(let id):
                a.unknownKeyId = id
                return nil
            }
        }
        guard config.sessionPolicy.tokens.isEnabled, given.utf8.filter({ $0 == UInt8(ascii: ".") }).count == 2 else {
            return nil
        }
        switch config.sessionPolicy.tokens.verify(given, now: Int64(Date().timeIntervalSince1970)) {
        case .success(let claims):
            if claims.isRevokedShare(in: directory.info(claims.session)) { return nil }
            a.tokens.append((claims.principal, claims.exp))
            return claims.principal
        case .failure(let e) where e.kind == .expired:
            // Genuine (its signature checked first) but past `exp` and the skew: told apart from a wrong
            // one, so a client knows to fetch a fresh token rather than give up (a share link too).
            if a.failure == nil {
                a.failure = .error(
                    .unauthorized, "token_expired", "the token expired; get a fresh one",
                    headers: [("WWW-Authenticate", "Bearer error=\"invalid_token\"")])
            }
            return nil
        case .failure:
            return nil
        }
    }
}

/// Authentication failures for the activity log, aggregated per client address (`AddressKey`: an IPv6
/// client by its network) and minute: the first of a minute is written at once, the rest are counted and
/// written as one entry when the minute is over, so a flood of bad credentials cannot fill the log (at
/// most 10,000 addresses are tracked).
final class AuthFailures: @unchecked Sendable {
    /// The activity-log action written (`auth_failed`, `access_refused`).
    let action: String
    /// `--ipv6-prefix` (set before the loops run).
    var ipv6Prefix = 64
    init(action: String = "auth_failed") { self.action = action }
    private let lock = NSLock()
    /// Refusals since start-up by reason (the error code the client got), for `/metrics`; the codes
    /// are a fixed vocabulary, so this stays small.
    private var reasons: [String: Int] = [:]
    /// Where refusals are summed up for the log (one line a minute, not one per refusal).
    var summary: LogSummary?

    /// The error codes that refuse a credential (bad, expired, wrong scope or session, guests not
    /// admitted, a guessed code): the labels of `collabhub_auth_refusals_total`.
    static let reasons: Set<String> = [
        "unauthorized", "token_expired", "forbidden", "guests_not_allowed", "unknown_session",
    ]

    /// Counts a refused credential or join (`reason`: the error code sent back).
    func refused(_ reason: String) {
        lock.lock()
        reasons[reason, default: 0] += 1
        lock.unlock()
        summary?.count("auth refusals", reason)
    }

    var refusalsByReason: [String: Int] {
        lock.lock()
        defer { lock.unlock() }
        return reasons
    }
    private var minute = 0
    private var counts: [String: Int] = [:]
    static let maxAddresses = 10_000

    func record(_ address: String, what: String, store: Storage, now: Double = Date().timeIntervalSince1970) {
        let m = Int(now / 60)
        let key = AddressKey.of(address, ipv6Prefix: ipv6Prefix)
        lock.lock()
        var flush: [String: Int] = [:]
        if m != minute { flush = counts.filter { $0.value > 1 }; counts = [:]; minute = m }
        let first = counts[key] == nil
        if first && counts.count >= Self.maxAddresses { lock.unlock(); return }
        counts[key, default: 0] += 1
        lock.unlock()
        for (addr, n) in flush {
            store.record(
                ActivityEntry(
                    actor: "anonymous", action: action, address: addr, details: "\(n - 1) more in the minute before"))
        }
        if first { store.record(ActivityEntry(actor: "anonymous", action: action, address: address, details: what)) }
    }
}

/// A flag that, once set, stays set (thread-safe).
final class Latch: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
