import Bytes
import EventLoop
import Foundation
import Hub
import Logging

/// The cluster backend: the session log, the session directory and history live in Redis, shared by
/// every node (`collabhub serve --redis URL`). Appends run the `Scripts.append` script on the calling
/// loop's own Redis connection (driven by that libev loop), so one script call assigns the seq,
/// stores, deduplicates and publishes; the reply is the acknowledgement. Each loop also has a
/// subscriber connection for the channels of the sessions it follows. Reads (history, transcripts,
/// wake-ups) are blocking calls from the worker threads on a small pool of connections.
///
/// It implements the ports it shares: the log, its reads, the session rows, the shared log and runs
/// (`RedisRuns`), and webhooks (`RedisWebhooks`: endpoints, the outbox entries the append scripts write,
/// the delivery log); API keys with their quotas (`RedisAPIKeys`) and the activity log
/// (`RedisActivityLog`) are classes of their own. `Backends.cluster` puts them beside the node-local
/// SQLite ports (cursor samples for playback, the copy of each session row); see scripts/deploy/CLUSTER.md.
public final class RedisStorage: EventLog, TranscriptReads, SessionRecords, StorageMaintenance, SharedLog,
    @unchecked Sendable
{
    public let node: String
    let url: RedisURL
    /// `--redis-wait-replicas`: durable appends wait for replicas before their ack (nil: they do not).
    let replicaWait: RedisWait?
    /// The Redis host's address, resolved off the loops (`RedisAddress`).
    let address: RedisAddress
    /// Each loop, by the executor that runs work on it (what callers hand in).
    private let loops: [ObjectIdentifier: Loop]
    /// The TLS client context of a `rediss://` URL (nil: plain TCP).
    let tls: TLSContext?
    let sync: RedisSync
    private let lock = NSLock()
    private var links: [ObjectIdentifier: LoopLink] = [:]
    /// Per stream: the epoch this node knows and the highest seq it has seen committed.
    private var streams: [String: (epoch: String?, seen: Int)] = [:]
    private var keep = 0
    /// Resends recognised per session (the newest client ids kept).
    static let idsKept = 10_000
    private let saves = DispatchQueue(label: "collabhub.redis.saves")
    private let retention = DispatchQueue(label: "collabhub.redis.retention")
    private let log = Logger(label: "collabhub.redis")
    /// Webhook endpoints, the outbox and the delivery log, in Redis (`RedisWebhooks`).
    private(set) var hooks: RedisWebhooks!
    /// API keys, their quotas and the activity log: the cluster's, in Redis (`RedisAPIKeys`, `RedisActivityLog`).
    private(set) var keyStore: RedisAPIKeys!
    private(set) var activityLog: RedisActivityLog!

    /// Checks that Redis answers (a node does not start without it) and loads the scripts.
    /// `activityFallback`: where an activity entry goes when Redis cannot take it (the node's SQLite).
    public init(
        url: RedisURL, tls settings: RedisTLS = RedisTLS(), loops: [(executor: Executor, loop: Loop)],
        activityFallback: ActivityLog, wait: RedisWait? = nil
    ) throws {
        self.url = url
        replicaWait = wait.flatMap { $0.replicas > 0 ? $0 : nil }
        self.loops = Dictionary(loops.map { (ObjectIdentifier($0.executor), $0.loop) }) { a, _ in a }
        tls = try settings.context(for: url)
        address = try RedisAddress(host: url.host)
        sync = RedisSync(url: url, tls: tls)
        node = Base64.encode(Crypto.randomBytes(6), urlSafe: true)
        _ = try sync.call(.command("SCRIPT", "LOAD", Scripts.append))
        _ = try sync.call(.command("SCRIPT", "LOAD", Scripts.batch))
        _ = try sync.call(.command("SCRIPT", "LOAD", Scripts.runAppend))
        activityLog = RedisActivityLog(sync: sync, fallback: activityFallback)
        keyStore = RedisAPIKeys(sync: sync, activity: activityLog) { [unowned self] in self.link($0) }
        hooks = RedisWebhooks(storage: self)
        for script in MemberScripts.all { _ = try sync.call(.command("SCRIPT", "LOAD", script)) }
    }

    // MARK: - Links (one per loop, made on that loop's thread)

    func link(_ executor: Executor) -> LoopLink? {
        guard let loop = loops[ObjectIdentifier(executor)] else { return nil }
        if let l = lock.withLock({ links[ObjectIdentifier(loop)] }) { return l }
        // Made outside the lock (connecting opens sockets): only the loop's own thread makes it.
        let l = LoopLink(storage: self, loop: loop)
        lock.withLock { links[ObjectIdentifier(loop)] = l }
        return l
    }

    /// Every loop's link made so far.
    func allLinks() -> [LoopLink] { lock.withLock { Array(links.values) } }

    static func keys(_ stream: String) -> (m: String, log: String, ids: String, members: String, channel: String) {
        ("{\(stream)}:m", "{\(stream)}:log", "{\(stream)}:ids", "{\(stream)}:members", "{\(stream)}:ch")
    }

    /// Records what the node learned of a stream; returns the epoch it knew before if the log's
    /// epoch is a different one (the log lost data).
    /// Reads (`fromRead`) only fill in an epoch not known yet: a change is noticed, and told to the
    /// session, by the append or publication that carries it.
    func learned(_ stream: String, epoch: String, seq: Int, fromRead: Bool = false) -> String? {
        lock.lock()
        defer { lock.unlock() }
        var s = streams[stream] ?? (nil, 0)
        if fromRead && s.epoch != nil && s.epoch != epoch { return nil }
        let lost = s.epoch != nil && s.epoch != epoch ? s.epoch : nil
        s.epoch = epoch
        s.seen = max(s.seen, seq)
        streams[stream] = s
        return lost
    }

    func seen(_ stream: String) -> Int {
        lock.lock(); defer { lock.unlock() }; return streams[stream]?.seen ?? 0
    }

    // MARK: - EventLog

    public func append(
        _ event: DurableEvent, executor: Executor, done: @escaping (Result<Committed, StoreFailure>) -> Void
    ) {
        guard let link = link(executor) else {
            return executor.execute { done(.failure(StoreFailure("redis: not called from a loop"))) }
        }
        run(event, origin: node, link: link) { [self] result in
            guard case .success(let (committed, epoch)) = result else {
                return executor.execute { done(result.map(\.0)) }
            }
            if learned(event.session, epoch: epoch, seq: committed.seq) != nil {
                link.notify(event.session, .lost(lastSeq: committed.seq - 1))
            }
            if event.type == "presence" { noteMembers(in: event.session, link: link) }
            done(.success(committed))
        }
    }

    /// One call of the append script for `event` as `origin`; the webhooks of a newly stored event go
    /// out from this node (the one whose append stored it: once per cluster).
    private func run(
        _ event: DurableEvent, origin: String, link: LoopLink,
        _ done: @escaping (Result<(Committed, epoch: String), StoreFailure>) -> Void
    ) {
        let k = Self.keys(event.session)
        let r = event.replaces
        // The endpoints that want it: the script writes its outbox entry with the event.
        let wanted = hooks.wanted(event)
        let args: [[UInt8]] = .command(
            event.type, event.member ?? "", event.clientId ?? "", event.body, origin, publishTarget(event.session),
            newEpoch(),
            seen(event.session), keepEvents(event.session), r?.seq ?? 0, r?.body ?? [], Self.idsKept,
            r?.reason.rawValue ?? "redacted", wanted.joined(separator: " "), node)
        // The stream of webhook work is findable before the script can write to it (same connection).
        if !wanted.isEmpty { link.commands.send(.command("SADD", WebhookScripts.streams, event.session)) { _ in } }
        let keys = [k.m, k.log, k.ids, k.members, RedisWebhooks.stream(event.session)]
        link.eval(Scripts.append, sha: Scripts.appendSHA, keys: keys, args: args, durable: true) { [self] reply in
            let items = reply.items
            guard items.count >= 4, let seq = items[0].int, let ts = items[1].int, let dup = items[2].int,
                let epoch = items[3].text
            else { return done(.failure(StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")"))) }
            let committed = Committed(seq: seq, ts: Int64(ts), duplicate: dup == 1)
            if !committed.duplicate, let r, r.seq > 0 { self.hooks.recall(stream: event.session, seq: r.seq) }
            if !committed.duplicate, items.count == 5, let entry = items[4].text {
                self.hooks.appended(
                    stream: event.session, entry: entry, hooks: wanted,
                    messages: Webhook.messages(for: event, committed: committed))
            }
            done(.success((committed, epoch)))
        }
    }

    /// This node was declared dead and came back: its sessions are noted again as members join.
    func forgetMemberSessions() { lock.withLock { memberSessions.removeAll() } }

    public func appendBatch(
        _ events: [DurableEvent], expectedLastSeq: Int?, executor: Executor,
        done: @escaping (Result<[Committed], StoreFailure>) -> Void
    ) {
        guard let link = link(executor), let stream = events.first?.session else {
            return executor.execute { done(events.isEmpty ? .success([]) : .failure(StoreFailure("redis: no loop"))) }
        }
        let k = Self.keys(stream)
        var args: [[UInt8]] = .command(
            expectedLastSeq.map(String.init) ?? "", node, publishTarget(stream), newEpoch(), events.count)
        for e in events { args += .command(e.type, e.member ?? "", e.body) }
        link.eval(Scripts.batch, sha: Scripts.batchSHA, keys: [k.m, k.log], args: args, durable: true) { [self] reply in
            let items = reply.items
            guard items.count == events.count + 2, let ts = items[0].int, let epoch = items[1].text else {
                let why = reply.errorMessage ?? "unexpected reply"
                return executor.execute { done(.failure(StoreFailure("redis: \(why)"))) }
            }
            let seqs = items.dropFirst(2).compactMap(\.int)
            _ = self.learned(stream, epoch: epoch, seq: seqs.last ?? 0)
            let committed = seqs.map { Committed(seq: $0, ts: Int64(ts), duplicate: false) }
            // No webhooks here: in a cluster a run's events are appended by `RedisRuns` (whose script
            // writes their outbox entries), and nothing else appends a batch.
            done(.success(committed))
        }
    }

    /// A fresh epoch for a log that has none: this node's random id and a count, unique in the cluster.
    func newEpoch() -> String { "\(node).\(epochs.add())" }
    private let epochs = EpochCounter()

    func keepEvents(_ stream: String) -> Int {
        stream.hasPrefix("run:") ? 0 : (lock.withLock { keep })
    }

    // MARK: - SharedLog

    public func authMode(claim: String?) throws -> String? {
        switch claim {
        case "closed": _ = try sync.call(.command("SET", Self.authKey, "closed"))
        case "open": _ = try sync.call(.command("SET", Self.authKey, "open", "NX"))
        default: break
        }
        return try sync.call(.command("GET", Self.authKey)).text
    }
    /// Node-wide (not a session's): where the cluster's authorization mode is kept.
    static let authKey = "chub:auth"

    public func follow(session: String, executor: Executor, _ sink: @escaping (SharedItem) -> Void) {
        link(executor)?.follow(Self.keys(session).channel, stream: session, sink)
    }

    /// A session evicted here has no members here: it leaves this node's set of sessions to bury.
    public func unfollow(session: String, executor: Executor) {
        guard let link = link(executor) else { return }
        link.unfollow(Self.keys(session).channel)
        if lock.withLock({ memberSessions.remove(session) }) != nil {
            link.commands.send(.command("SREM", "chub:node:\(node):sessions", session)) { _ in }
        }
    }

    public func relay(session: String, executor: Executor, traffic: Traffic, key: String, frame: [UInt8]) {
        link(executor)?.relay(ChannelKey.session(session), Relayed(traffic, key: key, frame: frame))
    }

    public func lookup(session: String) throws -> SessionInfo? {
        guard let bytes = try sync.call(.command("GET", "{\(session)}:info")).bytes else { return nil }
        return SessionInfoJSON.decode(bytes)
    }

    /// The last commit, or now if anyone is present on any node (quiet members keep a session alive).
    public func lastActivity(session: String) throws -> Int64 {
        if try sync.call(.command("HLEN", Self.keys(session).members)).int ?? 0 > 0 {
            return Int64(Date().timeIntervalSince1970 * 1000)
        }
        return Int64(try sync.call(.command("HGET", Self.keys(session).m, "ts")).int ?? 0)
    }

    /// Every member of the session (`{S}:members`: identity -> member JSON); read when a session wakes
    /// on this node, which then has none of its own.
    public func memberCounts(sessions: [String]) throws -> [String: (members: Int, connections: Int)] {
        let replies = try sync.pipeline(
            sessions.flatMap { [.command("HLEN", Self.keys($0).members), .command("HVALS", Self.connsKey($0))] })
        var out: [String: (members: Int, connections: Int)] = [:]
        for (i, code) in sessions.enumerated() where 2 * i + 1 < replies.count {
            let members = replies[2 * i].int ?? 0
            let connections = replies[2 * i + 1].items.reduce(0) { $0 + max(0, $1.text.flatMap { Int($0) } ?? 0) }
            out[code] = (members, connections)
        }
        return out
    }

    public func remoteMembers(session: String) throws -> [(id: String, json: [UInt8])] {
        try sync.call(.command("HVALS", Self.keys(session).members)).items.compactMap { item in
            guard let json = item.bytes, let id = (try? JSONReader.readObject(json))?["id"]?.string else { return nil }
            return (id, json)
        }
    }

    /// Session rows saved on any node reach `sink` on `executor`'s loop. Called once, at start-up,
    /// with loop 0, which also keeps this node's heartbeat and looks for nodes that died.
    public func followDirectory(executor: Executor, _ sink: @escaping (SessionInfo) -> Void) {
        guard let link = link(executor) else { return }
        link.followDirectory(sink)
        heartbeat = NodeWatch(storage: self, link: link)
        hooks.start(loop: link.loop)
    }
    private var heartbeat: NodeWatch?

    /// Sessions this node has had members in (for the survivor that emits their leaves if it dies).
    func noteMembers(in session: String, link: LoopLink) {
        let fresh = lock.withLock { memberSessions.insert(session).inserted }
        if fresh { link.commands.send(.command("SADD", "chub:node:\(node):sessions", session)) { _ in } }
    }
    private var memberSessions: Set<String> = []

    // MARK: - TranscriptReads

    func bounds(_ stream: String) throws -> (last: Int, floor: Int, epoch: String?) {
        let r = try sync.call(.command("HMGET", Self.keys(stream).m, "seq", "floor", "epoch")).items
        guard r.count == 3 else { throw StoreFailure("redis: unexpected reply") }
        let epoch = r[2].text
        let last = Self.seqBound(r[0].int), floor = Self.seqBound(r[1].int)
        if let epoch { _ = learned(stream, epoch: epoch, seq: last, fromRead: true) }
        return (last, floor, epoch)
    }

    /// A seq read from Redis, kept in 0...2^62: the reads add to it (`floor + 1`, `at + 499`), and a Redis
    /// that answers 19 digits (corrupt, or not ours) must not trap them. No log reaches 2^62 appends.
    static func seqBound(_ v: Int?) -> Int { min(max(v ?? 0, 0), 1 << 62) }

    func entries(_ stream: String, from: Int, through: Int) throws -> [LogEntry] {
        guard from <= through else { return [] }
        var out: [LogEntry] = []
        var at = from
        while at <= through {
            let end = min(through, at + 499)
            var args: [[UInt8]] = .command("HMGET", Self.keys(stream).log)
            for s in at...end { args.append(Array(String(s).utf8)) }
            for item in try sync.call(args).items {
                if let b = item.bytes, let e = LogEntry.decode(b[...]) { out.append(e) }
            }
            at = end + 1
        }
        return out
    }

    public func lastSeq(session: String) throws -> Int { try bounds(session).last }

    public func tail(session: String, limit: Int) throws -> [StoredEvent] {
        let b = try bounds(session)
        return try entries(session, from: max(b.floor, b.last - limit) + 1, through: b.last).map(\.stored)
    }

    public func events(session: String, after: Int, limit: Int) throws -> [StoredEvent] {
        try events(session: session, after: after, limit: limit).map(\.event)
    }

    public func events(session: String, after: Int, limit: Int) throws -> [(event: StoredEvent, own: Bool)] {
        let b = try bounds(session)
        // A log under another epoch is not the continuation of what the session has: the change is
        // told by the next append or publication (`.lost`), and the read tried again after it.
        if let now = b.epoch, let known = lock.withLock({ streams[session]?.epoch }), known != now {
            throw StoreFailure("redis: the session's log has a new epoch")
        }
        // `after` and `limit` come from the wire (the transcript API): compared before any arithmetic.
        guard limit > 0, after < b.last else { return [] }
        let from = max(after, b.floor) + 1
        return try entries(session, from: from, through: from + min(limit, b.last - from + 1) - 1).map {
            ($0.stored, $0.origin == node)
        }
    }

    public func event(session: String, seq: Int) throws -> (event: StoredEvent, member: String?)? {
        guard seq > 0, seq < Int.max, let b = try sync.call(.command("HGET", Self.keys(session).log, seq)).bytes,
            let e = LogEntry.decode(b[...])
        else { return nil }
        return (e.stored, e.member)
    }

    public func streams(prefix: String) throws -> [(String, [StoredEvent])] {
        var out: [(String, [StoredEvent])] = []
        for key in try scan("{\(prefix)*}:m") {
            let stream = String(key.dropFirst().dropLast(3))
            let b = try bounds(stream)
            out.append((stream, try entries(stream, from: b.floor + 1, through: b.last).map(\.stored)))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// Keys matching `pattern` (on every master of a Redis Cluster).
    func scan(_ pattern: String) throws -> [String] {
        var keys: [String] = []
        for shard in try sync.shards() {
            var cursor = "0"
            repeat {
                let r = try shard.call(.command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)).items
                guard r.count == 2, let next = r[0].text else { throw StoreFailure("redis: unexpected SCAN reply") }
                cursor = next
                keys += r[1].items.compactMap(\.text)
            } while cursor != "0"
        }
        return keys
    }

    // MARK: - SessionRecords

    public func save(_ info: SessionInfo, created: Bool, done: ((Bool) -> Void)?) {
        let json = SessionInfoJSON.encode(info)
        saves.async { [self] in
            do {
                // One script: a new code taken on another node meanwhile is refused, an ended row stays
                // ended, and the row is published with the write that stored it.
                let wanted = created ? hooks.wanted(.sessionStarted) : []
                if !wanted.isEmpty { _ = try sync.call(.command("SADD", WebhookScripts.streams, info.code)) }
                let set = try sync.call(
                    .command(
                        "EVAL", Scripts.saveRow, 2, "{\(info.code)}:info", RedisWebhooks.stream(info.code), json,
                        created ? 1 : 0, wanted.joined(separator: " "), node))
                if let entry = set.text, set.int == nil {
                    hooks.appended(
                        stream: info.code, entry: entry, hooks: wanted, messages: [Webhook.sessionStarted(info)])
                } else if set.int != 1 {
                    done?(false)
                    return
                }
                // Stored: the node-local copy follows (`Backends.sessionCopies`); `session.started` went
                // into the outbox with the row, above.
                done?(true)
            } catch {
                log.warning("session row not saved", metadata: ["session": "\(info.code)", "error": "\(error)"])
                done?(false)
            }
        }
    }

    /// Every session row in Redis (the directory as the cluster has it), read in batches.
    func rows() throws -> [SessionInfo] {
        var out: [SessionInfo] = []
        let keys = try scan("{*}:info")
        for start in stride(from: 0, to: keys.count, by: 500) {
            let batch = keys[start..<min(start + 500, keys.count)].map { Array($0.utf8) }
            let reply = try sync.call([Array("MGET".utf8)] + batch)
            out += reply.items.compactMap { $0.bytes.flatMap(SessionInfoJSON.decode) }
        }
        return out
    }

    public func sessions() throws -> [(SessionInfo, events: Int)] {
        var out: [(SessionInfo, events: Int)] = []
        for key in try scan("{*}:info") {
            guard let bytes = try sync.call(.command("GET", key)).bytes, let info = SessionInfoJSON.decode(bytes)
            else { continue }
            let b = try bounds(info.code)
            out.append((info, b.last - b.floor))
        }
        return out
    }

    // MARK: - Activity (for the webhook routes' entries: the cluster's log)

    func record(_ entry: ActivityEntry) { activityLog.record(entry) }

    // MARK: - StorageMaintenance

    /// Count retention is also applied by each append; this pass (every `--retention-interval`, on
    /// every node: it is idempotent) catches idle sessions and age, 1,000 deletions per script call.
    public func enforce(_ policy: RetentionPolicy) {
        lock.withLock { keep = policy.maxEventsPerSession ?? 0 }
        guard policy.isEnabled else { return }
        retention.async { [self] in
            do {
                for key in try scan("{*}:m") where !key.hasPrefix("{run:") {
                    let stream = String(key.dropFirst().dropLast(3))
                    let k = Self.keys(stream)
                    while try sync.call(
                        .command(
                            "EVAL", Scripts.trim, 2, k.m, k.log, policy.maxEventsPerSession ?? 0,
                            Int(policy.maxAgeMillis ?? 0), 1000)
                    ).int == 1000 {}
                }
            } catch {
                log.warning("retention pass failed", metadata: ["error": "\(error)"])
            }
        }
    }
    /// Every append is committed when its reply comes: nothing is queued here.
    /// Appends are committed when Redis answers; what this node queued for Redis off the loops (webhook
    /// records and attempts, key uses, activity entries) is written first.
    public func barrier(_ done: @escaping (Bool) -> Void) {
        hooks.drained { [self] in keyStore.drained { [self] in activityLog.drained { done(true) } } }
    }
    /// The links close with the process.
    public func close() {}
    public var gauges: [(name: String, help: String, value: Int)] { [] }
}

