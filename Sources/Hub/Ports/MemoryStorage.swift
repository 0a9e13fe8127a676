import Bytes
import Foundation

/// Every storage port in memory, with the SQLite store's contract: seq assigned at commit and
/// contiguous per stream, a failed commit takes its seq back, a resend of a (stream, member, client id)
/// gets the original's seq marked duplicate, batches are all or nothing and conditional on the
/// stream's last seq, completions run on the caller's executor in append order. For tests: nothing
/// survives the process.
public final class MemoryStorage: Storage, @unchecked Sendable {
    private let lock = NSLock()
    private var events: [String: [StoredEvent]] = [:]
    /// Who sent each event (`session|seq` -> the member's stable key).
    private var authors: [String: String] = [:]
    private var floors: [String: Int] = [:]
    private var ids: [String: Committed] = [:]
    private var rows: [String: SessionInfo] = [:]
    private var log: [ActivityEntry] = []
    private var keys: [APIKeyRecord] = []
    private var uses: [String: [String: Int]] = [:]
    private var cursors: [String: [CursorSample]] = [:]
    private var hooks: [String: WebhookEndpoint] = [:]
    private var outbox: [WebhookDelivery] = []
    private var newOutbox: [WebhookDelivery] = []
    public var onOutbox: (([WebhookDelivery]) -> Void)? {
        get { lock.lock(); defer { lock.unlock() }; return outboxListener }
        set { lock.lock(); outboxListener = newValue; lock.unlock() }
    }
    private var outboxListener: (([WebhookDelivery]) -> Void)?
    /// Delivery ids only grow (like SQLite's), whatever is deleted.
    private var lastDeliveryId = 0
    private var clock: Int64 = 0
    /// When set, every commit fails (a full disk, say) until it is cleared.
    public var failing: Bool {
        get { lock.lock(); defer { lock.unlock() }; return fail }
        set { lock.lock(); fail = newValue; lock.unlock() }
    }
    private var fail = false

    public init() {}

    /// Milliseconds, strictly increasing (the SQLite store uses the wall clock).
    private func now() -> Int64 {
        let wall = Int64(Date().timeIntervalSince1970 * 1000)
        clock = max(clock + 1, wall)
        return clock
    }

    private func lastSeqLocked(_ stream: String) -> Int { max(events[stream]?.last?.seq ?? 0, floors[stream] ?? 0) }

    private func storeLocked(_ e: DurableEvent) -> Committed {
        let key = "\(e.session)|\(e.member ?? "")|\(e.clientId ?? "")"
        if e.clientId != nil, let c = ids[key] { return Committed(seq: c.seq, ts: c.ts, duplicate: true) }
        let seq = lastSeqLocked(e.session) + 1, ts = now()
        if let r = e.replaces, let i = events[e.session]?.firstIndex(where: { $0.seq == r.seq }) {
            let old = events[e.session]![i]
            events[e.session]![i] = StoredEvent(seq: old.seq, ts: old.ts, type: old.type, body: r.body)
            outbox.removeAll { $0.message.stream == e.session && $0.message.seq == r.seq }
            let marker = Array("\"target\":\(r.seq),".utf8)
            for (j, ev) in (events[e.session] ?? []).enumerated()
            where ev.type == "chat_edit" && ev.seq > r.seq && ev.body.firstRange(of: marker) != nil {
                guard let t = EventBody.editTombstone(ev.body, r.reason) else { continue }
                events[e.session]![j] = StoredEvent(seq: ev.seq, ts: ev.ts, type: ev.type, body: t)
                outbox.removeAll { $0.message.stream == e.session && $0.message.seq == ev.seq }
            }
        }
        events[e.session, default: []].append(StoredEvent(seq: seq, ts: ts, type: e.type, body: e.body))
        if let m = e.member { authors["\(e.session)|\(seq)"] = m }
        let c = Committed(seq: seq, ts: ts, duplicate: false)
        if e.clientId != nil { ids[key] = c }
        report(
            Webhook.messages(for: e, committed: c) { t in hooks.values.contains { $0.active && $0.wants(t) } }, now: ts)
        return c
    }

