import EventLoop
import Foundation
import Hub
import Logging

/// A stream entry of webhook work: `{S}:wh`'s entry `id`.
struct WebhookEntry: Hashable {
    let stream: String
    let id: String
}

/// The cluster's webhooks (scripts/deploy/CLUSTER.md, "Webhooks"): endpoints in Redis with a copy on
/// every node, an outbox entry written by the append script itself, delivered by the node whose
/// append wrote it, taken over from a dead node by the survivor that buries it (or by any node once
/// an entry has been idle for `idleMillis`).
///
/// The append script adds the entry (`{S}:wh`: the event's seq and the endpoints that want it) to the
/// session's stream and reads it into this node's pending list of the stream's consumer group in the
/// same atomic call: from Redis's answer on, the entry is either delivered by this node or, if this
/// node dies, found pending under its name. The delivery log is records in Redis (`WebhookScripts`),
/// so every node lists and retries the same deliveries.
final class RedisWebhooks: @unchecked Sendable {
    unowned let storage: RedisStorage
    private var sync: RedisSync { storage.sync }
    private var node: String { storage.node }
    private let lock = NSLock()
    private var copy: [String: WebhookEndpoint] = [:]
    /// Deliveries this node holds (pending, in its engine): their entry, endpoint and index key.
    private var held: [Int: (entry: WebhookEntry, webhook: String, key: String, seq: Int)] = [:]
    /// Per entry this node holds: its deliveries not finished yet (acknowledged when none is left).
    private var open: [WebhookEntry: Set<Int>] = [:]
    /// Blocking Redis work, in order (records, acknowledgements, take-overs).
    private let queue = DispatchQueue(label: "collabhub.redis.webhooks")
    /// Calls `then` once the work queued before it (records, attempts, health) is done.
    func drained(_ then: @escaping () -> Void) { queue.async(execute: then) }
    private var subscriber: RedisConnection?
    private var timers: [Loop.Timer] = []
    private let log = Logger(label: "collabhub.redis")
    var onOutbox: (([WebhookDelivery]) -> Void)?
    var onEndpoints: ((String, WebhookEndpoint?) -> Void)?
    /// A pending entry idle this long (its node neither finished nor touched it) is taken over.
    static let idleMillis = 30_000
    /// How often a node touches what it holds and looks for idle entries.
    static let sweepSeconds = 5.0

    init(storage: RedisStorage) { self.storage = storage }
    /// Takes empty, idle streams out of `chub:{wh}:streams` (on `queue`).
    private lazy var pruner = WebhookStreamPruner(sync: sync, stream: Self.stream)

    static func stream(_ s: String) -> String { "{\(s)}:wh" }

    // MARK: - Endpoints

    /// Loads the endpoints (blocking: at start-up), then follows their changes on `loop`.
    func start(loop: Loop) {
        try? reloadAll()
        loop.post { [self] in
            let sub = RedisConnection(loop: loop, url: storage.url, address: storage.address, name: "webhooks")
            sub.onMessage = { [unowned self] _, payload in
                let id = String(decoding: payload, as: UTF8.self)
                queue.async { [self] in changed(id) }
            }
            // At start-up and after each reconnect: what changed meanwhile is read again.
            sub.onSubscribed = { [unowned self] _ in queue.async { [self] in try? reloadAll() } }
            sub.nextNode = storage.sync.router.map { router in { router.nextNode(after: $0) } }
            sub.start()
            sub.subscribe(Array(WebhookScripts.changed.utf8))
            subscriber = sub
            let t = Loop.Timer(loop: loop, after: Self.sweepSeconds, repeat: Self.sweepSeconds) { [unowned self] in
                queue.async { [self] in
                    touch()
                    sweep()
                    pruner.pass(open: lock.withLock { Set(open.keys.map(\.stream)) })
                }
            }
            t.unref()
            timers.append(t)
        }
    }

    private func changed(_ id: String) {
        let e = try? sync.call(.command("HGET", WebhookScripts.endpoints, id)).bytes.flatMap(WebhookRecords.endpoint)
        guard let e else {
            // Gone, or not readable now: a failed read is followed by the reconnect's re-read.
            if (try? sync.call(.command("HEXISTS", WebhookScripts.endpoints, id)).int) == 0 { set(id, nil) }
            return
        }
        set(id, e)
    }

    private func reloadAll() throws {
        let all = try readAll()
        let before = lock.withLock { copy }
        for (id, e) in all where before[id] != e { set(id, e) }
        for id in before.keys where all[id] == nil { set(id, nil) }
    }