/// One loop's two Redis connections and the sessions it follows.
final class LoopLink {
    unowned let storage: RedisStorage
    /// One connection, or a Redis Cluster's masters (`ClusterCommands`).
    let commands: RedisSender
    /// Node-wide channels (and, on one Redis, the sessions' channels).
    let subscriber: RedisConnection
    /// Redis Cluster: the sessions' channels, SSUBSCRIBEd on their shards.
    private(set) var shards: ShardSubscribers?
    private(set) var sinks: [ChannelKey: (stream: String, sink: (SharedItem) -> Void)] = [:]
    private var directory: ((SessionInfo) -> Void)?
    /// Node-wide channels followed here (`chub:keys`): a publication's payload, or nil when the
    /// subscription took effect (again).
    var nodeChannels: [[UInt8]: ([UInt8]?) -> Void] = [:]
    static let directoryChannel = Array("chub:dir".utf8)
    private lazy var nodeBytes = Array(storage.node.utf8)
    /// Where this loop's ephemeral relays go, and its own channel for others' (`EphemeralRoutes`).
    lazy var routes = EphemeralRoutes(node: storage.node, loop: loop.index)

    init(storage: RedisStorage, loop: Loop) {
        self.storage = storage
        self.loop = loop
        let (url, address, tls) = (storage.url, storage.address, storage.tls)
        var setup: [[[UInt8]]] = [
            .command("SCRIPT", "LOAD", Scripts.append), .command("SCRIPT", "LOAD", Scripts.batch),
            .command("SCRIPT", "LOAD", Scripts.runAppend),
        ]
        setup += MemberScripts.all.map { .command("SCRIPT", "LOAD", $0) }
        let single: RedisConnection?
        if let router = storage.sync.router {
            let c = ClusterCommands(loop: loop, router: router, setup: setup, name: "commands/\(loop.index)")
            (commands, single) = (c, nil)
        } else {
            let c = RedisConnection(loop: loop, url: url, address: address, name: "commands/\(loop.index)", tls: tls)
            c.setup = setup
            c.probesReplySkip = true
            (commands, single) = (c, c)
        }
        subscriber = RedisConnection(
            loop: loop, url: url, address: address, name: "subscriber/\(loop.index)", tls: tls)
        subscriber.onMessage = { [unowned self] channel, payload in self.message(channel, payload) }
        // Once Redis confirms a subscription (the first, or again after a reconnect), the session reads
        // what was published before it took effect.
        subscriber.onSubscribed = { [unowned self] channel in
            if channel == Self.runsChannel { return self.runSink?(.subscribed) ?? () }
            if channel == Self.directoryChannel { return self.rereadDirectory() }
            if let node = self.nodeChannels[channel] { return node(nil) }
            self.subscribed(ChannelKey(channel))
        }
        single?.start()
        subscriber.nextNode = storage.sync.router.map { router in { router.nextNode(after: $0) } }
        subscriber.start()
        if let cluster = commands as? ClusterCommands {
            let shards = ShardSubscribers(
                loop: loop, router: cluster.router, name: "subscriber/\(loop.index)",
                onMessage: { [unowned self] channel, payload in self.message(channel, payload) },
                onSubscribed: { [unowned self] channel in self.subscribed(ChannelKey(channel)) })
            cluster.onMapChange = { [unowned shards] in shards.place() }
            self.shards = shards
        }
        if let shards { shards.subscribe(routes.channel) } else { subscriber.subscribe(routes.channel) }
    }

