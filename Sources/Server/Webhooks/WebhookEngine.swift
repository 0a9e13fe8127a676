import EventLoop
import Foundation
import Logging
import Hub
import WebSocket

/// Delivers the webhook outbox, on loop 0.
///
/// Deliveries wait in lanes, one per (endpoint, stream): a lane sends its oldest delivery and nothing
/// else until that one is delivered or has failed for good, so the events of one session (or run) reach
/// an endpoint in seq order while other sessions go ahead. At most `maxPerEndpoint` attempts run at
/// once per endpoint and `maxInFlight` in all. Names are resolved on a worker (`wakeups`); the address
/// is checked against `AddressPolicy` before anything connects; the HTTP exchange runs on the loop.
/// Every attempt's outcome is stored (`recordAttempt`): after a crash, what was not delivered is still
/// pending and goes again (at least once; the `webhook-id` lets receivers drop repeats).
final class WebhookEngine {
    unowned let context: LoopContext
    let store: Storage
    /// Name resolution (and the spilled outbox's reads) run on these, in turn: one slow name server
    /// holds up one of them, not every delivery.
    let resolvers: [Worker]
    private var nextResolver = 0
    private var worker: Worker {
        nextResolver = (nextResolver + 1) % resolvers.count
        return resolvers[nextResolver]
    }
    let allowPrivate: Bool
    let disableAfter: Double
    private let tlsContext: TLSContext?
    private var endpoints: [String: WebhookEndpoint] = [:]
    private struct Lane: Hashable { let webhook: String; let stream: String }
    private var lanes: [Lane: [WebhookDelivery]] = [:]
    private var busy: Set<Lane> = []
    private var inFlightPerEndpoint: [String: Int] = [:]
    private var inFlight = 0
    /// Deliveries held in memory at most (by count and by body bytes); beyond, new ones stay in the
    /// outbox only and are read again once the queue has room (`spilled`).
    static let maxQueued = 50_000
    static let maxQueuedBytes = 64 << 20
    private var queuedIds: Set<Int> = []
    private var queuedBytes = 0
    private var spilled = false
    private var reloading = false
    private var recalled: [WebhookMessageKey] = []
    private var timer: Loop.Timer?
    private var timerDue = Double.infinity
    static let maxPerEndpoint = 8
    static let maxInFlight = 64

    /// Figures for /metrics (read from any loop).
    let stats = WebhookStats()

    init(
        context: LoopContext, store: Storage, resolvers: [Worker], allowPrivate: Bool, disableAfter: Double,
        caFile: String?
    ) throws {
        self.context = context
        self.store = store
        self.resolvers = resolvers
        self.allowPrivate = allowPrivate
        self.disableAfter = disableAfter
        tlsContext = try TLSContext(verifyingClient: caFile)
        let loop = context.loop
        store.onOutbox = { [weak self] rows in loop.post { self?.add(rows) } }
        // A cluster's endpoints change on any node: this engine follows.
        store.onEndpoints = { [weak self] id, e in loop.post { self?.update(id, e) } }
    }

    /// Reads the endpoints and what is pending (blocking: at start-up).
    func load() {
        for e in (try? store.webhooks()) ?? [] { endpoints[e.id] = e }
        reloadPending()
    }

    private func reloadPending() {
        let pending = (try? store.pendingDeliveries(webhook: nil, after: 0, limit: Self.maxQueued)) ?? []
        spilled = pending.count >= Self.maxQueued
        add(pending)
    }

    /// Reads what was left in the outbox while the queue was full, on a worker, once what is queued to
    /// be stored has been committed (a row being attempted now is recognised by its id).
    private func reloadSpilled() {
        guard !reloading else { return }
        reloading = true
        spilled = false
        let store = self.store, loop = context.loop
        let queued = worker.submit { [weak self] in
            let committed = DispatchSemaphore(value: 0)
            store.barrier { _ in committed.signal() }
            committed.wait()
            let pending = (try? store.pendingDeliveries(webhook: nil, after: 0, limit: Self.maxQueued)) ?? []
            loop.post {
                guard let self else { return }
                self.reloading = false
                self.spilled = pending.count >= Self.maxQueued
                self.add(pending)
            }
        }
        if !queued { reloading = false; spilled = true }  // tried again when there is room next
    }

    /// The endpoint changed (created, updated, rotated, disabled) or went (`nil`).
    func update(_ id: String, _ endpoint: WebhookEndpoint?) {
        endpoints[id] = endpoint
        if endpoint == nil {
            for key in lanes.keys where key.webhook == id {
                // A delivery being attempted stays until its attempt ends.
                let keep = busy.contains(key) ? lanes[key]?.first : nil
                for d in lanes[key] ?? [] where d.id != keep?.id { forget(d) }
                lanes[key] = keep.map { [$0] }
            }
        }
        schedule()
    }