    // MARK: EventLog

    public func append(
        _ event: DurableEvent, executor: Executor, done: @escaping (Result<Committed, StoreFailure>) -> Void
    ) {
        lock.lock()
        let result: Result<Committed, StoreFailure> =
            fail ? .failure(StoreFailure("disk full")) : .success(storeLocked(event))
        let fresh = takeNewOutbox()
        lock.unlock()
        if !fresh.isEmpty { onOutbox?(fresh) }
        executor.execute { done(result) }
    }

    /// The outbox rows of the last commit (under the lock).
    private func takeNewOutbox() -> [WebhookDelivery] { defer { newOutbox = [] }; return newOutbox }

    public var reportsWebhooks: Bool {
        lock.lock(); defer { lock.unlock() }; return hooks.values.contains(where: \.active)
    }

    public func report(_ messages: [WebhookMessage]) {
        lock.lock()
        report(messages, now: now())
        let fresh = takeNewOutbox(), listener = outboxListener
        lock.unlock()
        if !fresh.isEmpty { listener?(fresh) }
    }

    private func report(_ messages: [WebhookMessage], now: Int64) {
        for m in messages {
            for e in hooks.values where e.active && e.wants(m.type) {
                lastDeliveryId += 1
                let d = WebhookDelivery(
                    id: lastDeliveryId, webhook: e.id, message: m, nextAttempt: now, createdAt: now)
                outbox.append(d)
                newOutbox.append(d)
            }
        }
    }

    public func appendBatch(
        _ batch: [DurableEvent], expectedLastSeq: Int?, executor: Executor,
        done: @escaping (Result<[Committed], StoreFailure>) -> Void
    ) {
        lock.lock()
        let result: Result<[Committed], StoreFailure>
        if fail {
            result = .failure(StoreFailure("disk full"))
        } else if let expected = expectedLastSeq, let first = batch.first, lastSeqLocked(first.session) != expected {
            result = .failure(StoreFailure("\(first.session) moved on since this batch was checked; retry"))
        } else {
            result = .success(batch.map { storeLocked($0) })
        }
        let fresh = takeNewOutbox()
        lock.unlock()
        if !fresh.isEmpty { onOutbox?(fresh) }
        executor.execute { done(result) }
    }

    public func recordCursors(session: String, ts: Int64, updates: [UInt8]) {
        lock.lock(); cursors[session, default: []].append(CursorSample(ts: ts, updates: updates)); lock.unlock()
    }

    // MARK: TranscriptReads

    private func reading<T>(_ body: () -> T) -> T {
        lock.lock(); defer { lock.unlock() }
        return body()
    }

    public func lastSeq(session: String) throws -> Int { reading { lastSeqLocked(session) } }

    public func tail(session: String, limit: Int) throws -> [StoredEvent] {
        reading { Array((events[session] ?? []).suffix(max(0, limit))) }
    }

    public func event(session: String, seq: Int) throws -> (event: StoredEvent, member: String?)? {
        reading {
            (events[session] ?? []).first { $0.seq == seq }.map { ($0, authors["\(session)|\(seq)"]) }
        }
    }

    public func events(session: String, after: Int, limit: Int) throws -> [StoredEvent] {
        reading { Array((events[session] ?? []).lazy.filter { $0.seq > after }.prefix(max(0, limit))) }
    }

    public func cursorSamples(session: String, from: Int64, to: Int64, limit: Int) throws -> [CursorSample] {
        reading { Array((cursors[session] ?? []).lazy.filter { $0.ts >= from && $0.ts <= to }.prefix(max(0, limit))) }
    }

    public func streams(prefix: String) throws -> [(String, [StoredEvent])] {
        reading { events.keys.filter { $0.hasPrefix(prefix) }.sorted().map { ($0, events[$0] ?? []) } }
    }