    /// A session's subscription took effect: it reads what it missed, and this loop says again that it follows it.
    private func subscribed(_ channel: ChannelKey) {
        guard let s = sinks[channel] else { return }
        announce(channel)
        s.sink(.subscribed)
    }

    /// `durable`: an append whose reply is an acknowledgement; with `--redis-wait-replicas` it waits for
    /// the replicas (`RedisWait`).
    func eval(
        _ script: String, sha: String, keys: [String], args: [[UInt8]], durable: Bool = false,
        _ reply: @escaping (RedisReply) -> Void
    ) {
        let tail: [[UInt8]] = [Array(String(keys.count).utf8)] + keys.map { Array($0.utf8) } + args
        if durable, let wait = storage.replicaWait { return evalWaiting(script, sha: sha, tail: tail, wait, reply) }
        commands.send([Array("EVALSHA".utf8), Array(sha.utf8)] + tail) { [commands] r in
            // Redis restarted and forgot the script: sent again in full (which loads it again).
            if let e = r.errorMessage, e.hasPrefix("NOSCRIPT") {
                return commands.send([Array("EVAL".utf8), Array(script.utf8)] + tail, reply)
            }
            reply(r)
        }
    }

    /// Ephemeral traffic per channel, batched per loop iteration (the loop's tick: everything one
    /// wake-up produced, so nothing waits for a timer and a busy loop sends bigger batches): one
    /// publish per session per iteration. A presence update replaces an earlier one of the same member
    /// within the batch (state: only the latest matters); app events and typing all go.
    private var relays: [ChannelKey: [Relayed]] = [:]
    private var relayScheduled = false
    let loop: Loop

