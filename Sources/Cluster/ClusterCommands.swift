import EventLoop
import Foundation

/// Where a loop sends its Redis commands: one connection (`RedisConnection`, one Redis) or a cluster's
/// masters (`ClusterCommands`). `send` answers on the loop.
protocol RedisSender: AnyObject {
    var loop: Loop { get }
    var pendingBytes: Int { get }
    func send(_ args: [[UInt8]], priority: Bool, _ reply: @escaping (RedisReply) -> Void)
    /// Sends without reading a reply, if this sender can (false: nothing sent).
    func sendUnanswered(_ args: [[UInt8]]) -> Bool
}

extension RedisSender {
    func send(_ args: [[UInt8]], _ reply: @escaping (RedisReply) -> Void) { send(args, priority: false, reply) }
}

extension ClusterCommands {
    /// A Redis Cluster's commands always read their replies (see `RedisConnection.sendUnanswered`).
    func sendUnanswered(_ args: [[UInt8]]) -> Bool { false }
}

/// One loop's commands to a Redis Cluster: a `RedisConnection` per master (made on first use, each with
/// the `setup` commands, so SCRIPT LOAD reaches every master), each command sent to the master of its
/// key's slot in the node's shared map (`ClusterSync.map`). A MOVED updates the slot and sends the
/// command there (it did not run); an ASK sends ASKING and the command to the node named, once; a lost
/// connection, a MOVED, CLUSTERDOWN or TRYAGAIN reads the map again off the loop. A slot no master
/// serves is refused at once (`CLUSTERDOWN`), so only that slot's sessions see `storage_unavailable`.
/// Connections to nodes that are no longer masters are closed when the map changes.
final class ClusterCommands: RedisSender {
    let loop: Loop
    let router: ClusterSync
    private let setup: [[[UInt8]]]
    private let name: String
    private var connections: [String: RedisConnection] = [:]
    private var placedFor = -1
    private var timer: Loop.Timer?
    /// The map changed (a refresh, a MOVED): `ShardSubscribers` places its channels again.
    var onMapChange: (() -> Void)?

    init(loop: Loop, router: ClusterSync, setup: [[[UInt8]]], name: String) {
        self.loop = loop
        self.router = router
        self.setup = setup
        self.name = name
        placedFor = router.map.version
        timer = Loop.Timer(loop: loop, after: 0.2, repeat: 0.2) { [unowned self] in self.checkMap() }
        timer?.unref()
    }

    var pendingBytes: Int { connections.values.reduce(0) { $0 + $1.pendingBytes } }

    func connection(_ address: String) -> RedisConnection? {
        if let c = connections[address] { return c }
        guard let (url, at) = router.node(address) else { return nil }
        let c = RedisConnection(loop: loop, url: url, address: at, name: "\(name)/\(address)", tls: router.tls)
        c.setup = setup
        c.onDown = { [router] in router.refreshSoon() }
        connections[address] = c
        c.start()
        return c
    }

    func send(_ args: [[UInt8]], priority: Bool, _ reply: @escaping (RedisReply) -> Void) {
        let slot = ClusterRouting.key(args).map(KeySlot.of)
        let target = slot.flatMap(router.map.master(slot:)) ?? (slot == nil ? router.map.masters.first : nil)
        guard let target else {
            router.refreshSoon()
            return reply(.error("CLUSTERDOWN the cluster does not serve slot \(slot ?? -1)"))
        }
        attempt(args, priority: priority, to: target, asking: false, redirects: 0, reply)
    }

    private func attempt(
        _ args: [[UInt8]], priority: Bool, to address: String, asking: Bool, redirects: Int,
        _ reply: @escaping (RedisReply) -> Void
    ) {
        guard let c = connection(address) else {
            return reply(.error("CONNECTION the cluster named a node that is not a numeric address: \(address)"))
        }
        if asking { c.send(.command("ASKING"), priority: true) { _ in } }
        c.send(args, priority: priority) { [self] r in
            guard let e = r.errorMessage else { return reply(r) }
            if let redirect = ClusterRouting.redirect(e), redirects < ClusterSync.maxRedirects {
                if !redirect.ask {
                    router.map.moved(slot: redirect.slot, to: redirect.address)
                    router.refreshSoon()
                }
                return attempt(
                    args, priority: priority, to: redirect.address, asking: redirect.ask, redirects: redirects + 1,
                    reply)
            }
            if e.hasPrefix("CLUSTERDOWN") || e.hasPrefix("TRYAGAIN") || e.hasPrefix("CONNECTION") {
                router.refreshSoon()
            }
            reply(r)
        }
    }

