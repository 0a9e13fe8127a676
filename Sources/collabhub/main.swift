import ArgumentParser
import Foundation
import Logging
import Hub
import WebSocket
import Server
import Cluster
import Store

struct CollabHub: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collabhub",
        abstract: "A real-time WebSocket collaboration hub.",
        version: "collabhub \(Build.description)",
        subcommands: [
            Serve.self, Demo.self, ConfigCommand.self, Keys.self, IssueToken.self, Routes.self, Version.self,
        ],
        defaultSubcommand: Serve.self)
}

/// The options of `serve` (and `config check`). Each is also a variable `COLLABHUB_<NAME>` and a key
/// of the `--config` JSON file (`ConfigLayers`); none has a default here, so that a flag not given
/// leaves the choice to the environment, then the file, then the default in `ServeOptions.resolve`.
struct ServeOptions: ParsableArguments {
    @Option(help: "JSON file of settings, keyed by option name without the dashes (e.g. {\"port\": 9000}).")
    var config: String?
    @Option(help: "Address to listen on (IPv4 or IPv6 literal; default 127.0.0.1).") var host: String?
    @Option(help: "TCP port (0 picks a free one and prints it; default 8080).") var port: Int?
    @Option(help: "Event-loop threads (default: one per core).") var threads: Int?
    @Option(help: "Directory for the SQLite transcript store (default ./data).") var data: String?
    @Flag(inversion: .prefixedNo, help: "Enable /echo, the conformance-test endpoint.") var echo: Bool?
    @Option(help: "Largest WebSocket message accepted, bytes (1009 beyond; default 1 MiB).") var maxMessageSize: Int?
    @Option(help: "Largest HTTP request head, bytes (431 beyond; default 8192).") var maxHeaderSize: Int?
    @Option(help: "Seconds a client has to complete a request or handshake (default 10).") var handshakeTimeout: Double?
    @Option(help: "Seconds of silence before a WebSocket client is pinged (and dropped after as many more).")
    var pingInterval: Double?
    @Option(
        help: ArgumentHelp(
            "Browser origins besides the hub's own allowed to open WebSockets and write to the API "
                + "(comma-separated scheme://host[:port], or *; default: the hub's own only).")) var allowedOrigins:
        String?
    @Option(help: "Origins of browser apps that may call the HTTP API (CORS; comma-separated scheme://host[:port]).")
    var corsOrigins: String?
    @Option(help: "Host names requests may use (comma-separated; default: --public-url's, or loopback's on loopback).")
    var allowedHosts: String?
    @Option(help: "The hub's URL as browsers reach it (https://chat.example.com): its origin and host are allowed.")
    var publicUrl: String?
    @Option(help: "normal: durable across a crash; full: also across power loss (fsync per group commit).")
    var durability: String?
    @Option(help: "Default maximum participants per session (default 10).") var maxParticipants: Int?
    @Option(help: "Length of new session codes (at least 6; default 8).") var codeLength: Int?
    @Option(help: "Seconds a member whose connection dropped stays present, so a reconnect is seamless.")
    var reconnectGrace: Double?
    @Option(help: "Recent durable events per session kept in memory for resume (default 1000).") var resumeWindow: Int?
    @Option(help: "Delete transcript events older than this many seconds (default: keep).") var retentionAge: Double?
    @Option(help: "Keep at most this many events per session (default: all).") var retentionEvents: Int?
    @Option(help: "Seconds between retention passes (default 60).") var retentionInterval: Double?
    @Option(help: "Seconds between reads of the API key table (keys made by `collabhub keys` work within this).")
    var keyRefresh: Double?
    @Flag(inversion: .prefixedNo, help: "Let webhooks go to loopback and private addresses (refused by default).")
    var webhookAllowPrivate: Bool?
    @Option(help: "Seconds without a successful delivery after which a webhook endpoint is disabled.")
    var webhookDisableAfter: Double?
    @Option(help: "PEM bundle of CAs to check webhook receivers' certificates against (default: the system's).")
    var webhookCa: String?
    @Option(
        help: ArgumentHelp(
            "Join a cluster: sessions, their log and the directory live in this Redis "
                + "(redis://[[user]:password@]host[:port][/db]; rediss:// for TLS).", valueName: "url"))
    var redis: String?
    @Option(help: "With a rediss:// URL: PEM bundle of CAs to check Redis's certificate against (default: system's).")
    var redisCa: String?
    @Option(help: "With a rediss:// URL: PEM certificate (chain) presented to a Redis that asks for one.")
    var redisCert: String?
    @Option(help: "With --redis-cert: its PEM private key.")
    var redisKey: String?
    @Option(help: "Ack a durable append once this many Redis replicas have it (WAIT; default 0: the master only).")
    var redisWaitReplicas: Int?
    @Option(help: "With --redis-wait-replicas: milliseconds to wait for them (1-2000; default 1000).")
    var redisWaitTimeoutMs: Int?
    @Option(help: "Days delivered and failed webhook deliveries are kept (the delivery log; default 7).")
    var webhookLogDays: Double?
    @Flag(inversion: .prefixedNo, help: "Store sampled cursor positions with the transcript, for playback.")
    var recordCursors: Bool?
    @Option(help: "With --record-cursors: milliseconds between stored positions of one member.") var cursorSampleMs:
        Double?
    @Option(help: "Seconds a session may stay without members before it ends (default a day).") var sessionIdleTtl:
        Double?
    @Option(
        name: [.customLong("admin-key"), .customLong("publish-key")],
        help: ArgumentHelp(
            "The operator's admin key: every scope (at least 16 bytes). --publish-key is its old name.")
    ) var adminKey: String?
    @Option(help: "Proxy addresses whose X-Forwarded-For names the client in the activity log (comma-separated).")
    var trustedProxies: String?
    @Option(
        help: ArgumentHelp(
            "auto: open mode (anyone may do anything) only on loopback with no credential ever configured; "
                + "open: open mode, said outright; required: refuse to start without a credential.")
    ) var auth: String?
    @Option(help: "HS256 token key, as SECRET or KID=SECRET; repeat to rotate keys.") var jwtSecret: [String] = []
    @Option(help: "Seconds of clock skew allowed when checking token times (default 60).") var jwtSkew: Int?
    @Option(help: "The audience (aud) tokens must name; required with --jwks or --jwt-public-key.") var jwtAudience:
        String?
    @Option(help: "The issuer (iss) tokens must come from; required with --jwks or --jwt-public-key.") var jwtIssuer:
        String?
    @Option(help: "RS256 or ES256 public key, as [KID=]PEM_FILE; repeatable (read again on SIGHUP).") var jwtPublicKey:
        [String] = []
    @Option(help: "A JWKS document of RS256/ES256 keys (an identity provider's), read again on SIGHUP.") var jwks:
        String?
    @Option(help: "WebSocket connections allowed per client address (0: no limit; default 1000).")
    var maxConnectionsPerAddress: Int?
    @Option(help: "IPv6 clients count as one address per network of this many bits (32-128; default 64).")
    var ipv6Prefix: Int?
    @Option(help: "Cursor updates per second per connection (burst: twice; default 60).") var limitCursor: Double?
    @Option(help: "Chat messages per second per connection (burst: twice; default 5).") var limitChat: Double?
    @Option(help: "App events per second per connection (burst: twice; default 200).") var limitEvent: Double?
    @Option(
        help: ArgumentHelp(
            "permessage-deflate: off, shared (compress each broadcast once; no per-connection state) or context "
                + "(per-connection context takeover).")
    ) var compression: String?
    @Option(help: "PEM certificate chain: serve wss:// and https://.") var tlsCert: String?
    @Option(help: "PEM private key for --tls-cert.") var tlsKey: String?
    @Option(help: "TCP congestion control for client sockets, e.g. cubic (default: the system's).") var tcpCongestion:
        String?
    @Option(help: "Bytes queued for one client past which its cursor/typing/ephemeral updates are dropped.")
    var outputSoftLimit: Int?
    @Option(help: "Bytes queued for one client past which it is cut off (4000; it resumes from its last seq).")
    var outputHardLimit: Int?
    @Option(help: "Bytes of the resume window per session (besides --resume-window events).") var resumeWindowBytes:
        Int?
    @Option(help: "Log lines as text (default) or json (one object per line).") var logFormat: String?
    @Option(help: "Least important log level written: trace, debug, info (default), notice, warning, error.")
    var logLevel: String?
    @Option(help: "Seconds per summary line of floods (auth refusals, slow consumers cut; default 60).")
    var logSummaryInterval: Double?

