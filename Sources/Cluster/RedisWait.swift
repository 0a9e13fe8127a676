import EventLoop
import Hub

/// `--redis-wait-replicas N`: a durable append (the append, batch and run scripts, the member scripts'
/// commits) is acknowledged only once `N` replicas of the master that ran it have it. `WAIT N timeout`
/// goes right behind the script on the same connection (pipelined: Redis answers the script, then
/// blocks that connection until the replicas confirm or the timeout passes), so it costs the
/// replication round trip, not a second queue. Fewer than `N` in time: the event is on the master (it
/// cannot be taken back), so the caller gets a failure that says it may be stored (`NOTREPLICATED`),
/// never an ack; a resend with the same id is answered as a duplicate with its seq.
public struct RedisWait: Sendable, Equatable {
    public let replicas: Int
    public let timeoutMillis: Int
    /// `WAIT` blocks the loop's command connection; the reply watchdog (3 s) must outlast it.
    public static let timeouts = 1...2000
    public static let replicaCounts = 0...16

    public init(replicas: Int, timeoutMillis: Int) {
        self.replicas = replicas
        self.timeoutMillis = timeoutMillis
    }

    var command: [[UInt8]] { .command("WAIT", replicas, timeoutMillis) }

    /// The acknowledgement: the script's reply if it failed or `WAIT` counted enough replicas, else
    /// a `NOTREPLICATED` error that says the event may be stored.
    func outcome(_ script: RedisReply, _ waited: RedisReply) -> RedisReply {
        if script.errorMessage != nil { return script }
        if let n = waited.int, n >= replicas { return script }
        let counted =
            waited.int.map { "\($0) of \(replicas) replicas confirmed it" }
            ?? "the replicas could not be counted (\(waited.errorMessage ?? "no answer"))"
        return .error(
            "\(StoreFailure.unconfirmedCode) the write reached the Redis master but \(counted) within "
                + "\(timeoutMillis) ms: it may be stored (and may be lost in a failover); resend it with the same "
                + "id to learn its seq")
    }
}

extension RedisSender {
    /// Sends `args` and `wait` back to back on the connection `args` goes to (a cluster: its slot's
    /// master, following MOVED and ASK with both); `reply` gets both replies.
    func send(_ args: [[UInt8]], then wait: [[UInt8]], _ reply: @escaping (RedisReply, RedisReply) -> Void) {
        if let single = self as? RedisConnection { return single.pair(args, wait, reply) }
        guard let cluster = self as? ClusterCommands else {
            return send(args) { r in reply(r, .error("CONNECTION no connection to wait on")) }
        }
        cluster.pair(args, wait, reply)
    }
}

extension RedisConnection {
    /// The command, then `wait` (never refused for load, so it follows whatever the command got).
    fileprivate func pair(
        _ args: [[UInt8]], _ wait: [[UInt8]], _ reply: @escaping (RedisReply, RedisReply) -> Void
    ) {
        var first: RedisReply?
        send(args) { first = $0 }
        send(wait, priority: true) { w in reply(first ?? .error("CONNECTION redis is unavailable"), w) }
    }
}

extension ClusterCommands {
    fileprivate func pair(
        _ args: [[UInt8]], _ wait: [[UInt8]], _ reply: @escaping (RedisReply, RedisReply) -> Void
    ) {
        let slot = ClusterRouting.key(args).map(KeySlot.of)
        guard let slot, let target = router.map.master(slot: slot) else {
            router.refreshSoon()
            let e = RedisReply.error("CLUSTERDOWN the cluster does not serve slot \(slot ?? -1)")
            return reply(e, e)
        }
        pair(args, wait, to: target, asking: false, redirects: 0, reply)
    }

    private func pair(
        _ args: [[UInt8]], _ wait: [[UInt8]], to address: String, asking: Bool, redirects: Int,
        _ reply: @escaping (RedisReply, RedisReply) -> Void
    ) {
        guard let c = connection(address) else {
            let e = RedisReply.error("CONNECTION the cluster named a node that is not a numeric address: \(address)")
            return reply(e, e)
        }
        if asking { c.send(.command("ASKING"), priority: true) { _ in } }
        c.pair(args, wait) { [self] r, w in
            guard let e = r.errorMessage else { return reply(r, w) }
            // The script did not run there: both go where the cluster says (the WAIT answered is moot).
            if let redirect = ClusterRouting.redirect(e), redirects < ClusterSync.maxRedirects {
                if !redirect.ask {
                    router.map.moved(slot: redirect.slot, to: redirect.address)
                    router.refreshSoon()
                }
                return pair(
                    args, wait, to: redirect.address, asking: redirect.ask, redirects: redirects + 1, reply)
            }
            if e.hasPrefix("CLUSTERDOWN") || e.hasPrefix("TRYAGAIN") || e.hasPrefix("CONNECTION") {
                router.refreshSoon()
            }
            reply(r, w)
        }
    }
}

extension LoopLink {
    /// The script, then `WAIT` on the same connection; a NOSCRIPT (Redis forgot the script) sends both
    /// again with the script in full.
    func evalWaiting(
        _ script: String, sha: String, tail: [[UInt8]], _ wait: RedisWait, _ reply: @escaping (RedisReply) -> Void
    ) {
        commands.send([Array("EVALSHA".utf8), Array(sha.utf8)] + tail, then: wait.command) { [commands] r, w in
            if let e = r.errorMessage, e.hasPrefix("NOSCRIPT") {
                return commands.send([Array("EVAL".utf8), Array(script.utf8)] + tail, then: wait.command) {
                    reply(wait.outcome($0, $1))
                }
            }
            reply(wait.outcome(r, w))
        }
    }
}