    /// Sends `args` to every master; `done` gets their replies (a master not dialled: an error reply).
    func sendToEveryMaster(_ args: [[UInt8]], _ done: @escaping ([RedisReply]) -> Void) {
        let masters = router.map.masters
        guard !masters.isEmpty else { return done([]) }
        var replies: [RedisReply] = []
        let collect = { (r: RedisReply) in
            replies.append(r)
            if replies.count == masters.count { done(replies) }
        }
        for m in masters {
            guard let c = connection(m) else {
                collect(.error("CONNECTION \(m) is not a numeric address"))
                continue
            }
            c.send(args, priority: false, collect)
        }
    }

    /// The map changed: connections to nodes that serve no slot any more are closed, subscriptions placed
    /// again.
    private func checkMap() {
        let version = router.map.version
        guard version != placedFor else { return }
        placedFor = version
        let masters = Set(router.map.masters)
        for (address, c) in connections where !masters.contains(address) {
            c.stop()
            connections[address] = nil
        }
        onMapChange?()
    }
}

/// One loop's sharded subscriptions in a Redis Cluster: each session's channel `{S}:ch` is SSUBSCRIBEd
/// on the master of its slot, on a subscriber connection per master (`RedisConnection.sharded`), and
/// placed again when the map changes (a failover, a slot migration: Redis then sends `sunsubscribe`
/// itself) or the connection is lost. Node-wide channels stay on the plain subscriber (PUBLISH reaches
/// every node of a cluster).
final class ShardSubscribers {
    let loop: Loop
    let router: ClusterSync
    private let name: String
    private var connections: [String: RedisConnection] = [:]
    /// Each channel followed and the master it is subscribed on.
    private var placed: [[UInt8]: String] = [:]
    private let onMessage: ([UInt8], [UInt8]) -> Void
    private let onSubscribed: ([UInt8]) -> Void

    init(
        loop: Loop, router: ClusterSync, name: String, onMessage: @escaping ([UInt8], [UInt8]) -> Void,
        onSubscribed: @escaping ([UInt8]) -> Void
    ) {
        self.loop = loop
        self.router = router
        self.name = name
        self.onMessage = onMessage
        self.onSubscribed = onSubscribed
    }

    private func connection(_ address: String) -> RedisConnection? {
        if let c = connections[address] { return c }
        guard let (url, at) = router.node(address) else { return nil }
        let c = RedisConnection(loop: loop, url: url, address: at, name: "\(name)/\(address)", tls: router.tls)
        c.sharded = true
        c.onMessage = onMessage
        c.onSubscribed = onSubscribed
        c.onDown = { [router] in router.refreshSoon() }
        c.onMoved = { [unowned self] channel in
            // Only a channel still followed (an unsubscribe may have come between).
            if let channel, placed[channel] != nil { placed[channel] = "" }
            router.refreshSoon { [weak self] in self?.loop.post { self?.place() } }
        }
        connections[address] = c
        c.start()
        return c
    }

    private func master(of channel: [UInt8]) -> String? { router.map.master(slot: KeySlot.of(channel)) }

    func subscribe(_ channel: [UInt8]) {
        guard placed[channel] == nil else { return }
        guard let m = master(of: channel) else {
            // No master for the slot yet: placed when the map has one.
            placed[channel] = ""
            router.refreshSoon()
            return
        }
        placed[channel] = m
        connection(m)?.subscribe(channel)
    }

    func unsubscribe(_ channel: [UInt8]) {
        guard let m = placed.removeValue(forKey: channel), !m.isEmpty else { return }
        connections[m]?.unsubscribe(channel)
    }

    /// Every channel on the master the map names for it now (after a change of the map or a refusal).
    func place() {
        let masters = Set(router.map.masters)
        for (channel, at) in placed {
            guard let m = master(of: channel), m != at else { continue }
            if !at.isEmpty { connections[at]?.forget(channel) }
            placed[channel] = m
            connection(m)?.subscribe(channel)
        }
        for (address, c) in connections where !masters.contains(address) {
            c.stop()
            connections[address] = nil
        }
    }
}
