import CHiredis
import EventLoop
import Logging

/// One hiredis async connection, driven by a libev loop through hiredis's libev adapter; used only
/// on that loop's thread. It connects (AUTH, SELECT, then a PING that marks it ready), and after a
/// failure or a lost connection reconnects with exponential backoff (50 ms doubling to 2 s). While it
/// is not ready every command fails at once with `.error`: the caller refuses, it does not queue.
/// A subscriber connection resubscribes its channels after each reconnect.
final class RedisConnection {
    let loop: Loop
    let url: RedisURL
    let name: String
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private(set) var ready = false
    /// Until the first connection is made, commands wait in hiredis's buffer (a link is made on first
    /// use); after that, a connection that is down refuses at once.
    private var everReady = false
    private var backoff = 0.05
    private var retry: Loop.Timer?
    /// Runs each time the connection becomes ready (first connect and every reconnect).
    var onReady: (() -> Void)?
    /// Subscriber connections: a message on a subscribed channel.
    var onMessage: ((_ channel: [UInt8], _ payload: [UInt8]) -> Void)?
    private var channels: Set<[UInt8]> = []
    private let log = Logger(label: "collabhub.redis")
    private var loggedDown = false

    init(loop: Loop, url: RedisURL, name: String) {
        self.loop = loop
        self.url = url
        self.name = name
    }

    func start() { connect() }

    private func connect() {
        retry = nil
        guard let ac = redisAsyncConnect(url.host, Int32(url.port)) else { return scheduleReconnect("out of memory") }
        if ac.pointee.err != 0 {
            let why = String(cString: chub_redis_errstr(ac))
            redisAsyncFree(ac)
            return scheduleReconnect(why)
        }
        chub_redis_set_data(ac, Unmanaged.passUnretained(self).toOpaque())
        _ = chub_redis_attach(UnsafeMutableRawPointer(loop.raw), ac)
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
        if let password = url.password {
            raw(url.user.map { [.command("AUTH", $0, password)][0] } ?? .command("AUTH", password)) { _ in }
        }
        if url.db != 0 { raw(.command("SELECT", url.db)) { _ in } }
        raw(.command("PING")) { [unowned self] reply in
            guard case .status = reply else {
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
            if !self.channels.isEmpty { self.subscribe(Array(self.channels)) }
            self.onReady?()
        }
    }

    /// The connection failed or closed: hiredis frees the context after this callback and calls every
    /// pending command's callback with no reply (each gets `.error`).
    private func lost(_ why: String) {
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
        retry = Loop.Timer(loop: loop, after: delay) { [unowned self] in self.connect() }
    }

    /// Sends a command; `reply` runs on this loop with the reply, or `.error` if the connection is
    /// not ready or is lost before the reply.
    func send(_ args: [[UInt8]], _ reply: @escaping (RedisReply) -> Void) {
        guard ready || !everReady else { return reply(.error("CONNECTION redis is unavailable")) }
        raw(args, reply)
    }

    private func raw(_ args: [[UInt8]], _ reply: @escaping (RedisReply) -> Void) {
        guard let ac = context else { return reply(.error("CONNECTION redis is unavailable")) }
        let box = Unmanaged.passRetained(ReplyBox(reply)).toOpaque()
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
            Unmanaged<ReplyBox>.fromOpaque(box).release()
            reply(.error("CONNECTION redis is unavailable"))
        }
    }

    /// Subscribes (and keeps the channels to resubscribe after a reconnect). Messages go to `onMessage`.
    func subscribe(_ list: [[UInt8]]) {
        for c in list { channels.insert(c) }
        guard ready, let ac = context, !list.isEmpty else { return }
        _ = withArgv([Array("SUBSCRIBE".utf8)] + list) { argc, argv, lens in
            chub_redis_command(
                ac,
                { ac, r, _ in
                    guard let ac, let r, let me = chub_redis_data(ac) else { return }
                    let conn = Unmanaged<RedisConnection>.fromOpaque(me).takeUnretainedValue()
                    let reply = RedisReply(r.assumingMemoryBound(to: redisReply.self))
                    let items = reply.items
                    guard items.count == 3, items[0].text == "message", let channel = items[1].bytes,
                        let payload = items[2].bytes
                    else { return }
                    conn.onMessage?(channel, payload)
                }, nil, argc, argv, lens)
        }
    }

    func unsubscribe(_ channel: [UInt8]) {
        guard channels.remove(channel) != nil, ready, let ac = context else { return }
        _ = withArgv([Array("UNSUBSCRIBE".utf8), channel]) { argc, argv, lens in
            chub_redis_command(ac, nil, nil, argc, argv, lens)
        }
    }
}

private final class ReplyBox {
    let body: (RedisReply) -> Void
    init(_ body: @escaping (RedisReply) -> Void) { self.body = body }
}
