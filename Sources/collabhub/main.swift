import ArgumentParser
import Foundation
import Hub
import WebSocket
import Server
import Store

struct CollabHub: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collabhub",
        abstract: "A real-time WebSocket collaboration hub.",
        subcommands: [Serve.self, Keys.self, IssueToken.self],
        defaultSubcommand: Serve.self)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the hub.")

    @Option(help: "Address to listen on (IPv4 or IPv6 literal).") var host = "127.0.0.1"
    @Option(help: "TCP port (0 picks a free one and prints it).") var port = 8080
    @Option(help: "Event-loop threads (default: one per core).") var threads: Int?
    @Option(help: "Directory for the SQLite transcript store.") var data = "./data"
    @Flag(help: "Enable /echo, the conformance-test endpoint.") var echo = false
    @Option(help: "Largest WebSocket message accepted, bytes (1009 beyond).") var maxMessageSize = 1 << 20
    @Option(help: "Largest HTTP request head, bytes (431 beyond).") var maxHeaderSize = 8 * 1024
    @Option(help: "Seconds a client has to complete a request or handshake.") var handshakeTimeout = 10.0
    @Option(help: "Seconds of silence before a WebSocket client is pinged (and dropped after as many more).")
    var pingInterval = 30.0
    @Option(help: "Browser origins allowed to open WebSockets (comma-separated; default: any).") var allowedOrigins:
        String?
    @Option(help: "normal: durable across a crash; full: also across power loss (fsync per group commit).")
    var durability = "normal"
    @Option(help: "Default maximum participants per session.") var maxParticipants = 10
    @Option(help: "Length of new session codes (at least 6).") var codeLength = 8
    @Option(help: "Seconds a member whose connection dropped stays present, so a reconnect is seamless.")
    var reconnectGrace = 10.0
    @Option(help: "Recent durable events per session kept in memory for resume.") var resumeWindow = 1000
    @Option(help: "Delete transcript events older than this many seconds (default: keep).") var retentionAge: Double?
    @Option(help: "Keep at most this many events per session (default: all).") var retentionEvents: Int?
    @Option(help: "Seconds between retention passes.") var retentionInterval = 60.0
    @Option(help: "Seconds between reads of the API key table (keys made by `collabhub keys` work within this).")
    var keyRefresh = 5.0
    @Flag(help: "Let webhooks go to loopback and private addresses (refused by default: SSRF).")
    var webhookAllowPrivate = false
    @Option(help: "Seconds without a successful delivery after which a webhook endpoint is disabled.")
    var webhookDisableAfter = 86_400.0
    @Option(help: "PEM bundle of CAs to check webhook receivers' certificates against (default: the system's).")
    var webhookCa: String?
    @Option(help: "Days delivered and failed webhook deliveries are kept (the delivery log).")
    var webhookLogDays = 7.0
    @Flag(help: "Store sampled cursor positions with the transcript, for playback.") var recordCursors = false
    @Option(help: "With --record-cursors: milliseconds between stored positions of one member.") var cursorSampleMs =
        200.0
    @Option(help: "Seconds a session may stay without members before it ends.") var sessionIdleTtl = 86400.0
    @Option(
        name: [.customLong("admin-key"), .customLong("publish-key")],
        help: ArgumentHelp(
            "The operator's admin key: every scope (at least 16 bytes; or COLLABHUB_ADMIN_KEY). --publish-key is "
                + "its old name.")
    ) var adminKey: String?
    @Option(help: "Proxy addresses whose X-Forwarded-For names the client in the activity log (comma-separated).")
    var trustedProxies: String?
    @Option(
        help: ArgumentHelp(
            "auto: open mode (anyone may do anything) only while no credential is configured; required: refuse to "
                + "start without one.")
    ) var auth = "auto"
    @Option(help: "HS256 token key, as SECRET or KID=SECRET; repeat to rotate keys (or COLLABHUB_JWT_SECRET).")
    var jwtSecret: [String] = []
    @Option(help: "Seconds of clock skew allowed when checking token times.") var jwtSkew = 60
    @Option(help: "RS256 or ES256 public key, as [KID=]PEM_FILE; repeatable (read again on SIGHUP).") var jwtPublicKey:
        [String] = []
    @Option(help: "A JWKS document of RS256/ES256 keys (an identity provider's), read again on SIGHUP.") var jwks:
        String?
    @Option(help: "WebSocket connections allowed per client address (0: no limit).") var maxConnectionsPerAddress = 1000
    @Option(help: "Cursor updates per second per connection (burst: twice).") var limitCursor = 60.0
    @Option(help: "Chat messages per second per connection (burst: twice).") var limitChat = 5.0
    @Option(help: "App events per second per connection (burst: twice).") var limitEvent = 200.0
    @Option(
        help: ArgumentHelp(
            "permessage-deflate: off, shared (compress each broadcast once; no per-connection state) or context "
                + "(per-connection context takeover).")
    ) var compression = "shared"
    @Option(help: "PEM certificate chain: serve wss:// and https://.") var tlsCert: String?
    @Option(help: "PEM private key for --tls-cert.") var tlsKey: String?
    @Option(help: "TCP congestion control for client sockets, e.g. cubic (default: the system's).") var tcpCongestion:
        String?
    @Option(help: "Bytes queued for one client past which its cursor/typing/ephemeral updates are dropped.")
    var outputSoftLimit = 256 * 1024
    @Option(help: "Bytes queued for one client past which it is cut off (4000; it resumes from its last seq).")
    var outputHardLimit = 4 * 1024 * 1024
    @Option(help: "Bytes of the resume window per session (besides --resume-window events).") var resumeWindowBytes =
        2 << 20

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        if let threads, threads < 1 || threads > 256 { throw ValidationError("--threads must be 1-256") }
        guard maxMessageSize >= 125, maxMessageSize <= 1 << 30 else {
            throw ValidationError("--max-message-size must be 125 to 1 GiB")
        }
        guard outputSoftLimit >= 4096, outputHardLimit >= outputSoftLimit, outputHardLimit <= 1 << 30 else {
            throw ValidationError(
                "--output-soft-limit must be at least 4096 and at most --output-hard-limit (at most 1 GiB)")
        }
        guard maxMessageSize <= outputHardLimit / 2 else {
            throw ValidationError(
                "--max-message-size must be at most half of --output-hard-limit (a message must fit in what a "
                    + "client may queue)"
            )
        }
        guard resumeWindowBytes >= 0, resumeWindowBytes <= outputHardLimit / 2 else {
            throw ValidationError(
                "--resume-window-bytes must be 0 to half of --output-hard-limit (a resume must fit in a client's "
                    + "output)"
            )
        }
        guard (0...86_400).contains(jwtSkew) else { throw ValidationError("--jwt-skew must be 0-86400 seconds") }
        guard maxHeaderSize >= 512 else { throw ValidationError("--max-header-size must be at least 512") }
        guard pingInterval > 0, handshakeTimeout > 0 else { throw ValidationError("timeouts must be positive") }
        guard Durability(rawValue: durability) != nil else {
            throw ValidationError("--durability must be normal or full")
        }
        guard codeLength >= 6, codeLength <= 32 else { throw ValidationError("--code-length must be 6-32") }
        guard maxParticipants >= 1 else { throw ValidationError("--max-participants must be at least 1") }
        if let a = retentionAge, !(a > 0 && a <= 1e12) {
            throw ValidationError("--retention-age must be positive (seconds)")
        }
        if let e = retentionEvents, e < 1 { throw ValidationError("--retention-events must be at least 1") }
        guard CompressionMode(rawValue: compression) != nil else {
            throw ValidationError("--compression must be off, shared or context")
        }
        guard maxConnectionsPerAddress >= 0, limitCursor > 0, limitChat > 0, limitEvent > 0 else {
            throw ValidationError("limits must be positive (--max-connections-per-address may be 0: no limit)")
        }
        guard auth == "auto" || auth == "required" else { throw ValidationError("--auth must be auto or required") }
        guard sessionIdleTtl > 0, sessionIdleTtl <= 1e9 else {
            throw ValidationError("--session-idle-ttl must be positive")
        }
        guard retentionInterval > 0 else { throw ValidationError("--retention-interval must be positive") }
        guard webhookLogDays > 0, webhookLogDays <= 3650 else {
            throw ValidationError("--webhook-log-days must be more than 0 and at most 3650")
        }
        guard webhookDisableAfter >= 1, webhookDisableAfter <= 365 * 86_400 else {
            throw ValidationError("--webhook-disable-after must be 1 s to a year")
        }
        guard keyRefresh >= 0.1, keyRefresh <= 3600 else {
            throw ValidationError("--key-refresh must be 0.1-3600 seconds")
        }
        guard cursorSampleMs >= 10 else { throw ValidationError("--cursor-sample-ms must be at least 10") }
        guard reconnectGrace >= 0, resumeWindow >= 0 else {
            throw ValidationError("--reconnect-grace and --resume-window must not be negative")
        }
    }

    func run() throws {
        var config = Config()
        config.host = host
        config.port = port
        config.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        config.dataDirectory = data
        config.echo = echo
        config.maxMessageSize = maxMessageSize
        config.maxHeadSize = maxHeaderSize
        config.handshakeTimeout = handshakeTimeout
        config.pingInterval = pingInterval
        config.durability = Durability(rawValue: durability)!
        config.maxParticipants = maxParticipants
        config.codeLength = codeLength
        config.sessionPolicy.reconnectGrace = reconnectGrace
        config.sessionPolicy.resumeWindow = resumeWindow
        config.sessionPolicy.resumeWindowBytes = resumeWindowBytes
        config.softOutputLimit = outputSoftLimit
        config.hardOutputLimit = outputHardLimit
        config.sessionPolicy.softOutputLimit = outputSoftLimit
        config.sessionPolicy.hardOutputLimit = outputHardLimit
        config.sessionPolicy.cursorSampleInterval = recordCursors ? cursorSampleMs / 1000 : nil
        config.retention = RetentionPolicy(
            maxAgeMillis: retentionAge.map { Int64($0 * 1000) }, maxEventsPerSession: retentionEvents)
        config.retentionInterval = retentionInterval
        config.keyRefreshInterval = keyRefresh
        config.webhookAllowPrivate = webhookAllowPrivate
        config.webhookDisableAfter = webhookDisableAfter
        config.webhookCAFile = webhookCa
        config.webhookLogDays = webhookLogDays
        config.tcpCongestion = tcpCongestion
        config.compression = CompressionMode(rawValue: compression)!
        config.tlsCertificate = tlsCert
        config.tlsKey = tlsKey
        var keys: [String: [UInt8]] = [:]
        let env = ProcessInfo.processInfo.environment
        for entry in jwtSecret + (env["COLLABHUB_JWT_SECRET"].map { [$0] } ?? []) {
            let (kid, secret) = Self.splitSecret(entry)
            // HMAC with a short (or empty) key is a key anyone can guess: refused, not weakened.
            guard secret.utf8.count >= 16 else {
                FileHandle.standardError.write(
                    Data(
                        ("collabhub: a --jwt-secret (or COLLABHUB_JWT_SECRET) must be at least 16 "
                            + "bytes\(kid == "default" ? "" : " (key \(kid))")\n").utf8))
                throw ExitCode(2)
            }
            keys[kid] = Array(secret.utf8)
        }
        var sources = TokenKeySources()
        sources.secrets = keys
        for entry in jwtPublicKey {
            if let eq = entry.firstIndex(of: "="), eq != entry.startIndex {
                sources.publicKeyFiles.append((String(entry[..<eq]), String(entry[entry.index(after: eq)...])))
            } else {
                sources.publicKeyFiles.append(("default", entry))
            }
        }
        sources.jwksFile = jwks
        let loaded: [String: TokenKey]
        do { loaded = try sources.load() } catch {
            FileHandle.standardError.write(Data("collabhub: \(error)\n".utf8))
            throw ExitCode(2)
        }
        config.tokenKeySources = sources
        config.sessionPolicy.tokens = TokenVerifier(keyring: TokenKeyring(loaded), skew: Int64(jwtSkew))
        // With tokens configured, sessions admit guests only when their creator says so.
        if !loaded.isEmpty { config.defaultGuestPolicy = .deny }
        config.maxConnectionsPerAddress = maxConnectionsPerAddress
        config.messageRates.cursor = limitCursor
        config.messageRates.chat = limitChat
        config.messageRates.event = limitEvent
        config.sessionIdleTTL = sessionIdleTtl
        config.adminKey = adminKey ?? env["COLLABHUB_ADMIN_KEY"] ?? env["COLLABHUB_PUBLISH_KEY"]
        if let key = config.adminKey, key.utf8.count < 16 {
            FileHandle.standardError.write(
                Data("collabhub: the admin key (--admin-key, COLLABHUB_ADMIN_KEY) must be at least 16 bytes\n".utf8))
            throw ExitCode(2)
        }
        config.authRequired = auth == "required"
        config.trustedProxies = Set(
            (trustedProxies ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                !$0.isEmpty
            })
        config.allowedOrigins = allowedOrigins?.split(separator: ",").map {
            String($0).trimmingCharacters(in: .whitespaces)
        }
        let server: Server
        do {
            server = try Server(config: config) { config in
                try SQLiteStore(directory: config.dataDirectory, durability: config.durability)
            }
        } catch {
            FileHandle.standardError.write(Data("collabhub: \(error)\n".utf8))
            throw ExitCode(1)
        }
        server.handleSignals()
        print(
            "collabhub listening on \(host):\(server.port) "
                + "threads=\(config.threads)\(echo ? " echo=on" : "")\(tlsCert != nil ? " tls=on" : "")"
        )
        if server.openMode {
            print("collabhub: \(Server.openModeNotice) (configure --jwt-secret, --admin-key or API keys to close it)")
        }
        fflush(stdout)
        server.run()
        print("collabhub stopped")
    }
}