    /// A redaction committed: queued deliveries of those events of `stream` are dropped (their outbox
    /// rows went in the same commit). One being attempted right now cannot be called back, but it is not
    /// retried if that attempt fails.
    func forget(stream: String, seqs: Set<Int>) {
        // Deliveries of them that arrive later (a cluster node records its outbox off the loop) are
        // left out too: the newest 1,000 recalls are remembered.
        for seq in seqs { recalled.append(WebhookMessageKey(stream: stream, seq: seq)) }
        if recalled.count > 1000 { recalled.removeFirst(recalled.count - 1000) }
        for key in lanes.keys where key.stream == stream {
            let keep = busy.contains(key) ? lanes[key]?.first : nil
            let gone = (lanes[key] ?? []).filter { $0.id != keep?.id && seqs.contains($0.message.seq) }
            guard !gone.isEmpty else { continue }
            for d in gone { forget(d) }
            lanes[key]?.removeAll { d in gone.contains { $0.id == d.id } }
            if lanes[key]?.isEmpty == true { lanes[key] = nil }
        }
    }

    /// New outbox rows (after their commit), a test delivery, or a retried one. Rows of endpoints the
    /// engine does not know (deleted meanwhile) are left out.
    func add(_ rows: [WebhookDelivery]) {
        for d in rows where d.status == .pending && !queuedIds.contains(d.id) && endpoints[d.webhook] != nil {
            if isRecalled(d) { continue }
            // While rows wait only in the outbox, later ones wait too (read again in id order).
            if spilled || queuedIds.count >= Self.maxQueued || queuedBytes >= Self.maxQueuedBytes {
                spilled = true
                continue
            }
            let lane = Lane(webhook: d.webhook, stream: d.message.stream)
            var list = lanes[lane] ?? []
            // In id (= commit) order; a retried old delivery goes before what came after it, but never
            // before the delivery being attempted.
            let first = busy.contains(lane) ? 1 : 0
            if let last = list.last, last.id > d.id {
                let at = list.indices.dropFirst(first).first { list[$0].id > d.id } ?? list.endIndex
                list.insert(d, at: max(at, min(first, list.count)))
            } else {
                list.append(d)
            }
            lanes[lane] = list
            queuedIds.insert(d.id)
            queuedBytes += d.message.body.count
        }
        schedule()
    }

    private func isRecalled(_ d: WebhookDelivery) -> Bool {
        !recalled.isEmpty && recalled.contains(WebhookMessageKey(stream: d.message.stream, seq: d.message.seq))
    }

    private func forget(_ d: WebhookDelivery) {
        if queuedIds.remove(d.id) != nil { queuedBytes -= d.message.body.count }
    }

    /// Starts every attempt that is due and may go; arms the timer for the next one due.
    private func schedule() {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var nextDue = Int64.max
        for (lane, list) in lanes where !busy.contains(lane) {
            guard let head = list.first, let e = endpoints[lane.webhook], e.active else { continue }
            if head.nextAttempt > now { nextDue = min(nextDue, head.nextAttempt); continue }
            guard inFlight < Self.maxInFlight, inFlightPerEndpoint[lane.webhook, default: 0] < Self.maxPerEndpoint
            else {
                nextDue = min(nextDue, now + 50)
                continue
            }
            attempt(head, lane: lane, endpoint: e)
        }
        if spilled && queuedIds.count < Self.maxQueued / 2 && queuedBytes < Self.maxQueuedBytes / 2 { reloadSpilled() }
        stats.setDepth(depth)
        arm(nextDue)
    }

    private func arm(_ dueMillis: Int64) {
        guard dueMillis != .max else { return }
        let due = Double(dueMillis) / 1000
        if timer != nil && timerDue <= due { return }
        timer?.cancel()
        timerDue = due
        timer = Loop.Timer(loop: context.loop, after: max(0.001, due - Date().timeIntervalSince1970)) { [weak self] in
            self?.timer = nil
            self?.timerDue = .infinity
            self?.schedule()
        }
    }

