import EventLoop
import Foundation
import Logging
import Hub
import WebSocket

/// What each loop's connections share: the loop, its metrics, the endpoints and the router.
final class LoopContext {
    let loop: Loop
    let config: Config
    let metrics = Metrics()
    var endpoints: [String: Endpoint] = [:] {
        didSet {
            for e in endpoints.values where !endpointList.contains(where: { $0 === e }) { endpointList.append(e) }
        }
    }
    /// Every endpoint `endpoints` has held, each once and never moved: a connection keeps its endpoint as a
    /// place in this list (`Connection.endpointSlot`, one byte, not a 16-byte reference in every connection).
    private(set) var endpointList: [Endpoint] = []
    unowned(unsafe) var router: Router!
    unowned(unsafe) var server: Server!
    var hub: LoopHub?
    /// Runs and dashboards (loop 0 only).
    var runs: RunHub?
    /// Control between the nodes of a cluster (loop 0 only; nil without one).
    var control: ClusterControl?
    var sessionPolicy: SessionPolicy { config.sessionPolicy }
    /// The protocol machine's settings, one object shared by every connection of the loop.
    lazy var machineSettings: ConnectionMachine.SharedSettings = {
        let c = config
        var settings = ConnectionMachine.Settings()
        settings.maxHeadSize = c.maxHeadSize; settings.maxBodySize = c.maxBodySize
        settings.maxMessageSize = c.maxMessageSize; settings.handshakeTimeout = c.handshakeTimeout
        settings.httpIdleTimeout = c.httpIdleTimeout; settings.pingInterval = c.pingInterval
        settings.closeTimeout = c.closeTimeout
        return ConnectionMachine.SharedSettings(settings)
    }()
    /// The per-kind message rates, one object shared by every connection's limiter on the loop.
    lazy var limiterRates = ConnectionLimiter.Rates(config.messageRates)
    /// One compressor per loop for connections without context takeover (reset per message).
    lazy var sharedDeflater: Deflater = Deflater(windowBits: 15, noContextTakeover: true)!
    /// Shared compressors for clients that asked for a smaller window (`server_max_window_bits` 9-14):
    /// at most one per size per loop, so no client can make the hub hold a compressor of its own.
    private var smallWindowDeflaters: [Int: Deflater] = [:]
    func sharedDeflater(windowBits: Int) -> Deflater {
        if windowBits >= 15 { return sharedDeflater }
        if let d = smallWindowDeflaters[windowBits] { return d }
        let d = Deflater(windowBits: windowBits, noContextTakeover: true)!
        smallWindowDeflaters[windowBits] = d
        return d
    }
    /// Runs hub callbacks on this loop; the one executor the loop's storage links are known by.
    let executor: LoopExecutor
    init(loop: Loop, config: Config) {
        self.loop = loop
        self.config = config
        executor = LoopExecutor(loop)
    }
}

/// The hub process: one libev loop per thread, each with its own SO_REUSEPORT listener.
public final class Server {
    public let config: Config
    let contexts: [LoopContext]
    private var listeners: [Listener] = []
    private var router: Router!
    var api: SessionAPI?
    public let store: Storage
    /// What `store` is made of, and whether a shared log (cluster) is among it.
    public let backends: Backends
    let directory: SessionDirectory
    /// Reads that wake sessions up and refresh the API key table: a thread of their own, so a long
    /// export or replay load on the API worker never delays a join.
    let wakeups = Worker(name: "session-wakeups")
    /// Catch-up pages and the point reads of chat changes: their own thread, so that a crowd resuming
    /// from far back never delays a session's wake-up.
    let historyReads = Worker(name: "history-reads")
    /// Name resolution for webhook deliveries (a slow DNS server must not delay anything else).
    let webhookResolvers = (0..<4).map { Worker(name: "webhook-dns-\($0)") }
    /// Delivers the webhook outbox (loop 0).
    var webhooks: WebhookEngine?
    /// Open WebSocket connections per client address, across loops.
    let addresses = AddressCounts()
    /// Transcript exports streaming per client address, across loops.
    let exports = AddressCounts()
    /// Authentication failures, aggregated for the activity log.
    let authFailures = AuthFailures()
    let accessRefusals = AuthFailures(action: "access_refused")
    /// Set when the hub runs closed (decided at start; a closing cluster sets it later): never unset.
    let closedLatch = Latch()
    /// Host, Origin and Content-Type rules (cross-site safety), from the configuration.
    let siteGate: SiteGate
    /// Said on start-up about the authorization mode (a closed hub with no credential yet).
    public let authNotice: String?
    private var signals: [Loop.Signal] = []
    private var housekeeping: [Loop.Timer] = []
    let log = Logger(label: "collabhub")
    /// Floods (auth refusals, slow consumers cut) are logged as one line per kind and minute.
    let logSummary: LogSummary
    private var retentionTimer: Loop.Timer?
    private var idleSweep: Loop.Timer?
    private var threads: [Thread] = []
    private let stopLock = NSLock()
    private var stopping = false
    /// The port actually bound (differs from `config.port` when that was 0).
    public private(set) var port = 0
    /// Called (on loop 0) when shutdown completes.
    public var onStopped: (() -> Void)?