extension Serve {
    /// `KID=SECRET` or `SECRET`: split at the first `=` only when something other than `=` follows it,
    /// so base64 secrets (which end in `=` padding) are taken whole.
    static func splitSecret(_ entry: String) -> (kid: String, secret: String) {
        guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else { return ("default", entry) }
        let rest = entry[entry.index(after: eq)...]
        guard rest.contains(where: { $0 != "=" }) else { return ("default", entry) }
        return (String(entry[..<eq]), String(rest))
    }
}

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Manage API keys (stored hashed in the hub's database).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; prints it once.")
        @Option(help: "Data directory of the hub.") var data = "./data"
        @Option(help: "What the key is for.") var name: String
        @Option(help: "Requests per minute.") var perMinute = 60
        @Option(help: "Requests per hour.") var perHour = 1000
        @Option(help: "Requests per calendar month.") var perMonth = 10000
        @Option(help: "Comma-separated scopes: \(Scope.allCases.map(\.rawValue).joined(separator: ", ")).") var scopes =
            "runs:publish"
        @Option(help: "Comma-separated run ids this key may publish to (a trailing * is a prefix; default: any).")
        var runs: String?
        func run() throws {
            guard perMinute > 0, perHour > 0, perMonth > 0 else { throw ValidationError("limits must be positive") }
            let parsed: Set<Scope>
            switch Scope.parseList(scopes) {
            case .success(let s): parsed = s
            case .failure(let u):
                throw ValidationError(
                    "unknown scope \(u.name) (scopes: \(Scope.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let runList = runs?.split(separator: ",").map(String.init)
            let spec = APIKeySpec(
                name: name, perMinute: perMinute, perHour: perHour, perMonth: perMonth,
                scopes: Scope.allCases.filter(parsed.contains).map(\.rawValue), runs: runList)
            let (record, key) = try SQLiteStore.createKey(directory: data, spec)
            print(
                "id:  \(record.id)\nkey: \(key)\nlimits: \(perMinute)/min, \(perHour)/h, \(perMonth)/month\n"
                    + "scopes: \(record.scopes.joined(separator: ","))"
                    + (runList.map { "\nruns: " + $0.joined(separator: ",") } ?? "")
            )
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")
        @Option(help: "Data directory of the hub.") var data = "./data"
        func run() throws {
            for k in try SQLiteStore.listKeys(directory: data) {
                print(
                    "\(k.id)  \(k.name)  \(k.perMinute)/min \(k.perHour)/h \(k.perMonth)/month  "
                        + "\(k.revokedAt == nil ? "active" : "revoked")"
                )
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by id (takes effect within seconds).")
        @Option(help: "Data directory of the hub.") var data = "./data"
        @Argument(help: "Key id.") var id: String
        func run() throws {
            guard try SQLiteStore.revokeKey(directory: data, id: id) else {
                FileHandle.standardError.write(Data("no active key \(id)\n".utf8))
                throw ExitCode(1)
            }
            print("revoked \(id)")
        }
    }
}

struct IssueToken: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Issue an HS256 access token (for tests and tools).")
    @Option(help: "Signing secret (the hub's --jwt-secret).") var secret: String
    @Option(help: "Key id (kid), for rotated keys.") var kid: String?
    @Option(help: "Subject (user id).") var sub: String
    @Option(help: "Display name.") var name: String?
    @Option(help: "Session code, or * for any.") var session = "*"
    @Option(help: "host, editor, viewer or publisher.") var role = "editor"
    @Option(help: "Seconds until it expires.") var ttl = 3600
    @Option(help: "A watcher token instead: comma-separated channels (run:ID, dashboard:OWNER, a trailing * a prefix).")
    var channels: String?
    func run() throws {
        let now = Int(Date().timeIntervalSince1970)
        guard ttl > 0, ttl <= 366 * 86400 else { throw ValidationError("--ttl must be 1 second to a year") }
        var claims: [String: Any] = ["sub": sub, "session": session, "role": role, "iat": now, "exp": now + ttl]
        if let channels {
            claims["channels"] = channels.split(separator: ",").map(String.init)
            claims["session"] = nil
        }
        if let name { claims["name"] = name }
        print(TokenVerifier.sign(claims, key: Array(secret.utf8), kid: kid))
    }
}

CollabHub.main()