    func relay(_ channel: ChannelKey, _ item: Relayed) {
        var batch = relays.removeValue(forKey: channel) ?? []
        if item.traffic == .presence, !item.key.isEmpty, let i = batch.firstIndex(where: { $0.key == item.key }) {
            batch[i] = item
        } else if batch.count < ChannelMessage.maxBatch {
            batch.append(item)
        }
        relays[channel] = batch
        if !relayScheduled {
            relayScheduled = true
            loop.atEndOfIteration { [unowned self] in self.flushRelays() }
        }
    }

    private func flushRelays() {
        relayScheduled = false
        // The batches change places with the emptied spare (no copy of the table per iteration).
        var all = relaysSpare
        swap(&all, &relays)
        // One publication per other loop that follows any of these sessions (`EphemeralRoutes`).
        routes.publish(origin: storage.node, all) { channel, payload in publish(channel, payload) }
        all.removeAll(keepingCapacity: all.capacity <= 1024)
        relaysSpare = all
    }
    private var relaysSpare: [ChannelKey: [Relayed]] = [:]
    private static let publishCommand = (plain: Array("PUBLISH".utf8), sharded: Array("SPUBLISH".utf8))

    /// Ephemeral: dropped rather than queued once a quarter of the pending budget is used.
    func publish(_ channel: [UInt8], _ payload: [UInt8]) {
        guard commands.pendingBytes < RedisConnection.maxPendingBytes / 4 else { return }
        let command = shards == nil ? Self.publishCommand.plain : Self.publishCommand.sharded
        // Nobody reads a relay's answer: Redis is asked not to send it, where it takes that.
        if commands.sendUnanswered([command, channel, payload]) { return }
        commands.send([command, channel, payload]) { _ in }
    }