    private func attempt(_ d: WebhookDelivery, lane: Lane, endpoint e: WebhookEndpoint) {
        busy.insert(lane)
        inFlight += 1
        inFlightPerEndpoint[lane.webhook, default: 0] += 1
        let started = Date()
        let finish: (Result<OutboundHTTP.Answer, DeliveryError>) -> Void = { [weak self] result in
            self?.finished(d, lane: lane, result: result, seconds: Date().timeIntervalSince(started))
        }
        guard let url = WebhookURL(e.url) else { return finish(.failure(DeliveryError("invalid URL"))) }
        let loop = context.loop, allowPrivate = self.allowPrivate
        // The attempt's deadline covers resolving the name too: a lookup slower than that fails the
        // attempt, and its late answer is ignored.
        let resolving = Pending()
        let deadline = Loop.Timer(loop: loop, after: e.timeoutSeconds) {
            guard resolving.take() else { return }
            finish(.failure(DeliveryError("timed out resolving \(url.host)")))
        }
        let queued = worker.submit {
            let resolved = ResolvedAddress.resolveAll(url.host, port: url.port)
            loop.post { [weak self] in
                deadline.cancel()
                guard let self, resolving.take() else { return }
                switch resolved {
                case .failure(let error): finish(.failure(error))
                case .success(let addresses):
                    // Every address must be public: a name with one private address is refused. The
                    // error never names what a name resolved to (it would make webhooks an oracle of
                    // the hub's internal DNS); a literal address is the caller's own.
                    if !allowPrivate, addresses.contains(where: { AddressPolicy.isPrivate($0.bytes) }) {
                        let what = AddressPolicy.literal(url.host) == nil ? "resolves to" : "is"
                        return finish(
                            .failure(
                                DeliveryError(
                                    "\(url.host) \(what) a private or reserved address "
                                        + "(allowed only with --webhook-allow-private)")))
                    }
                    self.send(d, to: url, addresses: addresses[...], endpoint: e, done: finish)
                }
            }
        }
        if !queued {  // every resolver's queue is full: the attempt fails now (and is retried)
            deadline.cancel()
            if resolving.take() { finish(.failure(DeliveryError("\(WorkerBusy())"))) }
        }
    }

    /// Sends to the first address that takes a connection: one that fails before anything was
    /// written (refused, unreachable, an IPv6 route the host lacks) passes the attempt to the next.
    private func send(
        _ d: WebhookDelivery, to url: WebhookURL, addresses: ArraySlice<ResolvedAddress>, endpoint e: WebhookEndpoint,
        done: @escaping (Result<OutboundHTTP.Answer, DeliveryError>) -> Void
    ) {
        guard let address = addresses.first else { return done(.failure(DeliveryError("no address"))) }
        let rest = addresses.dropFirst()
        let fd: Int32
        // As above: an address of a name is not named in the error.
        let label = AddressPolicy.literal(url.host) == nil ? "an address of \(url.host)" : address.text
        switch address.connectNonBlocking(label: label) {
        case .failure(let error):
            return rest.isEmpty ? done(.failure(error)) : send(d, to: url, addresses: rest, endpoint: e, done: done)
        case .success(let f): fd = f
        }
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        let timestamp = nowMillis / 1000
        let signature = Webhook.signature(
            id: d.message.id, timestamp: timestamp, body: d.message.body, secrets: e.signingSecrets(now: nowMillis))
        var head =
            "POST \(url.target) HTTP/1.1\r\nHost: \(url.hostHeader)\r\nUser-Agent: CollabHub-Webhooks/1\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(d.message.body.count)\r\nConnection: close\r\n"
            + "webhook-id: \(d.message.id)\r\nwebhook-timestamp: \(timestamp)\r\n"
            + "webhook-signature: \(signature)\r\n"
        for h in e.headers { head += "\(h.name): \(h.value)\r\n" }
        head += "\r\n"
        var client: OutboundHTTP?
        client = OutboundHTTP(loop: context.loop, fd: fd, peer: address.text) { [weak self] result in
            if case .failure = result, client?.lastWriteAt == 0, !rest.isEmpty, let self {
                client = nil
                return self.send(d, to: url, addresses: rest, endpoint: e, done: done)
            }
            client = nil
            done(result)
        }
        guard let client else { return }
        if url.tls, let tlsContext { client.enableTLS(tlsContext, serverName: url.host) }
        client.begin(request: Array(head.utf8) + d.message.body, timeout: e.timeoutSeconds)
    }

    private func finished(
        _ d: WebhookDelivery, lane: Lane, result: Result<OutboundHTTP.Answer, DeliveryError>,
        seconds: Double
    ) {
        busy.remove(lane)
        inFlight -= 1
        inFlightPerEndpoint[lane.webhook, default: 1] -= 1
        var next = d
        next.attempts += 1
        next.durationMillis = Int(seconds * 1000)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var retryAfter: Double?
        switch result {
        case .success(let answer):
            next.lastStatus = answer.status
            next.lastError = (200..<300).contains(answer.status) ? nil : "HTTP \(answer.status)"
            retryAfter = answer.retryAfter
        case .failure(let error):
            next.lastStatus = nil
            next.lastError = error.description
        }
        let ok = next.lastStatus.map { (200..<300).contains($0) } ?? false
        let maxAttempts = endpoints[d.webhook]?.maxAttempts ?? 1
        if ok {
            next.status = .delivered
            next.deliveredAt = now
        } else if isRecalled(d) {
            // Deleted or redacted while this attempt was on its way: not retried.
            next.status = .failed
            next.lastError = "the event was deleted or redacted before it was delivered"
        } else if Webhook.isRetryable(status: next.lastStatus) && next.attempts < maxAttempts {
            next.nextAttempt =
                now
                + Int64(
                    Webhook.backoff(
                        attempt: next.attempts, retryAfter: retryAfter,
                        jitter: Double.random(in: 0..<1)) * 1000)
        } else {
            next.status = .failed
        }
        stats.record(ok ? "delivered" : next.status == .failed ? "failed" : "retried", seconds: ok ? seconds : nil)
        store.recordAttempt(next)
        // The row is found by its id (a retried delivery may have joined the lane meanwhile).
        if let i = lanes[lane]?.firstIndex(where: { $0.id == d.id }) {
            if next.status == .pending {
                lanes[lane]?[i] = next
            } else {
                lanes[lane]?.remove(at: i)
                forget(d)
            }
        }
        if lanes[lane]?.isEmpty == true { lanes[lane] = nil }
        track(d.webhook, ok: ok, now: now)
        schedule()
    }