    private func readAll() throws -> [String: WebhookEndpoint] {
        let items = try sync.call(.command("HGETALL", WebhookScripts.endpoints)).items
        var out: [String: WebhookEndpoint] = [:]
        var i = 1
        while i < items.count {
            if let b = items[i].bytes, let e = WebhookRecords.endpoint(b) { out[e.id] = e }
            i += 2
        }
        return out
    }

    /// The node's copy changes: the engine hears of it; what this node holds for a deleted endpoint
    /// is finished.
    private func set(_ id: String, _ e: WebhookEndpoint?) {
        let same = lock.withLock { () -> Bool in
            if copy[id] == e { return true }
            copy[id] = e
            return false
        }
        if same { return }
        onEndpoints?(id, e)
        if e == nil { dropHeld(webhook: id) }
    }

    private func dropHeld(webhook: String) {
        let done = lock.withLock { () -> [WebhookEntry] in
            var done: [WebhookEntry] = []
            for (id, h) in held where h.webhook == webhook {
                held[id] = nil
                open[h.entry]?.remove(id)
                if open[h.entry]?.isEmpty == true {
                    open[h.entry] = nil
                    done.append(h.entry)
                }
            }
            return done
        }
        for entry in done { ack(entry) }
    }

    /// The endpoints of this node's copy that want `event` (what the append script records).
    func wanted(_ event: DurableEvent) -> [String] {
        guard lock.withLock({ !copy.isEmpty }), let type = Webhook.type(of: event) else { return [] }
        return wanted(type)
    }

    /// The endpoints of this node's copy that want `type`.
    func wanted(_ type: WebhookEventType) -> [String] {
        lock.withLock { copy.values.filter { $0.active && $0.wants(type) }.map(\.id).sorted() }
    }

    var anyActive: Bool { lock.withLock { copy.values.contains { $0.active } } }