    /// Every cursor sample of a session (tests).
    public func allCursorSamples(session: String) -> [CursorSample] {
        lock.lock(); defer { lock.unlock() }; return cursors[session] ?? []
    }

    // MARK: SessionRecords

    public func save(_ info: SessionInfo, created: Bool, done: ((Bool) -> Void)?) {
        lock.lock()
        let ok = !fail
        if ok { rows[info.code] = info }
        if ok && created { report([Webhook.sessionStarted(info)], now: now()) }
        let fresh = takeNewOutbox()
        lock.unlock()
        if !fresh.isEmpty { onOutbox?(fresh) }
        done?(ok)
    }

    public func sessions() throws -> [(SessionInfo, events: Int)] {
        reading { rows.values.sorted { $0.createdAt < $1.createdAt }.map { ($0, events[$0.code]?.count ?? 0) } }
    }

    // MARK: ActivityLog

    public func record(_ entry: ActivityEntry) {
        lock.lock()
        var e = entry
        e.id = log.count + 1
        log.append(e)
        lock.unlock()
    }

    public func activity(_ q: ActivityQuery) throws -> [ActivityEntry] {
        reading {
            Array(
                log.reversed().lazy.filter { e in
                    (q.session == nil || e.session == q.session) && (q.actor == nil || e.actor == q.actor)
                        && (q.since == nil || e.ts >= q.since!) && (q.before == nil || (e.id ?? 0) < q.before!)
                }.prefix(max(0, q.limit)))
        }
    }

    // MARK: APIKeyStore

    public func allKeys() throws -> [APIKeyRecord] { reading { keys } }

    public func createKey(_ spec: APIKeySpec, actor: String) throws -> (APIKeyRecord, String) {
        let id = Self.alphanumeric(8), secret = Self.alphanumeric(32)
        let record = APIKeyRecord(
            id: id, name: spec.name, secretSHA256: Crypto.sha256(Array(secret.utf8)),
            createdAt: now(), revokedAt: nil, perMinute: spec.perMinute, perHour: spec.perHour,
            perMonth: spec.perMonth, scopes: spec.scopes, runs: spec.runs, owners: spec.owners)
        lock.lock(); keys.append(record); lock.unlock()
        self.record(ActivityEntry(actor: actor, action: "api_key_created", target: id, details: spec.name))
        return (record, "chk_\(id)_\(secret)")
    }

    public func revokeKey(id: String, actor: String) throws -> Bool {
        lock.lock()
        guard let i = keys.firstIndex(where: { $0.id == id && $0.revokedAt == nil }) else {
            lock.unlock(); return false
        }
        keys[i].revokedAt = now()
        lock.unlock()
        record(ActivityEntry(actor: actor, action: "api_key_revoked", target: id))
        return true
    }

    public func usage(window: String) throws -> [String: Int] {
        reading { uses.compactMapValues { $0[window] } }
    }

    public func recordUse(id: String, windows: (String, String)) {
        lock.lock()
        uses[id, default: [:]][windows.0, default: 0] += 1
        uses[id, default: [:]][windows.1, default: 0] += 1
        lock.unlock()
    }

    private static func alphanumeric(_ n: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        return String(Crypto.randomBytes(n).map { alphabet[Int($0) % alphabet.count] })
    }

    // MARK: WebhookStore

    public func webhooks() throws -> [WebhookEndpoint] {
        reading { hooks.values.sorted { $0.createdAt < $1.createdAt } }
    }

    public func saveWebhook(_ endpoint: WebhookEndpoint, actor: String, action: String?) throws {
        lock.lock(); hooks[endpoint.id] = endpoint; lock.unlock()
        if let action {
            // Not the URL itself: its path or query may hold the receiver's credential.
            record(
                ActivityEntry(
                    actor: actor, action: action, target: endpoint.id,
                    details: endpoint.disabledReason ?? WebhookURL.origin(of: endpoint.url)))
        }
    }