    /// What `serve` runs with.
    struct Resolved {
        var config: Config
        var layers: ConfigLayers
        var logFormat: LogFormat
        var logLevel: Logger.Level
        var tokenKeys: [String: TokenKey]
        var redis: RedisOptions?
    }

    /// The configuration from flags, environment and file, checked. Errors name the value as given.
    func resolve(environment env: [String: String]) throws -> Resolved {
        let L = try ConfigLayers(
            filePath: config ?? env["COLLABHUB_CONFIG"], environment: env,
            aliases: ["COLLABHUB_ADMIN_KEY": "COLLABHUB_PUBLISH_KEY"])
        func fail(_ key: String, _ message: String) -> ConfigError { ConfigError("\(L.name(key)) \(message)") }
        func list(_ flag: String?) -> [String]? {
            flag.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        }
        var c = Config()
        c.host = try L.value("host", flag: host, default: c.host)
        c.port = try L.value("port", flag: port, default: c.port)
        guard (0...65535).contains(c.port) else { throw fail("port", "must be 0-65535") }
        c.threads = try L.value(
            "threads", flag: threads, default: min(ProcessInfo.processInfo.activeProcessorCount, 256))
        guard (1...256).contains(c.threads) else { throw fail("threads", "must be 1-256") }
        c.dataDirectory = try L.value("data", flag: data, default: c.dataDirectory)
        c.echo = try L.value("echo", flag: echo, default: false)
        c.maxMessageSize = try L.value("max-message-size", flag: maxMessageSize, default: c.maxMessageSize)
        guard c.maxMessageSize >= 125, c.maxMessageSize <= 1 << 30 else {
            throw fail("max-message-size", "must be 125 to 1 GiB")
        }
        c.maxHeadSize = try L.value("max-header-size", flag: maxHeaderSize, default: c.maxHeadSize)
        guard c.maxHeadSize >= 512, c.maxHeadSize <= 1 << 20 else {
            throw fail("max-header-size", "must be 512 to 1 MiB")
        }
        c.handshakeTimeout = try L.value("handshake-timeout", flag: handshakeTimeout, default: c.handshakeTimeout)
        guard c.handshakeTimeout > 0, c.handshakeTimeout <= 3600 else {
            throw fail("handshake-timeout", "must be more than 0 and at most 3600 seconds")
        }
        c.pingInterval = try L.value("ping-interval", flag: pingInterval, default: c.pingInterval)
        guard c.pingInterval > 0, c.pingInterval <= 86_400 else {
            throw fail("ping-interval", "must be more than 0 and at most 86400 seconds")
        }
        c.allowedOrigins = try L.optional("allowed-origins", flag: list(allowedOrigins))
        for o in c.allowedOrigins ?? [] where o != "*" && SiteGate.origin(of: o) != o.lowercased() {
            // A browser's Origin is always scheme://host[:port]: anything else would match nothing.
            throw fail(
                "allowed-origins", "has \(o), which is not an origin: write scheme://host[:port], e.g. https://\(o)")
        }
        c.corsOrigins = try L.value("cors-origins", flag: list(corsOrigins), default: [])
        for o in c.corsOrigins where o != "*" && SiteGate.origin(of: o) != o.lowercased() {
            throw fail(
                "cors-origins", "has \(o), which is not an origin: write scheme://host[:port], e.g. https://\(o)")
        }
        c.publicURL = try L.optional("public-url", flag: publicUrl)
        if let u = c.publicURL, SiteGate.origin(of: u) == nil {
            throw fail(
                "public-url", "must be an http or https URL with a host and no path, e.g. https://chat.example.com")
        }
        c.allowedHosts = try L.value("allowed-hosts", flag: list(allowedHosts), default: [])
        for h in c.allowedHosts where SiteGate.hostName(authority: h) == nil || (h.contains(":") && !h.hasPrefix("[")) {
            throw fail("allowed-hosts", "has \(h), which is not a host name (no scheme, port or path)")
        }
        let durabilityName = try L.value("durability", flag: durability, default: c.durability.rawValue)
        guard let d = Durability(rawValue: durabilityName) else { throw fail("durability", "must be normal or full") }
        c.durability = d
        c.maxParticipants = try L.value("max-participants", flag: maxParticipants, default: c.maxParticipants)
        guard c.maxParticipants >= 1, c.maxParticipants <= 1_000_000 else {
            throw fail("max-participants", "must be 1 to 1,000,000")
        }
        c.codeLength = try L.value("code-length", flag: codeLength, default: c.codeLength)
        guard (6...32).contains(c.codeLength) else { throw fail("code-length", "must be 6-32") }
        var p = c.sessionPolicy
        p.reconnectGrace = try L.value("reconnect-grace", flag: reconnectGrace, default: p.reconnectGrace)
        guard p.reconnectGrace >= 0, p.reconnectGrace <= 86_400 else {
            throw fail("reconnect-grace", "must be 0-86400 seconds")
        }
        p.resumeWindow = try L.value("resume-window", flag: resumeWindow, default: p.resumeWindow)
        guard p.resumeWindow >= 0, p.resumeWindow <= 10_000_000 else { throw fail("resume-window", "must be 0-10^7") }
        let retentionAge = try L.optional("retention-age", flag: retentionAge)
        if let a = retentionAge, !(a > 0 && a <= 1e12) { throw fail("retention-age", "must be positive (seconds)") }
        let retentionEvents = try L.optional("retention-events", flag: retentionEvents)
        if let e = retentionEvents, e < 1 { throw fail("retention-events", "must be at least 1") }
        c.retention = RetentionPolicy(
            maxAgeMillis: retentionAge.map { Int64($0 * 1000) }, maxEventsPerSession: retentionEvents)
        c.retentionInterval = try L.value("retention-interval", flag: retentionInterval, default: c.retentionInterval)
        guard c.retentionInterval > 0, c.retentionInterval <= 86_400 else {
            throw fail("retention-interval", "must be more than 0 and at most 86400 seconds")
        }
        c.keyRefreshInterval = try L.value("key-refresh", flag: keyRefresh, default: c.keyRefreshInterval)
        guard c.keyRefreshInterval >= 0.1, c.keyRefreshInterval <= 3600 else {
            throw fail("key-refresh", "must be 0.1-3600 seconds")
        }
        c.webhookAllowPrivate = try L.value("webhook-allow-private", flag: webhookAllowPrivate, default: false)
        c.webhookDisableAfter = try L.value(
            "webhook-disable-after", flag: webhookDisableAfter, default: c.webhookDisableAfter)
        guard c.webhookDisableAfter >= 1, c.webhookDisableAfter <= 365 * 86_400 else {
            throw fail("webhook-disable-after", "must be 1 s to a year")
        }
        c.webhookCAFile = try L.optional("webhook-ca", flag: webhookCa)
        let cluster = try redisOptions(L, fail)
        c.webhookLogDays = try L.value("webhook-log-days", flag: webhookLogDays, default: c.webhookLogDays)
        guard c.webhookLogDays > 0, c.webhookLogDays <= 3650 else {
            throw fail("webhook-log-days", "must be more than 0 and at most 3650")
        }
        let recordCursors = try L.value("record-cursors", flag: recordCursors, default: false)
        let cursorSampleMs = try L.value("cursor-sample-ms", flag: cursorSampleMs, default: 200.0)
        guard cursorSampleMs >= 10, cursorSampleMs <= 60_000 else {
            throw fail("cursor-sample-ms", "must be 10-60000")
        }
        p.cursorSampleInterval = recordCursors ? cursorSampleMs / 1000 : nil
        c.sessionIdleTTL = try L.value("session-idle-ttl", flag: sessionIdleTtl, default: c.sessionIdleTTL)
        guard c.sessionIdleTTL > 0, c.sessionIdleTTL <= 1e9 else {
            throw fail("session-idle-ttl", "must be positive")
        }
        c.adminKey = try L.optional("admin-key", flag: adminKey, secret: true)
        if let key = c.adminKey, key.utf8.count < 16 { throw fail("admin-key", "must be at least 16 bytes") }
        c.trustedProxies = Set(try L.value("trusted-proxies", flag: list(trustedProxies), default: []))
        let authName = try L.value("auth", flag: auth, default: "auto")
        guard let authMode = AuthMode(rawValue: authName) else { throw fail("auth", "must be auto, open or required") }
        c.authMode = authMode
        // As before the configuration story: COLLABHUB_JWT_SECRET is one secret (taken whole, commas and
        // all), added to the --jwt-secret flags (rotation: one key from each).
        let given = jwtSecret + (env["COLLABHUB_JWT_SECRET"].map { [$0] } ?? [])
        let secrets = try L.value("jwt-secret", flag: given.isEmpty ? nil : given, default: [], secret: true)
        let skew = try L.value("jwt-skew", flag: jwtSkew, default: 60)
        guard (0...86_400).contains(skew) else { throw fail("jwt-skew", "must be 0-86400 seconds") }
        let publicKeys = try L.value("jwt-public-key", flag: jwtPublicKey.isEmpty ? nil : jwtPublicKey, default: [])
        var sources = TokenKeySources()
        for entry in secrets {
            let (kid, secret) = Serve.splitSecret(entry)
            // HMAC with a short (or empty) key is a key anyone can guess: refused, not weakened.
            guard secret.utf8.count >= 16 else {
                throw fail("jwt-secret", "must be at least 16 bytes\(kid == "default" ? "" : " (key \(kid))")")
            }
            sources.secrets[kid] = Array(secret.utf8)
        }
        for entry in publicKeys {
            if let eq = entry.firstIndex(of: "="), eq != entry.startIndex {
                sources.publicKeyFiles.append((String(entry[..<eq]), String(entry[entry.index(after: eq)...])))
            } else {
                sources.publicKeyFiles.append(("default", entry))
            }
        }
        sources.jwksFile = try L.optional("jwks", flag: jwks)
        let loaded: [String: TokenKey]
        do { loaded = try sources.load() } catch { throw ConfigError("token keys: \(error)") }
        c.tokenKeySources = sources
        p.tokens = TokenVerifier(keyring: TokenKeyring(loaded), skew: Int64(skew))
        p.tokens.audience = try L.optional("jwt-audience", flag: jwtAudience)
        p.tokens.issuer = try L.optional("jwt-issuer", flag: jwtIssuer)
        for (key, value) in [("jwt-audience", p.tokens.audience), ("jwt-issuer", p.tokens.issuer)] {
            if let v = value, v.isEmpty || !v.fits(256) { throw fail(key, "must be 1-256 characters") }
        }
        // Public keys usually belong to an identity provider that signs for many applications: without
        // an audience and an issuer, any token it made for anyone would open this hub (RFC 8725 §3.8-3.9).
        if !publicKeys.isEmpty || sources.jwksFile != nil {
            if p.tokens.audience == nil {
                throw ConfigError("--jwt-audience is required with --jwks or --jwt-public-key")
            }
            if p.tokens.issuer == nil { throw ConfigError("--jwt-issuer is required with --jwks or --jwt-public-key") }
        }
        // With tokens configured, sessions admit guests only when their creator says so.
        if !loaded.isEmpty { c.defaultGuestPolicy = .deny }
        c.maxConnectionsPerAddress = try L.value(
            "max-connections-per-address", flag: maxConnectionsPerAddress, default: c.maxConnectionsPerAddress)
        guard c.maxConnectionsPerAddress >= 0 else { throw fail("max-connections-per-address", "must not be negative") }
        c.ipv6Prefix = try L.value("ipv6-prefix", flag: ipv6Prefix, default: c.ipv6Prefix)
        guard (32...128).contains(c.ipv6Prefix) else { throw fail("ipv6-prefix", "must be 32-128") }
        c.messageRates.cursor = try L.value("limit-cursor", flag: limitCursor, default: c.messageRates.cursor)
        c.messageRates.chat = try L.value("limit-chat", flag: limitChat, default: c.messageRates.chat)
        c.messageRates.event = try L.value("limit-event", flag: limitEvent, default: c.messageRates.event)
        for (key, rate) in [
            ("limit-cursor", c.messageRates.cursor), ("limit-chat", c.messageRates.chat),
            ("limit-event", c.messageRates.event),
        ] where !(rate > 0 && rate <= 1e9) {
            throw fail(key, "must be a positive rate")
        }
        let compressionName = try L.value("compression", flag: compression, default: c.compression.rawValue)
        guard let mode = CompressionMode(rawValue: compressionName) else {
            throw fail("compression", "must be off, shared or context")
        }
        c.compression = mode
        c.tlsCertificate = try L.optional("tls-cert", flag: tlsCert)
        c.tlsKey = try L.optional("tls-key", flag: tlsKey)
        c.tcpCongestion = try L.optional("tcp-congestion", flag: tcpCongestion)
        c.softOutputLimit = try L.value("output-soft-limit", flag: outputSoftLimit, default: c.softOutputLimit)
        c.hardOutputLimit = try L.value("output-hard-limit", flag: outputHardLimit, default: c.hardOutputLimit)
        guard c.softOutputLimit >= 4096, c.hardOutputLimit >= c.softOutputLimit, c.hardOutputLimit <= 1 << 30 else {
            throw fail("output-soft-limit", "must be at least 4096 and at most output-hard-limit (at most 1 GiB)")
        }
        guard c.maxMessageSize <= c.hardOutputLimit / 2 else {
            throw fail(
                "max-message-size",
                "must be at most half of output-hard-limit (a message must fit in what a client "
                    + "may queue)")
        }
        p.resumeWindowBytes = try L.value("resume-window-bytes", flag: resumeWindowBytes, default: p.resumeWindowBytes)
        guard p.resumeWindowBytes >= 0, p.resumeWindowBytes <= c.hardOutputLimit / 2 else {
            throw fail(
                "resume-window-bytes", "must be 0 to half of output-hard-limit (a resume must fit in a client's output)"
            )
        }
        p.softOutputLimit = c.softOutputLimit
        p.hardOutputLimit = c.hardOutputLimit
        c.sessionPolicy = p
        let formatName = try L.value("log-format", flag: logFormat, default: "text")
        guard let format = LogFormat(rawValue: formatName) else { throw fail("log-format", "must be text or json") }
        let levelName = try L.value("log-level", flag: logLevel, default: "info")
        guard let level = Logger.Level(rawValue: levelName) else {
            throw fail("log-level", "must be trace, debug, info, notice, warning, error or critical")
        }
        c.logSummaryInterval = try L.value(
            "log-summary-interval", flag: logSummaryInterval, default: c.logSummaryInterval)
        guard c.logSummaryInterval >= 1, c.logSummaryInterval <= 86_400 else {
            throw fail("log-summary-interval", "must be 1-86400 seconds")
        }
        try L.checkUnknownKeys()
        return Resolved(config: c, layers: L, logFormat: format, logLevel: level, tokenKeys: loaded, redis: cluster)
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the hub.",
        discussion:
            "Every option is also an environment variable (COLLABHUB_MAX_MESSAGE_SIZE for --max-message-size) and a "
            + "key of the --config JSON file (\"max-message-size\"). Flags win over the environment, the "
            + "environment over the file. `collabhub config check` prints the result.")