    func all() throws -> [WebhookEndpoint] {
        try readAll().values.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    func save(_ e: WebhookEndpoint) throws {
        _ = try sync.call(
            .command(
                "EVAL", WebhookScripts.save, 1, WebhookScripts.endpoints, e.id, WebhookRecords.encode(e),
                WebhookScripts.changed))
        lock.withLock { copy[e.id] = e }
    }

    func delete(_ id: String) throws -> Bool {
        let n = try sync.call(
            .command(
                "EVAL", WebhookScripts.delete, 2, WebhookScripts.endpoints, WebhookScripts.pending, id,
                WebhookScripts.changed)
        ).int
        queue.async { [self] in set(id, nil) }
        return n == 1
    }

    func recordHealth(_ id: String, _ health: WebhookHealth) {
        queue.async { [self] in
            for _ in 0..<3 {
                guard let old = try? sync.call(.command("HGET", WebhookScripts.endpoints, id)).bytes,
                    var e = WebhookRecords.endpoint(old)
                else { return }
                switch health {
                case .failing(let since):
                    guard e.failingSince == nil else { return }
                    e.failingSince = since
                case .recovered:
                    guard e.failingSince != nil else { return }
                    e.failingSince = nil
                case .disabled(let since, let reason):
                    guard e.active, e.failingSince == since else { return }
                    e.active = false
                    e.disabledReason = reason
                }
                let swapped = try? sync.call(
                    .command(
                        "EVAL", WebhookScripts.swap, 1, WebhookScripts.endpoints, id, old,
                        WebhookRecords.encode(e), WebhookScripts.changed))
                guard let swapped else { return }
                if swapped.int == 1 {
                    if case .disabled(_, let reason) = health {
                        storage.record(
                            ActivityEntry(actor: "system", action: "webhook_disabled", target: id, details: reason))
                    }
                    return
                }
            }
        }
    }

    // MARK: - The outbox

    /// What the append script answered for an event this node stored: its entry, and the messages
    /// it makes. Recorded off the loop, then handed to the engine.
    func appended(stream: String, entry: String, hooks: [String], messages: [WebhookMessage]) {
        guard let message = messages.first else { return }
        queue.async { [self] in
            let rows = take(WebhookEntry(stream: stream, id: entry), hooks: hooks, message: message)
            if !rows.isEmpty { onOutbox?(rows) }
        }
    }

    /// Makes (or finds) the records of an entry for each endpoint still known; holds the pending ones.
    /// An entry whose event is gone (retention) or was deleted or redacted is finished unsent.
    private func take(_ entry: WebhookEntry, hooks: [String], message: WebhookMessage?) -> [WebhookDelivery] {
        guard let message else {
            ack(entry)
            return []
        }
        let known = lock.withLock { copy }
        var rows: [WebhookDelivery] = []
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for hook in hooks where known[hook] != nil {
            let key = "\(entry.stream) \(entry.id) \(hook)"
            var d = WebhookDelivery(id: 0, webhook: hook, message: message, nextAttempt: now, createdAt: now)
            guard
                let r = try? sync.call(
                    .command(
                        "EVAL", WebhookScripts.record, 6, WebhookScripts.index, WebhookScripts.next,
                        WebhookScripts.records, WebhookScripts.created, WebhookScripts.pending, WebhookScripts.by(hook),
                        key, WebhookRecords.encode(d, key: key), Int(now), hook)
                ).items, r.count == 2, let id = r[0].int
            else {
                // Not recorded (Redis away): the entry stays pending and is taken up again once idle.
                log.warning("webhook delivery not recorded", metadata: ["stream": "\(entry.stream)"])
                return rows
            }
            if let old = r[1].bytes, !old.isEmpty, let existing = WebhookRecords.delivery(id: id, old) {
                d = existing.0
            } else {
                d.id = id
            }
            guard d.status == .pending else { continue }
            rows.append(d)
            lock.withLock {
                held[id] = (entry, hook, key, message.seq)
                open[entry, default: []].insert(id)
            }
        }
        if lock.withLock({ open[entry] == nil }) { ack(entry) }
        return rows
    }

    private func ack(_ entry: WebhookEntry) {
        let s = Self.stream(entry.stream)
        _ = try? sync.call(.command("XACK", s, WebhookScripts.group, entry.id))
        _ = try? sync.call(.command("XDEL", s, entry.id))
    }

    /// The webhook of a logged event, rebuilt by a node that did not append it; nil if the event is
    /// no longer in the log or its content was deleted or redacted.
    private func rebuild(stream: String, seq: Int) -> WebhookMessage? {
        if seq == 0 {
            guard let row = try? sync.call(.command("GET", "{\(stream)}:info")).bytes,
                let info = SessionInfoJSON.decode(row)
            else { return nil }
            return Webhook.sessionStarted(info)
        }
        guard let raw = try? sync.call(.command("HGET", RedisStorage.keys(stream).log, seq)).bytes,
            let e = LogEntry.decode(raw[...])
        else { return nil }
        if let body = try? JSONReader.readObject(Array("{".utf8) + e.body + Array("}".utf8)),
            body["deleted"]?.bool == true || body["redacted"]?.bool == true
        {
            return nil
        }
        let event = DurableEvent(session: stream, type: e.type, member: e.member, clientId: nil, body: e.body)
        return Webhook.messages(for: event, committed: Committed(seq: e.seq, ts: e.ts, duplicate: false)).first
    }

    /// Entries as XCLAIM and XAUTOCLAIM list them: `[id, [field, value, ...]]`.
    private func takeClaimed(_ stream: String, _ entries: [RedisReply]) -> [WebhookDelivery] {
        var rows: [WebhookDelivery] = []
        for item in entries {
            let parts = item.items
            guard parts.count == 2, let id = parts[0].text else { continue }
            let entry = WebhookEntry(stream: stream, id: id)
            if lock.withLock({ open[entry] != nil }) { continue }
            var fields: [String: String] = [:]
            let f = parts[1].items
            var i = 0
            while i + 1 < f.count {
                if let k = f[i].text, let v = f[i + 1].text { fields[k] = v }
                i += 2
            }
            guard let seq = fields["seq"].flatMap({ Int($0) }), let hooks = fields["hooks"] else {
                ack(entry)
                continue
            }
            rows += take(
                entry, hooks: hooks.split(separator: " ").map(String.init), message: rebuild(stream: stream, seq: seq))
        }
        return rows
    }

    /// This node buried `dead` (it won `chub:nodes`): every entry pending under its name is taken over.
    func takeOver(from dead: String) {
        queue.async { [self] in
            var rows: [WebhookDelivery] = []
            for stream in (try? sync.call(.command("SMEMBERS", WebhookScripts.streams)).items) ?? [] {
                guard let name = stream.text else { continue }
                let s = Self.stream(name)
                while true {
                    let pending =
                        (try? sync.call(.command("XPENDING", s, WebhookScripts.group, "-", "+", 500, dead)))?
                        .items.compactMap { $0.items.first?.text } ?? []
                    if pending.isEmpty { break }
                    var args: [[UInt8]] = .command("XCLAIM", s, WebhookScripts.group, node, 0)
                    args += pending.map { Array($0.utf8) }
                    guard let claimed = try? sync.call(args) else { break }
                    rows += takeClaimed(name, claimed.items)
                    if pending.count < 500 { break }
                }
                _ = try? sync.call(.command("XGROUP", "DELCONSUMER", s, WebhookScripts.group, dead))
            }
            if !rows.isEmpty {
                log.notice("webhook deliveries taken over", metadata: ["node": "\(dead)", "count": "\(rows.count)"])
                onOutbox?(rows)
            }
        }
    }

    /// What this node holds is touched (its idle time reset), so no other node takes it.
    private func touch() {
        let byStream = lock.withLock { Dictionary(grouping: open.keys, by: \.stream) }
        for (stream, entries) in byStream {
            for chunk in stride(from: 0, to: entries.count, by: 500) {
                var args: [[UInt8]] = .command("XCLAIM", Self.stream(stream), WebhookScripts.group, node, 0)
                args += entries[chunk..<min(chunk + 500, entries.count)].map { Array($0.id.utf8) }
                args.append(Array("JUSTID".utf8))
                _ = try? sync.call(args)
            }
        }
    }

    /// Entries idle past `idleMillis` on any stream (a node that died unburied, a record that failed)
    /// are taken over.
    private func sweep() {
        var rows: [WebhookDelivery] = []
        for stream in (try? sync.call(.command("SMEMBERS", WebhookScripts.streams)).items) ?? [] {
            guard let name = stream.text else { continue }
            let r = try? sync.call(
                .command(
                    "XAUTOCLAIM", Self.stream(name), WebhookScripts.group, node, Self.idleMillis, "0-0", "COUNT", 100))
            guard let items = r?.items, items.count >= 2 else { continue }
            rows += takeClaimed(name, items[1].items)
        }
        if !rows.isEmpty { onOutbox?(rows) }
    }

    /// A deletion or redaction of `seq` was stored by this node: the deliveries of that event this
    /// node holds are failed unsent (the engine dropped them from its lanes, as a single node deletes
    /// their outbox rows), so their entries are finished.
    func recall(stream: String, seq: Int) {
        queue.async { [self] in
            let ids = lock.withLock {
                held.filter { $0.value.entry.stream == stream && $0.value.seq == seq }.map(\.key)
            }
            for id in ids {
                guard var d = try? delivery(id: id), d.status == .pending else { continue }
                d.status = .failed
                d.lastError = "the event was deleted or redacted before it was delivered"
                recordAttempt(d)
            }
        }
    }

    // MARK: - The delivery log

    func recordAttempt(_ d: WebhookDelivery) {
        queue.async { [self] in
            let key =
                lock.withLock({ held[d.id]?.key })
                ?? (try? sync.call(.command("HGET", WebhookScripts.records, d.id)).bytes)
                .flatMap { WebhookRecords.delivery(id: d.id, $0)?.key } ?? ""
            _ = try? sync.call(
                .command(
                    "EVAL", WebhookScripts.attempt, 2, WebhookScripts.records, WebhookScripts.pending, d.id,
                    WebhookRecords.encode(d, key: key), d.webhook))
            guard d.status != .pending else { return }
            let done = lock.withLock { () -> WebhookEntry? in
                guard let h = held.removeValue(forKey: d.id) else { return nil }
                open[h.entry]?.remove(d.id)
                guard open[h.entry]?.isEmpty == true else { return nil }
                open[h.entry] = nil
                return h.entry
            }
            if let done { ack(done) }
        }
    }

    func delivery(id: Int) throws -> WebhookDelivery? {
        try sync.call(.command("HGET", WebhookScripts.records, id)).bytes.flatMap {
            WebhookRecords.delivery(id: id, $0)?.0
        }
    }

    func deliveries(webhook: String, status: DeliveryStatus?, before: Int?, limit: Int) throws -> [WebhookDelivery] {
        var out: [WebhookDelivery] = []
        var below = before.map { "(\($0)" } ?? "+inf"
        while out.count < limit {
            let ids = try sync.call(
                .command("ZREVRANGEBYSCORE", WebhookScripts.by(webhook), below, "-inf", "LIMIT", 0, 200)
            ).items.compactMap(\.int)
            guard let last = ids.last else { break }
            var args: [[UInt8]] = .command("HMGET", WebhookScripts.records)
            args += ids.map { Array(String($0).utf8) }
            for (id, r) in zip(ids, try sync.call(args).items) {
                guard let b = r.bytes, let d = WebhookRecords.delivery(id: id, b)?.0 else { continue }
                if status == nil || d.status == status { out.append(d) }
                if out.count == limit { break }
            }
            below = "(\(last)"
            if ids.count < 200 { break }
        }
        return out
    }

    func enqueue(_ m: WebhookMessage, webhook: String) throws -> WebhookDelivery {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let key = "test \(m.id) \(webhook)"
        var d = WebhookDelivery(id: 0, webhook: webhook, message: m, nextAttempt: now, createdAt: now)
        let r = try sync.call(
            .command(
                "EVAL", WebhookScripts.record, 6, WebhookScripts.index, WebhookScripts.next, WebhookScripts.records,
                WebhookScripts.created, WebhookScripts.pending, WebhookScripts.by(webhook), key,
                WebhookRecords.encode(d, key: key), Int(now), webhook)
        ).items
        guard r.count == 2, let id = r[0].int else { throw StoreFailure("redis: unexpected reply") }
        d.id = id
        return d
    }

    func retry(id: Int) throws -> WebhookDelivery? {
        guard let b = try sync.call(.command("HGET", WebhookScripts.records, id)).bytes,
            let (old, key) = WebhookRecords.delivery(id: id, b)
        else { return nil }
        var d = old
        d.status = .pending
        d.attempts = 0
        d.nextAttempt = Int64(Date().timeIntervalSince1970 * 1000)
        d.lastError = nil
        let r = try sync.call(
            .command(
                "EVAL", WebhookScripts.attempt, 2, WebhookScripts.records, WebhookScripts.pending, id,
                WebhookRecords.encode(d, key: key), d.webhook))
        return r.int == 1 ? d : nil
    }

    func depth() throws -> [String: Int] {
        let items = try sync.call(.command("HGETALL", WebhookScripts.pending)).items
        var out: [String: Int] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].text, let v = items[i + 1].int { out[k] = max(0, v) }
            i += 2
        }
        return out
    }

    func trim(before: Int64, limit: Int) {
        queue.async { [self] in
            _ = try? sync.call(
                .command(
                    "EVAL", WebhookScripts.trim, 3, WebhookScripts.created, WebhookScripts.records,
                    WebhookScripts.index,
                    Int(before), limit, WebhookScripts.byPrefix))
        }
    }
}