    func follow(_ channel: String, stream: String, _ sink: @escaping (SharedItem) -> Void) {
        let c = Array(channel.utf8)
        sinks[ChannelKey(c)] = (stream, sink)
        if let shards { shards.subscribe(c) } else { subscriber.subscribe(c) }
        announce(ChannelKey(c))
    }

    func unfollow(_ channel: String) {
        let c = Array(channel.utf8)
        sinks[ChannelKey(c)] = nil
        withdraw(ChannelKey(c))
        if let shards { shards.unsubscribe(c) } else { subscriber.unsubscribe(c) }
    }

    func followDirectory(_ sink: @escaping (SessionInfo) -> Void) {
        directory = sink
        subscriber.subscribe(Self.directoryChannel)
    }

    /// Codes published on `chub:dir` since the re-read in flight began (nil: none in flight).
    private var publishedDuringReread: Set<String>?
    private var rereadAgain = false
    private var rereadTimer: Loop.Timer?

    /// The directory subscription took effect (at start-up, or again after a reconnect): what was
    /// published before it (sessions created, changed or ended meanwhile) is read from the rows in
    /// Redis, off the loop. A row published again while the read was on its way is newer than the
    /// read: the read's copy of it is dropped.
    private func rereadDirectory() {
        guard publishedDuringReread == nil else {
            rereadAgain = true
            return
        }
        publishedDuringReread = []
        let storage = storage, loop = loop
        DispatchQueue.global().async { [unowned self] in
            let rows: [SessionInfo]?
            do { rows = try storage.rows() } catch {
                Logger(label: "collabhub.redis").warning(
                    "the session directory was not re-read", metadata: ["error": "\(error)"])
                rows = nil
            }
            loop.post { [unowned self] in
                let newer = publishedDuringReread ?? []
                publishedDuringReread = nil
                guard let rows else {
                    // Tried again in a second (a reconnect's confirmation reads it again as well).
                    rereadTimer = Loop.Timer(loop: loop, after: 1) { [unowned self] in
                        rereadTimer = nil
                        rereadDirectory()
                    }
                    return
                }
                for info in rows where !newer.contains(info.code) { directory?(info) }
                if rereadAgain {
                    rereadAgain = false
                    rereadDirectory()
                }
            }
        }
    }