    @OptionGroup var options: ServeOptions

    func run() throws {
        let resolved: ServeOptions.Resolved
        do { resolved = try options.resolve(environment: ProcessInfo.processInfo.environment) } catch {
            FileHandle.standardError.write(Data("collabhub: \(error)\n".utf8))
            throw ExitCode(2)
        }
        Log.bootstrap(format: resolved.logFormat, level: resolved.logLevel)
        let config = resolved.config
        let log = Logger(label: "collabhub")
        let server: Server
        do {
            server = try Server(config: config) { config, loops in
                let local = try SQLiteStore(directory: config.dataDirectory, durability: config.durability)
                guard let redis = resolved.redis else { return Backends(local) }
                do {
                    return try Backends.cluster(
                        redis: redis.url, tls: redis.tls, loops: loops, local: local, wait: redis.wait)
                } catch {
                    local.close()
                    throw error
                }
            }
        } catch {
            log.critical("cannot start", metadata: ["error": "\(error)"])
            FileHandle.standardError.write(Data("collabhub: \(error)\n".utf8))
            throw ExitCode(1)
        }
        server.handleSignals()
        let tls = config.tlsCertificate != nil ? " tls=on" : ""
        print(
            "collabhub listening on \(config.host):\(server.port) threads=\(config.threads)"
                + "\(config.echo ? " echo=on" : "")\(tls)")
        if server.openMode {
            print("collabhub: \(Server.openModeNotice) (configure --jwt-secret, --admin-key or API keys to close it)")
        } else if let notice = server.authNotice {
            print("collabhub: \(notice)")
        }

        fflush(stdout)
        // After the line above: scripts (and the tests) read the port from the first line of output.
        for flag in resolved.layers.secretsOnCommandLine
        where flag != "--redis" || resolved.redis?.hasCredentials == true {
            let v = ConfigLayers.variable(String(flag.dropFirst(2)))
            let why = "visible to every user of this machine (/proc/*/cmdline)"
            log.warning(
                "\(flag) on the command line is \(why); prefer \(v) or \(v)_FILE"
            )
        }
        log.info(
            "started",
            metadata: [
                "port": .stringConvertible(server.port), "open_mode": .stringConvertible(server.openMode),
                "config": .dictionary(resolved.layers.summary),
            ])
        server.run()
        log.info("stopped")
        print("collabhub stopped")
    }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Inspect the configuration.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the effective configuration of `serve` (secrets masked) and where each value came from.")
        @OptionGroup var options: ServeOptions
        func run() throws {
            do {
                print(
                    try options.resolve(environment: ProcessInfo.processInfo.environment).layers.render(),
                    terminator: "")
            } catch {
                FileHandle.standardError.write(Data("collabhub: \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
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
        @Option(help: Keys.redisHelp) var redis: String?
        @Option(help: "What the key is for.") var name: String
        @Option(help: "Requests per minute (a request may carry a batch of up to 1,000 run events).") var perMinute =
            APIKeySpec.defaultPerMinute
        @Option(help: "Requests per hour.") var perHour = APIKeySpec.defaultPerHour
        @Option(help: "Requests per calendar month.") var perMonth = APIKeySpec.defaultPerMonth
        @Option(help: "Comma-separated scopes: \(Scope.allCases.map(\.rawValue).joined(separator: ", ")).") var scopes =
            "runs:publish"
        @Option(help: "Comma-separated run ids this key may publish to (a trailing * is a prefix; default: any).")
        var runs: String?
        @Option(help: "Comma-separated run owners this key may start runs for (a trailing * is a prefix; default any).")
        var owners: String?
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
            let ownerList = owners?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard ownerList?.allSatisfy({ !$0.isEmpty && $0.unicodeScalars.count <= 128 }) ?? true else {
                throw ValidationError("--owners must hold owners of 1-128 characters")
            }
            let spec = APIKeySpec(
                name: name, perMinute: perMinute, perHour: perHour, perMonth: perMonth,
                scopes: Scope.allCases.filter(parsed.contains).map(\.rawValue), runs: runList, owners: ownerList)
            let (record, key) =
                try redis.map { try ClusterKeys.store(url: $0).createKey(spec, actor: "admin (cli)") }
                ?? SQLiteStore.createKey(directory: data, spec)
            print(
                "id:  \(record.id)\nkey: \(key)\nlimits: \(perMinute)/min, \(perHour)/h, \(perMonth)/month\n"
                    + "scopes: \(record.scopes.joined(separator: ","))"
                    + (runList.map { "\nruns: " + $0.joined(separator: ",") } ?? "")
                    + (ownerList.map { "\nowners: " + $0.joined(separator: ",") } ?? "")
            )
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")
        @Option(help: "Data directory of the hub.") var data = "./data"
        @Option(help: Keys.redisHelp) var redis: String?
        func run() throws {
            if redis == nil { try Keys.requireStore(data) }
            let keys =
                try redis.map { try ClusterKeys.store(url: $0).allKeys() } ?? SQLiteStore.listKeys(directory: data)
            if keys.isEmpty { print("no API keys in \(redis == nil ? data : "the cluster's Redis")") }
            for k in keys {
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
        @Option(help: Keys.redisHelp) var redis: String?
        @Argument(help: "Key id.") var id: String
        func run() throws {
            if redis == nil { try Keys.requireStore(data) }
            let revoked =
                try redis.map { try ClusterKeys.store(url: $0).revokeKey(id: id, actor: "admin (cli)") }
                ?? SQLiteStore.revokeKey(directory: data, id: id)
            guard revoked else {
                FileHandle.standardError.write(Data("no active key \(id)\n".utf8))
                throw ExitCode(1)
            }
            print("revoked \(id)")
        }
    }
}

extension Keys {
    static let redisHelp: ArgumentHelp =
        "A cluster's Redis (redis://HOST:PORT): the key is the cluster's, on every node at once (not --data)."
    /// Listing or revoking in a folder that holds no hub's data creates nothing: it says so.
    static func requireStore(_ data: String) throws {
        let file = URL(fileURLWithPath: data).appendingPathComponent("collabhub.sqlite").path
        guard FileManager.default.fileExists(atPath: file) else {
            FileHandle.standardError.write(
                Data("collabhub: no hub data in \(data) (no collabhub.sqlite there); give the hub's --data\n".utf8))
            throw ExitCode(1)
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
    @Option(help: "Audience (aud): the hub's --jwt-audience.") var aud: String?
    @Option(help: "Issuer (iss): the hub's --jwt-issuer.") var iss: String?
    @Option(help: "Seconds until it expires.") var ttl = 3600
    @Option(help: "A watcher token instead: comma-separated channels (run:ID, dashboard:OWNER, a trailing * a prefix).")
    var channels: String?
    func run() throws {
        let now = Int(Date().timeIntervalSince1970)
        guard ttl > 0, ttl <= 366 * 86400 else { throw ValidationError("--ttl must be 1 second to a year") }
        // What the hub would refuse is refused here, not found out later.
        guard secret.utf8.count >= 16 else {
            throw ValidationError("--secret must be at least 16 bytes (as the hub's --jwt-secret)")
        }
        guard MemberRole(rawValue: role) != nil else {
            throw ValidationError("--role must be one of \(TokenVerifier.roles.joined(separator: ", "))")
        }
        var claims: [String: Any] = ["sub": sub, "session": session, "role": role, "iat": now, "exp": now + ttl]
        if let channels {
            claims["channels"] = channels.split(separator: ",").map(String.init)
            claims["session"] = nil
        }
        if let name { claims["name"] = name }
        if let aud { claims["aud"] = aud }
        if let iss { claims["iss"] = iss }
        print(TokenVerifier.sign(claims, key: Array(secret.utf8), kid: kid))
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version and the commit it was built from.")
    func run() { print("collabhub \(Build.description)") }
}

struct Routes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the HTTP API's route table: METHOD PATH SURFACE, one route a line.",
        discussion: "SURFACE is what a request is authorized against (Protocol/PROTOCOL.md, \"Authorization\").")
    func run() { for line in RouteListing.lines { print(line) } }
}

CollabHub.main()