    /// `openStorage` opens one backend for every port (SQLite; `MemoryStorage` in tests).
    public convenience init(config: Config, openStorage: (Config) throws -> Storage) throws {
        try self.init(config: config) { config, _ in Backends(try openStorage(config)) }
    }

    /// `openBackends` puts the node's storage together (`collabhub serve`: SQLite, with Redis's shared
    /// ports under `--redis`), given each loop and the executor that runs work on it. It runs after the
    /// configuration is checked, so a failed start-up has no storage thread to stop.
    public init(config: Config, openBackends: (Config, [(executor: Executor, loop: Loop)]) throws -> Backends) throws {
        self.config = config
        siteGate = SiteGate(config: config)
        logSummary = LogSummary(interval: config.logSummaryInterval, now: Date().timeIntervalSince1970)
        authFailures.summary = logSummary
        accessRefusals.summary = logSummary
        authFailures.ipv6Prefix = config.ipv6Prefix
        accessRefusals.ipv6Prefix = config.ipv6Prefix
        ignoreSIGPIPE()
        raiseFileLimit()
        // Configuration that can fail is checked before any thread (the store's writer) starts, so a
        // failed start-up exits cleanly.
        var tls: TLSContext?
        if let cert = config.tlsCertificate, let key = config.tlsKey {
            do { tls = try TLSContext(certificate: cert, key: key) } catch {
                throw ListenError(description: "\(error)")
            }
            tls?.onPath = TLSPathLog.reporter(log)
        } else if config.tlsCertificate != nil || config.tlsKey != nil {
            throw ListenError(description: "TLS needs both --tls-cert and --tls-key")
        }
        try Listener.ensureAvailable(host: config.host, port: config.port)
        let count = max(1, config.threads)
        contexts = (0..<count).map { LoopContext(loop: Loop(index: $0, useDefaultLoop: $0 == 0), config: config) }
        do {
            backends = try openBackends(config, contexts.map { ($0.executor, $0.loop) })
            store = NodeStorage(backends)
        } catch {
            throw ListenError(description: "cannot open the transcript store in \(config.dataDirectory): \(error)")
        }
        let existing = ((try? store.sessions()) ?? []).map(\.0)
        let auth: (open: Bool, notice: String?)
        do {
            auth = try Self.decideAuth(
                config: config, store: store, shared: backends.shared, sessionsStored: !existing.isEmpty)
        } catch {
            store.close()
            throw error
        }
        authNotice = auth.notice
        directory = SessionDirectory(codeLength: config.codeLength, existing: existing)
        router = Router(server: self)
        let echo = config.echo ? EchoEndpoint(allowedOrigins: config.allowedOrigins) : nil
        for context in contexts {
            context.router = router
            context.server = self
            let hub = LoopHub(
                context: context, directory: directory, store: store, shared: backends.shared, roster: backends.roster)
            context.hub = hub
            // Origins are SiteGate's to decide (the hub's own plus --allowed-origins), not the handshake's.
            context.endpoints["/ws"] = HubEndpoint(hub: hub, allowedOrigins: nil)
            if let echo { context.endpoints["/echo"] = echo }
        }
        if let shared = backends.shared, let hub0 = contexts[0].hub {
            // Rows other nodes save (created, changed, ended there) keep this node's directory current.
            shared.followDirectory(executor: hub0.executor) { [weak self, directory] info in
                let kept = directory.learn(info)
                // A live session here takes the new settings (guest policy, event policy, title).
                guard let self else { return }
                let owner = self.contexts[SessionCode.owner(of: kept.code, loops: self.contexts.count)]
                owner.loop.post { owner.hub?.updateInfo(kept) }
            }
        }
        if let accounting = store.accounting, let hub0 = contexts[0].hub {
            // A key made or revoked on any node: read at once (a revocation holds everywhere within it).
            accounting.followKeyChanges(executor: hub0.executor) { [weak self] in self?.api?.keys.refreshNow {} }
        }
        let runHub = RunHub(context: contexts[0], store: store, shared: backends.runs)
        contexts[0].runs = runHub
        if let control = backends.control {
            contexts[0].control = ClusterControl(context: contexts[0], control: control, runs: runHub)
        }
        do {
            webhooks = try WebhookEngine(
                context: contexts[0], store: store, resolvers: webhookResolvers,
                allowPrivate: config.webhookAllowPrivate,
                disableAfter: config.webhookDisableAfter, caFile: config.webhookCAFile)
        } catch {
            store.close()
            throw ListenError(description: "webhooks: \(error)")
        }
        webhooks?.load()
        api = SessionAPI(
            config: config, directory: directory, store: store, shared: backends.shared, loops: contexts,
            webhooks: webhooks, exports: exports, closed: closedLatch, log: log)
        // The delivery log: up to 5,000 old rows every 5 s (the delete rides with a group commit).
        let logKept = config.webhookLogDays * 86_400_000
        let trim = Loop.Timer(loop: contexts[0].loop, after: 5, repeat: 5) { [store] in
            store.trimDeliveryLog(before: Int64(Date().timeIntervalSince1970 * 1000 - logKept), limit: 5000)
        }
        trim.unref()
        housekeeping.append(trim)
        let every = min(5, config.logSummaryInterval)
        let summaries = Loop.Timer(loop: contexts[0].loop, after: every, repeat: every) { [logSummary] in
            logSummary.flush(now: Date().timeIntervalSince1970)
        }
        summaries.unref()
        housekeeping.append(summaries)
        let watch = WatchEndpoint(runs: runHub, allowedOrigins: nil)
        let publish = PublishEndpoint(runs: runHub)
        for context in contexts {
            // Registered everywhere so the upgrade is recognised; the socket is handed to loop 0 first.
            context.endpoints["/watch"] = watch
            context.endpoints["/publish"] = publish  // the admin key or an API key with runs:publish
        }
        if !auth.open { closedLatch.set() }
        if let shared = backends.shared, openMode {
            // The cluster's mode is the cluster's: a node that closes it closes this one within seconds.
            let check = Loop.Timer(loop: contexts[0].loop, after: 2, repeat: 2) { [unowned self] in
                guard openMode else { return }
                // A full queue skips one check; the next comes in 2 s.
                _ = wakeups.submit { [weak self] in
                    guard (try? shared.authMode(claim: nil)) == "closed", let self, openMode else { return }
                    closedLatch.set()
                    log.warning("the cluster was closed by another node: this node is closed now")
                }
            }
            check.unref()
            housekeeping.append(check)
        }
        var port = config.port
        // Binding can still fail (address in use): then stop the store's writer before giving up.
        defer { if listeners.count < contexts.count { store.close() } }
        for context in contexts {
            let listener = try Listener(loop: context.loop, host: config.host, port: port) {
                [unowned context] loop, fd, peer in
                let c = Connection(context: context, fd: fd, peer: peer)
                if let tls { c.enableTLS(tls) }
                c.start()
            }
            listener.congestionControl = config.tcpCongestion
            port = listener.port
            listeners.append(listener)
        }
        self.port = port
        let ttl = config.sessionIdleTTL
        idleSweep = Loop.Timer(loop: contexts[0].loop, after: min(ttl / 4, 60), repeat: min(ttl / 4, 60)) {
            [unowned self] in
            let idle = self.directory.idle(ttl: ttl, now: Date().timeIntervalSince1970)
            guard let shared = self.backends.shared else {
                for code in idle {
                    let owner = self.contexts[SessionCode.owner(of: code, loops: self.contexts.count)]
                    owner.loop.post { owner.hub?.endIfIdle(code, ttl: ttl) }
                }
                return
            }
            // Idle here may be busy on another node: its last commit in the shared log says.
            guard !idle.isEmpty else { return }
            // Refused when the queue is full: the next sweep looks again.
            _ = self.wakeups.submit { [unowned self] in
                for code in idle {
                    guard let last = try? shared.lastActivity(session: code) else { continue }
                    let seconds = Double(last) / 1000
                    if Date().timeIntervalSince1970 - seconds < ttl {
                        self.directory.touch(code, at: seconds)
                        continue
                    }
                    let owner = self.contexts[SessionCode.owner(of: code, loops: self.contexts.count)]
                    owner.loop.post { owner.hub?.endIfIdle(code, ttl: ttl) }
                }
            }
        }
        idleSweep?.unref()
        let keyRefresh = Loop.Timer(
            loop: contexts[0].loop, after: config.keyRefreshInterval,
            repeat: config.keyRefreshInterval
        ) { [unowned self] in
            self.api?.keys.refreshIfDue()
        }
        keyRefresh.unref()
        housekeeping.append(keyRefresh)
        if config.retention.isEnabled {
            let store = self.store, policy = config.retention
            retentionTimer = Loop.Timer(
                loop: contexts[0].loop, after: config.retentionInterval, repeat: config.retentionInterval
            ) {
                store.enforce(policy)
            }
            retentionTimer?.unref()
        }
        for context in contexts {
            let loop = context.loop
            var expected = loop.now + 0.25
            let tick = Loop.Timer(loop: loop, after: 0.25, repeat: 0.25) { [unowned context] in
                let lag = max(0, ev_time_now() - expected)
                context.metrics.loopLagMicros.set(Int(lag * 1e6))
                expected = ev_time_now() + 0.25
            }
            tick.unref()
            housekeeping.append(tick)
        }
    }

