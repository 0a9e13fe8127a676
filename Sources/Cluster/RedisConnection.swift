import EventLoop
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// One Redis connection of a libev loop, speaking RESP (`RESPParser`, `RESPCommand`) on the loop's own
/// sockets, plain or TLS (`rediss://`); used only on that loop's thread. It connects (AUTH, SELECT, the
/// `setup` commands such as SCRIPT LOAD, then a PING that marks it ready), and after a failure or a lost
/// connection reconnects with exponential backoff (50 ms doubling to 2 s). While it is down every command
/// fails at once with `.error`: the caller refuses, it does not queue. A reply that takes longer than
/// `replyTimeout` drops the connection (TCP keepalive covers an idle one). It connects to the address
/// `RedisAddress` found, never to a name: a reconnect resolves the host again on a worker thread first,
/// so no DNS query ever blocks the loop. Replies answer commands in the order they were sent.
///
/// A subscriber connection subscribes its channels again after each reconnect, reports each
/// subscription once Redis confirmed it (`onSubscribed`), and sends a channel's SUBSCRIBE again only
/// after the confirmation of an UNSUBSCRIBE still on its way. Pub/sub pushes understood: `message`,
/// `pmessage` and `smessage` (sharded pub/sub), as RESP2 arrays on a subscribed link or RESP3 pushes.
final class RedisConnection: RedisSender {
    let loop: Loop
    private(set) var url: RedisURL
    private(set) var address: RedisAddress
    let name: String
    /// The TLS client context for `rediss://` (nil: plain TCP).
    let tls: TLSContext?
    /// The loop's thread (where `start` runs): the host is never resolved on it.
    private var loopThread = pthread_self()
    /// The address of the last connection attempt.
    private var connectingTo = ""
    private var link: RedisLink?
    private(set) var ready = false
    /// Until the first connection is made, commands wait in the link's output (a link is made on first
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
    /// A shard's subscriber in a Redis Cluster: SSUBSCRIBE and SUNSUBSCRIBE; a channel Redis
    /// unsubscribes on its own (its slot moved) or refuses (MOVED) goes to `onMoved` instead of being
    /// subscribed here again (`ShardSubscribers`).
    var sharded = false
    var onMoved: ((_ channel: [UInt8]?) -> Void)?
    /// The link was lost (a cluster reads its slot map again).
    var onDown: (() -> Void)?
    /// A Redis Cluster's node-wide subscriber: after a failure, the node (`host:port`) to connect to next
    /// (every node of a cluster hears a PUBLISH), so it follows a failover of the node it was on.
    var nextNode: ((_ failed: String) -> String?)?
    /// Stopped for good (a node that is no longer a master): no reconnect.
    private var stopped = false
    /// UNSUBSCRIBEs sent and not yet confirmed.
    private var leaving: Set<[UInt8]> = []
    /// Commands sent and not yet answered, and their bytes: what this node makes the link hold.
    private(set) var pending = 0
    private(set) var pendingBytes = 0
    /// The callbacks of the commands sent on the current link, oldest first from `waitingHead`.
    private var waiting: [Waiting] = []
    private var waitingHead = 0
    private struct Waiting {
        let size: Int
        let reply: (RedisReply) -> Void
        /// The `CLIENT REPLY SKIP` probe's ECHO: replies before its own are the probe's, dropped.
        var probe = false
    }
    /// A commands link: probe on each connection whether Redis takes `CLIENT REPLY SKIP` (an ACL or a
    /// proxy may refuse it); while it does, `sendUnanswered` publishes without a reply to read.
    var probesReplySkip = false
    private(set) var skipsReplies = false
    /// Replies the probe's SKIP and PING gave (0 when SKIP was taken; at most 2).
    private var probeAnsweredOther = 0
    private static let probeToken = Array("chub:reply-skip".utf8)
    private static let replySkip: [[UInt8]] = .command("CLIENT", "REPLY", "SKIP")
    private var parser = RESPParser()
    /// The link sent a SUBSCRIBE: from then on RESP2 pub/sub arrays are pushes, not replies.
    private var subscribed = false
    /// Watchdog ticks (1 s apart) in a row with replies pending and none arriving.
    private var stalledTicks = 0
    private var progressed = false
    /// Past this, commands are refused at once (Redis is not keeping up): a durable message gets
    /// `storage_unavailable`, relayed ephemeral traffic is dropped (`LoopLink.publish`). Small on
    /// purpose: a deep queue only adds latency to every acknowledgement behind it (measured with
    /// hiredis, whose output buffer made it quadratic too: with 64 MiB allowed, an overloaded three-node
    /// run fell from 7,300 to 580 acknowledged messages/s).
    static let maxPendingBytes = 1 << 20
    static let replyTimeout = 3.0
    private let log = Logger(label: "collabhub.redis")
    private var loggedDown = false