/// The `WebhookStore` port in cluster mode: everything in Redis, shared by every node.
extension RedisStorage: WebhookStore {
    public func webhooks() throws -> [WebhookEndpoint] { try hooks.all() }
    public func saveWebhook(_ endpoint: WebhookEndpoint, actor: String, action: String?) throws {
        try hooks.save(endpoint)
        if let action {
            // Not the URL itself: its path or query may hold the receiver's credential.
            record(
                ActivityEntry(
                    actor: actor, action: action, target: endpoint.id,
                    details: endpoint.disabledReason ?? WebhookURL.origin(of: endpoint.url)))
        }
    }
    public func deleteWebhook(id: String, actor: String) throws -> Bool {
        guard try hooks.delete(id) else { return false }
        record(ActivityEntry(actor: actor, action: "webhook_deleted", target: id))
        return true
    }
    public func deliveries(webhook: String, status: DeliveryStatus?, before: Int?, limit: Int) throws
        -> [WebhookDelivery]
    { try hooks.deliveries(webhook: webhook, status: status, before: before, limit: limit) }
    /// None at start-up: a node's deliveries come from its own appends and from take-overs.
    public func pendingDeliveries(webhook: String?, after: Int, limit: Int) throws -> [WebhookDelivery] { [] }
    public func delivery(id: Int) throws -> WebhookDelivery? { try hooks.delivery(id: id) }
    public func enqueue(_ message: WebhookMessage, webhook: String) throws -> WebhookDelivery {
        try hooks.enqueue(message, webhook: webhook)
    }
    public func retryDelivery(id: Int) throws -> WebhookDelivery? { try hooks.retry(id: id) }
    public func recordAttempt(_ delivery: WebhookDelivery) { hooks.recordAttempt(delivery) }
    public func recordHealth(_ id: String, _ health: WebhookHealth) { hooks.recordHealth(id, health) }
    public func trimDeliveryLog(before: Int64, limit: Int) { hooks.trim(before: before, limit: limit) }
    public func outboxDepth() throws -> [String: Int] { try hooks.depth() }
    /// Nothing to do: the append scripts write the outbox entries themselves.
    public func report(_ messages: [WebhookMessage]) {}
    public var reportsWebhooks: Bool { hooks.anyActive }
    public var onOutbox: (([WebhookDelivery]) -> Void)? {
        get { hooks.onOutbox }
        set { hooks.onOutbox = newValue }
    }
    public var onEndpoints: ((String, WebhookEndpoint?) -> Void)? {
        get { hooks.onEndpoints }
        set { hooks.onEndpoints = newValue }
    }
}
