import CHiredis
import EventLoop
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// One hiredis async connection, driven by a libev loop through hiredis's libev adapter; used only
/// on that loop's thread. It connects (AUTH, SELECT, the `setup` commands such as SCRIPT LOAD, then a
/// PING that marks it ready), and after a failure or a lost connection reconnects with exponential
/// backoff (50 ms doubling to 2 s). While it is down every command fails at once with `.error`: the
/// caller refuses, it does not queue. A reply that takes longer than `replyTimeout` drops the
/// connection (hiredis has no timeouts of its own; TCP keepalive covers an idle one). It connects to
/// the address `RedisAddress` found, never to a name: a reconnect resolves the host again on a worker
/// thread first, so no DNS query ever blocks the loop.
///
/// A subscriber connection subscribes its channels again after each reconnect, reports each
/// subscription once Redis confirmed it (`onSubscribed`), and sends a channel's SUBSCRIBE again only
/// after the confirmation of an UNSUBSCRIBE still on its way (hiredis drops the channel's callback when
/// that confirmation arrives).
final class RedisConnection {
    let loop: Loop
    let url: RedisURL
    let address: RedisAddress
    let name: String
    /// The loop's thread (where `start` runs): the host is never resolved on it.
    private var loopThread = pthread_self()
    /// The address of the last connection attempt.
    private var connectingTo = ""
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private(set) var ready = false
    /// Until the first connection is made, commands wait in hiredis's buffer (a link is made on first
    /// use); after that, a connection that is down refuses at once.
    private var everReady = false
    private var backoff = 0.05
    private var retry: Loop.Timer?
    private var watchdog: Loop.Timer?
    /// Commands sent on every (re)connection before it is ready.
    var setup: [[[UInt8]]] = []
    /// Subscriber connections: a message on a subscribed channel.
    var onMessage: ((_ channel: [UInt8], _ payload: [UInt8]) -> Void)?
    /// Subscriber connections: Redis confirmed a subscription.
    var onSubscribed: ((_ channel: [UInt8]) -> Void)?
    private var channels: Set<[UInt8]> = []
    /// UNSUBSCRIBEs sent and not yet confirmed.
    private var leaving: Set<[UInt8]> = []
    /// Commands sent and not yet answered, and their bytes: what this node makes hiredis hold.
    private(set) var pending = 0
    private(set) var pendingBytes = 0
    /// Watchdog ticks (1 s apart) in a row with replies pending and none arriving.
    private var stalledTicks = 0
    private var progressed = false
    /// Past this, commands are refused at once (Redis is not keeping up): a durable message gets
    /// `storage_unavailable`, relayed ephemeral traffic is dropped (`LoopLink.publish`). Small on
    /// purpose: hiredis 0.14 moves the rest of its output buffer after every partial write, so a
    /// deep queue costs time quadratic in its size (measured: with 64 MiB allowed, an overloaded
    /// three-node run fell from 7,300 to 580 acknowledged messages/s).
    static let maxPendingBytes = 1 << 20
    static let replyTimeout = 3.0
    private let log = Logger(label: "collabhub.redis")
    private var loggedDown = false

    init(loop: Loop, url: RedisURL, address: RedisAddress, name: String) {
        self.loop = loop
        self.url = url
        self.address = address
        self.name = name
    }

    func start() {
        loopThread = pthread_self()
        connect(to: address.current)
        watchdog = Loop.Timer(loop: loop, after: 1, repeat: 1) { [unowned self] in self.checkProgress() }
        watchdog?.unref()
    }

    private func connect(to host: String) {
        retry = nil
        connectingTo = host
        guard let ac = redisAsyncConnect(host, Int32(url.port)) else { return scheduleReconnect("out of memory") }
        if ac.pointee.err != 0 {
            let why = String(cString: chub_redis_errstr(ac))
            redisAsyncFree(ac)
            address.failed(host)
            return scheduleReconnect(why)
        }
        chub_redis_set_data(ac, Unmanaged.passUnretained(self).toOpaque())
        _ = chub_redis_attach(UnsafeMutableRawPointer(loop.raw), ac)
        _ = chub_redis_keepalive(ac)
        _ = chub_redis_on_connect(ac) { ac, status in
            guard let ac, let me = chub_redis_data(ac) else { return }
            let conn = Unmanaged<RedisConnection>.fromOpaque(me).takeUnretainedValue()
            if status != REDIS_OK { conn.lost(String(cString: chub_redis_errstr(ac))) }
        }
        _ = chub_redis_on_disconnect(ac) { ac, _ in
            guard let ac, let me = chub_redis_data(ac) else { return }
            Unmanaged<RedisConnection>.fromOpaque(me).takeUnretainedValue().lost(String(cString: chub_redis_errstr(ac)))
        }
        context = ac
        leaving.removeAll()
        if let password = url.password {
            let auth: [[UInt8]] = url.user.map { .command("AUTH", $0, password) } ?? .command("AUTH", password)
            raw(auth) { _ in }
        }
        if url.db != 0 { raw(.command("SELECT", url.db)) { _ in } }
        for command in setup { raw(command) { _ in } }
        raw(.command("PING")) { [unowned self] reply in
            guard case .status = reply else {
                // A failed connection attempt is logged once, as down; a refusal (AUTH, SELECT) here.
                if reply.errorMessage?.hasPrefix("CONNECTION") == true { return }
                self.log.warning(
                    "redis refused the connection", metadata: ["link": "\(self.name)", "reply": "\(reply)"])
                if let ac = self.context { redisAsyncDisconnect(ac) }
                return
            }
            self.ready = true
            self.everReady = true
            self.backoff = 0.05
            if self.loggedDown {
                self.loggedDown = false
                self.log.notice("redis connection back", metadata: ["link": "\(self.name)"])
            }
            if !self.channels.isEmpty { self.sendSubscribe(Array(self.channels)) }
        }
    }

