import Foundation
import Hub
import WebSocket

/// Checks API keys (`chk_<id>_<secret>`) and their limits per minute, hour and month (fixed windows).
///
/// Every key is held in memory, so a check never touches storage on a loop thread: the table is read
/// at start-up, again at once after a key is created or revoked through the API, and every
/// `refreshInterval` seconds on a worker (keys made by `collabhub keys` in another process take effect
/// within that time). The hourly and monthly counts are also stored (each allowed request is counted
/// in the store's next commit); a refresh reads the current windows' stored counts, so a restart does
/// not hand out a fresh quota.
final class APIKeys: @unchecked Sendable {
    private let store: APIKeyStore
    private let lock = NSLock()
    private var records: [String: APIKeyRecord] = [:]
    private var usage: [String: Usage] = [:]
    /// Stored counts of the hour and month windows as of the last refresh (window name -> key -> count).
    private var stored: [String: [String: Int]] = [:]
    private var refreshedAt = -Double.infinity
    /// Whether the table was ever read: until then the hub counts as having keys (fails closed).
    private var loaded = false
    /// Reads of the table run here, one at a time, so an older read never overwrites a newer one (and
    /// a flood of unknown ids never delays anything else, such as sessions waking up).
    private let worker = Worker(name: "api-keys")
    /// Seconds between reads of the key table (`--key-refresh`).
    let refreshInterval: Double

    struct Usage { var minute = 0, minuteCount = 0, hour = 0, hourCount = 0, month = 0, monthCount = 0 }

    enum Verdict {
        case allowed(headers: [(String, String)], key: APIKeyRecord)
        case unknown
        /// Well-formed, but no key with this id is known: it may have been made by `collabhub keys`
        /// since the last read of the table (`refreshNow`, then check again).
        case unknownId(String)
        case limited(headers: [(String, String)], message: String)
    }

    /// Reads the table once (blocking: at start-up, before the loops run).
    init(store: APIKeyStore, refreshInterval: Double = 5) {
        self.store = store
        self.refreshInterval = refreshInterval
        reload()
    }