    init(loop: Loop, url: RedisURL, address: RedisAddress, name: String, tls: TLSContext? = nil) {
        self.loop = loop
        self.url = url
        self.address = address
        self.name = name
        self.tls = tls
    }

    func start() {
        loopThread = pthread_self()
        connect(to: address.current)
        watchdog = Loop.Timer(loop: loop, after: 1, repeat: 1) { [unowned self] in self.checkProgress() }
        watchdog?.unref()
    }

    private func connect(to host: String) {
        retry = nil
        guard !stopped else { return }
        connectingTo = host
        let fd: Int32
        do { fd = try RedisDial.start(address: host, port: url.port) } catch {
            address.failed(host)
            return scheduleReconnect("\(error)")
        }
        let l = RedisLink(loop: loop, fd: fd, peer: "\(host):\(url.port)", owner: self)
        if let tls { l.enableTLS(tls, serverName: url.host) }
        link = l
        parser = RESPParser()
        subscribed = false
        leaving.removeAll()
        l.startUnlisted()
        if let password = url.password {
            let auth: [[UInt8]] = url.user.map { .command("AUTH", $0, password) } ?? .command("AUTH", password)
            raw(auth) { _ in }
        }
        if url.db != 0 { raw(.command("SELECT", url.db)) { _ in } }
        for command in setup { raw(command) { _ in } }
        skipsReplies = false
        if probesReplySkip {
            // Taken: only the ECHO answers. Refused: the refusal and the PING's PONG come first (dropped).
            probeAnsweredOther = 0
            l.write(Self.replySkip)
            l.write(.command("PING"))
            raw(.command("ECHO", Self.probeToken), probe: true) { [unowned self] reply in
                skipsReplies = reply == .string(Self.probeToken) && probeAnsweredOther == 0
            }
        }
        raw(.command("PING")) { [unowned self] reply in
            guard case .status = reply else {
                // A failed connection attempt is logged once, as down; a refusal (AUTH, SELECT) here.
                if reply.errorMessage?.hasPrefix("CONNECTION") == true { return }
                self.log.warning(
                    "redis refused the connection", metadata: ["link": "\(self.name)", "reply": "\(reply)"])
                self.link?.abort("refused: \(reply)")
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

    /// The link closed or failed: every command still waiting gets `.error`, then a reconnect follows.
    fileprivate func closed(_ l: RedisLink, _ why: String) {
        guard l === link else { return }
        // Never answered: the host's next address is tried.
        if !ready { address.failed(connectingTo) }
        link = nil
        ready = false
        let failed = waiting[waitingHead...]
        waiting = []
        waitingHead = 0
        for w in failed {
            pending -= 1
            pendingBytes -= w.size
            progressed = true
            w.reply(.error("CONNECTION lost before the reply"))
        }
        scheduleReconnect(why)
    }

    private func scheduleReconnect(_ why: String) {
        onDown?()
        guard !stopped else { return }
        if !loggedDown {
            loggedDown = true
            log.warning("redis connection down", metadata: ["link": "\(name)", "error": "\(why)"])
        }
        guard retry == nil else { return }
        let delay = backoff
        backoff = min(backoff * 2, 2)
        // `retry` stays set while the name is resolved: no second attempt is scheduled meanwhile.
        // Weak: a connection a cluster's new map no longer names is stopped and let go while a name may
        // still be resolved for it off the loop.
        retry = Loop.Timer(loop: loop, after: delay) { [weak self] in
            guard let self else { return }
            let loop = self.loop
            if let next = nextNode?(ClusterRouting.address(url.host, url.port)) {
                return moveTo(next)
            }
            self.address.refresh(forbidden: self.loopThread) { [weak self] host in
                loop.post { self?.connect(to: host) }
            }
        }
    }

    /// Connects to another node from now on (its address found on a worker thread).
    private func moveTo(_ node: String) {
        guard let (host, port) = ClusterRouting.parseAddress(node) else { return connect(to: address.current) }
        let loop = loop
        DispatchQueue.global().async { [weak self] in
            let found = try? RedisAddress(host: host)
            loop.post { [weak self] in
                guard let self else { return }
                if let found { (url.host, url.port, address) = (host, port, found) }
                connect(to: address.current)
            }
        }
    }

    /// A Redis that stopped answering (a partition, a host that died) is given up on.
    private func checkProgress() {
        defer { progressed = false }
        guard pending > 0, !progressed, let l = link else {
            stalledTicks = 0
            return
        }
        stalledTicks += 1
        guard stalledTicks >= Int(Self.replyTimeout) else { return }
        stalledTicks = 0
        log.warning("redis did not answer in time", metadata: ["link": "\(name)", "pending": "\(pending)"])
        l.abort("no reply in \(Self.replyTimeout) s")
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

    private func raw(_ args: [[UInt8]], probe: Bool = false, _ reply: @escaping (RedisReply) -> Void) {
        guard let l = link, !l.isClosed else { return reply(.error("CONNECTION redis is unavailable")) }
        let size = args.reduce(16) { $0 + $1.count + 16 }
        if pending == 0 { progressed = true }
        pending += 1
        pendingBytes += size
        waiting.append(Waiting(size: size, reply: reply, probe: probe))
        l.write(args)
    }

    /// Sends a command whose reply Redis skips (`CLIENT REPLY SKIP` before it): relayed ephemeral
    /// traffic, whose PUBLISH answer nobody reads. False (nothing sent) when Redis did not take the
    /// probe or the link is not ready: the caller sends it the usual way. Past a quarter of the pending
    /// budget of unwritten output the command is dropped (as ephemeral traffic is when Redis lags).
    func sendUnanswered(_ args: [[UInt8]]) -> Bool {
        guard ready, skipsReplies, let l = link, !l.isClosed else { return false }
        guard l.outBytes < Self.maxPendingBytes / 4 else { return true }
        l.write(Self.replySkip)
        l.write(args)
        return true
    }

    /// Bytes from the link: each whole reply answers the oldest command waiting, or is a push.
    fileprivate func received(_ bytes: UnsafeRawBufferPointer, on l: RedisLink) {
        parser.append(bytes)
        while link === l {
            // A publication on a subscribed link (nearly all it reads): taken whole, without a reply tree.
            if subscribed, let m = parser.nextMessage() {
                onMessage?(m.channel, m.payload)
                continue
            }
            let parsed: RESPParser.Parsed?
            do { parsed = try parser.next() } catch { return l.abort("a broken reply: \(error)") }
            guard let parsed else { return }
            if parsed.push || (subscribed && Self.isPubSub(parsed.reply)) {
                pubSub(parsed.reply)
                continue
            }
            if sharded, waitingHead == waiting.count, let e = parsed.reply.errorMessage {
                refused(e)
                continue
            }
            guard waitingHead < waiting.count else { return l.abort("a reply to no command") }
            if waiting[waitingHead].probe, probeAnsweredOther < 2, parsed.reply != .string(Self.probeToken) {
                probeAnsweredOther += 1
                continue
            }
            let w = waiting[waitingHead]
            waitingHead += 1
            if waitingHead == waiting.count {
                waiting.removeAll(keepingCapacity: waiting.capacity <= 4096)
                waitingHead = 0
            } else if waitingHead >= 1024 && waitingHead * 2 >= waiting.count {
                waiting.removeFirst(waitingHead)
                waitingHead = 0
            }
            pending -= 1
            pendingBytes -= w.size
            progressed = true
            w.reply(parsed.reply)
        }
    }

    /// A refused SSUBSCRIBE (`MOVED <slot> <node>` or `ASK <slot> <node>`: this master does not serve the slot,
    /// e.g. it is still importing it). Every channel of that slot is dropped here and placed again by
    /// `onMoved`, which retries after the slot map is read again: kept here, a channel refused by the master
    /// the map names would count as subscribed and never be asked for again.
    private func refused(_ error: String) {
        let words = error.split(separator: " ", maxSplits: 2)
        guard words.count >= 2, words[0] == "MOVED" || words[0] == "ASK", let slot = Int(words[1]),
            (0..<KeySlot.count).contains(slot)
        else {
            onMoved?(nil)
            return
        }
        let lost = channels.filter { KeySlot.of($0) == slot && !leaving.contains($0) }
        if lost.isEmpty {
            onMoved?(nil)
            return
        }
        for c in lost {
            channels.remove(c)
            onMoved?(c)
        }
    }

    /// A RESP2 pub/sub array: only these come on a subscribed link besides a PING's `["pong", ""]`.
    static func isPubSub(_ reply: RedisReply) -> Bool { PubSubKind(reply: reply) != nil }

    /// Subscribes (and keeps the channels to resubscribe after a reconnect).
    func subscribe(_ channel: [UInt8]) {
        guard channels.insert(channel).inserted else { return }
        // Sent when the UNSUBSCRIBE on its way is confirmed (`pubSub`).
        if ready && !leaving.contains(channel) { sendSubscribe([channel]) }
    }

    func unsubscribe(_ channel: [UInt8]) {
        guard channels.remove(channel) != nil, ready, let l = link, !leaving.contains(channel) else { return }
        leaving.insert(channel)
        subscribed = true
        l.write([Array((sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE").utf8), channel])
    }

    /// Drops a channel without telling Redis (its slot is served elsewhere now: Redis dropped it).
    func forget(_ channel: [UInt8]) { channels.remove(channel) }

    /// Closes for good: no reconnect, every command waiting gets `.error`.
    func stop() {
        stopped = true
        retry = nil
        watchdog = nil
        link?.abort("stopped")
    }

    private func sendSubscribe(_ list: [[UInt8]]) {
        guard let l = link, !list.isEmpty else { return }
        subscribed = true
        if sharded {
            // One SSUBSCRIBE per channel: a command's channels must share a slot.
            for c in list { l.write([Array("SSUBSCRIBE".utf8), c]) }
        } else {
            l.write([Array("SUBSCRIBE".utf8)] + list)
        }
    }

    private func pubSub(_ reply: RedisReply) {
        let items = reply.items
        guard items.count >= 3, case .string(let name) = items[0], let kind = PubSubKind(name) else { return }
        switch kind {
        case .message, .smessage:
            if let channel = items[1].bytes, let payload = items[2].bytes { onMessage?(channel, payload) }
        case .pmessage:
            if items.count == 4, let channel = items[2].bytes, let payload = items[3].bytes {
                onMessage?(channel, payload)
            }
        case .subscribe, .ssubscribe:
            if let channel = items[1].bytes { onSubscribed?(channel) }
        case .unsubscribe, .sunsubscribe:
            guard let channel = items[1].bytes else { return }
            let asked = leaving.remove(channel) != nil
            if sharded && !asked && kind == .sunsubscribe && channels.contains(channel) {
                // Redis dropped it: the slot moved to another shard.
                channels.remove(channel)
                onMoved?(channel)
                return
            }
            if channels.contains(channel) { sendSubscribe([channel]) }
        case .psubscribe, .punsubscribe: break
        }
    }
}

/// The socket of a `RedisConnection`: commands out (encoded straight into the socket's output chunks),
/// bytes in to the connection's parser, and why it closed.
final class RedisLink: Socket {
    private weak var owner: RedisConnection?
    private var why: String?

    init(loop: Loop, fd: Int32, peer: String, owner: RedisConnection) {
        self.owner = owner
        super.init(loop: loop, fd: fd, peer: peer)
    }

    func write(_ args: [[UInt8]]) {
        guard !isClosed else { return }
        let n = RESPCommand.size(args)
        RESPCommand.write(args, to: reserve(n))
    }

    /// Gives up on the connection now (a stalled or broken Redis, a refused AUTH).
    func abort(_ reason: String) {
        why = reason
        close()
    }

    override func received(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        owner?.received(UnsafeRawBufferPointer(bytes), on: self)
        return bytes.count
    }

    override func peerClosed() {
        if why == nil {
            let e = errno
            if let failure = tlsVerifyFailure {
                why = "the Redis server's certificate was refused (\(failure))"
            } else if isTLS {
                why = "the TLS connection failed or was closed"
            } else {
                why = e != 0 && e != EAGAIN ? String(cString: strerror(e)) : "Redis closed the connection"
            }
        }
        close()
    }

    override func didClose() {
        owner?.closed(self, why ?? "closed")
    }
}
