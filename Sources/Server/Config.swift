import Hub
import WebSocket

/// Everything `collabhub serve` can be told. Defaults are small and safe; the reason is beside each.
public struct Config: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// One libev loop per thread; the default is one per core.
    public var threads = 1
    public var dataDirectory = "./data"
    /// Enables `/echo`, the conformance-test endpoint.
    public var echo = false
    /// 1 MiB: far above any chat or cursor message, small enough that 1,000 clients cannot pin a GiB.
    public var maxMessageSize = 1 << 20
    /// 8 KiB, like nginx and Node: real handshakes are under 1 KiB.
    public var maxHeadSize = 8 * 1024
    /// 1 MiB for HTTP API bodies (run event batches).
    public var maxBodySize = 1 << 20
    /// A handshake (or HTTP request) must complete within this; slowloris defence.
    public var handshakeTimeout = 10.0
    /// Idle keep-alive HTTP connections are closed after this.
    public var httpIdleTimeout = 30.0
    /// A WebSocket silent this long is pinged; one silent for another interval after the ping is dropped.
    public var pingInterval = 30.0
    /// How long to wait for the peer's close frame (and then its FIN) after we sent ours.
    public var closeTimeout = 5.0
    /// Graceful shutdown waits at most this long for clients to complete the close handshake.
    public var shutdownTimeout = 5.0
    /// Browser origins allowed to open WebSockets and send API writes; nil: the hub's own only (the
    /// origin whose host is the request's `Host`, or `publicURL`'s). `["*"]` allows any.
    public var allowedOrigins: [String]? = nil
    /// Output queued for one client beyond which ephemeral updates (cursors, typing) are dropped.
    public var softOutputLimit = 256 * 1024
    /// Output queued for one client beyond which it is disconnected with 4000 (it can resume).
    public var hardOutputLimit = 4 * 1024 * 1024

    /// Participants per session unless the creator says otherwise (10, per the product spec).
    public var maxParticipants = 10
    /// Session code length (>= 6).
    public var codeLength = 8
    /// Until tokens exist (the auth issue), anyone with the code may join.
    public var defaultGuestPolicy = GuestPolicy.allow
    public var durability = Durability.normal
    public var sessionPolicy = SessionPolicy()
    /// TCP congestion control for client sockets (e.g. "cubic"); nil keeps the system default.
    public var tcpCongestion: String?
    /// The key backends present to publish run events (HTTP X-API-Key / Bearer, or /publish?key=).
    /// Until API keys exist (the auth issue), one shared key; nil disables publishing.
    public var adminKey: String?
    /// Whether anyone who reaches the port may do everything (`--auth`): decided once at start
    /// (`Server.decideAuth`), never by keys coming and going.
    public var authMode = AuthMode.auto
    /// Host names (with `:port` if any) requests may name: the defence against DNS rebinding. Empty:
    /// derived (`--public-url`'s host, the loopback names when bound to loopback, else any).
    public var allowedHosts: [String] = []
    /// The hub's own origin as browsers see it (`https://chat.example.com`), when behind a proxy.
    public var publicURL: String?
    /// Browser apps on these origins may call the HTTP API (CORS: preflights answered, answers readable);
    /// their API writes pass the Origin check too.
    public var corsOrigins: [String] = []
    /// Peers whose `X-Forwarded-For` names the client in the activity log (nobody else's is believed).
    public var trustedProxies: Set<String> = []
    /// Where the token keys in `sessionPolicy.tokens` came from (read again on SIGHUP).
    public var tokenKeySources = TokenKeySources()
    /// PEM certificate chain and key: serve wss:// and https:// instead of ws:// and http://.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// permessage-deflate: off, shared (no server context takeover: compress a broadcast once) or context.
    public var compression = CompressionMode.shared
    /// Message rates per connection by kind.
    public var messageRates = MessageRates()
    /// WebSocket connections allowed per client address (0: no limit).
    public var maxConnectionsPerAddress = 1000
    /// IPv6 clients are counted per network of this many bits (`AddressKey`): a /64 is what one
    /// subscriber is usually given. 128: per address.
    public var ipv6Prefix = 64
    /// A session with no members for this long ends ("idle"); members are told why.
    public var sessionIdleTTL = 24 * 3600.0
    /// Transcript retention (off by default: keep everything).
    public var retention = RetentionPolicy()
    /// How often retention runs.
    public var retentionInterval = 60.0
    /// Seconds between reads of the API key table: keys made by `collabhub keys` in another process
    /// work (and revoked ones stop) within this time; keys changed through the API do at once.
    public var keyRefreshInterval = 5.0
    /// Webhooks may go to loopback and private networks (otherwise refused: SSRF).
    public var webhookAllowPrivate = false
    /// A webhook endpoint with no successful delivery for this long is disabled (and the activity log
    /// says so). A day: long enough to ride out a receiver's outage, short enough not to retry forever.
    public var webhookDisableAfter = 86_400.0
    /// PEM bundle of the certificate authorities webhook receivers' certificates are checked against
    /// (nil: the system's).
    public var webhookCAFile: String?
    /// Delivered and failed webhook deliveries are kept this long (the delivery log), then deleted.
    public var webhookLogDays = 7.0
    /// Floods (auth refusals, slow consumers cut) are logged as one line per kind per this many seconds.
    public var logSummaryInterval = 60.0

    public init() {}
}

/// `--auth`: `auto` opens the hub only on loopback with no credential ever configured; `open` says so
/// outright; `required` refuses to start without a credential.
public enum AuthMode: String, Sendable { case auto, open, required }