    /// An endpoint that keeps failing (no success for `disableAfter` seconds) is disabled, and the
    /// activity log says so; a success clears the count.
    private func track(_ id: String, ok: Bool, now: Int64) {
        guard var e = endpoints[id] else { return }
        let health: WebhookHealth
        if ok {
            guard e.failingSince != nil else { return }
            e.failingSince = nil
            health = .recovered
        } else if let since = e.failingSince {
            guard e.active, Double(now - since) / 1000 >= disableAfter else { return }
            e.active = false
            e.disabledReason = "no successful delivery for \(Int(disableAfter)) s"
            health = .disabled(since: since, reason: e.disabledReason!)
            Logger(label: "collabhub.webhooks").warning(
                "webhook endpoint disabled",
                // The host only: a receiver's URL may carry its own credential (a path token, a query).
                metadata: [
                    "webhook": .string(id), "host": .string(WebhookURL(e.url).map(\.host) ?? "?"),
                    "reason": .string(e.disabledReason!),
                ])
        } else {
            e.failingSince = now
            health = .failing(since: now)
        }
        endpoints[id] = e
        // Only these fields, and only if nobody changed them meanwhile (stored with the next commit).
        store.recordHealth(id, health)
    }

    /// Deliveries waiting in memory per endpoint.
    var depth: [String: Int] {
        // Every active endpoint has a value, 0 when drained: a gauge that vanishes reads as "no data".
        var out: [String: Int] = [:]
        for (id, e) in endpoints where e.active { out[id] = 0 }
        for (lane, list) in lanes { out[lane.webhook, default: 0] += list.count }
        return out
    }
}

/// An event's webhook: its stream and seq.
private struct WebhookMessageKey: Equatable {
    let stream: String
    let seq: Int
}

/// Something that happens once (on loop 0): the first `take` gets true.
private final class Pending {
    private var done = false
    func take() -> Bool {
        defer { done = true }
        return !done
    }
}

/// Delivery outcomes, latency and the outbox depth per endpoint, for `/metrics`: written on loop 0,
/// read by whichever loop serves the scrape.
final class WebhookStats: @unchecked Sendable {
    private let lock = NSLock()
    private var outcomes: [String: Int] = ["delivered": 0, "retried": 0, "failed": 0]
    /// Written on loop 0 only, under the lock (one shard).
    private let latency = BucketHistogram(bounds: BucketHistogram.remoteBounds)
    private var depth: [String: Int] = [:]

    func record(_ outcome: String, seconds: Double?) {
        lock.lock(); defer { lock.unlock() }
        outcomes[outcome, default: 0] += 1
        if let seconds { latency.observe(seconds) }
    }

    func setDepth(_ d: [String: Int]) { lock.lock(); depth = d; lock.unlock() }

    func render() -> String {
        lock.lock(); defer { lock.unlock() }
        var out =
            "# HELP collabhub_webhook_deliveries_total Webhook delivery attempts, by outcome.\n"
            + "# TYPE collabhub_webhook_deliveries_total counter\n"
        for (k, v) in outcomes.sorted(by: { $0.key < $1.key }) {
            out += "collabhub_webhook_deliveries_total{outcome=\"\(k)\"} \(v)\n"
        }
        out += BucketHistogram.render(
            "collabhub_webhook_delivery_seconds", help: "Duration of successful webhook deliveries.", [latency])
        out +=
            "# HELP collabhub_webhook_outbox_depth Webhook deliveries waiting, per endpoint.\n"
            + "# TYPE collabhub_webhook_outbox_depth gauge\n"
        for (k, v) in depth.sorted(by: { $0.key < $1.key }) {
            out += "collabhub_webhook_outbox_depth{webhook=\"\(k)\"} \(v)\n"
        }
        return out
    }
}