    func notify(_ stream: String, _ item: SharedItem) {
        sinks[ChannelKey.session(stream)]?.sink(item)
    }

    /// Tells every session this loop follows (on this loop).
    func notifyAll(_ item: SharedItem) {
        for (_, s) in sinks { s.sink(item) }
    }

    /// Every run event any node appends (`chub:runs`, followed by loop 0's link).
    var runSink: ((RunItem) -> Void)?
    static let runsChannel = Array(RedisStorage.runsChannel.utf8)

    func followRuns(_ sink: @escaping (RunItem) -> Void) {
        runSink = sink
        subscriber.subscribe(Self.runsChannel)
    }

    private func message(_ channel: [UInt8], _ payload: [UInt8]) {
        let key = ChannelKey(channel)
        // A session's channel: straight to its sink (no node-wide channel starts with `{`).
        if key.isSession { return sessionMessage(key, payload) }
        if channel == routes.channel { return nodeBatch(payload) }
        if let node = nodeChannels[channel] { return node(payload) }
        if channel == Self.directoryChannel {
            if let info = SessionInfoJSON.decode(payload) {
                publishedDuringReread?.insert(info.code)
                directory?(info)
            }
            return
        }
        if channel == Self.runsChannel {
            guard let p = RunPublication.decode(payload) else { return }
            if storage.learned("run:" + p.run, epoch: p.epoch, seq: p.entry.seq) != nil {
                runSink?(.lost(run: p.run, lastSeq: p.entry.seq - 1))
            }
            runSink?(.committed(run: p.run, p.entry.stored, own: p.entry.origin == storage.node))
            return
        }
        sessionMessage(key, payload)
    }