    /// The connection failed or closed: hiredis frees the context after this callback and calls every
    /// pending command's callback with no reply (each gets `.error`).
    private func lost(_ why: String) {
        // Never answered: the host's next address is tried.
        if !ready { address.failed(connectingTo) }
        context = nil
        ready = false
        scheduleReconnect(why)
    }

    private func scheduleReconnect(_ why: String) {
        if !loggedDown {
            loggedDown = true
            log.warning("redis connection down", metadata: ["link": "\(name)", "error": "\(why)"])
        }
        guard retry == nil else { return }
        let delay = backoff
        backoff = min(backoff * 2, 2)
        // `retry` stays set while the name is resolved: no second attempt is scheduled meanwhile.
        retry = Loop.Timer(loop: loop, after: delay) { [unowned self] in
            let loop = self.loop
            self.address.refresh(forbidden: self.loopThread) { [unowned self] host in
                loop.post { self.connect(to: host) }
            }
        }
    }

    /// A Redis that stopped answering (a partition, a host that died) is given up on.
    private func checkProgress() {
        defer { progressed = false }
        guard pending > 0, !progressed, let ac = context else {
            stalledTicks = 0
            return
        }
        stalledTicks += 1
        guard stalledTicks >= Int(Self.replyTimeout) else { return }
        stalledTicks = 0
        log.warning("redis did not answer in time", metadata: ["link": "\(name)", "pending": "\(pending)"])
        chub_redis_abort(ac)
    }

    /// Sends a command; `reply` runs on this loop with the reply, or `.error` if the connection is
    /// not ready or is lost before the reply.
    func send(_ args: [[UInt8]], priority: Bool = false, _ reply: @escaping (RedisReply) -> Void) {
        guard ready || !everReady else { return reply(.error("CONNECTION redis is unavailable")) }
        // Heartbeats are never refused for load: a busy node is not a dead one.
        guard priority || pendingBytes < Self.maxPendingBytes else {
            return reply(.error("BUSY redis is not keeping up"))
        }
        raw(args, reply)
    }

    private func raw(_ args: [[UInt8]], _ reply: @escaping (RedisReply) -> Void) {
        guard let ac = context else { return reply(.error("CONNECTION redis is unavailable")) }
        let size = args.reduce(16) { $0 + $1.count + 16 }
        if pending == 0 { progressed = true }
        pending += 1
        pendingBytes += size
        let box = Unmanaged.passRetained(
            ReplyBox { [unowned self] r in
                self.pending -= 1
                self.pendingBytes -= size
                self.progressed = true
                reply(r)
            }
        ).toOpaque()
        let status = withArgv(args) { argc, argv, lens in
            chub_redis_command(
                ac,
                { _, r, priv in
                    guard let priv else { return }
                    let box = Unmanaged<ReplyBox>.fromOpaque(priv).takeRetainedValue()
                    if let r {
                        box.body(RedisReply(r.assumingMemoryBound(to: redisReply.self)))
                    } else {
                        box.body(.error("CONNECTION lost before the reply"))
                    }
                }, box, argc, argv, lens)
        }
        if status != REDIS_OK {
            Unmanaged<ReplyBox>.fromOpaque(box).takeRetainedValue().body(.error("CONNECTION redis is unavailable"))
        }
    }

    /// Subscribes (and keeps the channels to resubscribe after a reconnect).
    func subscribe(_ channel: [UInt8]) {
        guard channels.insert(channel).inserted else { return }
        // Sent when the UNSUBSCRIBE on its way is confirmed (`subscriptionEvent`).
        if ready && !leaving.contains(channel) { sendSubscribe([channel]) }
    }

    func unsubscribe(_ channel: [UInt8]) {
        guard channels.remove(channel) != nil, ready, let ac = context, !leaving.contains(channel) else { return }
        leaving.insert(channel)
        _ = withArgv([Array("UNSUBSCRIBE".utf8), channel]) { argc, argv, lens in
            chub_redis_command(ac, nil, nil, argc, argv, lens)
        }
    }

    private func sendSubscribe(_ list: [[UInt8]]) {
        guard let ac = context, !list.isEmpty else { return }
        _ = withArgv([Array("SUBSCRIBE".utf8)] + list) { argc, argv, lens in
            chub_redis_command(
                ac,
                { ac, r, _ in
                    guard let ac, let r, let me = chub_redis_data(ac) else { return }
                    let conn = Unmanaged<RedisConnection>.fromOpaque(me).takeUnretainedValue()
                    conn.subscriptionEvent(RedisReply(r.assumingMemoryBound(to: redisReply.self)))
                }, nil, argc, argv, lens)
        }
    }

    private func subscriptionEvent(_ reply: RedisReply) {
        let items = reply.items
        guard items.count == 3, let kind = items[0].text, let channel = items[1].bytes else { return }
        switch kind {
        case "message": if let payload = items[2].bytes { onMessage?(channel, payload) }
        case "subscribe": onSubscribed?(channel)
        case "unsubscribe":
            leaving.remove(channel)
            if channels.contains(channel) { sendSubscribe([channel]) }
        default: break
        }
    }
}

private final class ReplyBox {
    let body: (RedisReply) -> Void
    init(_ body: @escaping (RedisReply) -> Void) { self.body = body }
}
