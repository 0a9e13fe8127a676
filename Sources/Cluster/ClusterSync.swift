import EventLoop
import Foundation
import Hub
import Logging

/// A Redis Cluster for the worker threads' blocking calls (`RedisSync` hands every call here under a
/// `redis+cluster://` URL), and the node's slot map (`map`) that the loops' `ClusterCommands` share.
/// Each master has its own pool (`RedisSync`); a command goes to the master of its key's slot
/// (`ClusterRouting.key`); a MOVED updates that slot and sends it there, an ASK sends it once to the
/// node named after ASKING; a lost connection, a MOVED or CLUSTERDOWN reads the map again. SCRIPT LOAD
/// goes to every master, MGET is split by slot, and SCAN is run per master by the caller (`shards`).
final class ClusterSync: @unchecked Sendable {
    let seed: RedisURL
    let tls: TLSContext?
    let map = ClusterMap()
    private let lock = NSLock()
    private var pools: [String: RedisSync] = [:]
    private var refreshing = false
    private var lastRefresh = 0.0
    /// `refreshSoon` asked while a read was under way: read again, then run `afterRefresh`.
    private var refreshAgain = false
    private var afterRefresh: [@Sendable () -> Void] = []
    private let queue = DispatchQueue(label: "collabhub.redis.slots")
    private let log = Logger(label: "collabhub.redis")
    static let maxRedirects = 5

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init(seed: RedisURL, tls: TLSContext?) {
        self.seed = seed
        self.tls = tls
    }

    /// The URL of one node of the cluster: the seed's scheme, credentials and TLS settings.
    func url(of address: String) -> RedisURL {
        var u = seed
        u.cluster = false
        if let (host, port) = ClusterRouting.parseAddress(address) { (u.host, u.port) = (host, port) }
        return u
    }

    /// A loop's connection target for a node of the map: its URL and address, if the cluster gave a numeric
    /// address (what Redis Cluster announces by default). A name is refused: a loop never resolves one.
    func node(_ address: String) -> (RedisURL, RedisAddress)? {
        let u = url(of: address)
        guard RedisAddress.isNumeric(u.host), let at = try? RedisAddress(host: u.host) else {
            log.warning("a Redis Cluster node announced by name is not used", metadata: ["node": "\(address)"])
            return nil
        }
        return (u, at)
    }

    func pool(_ address: String) -> RedisSync {
        lock.withLock {
            if let p = pools[address] { return p }
            let p = RedisSync(url: url(of: address), tls: tls)
            pools[address] = p
            return p
        }
    }

    private var seedAddress: String { ClusterRouting.address(seed.host, seed.port) }

    /// Reads the slot map from the first node that answers (the known masters, then the seed). Throws if
    /// none does, or if the seed is not a cluster node.
    func refresh() throws {
        var why = "no node answered"
        for address in map.masters + [seedAddress] {
            let reply: RedisReply
            do { reply = try pool(address).raw(.command("CLUSTER", "SLOTS")) } catch {
                why = "\(error)"
                continue
            }
            if let e = reply.errorMessage {
                if e.contains("cluster support disabled") {
                    throw Failure(description: "\(seed) is not a Redis Cluster node (use redis:// for one Redis)")
                }
                why = e
                continue
            }
            guard let ranges = ClusterRouting.slots(reply, asked: address), !ranges.isEmpty else {
                why = "no slot is served yet"
                continue
            }
            let first = map.masters.isEmpty
            // A change is logged (a failover, a slot moved); the first map is not (start-up prints one line).
            if map.set(ranges), !first {
                log.notice("redis cluster slot map", metadata: ["masters": "\(map.masters.joined(separator: " "))"])
            }
            lock.withLock { lastRefresh = Date().timeIntervalSince1970 }
            return
        }
        throw Failure(description: "the Redis Cluster slot map could not be read: \(why)")
    }