    private func sessionMessage(_ channel: ChannelKey, _ payload: [UInt8]) {
        guard let (stream, sink) = sinks[channel] else { return }
        // Another loop that follows the session, or stopped (`EphemeralRoutes`).
        if payload.first == UInt8(ascii: "f") { return routes.heard(channel, payload) }
        // This node's own publications (every append of ours comes back): only what they say of the
        // log is noted, without decoding the event.
        if let own = ChannelMessage.ownCommit(payload, node: storage.node) {
            if storage.learned(stream, epoch: own.epoch, seq: own.seq) != nil { sink(.lost(lastSeq: own.seq - 1)) }
            return
        }
        // Ephemeral batches (cross-node fan-out): this node's own is dropped from its header, another's
        // frames go out as they came (`RelayedBatch`).
        switch RelayedBatch.read(payload, node: nodeBytes) {
        case .items(let items):
            for r in items { sink(.ephemeral(r.traffic, key: r.relayedKey, frame: r.frame)) }
            return
        case .own, .malformed: return
        case .notEphemeral: break
        }
        guard let m = ChannelMessage.decode(payload) else { return }
        switch m {
        case .committed(let epoch, let e):
            if storage.learned(stream, epoch: epoch, seq: e.seq) != nil { sink(.lost(lastSeq: e.seq - 1)) }
            if e.origin != storage.node { sink(.committed(e.stored)) }
        case .ephemeral: break
        }
    }
}

/// Counts up, from any thread.
final class EpochCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n }
}