    /// Installs SIGINT/SIGTERM handlers that shut down gracefully (call before `run`).
    public func handleSignals() {
        let loop0 = contexts[0].loop
        for sig in [SIGINT, SIGTERM] {
            signals.append(Loop.Signal(loop: loop0, signal: sig) { [unowned self] in self.shutdown() })
        }
        // SIGHUP: read the key files and the JWKS again (rotation without a restart). A file that cannot
        // be used keeps the keys as they were.
        signals.append(
            Loop.Signal(loop: loop0, signal: SIGHUP) { [unowned self] in
                let sources = self.config.tokenKeySources
                do {
                    let keys = try sources.load()
                    self.config.sessionPolicy.tokens.keyring.replace(keys)
                    self.log.info(
                        "token keys reloaded", metadata: ["kids": .array(keys.keys.sorted().map { .string($0) })])
                } catch {
                    self.log.error("token keys not reloaded", metadata: ["error": .string("\(error)")])
                }
            })
    }

    /// Runs every loop; loop 0 on the calling thread. Returns after `shutdown()` completes.
    public func run() {
        // Keep every loop alive even with no connections until shutdown. Created before the threads
        // start: a libev loop may only be touched by its own thread once it runs.
        keepAlive = contexts.map { context in Loop.Timer(loop: context.loop, after: 1e9) {} }
        for context in contexts.dropFirst() {
            let t = Thread { context.loop.run() }
            t.name = "loop-\(context.loop.index)"
            t.stackSize = 1 << 20
            threads.append(t)
            t.start()
        }
        contexts[0].loop.run()
        while threads.contains(where: { $0.isExecuting }) { usleep(1000) }
        // Every loop is stopped: commit what is queued and close the store.
        api?.worker.stop()
        api?.transcriptReads.stop()
        wakeups.stop()
        historyReads.stop()
        api?.keys.stop()
        for w in webhookResolvers { w.stop() }
        store.close()
    }
    private var keepAlive: [Loop.Timer] = []