    /// Reads the map again off the caller's thread (a MOVED, a lost connection, CLUSTERDOWN), at most
    /// ten times a second; `then` runs on a worker thread once it was read (or failed). Asked while a read
    /// is under way, the map is read once more after it (that read may have started before the change the
    /// caller saw) and every `then` runs after that: none is dropped.
    func refreshSoon(then: (@Sendable () -> Void)? = nil) {
        let start = lock.withLock { () -> Bool in
            if let then { afterRefresh.append(then) }
            guard !refreshing else {
                refreshAgain = true
                return false
            }
            refreshing = true
            return true
        }
        guard start else { return }
        queue.async { [self] in
            while true {
                let wait = lock.withLock { lastRefresh + 0.1 - Date().timeIntervalSince1970 }
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                // A failed read counts too: reads asked again and again stay ten a second.
                lock.withLock { lastRefresh = Date().timeIntervalSince1970 }
                do { try refresh() } catch {
                    log.warning("redis cluster map not read", metadata: ["error": "\(error)"])
                }
                let done = lock.withLock { () -> [@Sendable () -> Void]? in
                    if refreshAgain {
                        refreshAgain = false
                        return nil
                    }
                    refreshing = false
                    defer { afterRefresh = [] }
                    return afterRefresh
                }
                if let done {
                    for f in done { f() }
                    return
                }
            }
        }
    }

    /// The node a node-wide subscriber tries after `failed` (`RedisConnection.nextNode`): the next master
    /// in the map (any node hears a PUBLISH); the map is read again meanwhile.
    func nextNode(after failed: String) -> String? {
        refreshSoon()
        let masters = map.masters
        guard !masters.isEmpty else { return nil }
        guard let i = masters.firstIndex(of: failed) else { return masters[0] }
        return masters[(i + 1) % masters.count]
    }

    /// Every master's pool (the map read first if it is empty).
    func masters() throws -> [RedisSync] {
        if map.masters.isEmpty { try refresh() }
        return map.masters.map(pool)
    }

    /// One command on its slot's master; an error reply (after redirections) throws.
    func call(_ args: [[UInt8]]) throws -> RedisReply {
        let r = try reply(args)
        if let e = r.errorMessage { throw StoreFailure("redis: \(e)") }
        return r
    }

    /// One command on its slot's master, its reply as Redis gave it after redirections (an error reply
    /// included); a connection failure throws.
    func reply(_ args: [[UInt8]]) throws -> RedisReply {
        let verb = String(decoding: args.first ?? [], as: UTF8.self).uppercased()
        if verb == "SCRIPT" {
            var last = RedisReply.null
            for m in try masters() { last = try m.call(args) }
            return last
        }
        if verb == "MGET", Set(args.dropFirst().map(KeySlot.of)).count > 1 { return try mget(Array(args.dropFirst())) }
        if map.masters.isEmpty { try refresh() }
        let slot = ClusterRouting.key(args).map(KeySlot.of)
        var target = slot.flatMap(map.master(slot:)) ?? (slot == nil ? map.masters.first : nil)
        var asking = false
        for _ in 0...Self.maxRedirects {
            guard let address = target else {
                refreshSoon()
                throw StoreFailure("redis: the cluster does not serve slot \(slot ?? -1)")
            }
            let reply: RedisReply
            do { reply = try pool(address).raw(args, asking: asking) } catch {
                refreshSoon()
                throw error
            }
            guard let e = reply.errorMessage else { return reply }
            if let r = ClusterRouting.redirect(e) {
                if !r.ask {
                    map.moved(slot: r.slot, to: r.address)
                    refreshSoon()
                }
                (target, asking) = (r.address, r.ask)
                continue
            }
            if e.hasPrefix("CLUSTERDOWN") || e.hasPrefix("TRYAGAIN") { refreshSoon() }
            return reply
        }
        throw StoreFailure("redis: too many cluster redirections")
    }

    /// MGET over keys of several slots: one MGET per slot, the values put back in the keys' order.
    private func mget(_ keys: [[UInt8]]) throws -> RedisReply {
        var bySlot: [Int: [Int]] = [:]
        for (i, k) in keys.enumerated() { bySlot[KeySlot.of(k), default: []].append(i) }
        var out = [RedisReply](repeating: .null, count: keys.count)
        for (_, at) in bySlot {
            let items = try call([Array("MGET".utf8)] + at.map { keys[$0] }).items
            for (i, item) in zip(at, items) { out[i] = item }
        }
        return .array(out)
    }
}