    /// Reads every key and the current windows' stored counts (blocking: at start-up, then only on
    /// `worker`). A failed read keeps what is known.
    /// `asked`: ids requests asked for before this read began; those it does not find are remembered
    /// as absent until the next read.
    func reload(now: Date = Date(), asked askedBefore: Set<String> = []) {
        let (hour, month) = Self.windows(now)
        guard let all = try? store.allKeys() else { return }
        let hourCounts = (try? store.usage(window: hour)) ?? [:]
        let monthCounts = (try? store.usage(window: month)) ?? [:]
        lock.lock()
        records = Dictionary(all.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        absent = askedBefore.filter { records[$0] == nil }
        stored = [hour: hourCounts, month: monthCounts]
        refreshedAt = now.timeIntervalSince1970
        loaded = true
        lock.unlock()
    }

    /// Reads the table again when the last read is older than `refreshInterval` (from a loop's timer).
    func refreshIfDue(now: Double = Date().timeIntervalSince1970) {
        lock.lock()
        let due = now - refreshedAt >= refreshInterval
        lock.unlock()
        if due { refreshNow {} }
    }

    /// Reads the table again and waits for it (an API worker, after it created or revoked a key).
    func reloadAndWait() {
        let done = DispatchSemaphore(value: 0)
        refreshNow { done.signal() }
        done.wait()
    }

    func stop() { worker.stop() }

    /// Reads the table again on the keys' worker, then calls `done` (on that worker). Callers that
    /// arrive while a read is under way wait for the next one (which starts after they asked), and all
    /// of them share it; reads start at most every `minInterval` seconds, and past `maxWaiting` callers
    /// `done` is called at once: a flood of unknown ids costs at most a few reads of the table a second.
    func refreshNow(for id: String? = nil, then done: @escaping () -> Void) {
        lock.lock()
        if let id, asked.count < Self.maxAbsent { asked.insert(id) }
        guard nextWaiters.count < Self.maxWaiting else { lock.unlock(); return done() }
        nextWaiters.append(done)
        let start = !reloading
        reloading = true
        lock.unlock()
        guard start else { return }
        let queued = worker.submit { [self] in
            while true {
                lock.lock()
                let waiters = nextWaiters
                nextWaiters = []
                if waiters.isEmpty { reloading = false; lock.unlock(); return }
                let wait = refreshedAt + Self.minInterval - Date().timeIntervalSince1970
                lock.unlock()
                if wait > 0 { Thread.sleep(forTimeInterval: min(wait, Self.minInterval)) }
                lock.lock()
                let ids = asked
                asked = []
                lock.unlock()
                reload(asked: ids)
                for w in waiters { w() }
            }
        }
        guard !queued else { return }
        // Not queued (cannot happen with one read at a time, but never leave a caller waiting): the
        // waiters go on with the table as it is.
        lock.lock()
        let waiters = nextWaiters
        nextWaiters = []
        reloading = false
        lock.unlock()
        for w in waiters { w() }
    }
    private var nextWaiters: [() -> Void] = []
    /// Ids asked for since the last read, and ids a read found absent (cleared by every read): an
    /// unknown id costs one read of the table, not one per request.
    private var asked: Set<String> = []
    private var absent: Set<String> = []
    static let maxAbsent = 10_000
    private var reloading = false
    static let minInterval = 0.2
    static let maxWaiting = 10_000

    /// Whether a key (presented earlier, on a socket that is still open) is still active.
    func isActive(_ id: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return records[id].map { $0.revokedAt == nil } ?? false
    }

    /// A key's record (revoked ones too).
    func record(_ id: String) -> APIKeyRecord? { lock.lock(); defer { lock.unlock() }; return records[id] }

    /// The request counts of a key in its current windows.
    func usage(of id: String) -> Usage? { lock.lock(); defer { lock.unlock() }; return usage[id] }

    var count: Int { lock.lock(); defer { lock.unlock() }; return records.count }

    /// The usage windows (`h<hour>`, `m<month>`) that `now` falls in.
    static func windows(_ now: Date) -> (hour: String, month: String) {
        let w = QuotaWindows(now)
        return (w.hourName, w.monthName)
    }

    /// `charge` false: the key is verified but its request not counted (a cluster counts it in Redis:
    /// `chargeShared`).
    func check(_ presented: String, now: Date = Date(), charge: Bool = true) -> Verdict {
        // The shape is checked before anything is looked up or remembered: ids and secrets are short
        // base64url strings, so an 8 KB header never reaches the table.
        guard presented.utf8.count <= 128 else { return .unknown }
        let parts = presented.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "chk", Self.isToken(parts[1]), Self.isToken(parts[2]) else {
            return .unknown
        }
        let id = String(parts[1]), secret = String(parts[2])
        let digest = Crypto.sha256(Array(secret.utf8))
        lock.lock(); defer { lock.unlock() }
        guard let record = records[id] else { return absent.contains(id) ? .unknown : .unknownId(id) }
        guard record.revokedAt == nil,
            Crypto.constantTimeEquals(digest, record.secretSHA256)
        else { return .unknown }
        return charge ? charging(record, now: now) : .allowed(headers: [], key: record)
    }

    /// Charges one request to a key already verified (a message on a `/publish` socket, which presented
    /// the key once at its upgrade): the same quota as an HTTP request. `.unknown` once revoked.
    func charge(id: String, now: Date = Date()) -> Verdict {
        lock.lock(); defer { lock.unlock() }
        guard let record = records[id], record.revokedAt == nil else { return .unknown }
        return charging(record, now: now)
    }

    /// The quota check and count (called with `lock` held).
    private func charging(_ record: APIKeyRecord, now: Date) -> Verdict {
        let id = record.id
        let t = now.timeIntervalSince1970
        let minute = Int(t / 60), hour = Int(t / 3600)
        let (hourWindow, monthWindow) = Self.windows(now)
        let month = Int(monthWindow.dropFirst()) ?? 0
        var u = usage[id] ?? Usage()
        // Windows new to this process start from what is stored.
        if u.minute != minute { u.minute = minute; u.minuteCount = 0 }
        if u.hour != hour { u.hour = hour; u.hourCount = stored[hourWindow]?[id] ?? 0 }
        if u.month != month { u.month = month; u.monthCount = stored[monthWindow]?[id] ?? 0 }
        let resetMinute = 60 - Int(t) % 60
        func headers(remaining: Int) -> [(String, String)] {
            [
                ("X-RateLimit-Limit", String(record.perMinute)), ("X-RateLimit-Remaining", String(max(0, remaining))),
                ("X-RateLimit-Reset", String(resetMinute)),
            ]
        }
        let limits = QuotaLimits(perMinute: record.perMinute, perHour: record.perHour, perMonth: record.perMonth)
        if let window = limits.exceeded(QuotaCounts(minute: u.minuteCount, hour: u.hourCount, month: u.monthCount)) {
            usage[id] = u
            return Self.refusal(record, window, now: now)
        }
        u.minuteCount += 1; u.hourCount += 1; u.monthCount += 1
        usage[id] = u
        store.recordUse(id: id, windows: (hourWindow, monthWindow))
        return .allowed(headers: headers(remaining: record.perMinute - u.minuteCount), key: record)
    }

    /// The rate-limit headers of a key with `remaining` requests left in its minute.
    static func headers(_ record: APIKeyRecord, remaining: Int, now: Date) -> [(String, String)] {
        [
            ("X-RateLimit-Limit", String(record.perMinute)), ("X-RateLimit-Remaining", String(max(0, remaining))),
            ("X-RateLimit-Reset", String(QuotaWindows(now).minuteLeft)),
        ]
    }

    /// A request over the limit of `window`: 429's headers (with `Retry-After`: when that window ends)
    /// and message.
    static func refusal(_ record: APIKeyRecord, _ window: QuotaWindow, now: Date) -> Verdict {
        let w = QuotaWindows(now)
        var h = headers(record, remaining: 0, now: now)
        switch window {
        case .month:
            h.append(("Retry-After", String(w.monthLeft)))
            return .limited(headers: h, message: "monthly quota of \(record.perMonth) requests used")
        case .hour:
            h.append(("Retry-After", String(w.hourLeft)))
            return .limited(headers: h, message: "hourly limit of \(record.perHour) requests reached")
        case .minute:
            h.append(("Retry-After", String(w.minuteLeft)))
            return .limited(headers: h, message: "limit of \(record.perMinute) requests per minute reached")
        }
    }

    /// The cluster's counts (Redis), when the store shares them: HTTP requests are charged there.
    var shared: SharedAccounting? { store.accounting }

    /// Charges one request of a verified key against the cluster's counts, atomically (`done` on
    /// `executor`'s loop): the limits hold for the cluster, not per node. The node's copy of the key's
    /// counts becomes the cluster's. Redis unreachable: the node's own counts decide, as on one node.
    func chargeShared(
        id: String, accounting: SharedAccounting, executor: Executor, now: Date = Date(),
        _ done: @escaping (Verdict) -> Void
    ) {
        guard let record = record(id), record.revokedAt == nil else { return done(.unknown) }
        let w = QuotaWindows(now)
        let limits = QuotaLimits(perMinute: record.perMinute, perHour: record.perHour, perMonth: record.perMonth)
        accounting.chargeKey(id: id, limits: limits, windows: w, executor: executor) { [self] result in
            guard let result else { return done(charge(id: id, now: now)) }
            lock.lock()
            usage[id] = Usage(
                minute: w.minute, minuteCount: result.counts.minute, hour: w.hour, hourCount: result.counts.hour,
                month: w.month, monthCount: result.counts.month)
            lock.unlock()
            if let window = result.refused { return done(Self.refusal(record, window, now: now)) }
            done(
                .allowed(
                    headers: Self.headers(record, remaining: record.perMinute - result.counts.minute, now: now),
                    key: record))
        }
    }

    /// 1-64 characters of [A-Za-z0-9-] (the alphabet of generated ids and secrets, underscore excluded).
    static func isToken(_ s: Substring) -> Bool {
        !s.isEmpty && s.utf8.count <= 64
            && s.utf8.allSatisfy {
                ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45
            }
    }
}