    /// Graceful shutdown: stop accepting, send every WebSocket client 1001, close plain HTTP
    /// connections, and stop each loop once its connections are gone or `shutdownTimeout` passed.
    /// Safe to call from any thread, any number of times.
    public func shutdown() {
        stopLock.lock()
        if stopping { stopLock.unlock(); return }
        stopping = true
        stopLock.unlock()
        logSummary.flush(now: Date().timeIntervalSince1970, force: true)
        let remaining = Remaining(contexts.count)
        for (i, context) in contexts.enumerated() {
            let listener = listeners[i]
            context.loop.post { [self] in
                listener.stop()
                for stream in Array(context.loop.streams.values) {
                    guard let c = stream as? Connection else { stream.close(); continue }
                    if c.phase == .websocket {
                        c.sendClose(.goingAway, reason: "server shutting down")
                    } else {
                        c.closeAfterFlush(lingerSeconds: 0.5)
                    }
                }
                let deadline = context.loop.now + config.shutdownTimeout
                var poll: Loop.Timer?
                let finish = { [self] in
                    poll?.cancel()
                    for s in Array(context.loop.streams.values) { s.close() }
                    self.keepAlive[i].cancel()
                    if remaining.done() { self.onStopped?() }
                    if i == 0 {
                        // Loop 0 waits for the others, so the process exits only when all are done.
                        while !remaining.allDone { usleep(1000) }
                    }
                    context.loop.stop()
                }
                if context.loop.streams.isEmpty { finish(); return }
                poll = Loop.Timer(loop: context.loop, after: 0.01, repeat: 0.01) {
                    if context.loop.streams.isEmpty || context.loop.now >= deadline { finish() }
                }
            }
        }
    }