    public func deleteWebhook(id: String, actor: String) throws -> Bool {
        lock.lock()
        let existed = hooks.removeValue(forKey: id) != nil
        outbox.removeAll { $0.webhook == id }
        lock.unlock()
        if existed { record(ActivityEntry(actor: actor, action: "webhook_deleted", target: id)) }
        return existed
    }

    public func deliveries(webhook: String, status: DeliveryStatus?, before: Int?, limit: Int) throws
        -> [WebhookDelivery]
    {
        reading {
            Array(
                outbox.reversed().lazy.filter {
                    $0.webhook == webhook && (status == nil || $0.status == status)
                        && (before == nil || $0.id < before!)
                }.prefix(max(0, limit)))
        }
    }

    public func pendingDeliveries(webhook: String?, after: Int, limit: Int) throws -> [WebhookDelivery] {
        reading {
            Array(
                outbox.lazy.filter {
                    $0.status == .pending && $0.id > after && (webhook == nil || $0.webhook == webhook)
                }
                .prefix(max(0, limit)))
        }
    }

    public func delivery(id: Int) throws -> WebhookDelivery? { reading { outbox.first { $0.id == id } } }

    public func enqueue(_ message: WebhookMessage, webhook: String) throws -> WebhookDelivery {
        lock.lock(); defer { lock.unlock() }
        let ts = now()
        lastDeliveryId += 1
        let d = WebhookDelivery(
            id: lastDeliveryId, webhook: webhook, message: message, nextAttempt: ts, createdAt: ts)
        outbox.append(d)
        return d
    }

    public func retryDelivery(id: Int) throws -> WebhookDelivery? {
        lock.lock(); defer { lock.unlock() }
        guard let i = outbox.firstIndex(where: { $0.id == id }) else { return nil }
        outbox[i].status = .pending; outbox[i].attempts = 0; outbox[i].nextAttempt = now(); outbox[i].lastError = nil
        return outbox[i]
    }

    public func recordAttempt(_ d: WebhookDelivery) {
        lock.lock()
        if let i = outbox.firstIndex(where: { $0.id == d.id }) { outbox[i] = d }
        lock.unlock()
    }

    public func trimDeliveryLog(before: Int64, limit: Int) {
        lock.lock(); defer { lock.unlock() }
        var left = limit
        outbox.removeAll { d in
            guard left > 0, d.status != .pending, d.createdAt < before else { return false }
            left -= 1
            return true
        }
    }

    public func recordHealth(_ id: String, _ health: WebhookHealth) {
        lock.lock()
        guard var e = hooks[id] else { lock.unlock(); return }
        var disabledReason: String?
        switch health {
        case .failing(let since): if e.failingSince == nil { e.failingSince = since }
        case .recovered: e.failingSince = nil
        case .disabled(let since, let reason):
            guard e.active, e.failingSince == since else { lock.unlock(); return }
            e.active = false
            e.disabledReason = reason
            disabledReason = reason
        }
        hooks[id] = e
        lock.unlock()
        if let disabledReason {
            record(ActivityEntry(actor: "system", action: "webhook_disabled", target: id, details: disabledReason))
        }
    }

    public func outboxDepth() throws -> [String: Int] {
        reading { Dictionary(grouping: outbox.filter { $0.status == .pending }, by: \.webhook).mapValues(\.count) }
    }

    // MARK: StorageMaintenance

    public func enforce(_ policy: RetentionPolicy) {
        lock.lock(); defer { lock.unlock() }
        let cutoff = policy.maxAgeMillis.map { Int64(Date().timeIntervalSince1970 * 1000) - $0 }
        for (stream, list) in events where !stream.hasPrefix("run:") {
            var keep = list
            if let n = policy.maxEventsPerSession, keep.count > n { keep.removeFirst(keep.count - n) }
            if let cutoff { keep.removeAll { $0.ts < cutoff } }
            if keep.isEmpty, let last = list.last { floors[stream] = last.seq }
            events[stream] = keep
        }
    }

    public func barrier(_ done: @escaping (Bool) -> Void) { done(!failing) }
    public func close() {}
    public var gauges: [(name: String, help: String, value: Int)] { [] }
}