    func renderMetrics() -> String {
        return Metrics.render(
            contexts.map(\.metrics), loops: contexts.map(\.loop), refusals: authFailures.refusalsByReason,
            extra: store.gauges.map { ($0.name, $0.help, $0.value) } + [
                ("threads", "Event loop threads.", contexts.count),
                // Maps keyed by what clients send, each bounded (Protocol/LIMITS.md).
                (
                    "watch_channels", "Run and dashboard channels with at least one watcher.",
                    contexts[0].runs?.board.trackedChannels ?? 0
                ),
                (
                    "run_publishers", "Runs with a connected publisher socket.",
                    contexts[0].runs?.board.trackedPublishers ?? 0
                ),
                ("api_keys", "API keys held in memory (revoked ones included).", api?.keys.count ?? 0),
                (
                    "failed_join_addresses", "Addresses with failed joins in the last minute (at most 100,000).",
                    directory.failedJoinAddresses
                ),
                ("address_connection_entries", "Client addresses with open connections.", addresses.count),
                ("export_addresses", "Client addresses with transcript exports streaming.", exports.count),
                // Worker queues (each bounded: past it, 503 busy / storage_unavailable).
                ("api_reads_queued", "API and admin reads waiting for the api-reads worker.", api?.worker.queued ?? 0),
                (
                    "transcript_reads_queued", "Replay and export reads waiting for the transcript worker.",
                    api?.transcriptReads.queued ?? 0
                ),
                ("heap_bytes", "Bytes allocated on the heap and not freed (glibc mallinfo2).", Metrics.heapBytes),
            ]) + (webhooks?.stats.render() ?? "")
    }
}

/// Counts loops that finished shutting down.
private final class Remaining: @unchecked Sendable {
    private let lock = NSLock()
    private var left: Int
    init(_ n: Int) { left = n }
    func done() -> Bool { lock.lock(); defer { lock.unlock() }; left -= 1; return left == 0 }
    var allDone: Bool { lock.lock(); defer { lock.unlock() }; return left <= 0 }
}

@inline(__always) func ev_time_now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Connections per client address (`AddressKey`), shared by the loops (changes only at accept and close).
final class AddressCounts: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: Int] = [:]
    func open(_ address: String, limit: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        let n = counts[address, default: 0]
        guard n < limit else { return false }
        counts[address] = n + 1
        return true
    }
    var count: Int { lock.lock(); defer { lock.unlock() }; return counts.count }
    func close(_ address: String) {
        lock.lock(); defer { lock.unlock() }
        if let n = counts[address] { counts[address] = n > 1 ? n - 1 : nil }
    }
}
