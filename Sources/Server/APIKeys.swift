import Foundation
import Hub
import Store
import WebSocket

/// Checks API keys (`chk_<id>_<secret>`) and their limits per minute, hour and month (fixed windows).
/// Keys are looked up by id on the store's read connection and cached for a few seconds, so a key
/// created or revoked with `collabhub keys` takes effect within that time. The hourly and monthly
/// counts are also stored (each allowed request is counted in the store's next commit) and read back
/// when a window is first seen, so a restart does not hand out a fresh quota.
final class APIKeys: @unchecked Sendable {
    private let store: TranscriptStore
    private let lock = NSLock()
    private var cache: [String: (record: APIKeyRecord?, fetched: Double)] = [:]
    private var usage: [String: Usage] = [:]
    static let cacheSeconds = 5.0

    struct Usage { var minute = 0, minuteCount = 0, hour = 0, hourCount = 0, month = 0, monthCount = 0 }

    enum Verdict {
        case allowed(headers: [(String, String)], key: APIKeyRecord)
        case unknown
        case limited(headers: [(String, String)], message: String)
    }

    init(store: TranscriptStore) { self.store = store }

    /// A key's record, from the cache when it is fresh (a few seconds), else from the store.
    private func cachedRecord(_ id: String, now t: Double) -> APIKeyRecord? {
        lock.lock()
        var entry = cache[id]
        lock.unlock()
        if entry == nil || t - entry!.fetched > Self.cacheSeconds {
            entry = (store.key(id: id), t)
            lock.lock()
            if cache.count >= Self.maxCached {
                // Bounded: stale entries go first; if none is stale, the cache starts over.
                cache = cache.filter { t - $0.value.fetched <= Self.cacheSeconds }
                if cache.count >= Self.maxCached { cache.removeAll() }
            }
            cache[id] = entry
            lock.unlock()
        }
        return entry?.record
    }

    /// Whether a key (presented earlier, on a socket that is still open) is still active.
    func isActive(_ id: String, now: Double = Date().timeIntervalSince1970) -> Bool {
        cachedRecord(id, now: now).map { $0.revokedAt == nil } ?? false
    }

    /// Forgets what is cached about a key (revoked or created through the API: effective at once).
    func forget(_ id: String) {
        lock.lock(); cache[id] = nil; anyActiveCache = nil; lock.unlock()
    }

    /// The request counts of a key in its current windows.
    func usage(of id: String) -> Usage? { lock.lock(); defer { lock.unlock() }; return usage[id] }

    /// Whether any active key exists (read at most every few seconds): a hub with keys is not open.
    func anyActive(now: Double = Date().timeIntervalSince1970) -> Bool {
        lock.lock()
        if let (value, at) = anyActiveCache, now - at <= Self.cacheSeconds { lock.unlock(); return value }
        lock.unlock()
        let value = store.anyActiveKey()
        lock.lock(); anyActiveCache = (value, now); lock.unlock()
        return value
    }
    private var anyActiveCache: (Bool, Double)?

    /// Key ids cached at most (known and unknown ones alike; ids come from requests).
    static let maxCached = 10_000
    var cachedCount: Int { lock.lock(); defer { lock.unlock() }; return cache.count }

    func check(_ presented: String, now: Date = Date()) -> Verdict {
        // The shape is checked before anything is looked up or remembered: ids and secrets are short
        // base64url strings, so an 8 KB header never reaches the store or the cache.
        guard presented.utf8.count <= 128 else { return .unknown }
        let parts = presented.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "chk", Self.isToken(parts[1]), Self.isToken(parts[2]) else { return .unknown }
        let id = String(parts[1]), secret = String(parts[2])
        let t = now.timeIntervalSince1970
        let entry = cachedRecord(id, now: t)
        guard let record = entry, record.revokedAt == nil,
              Crypto.constantTimeEquals(Crypto.sha256(Array(secret.utf8)), record.secretSHA256) else { return .unknown }

        let minute = Int(t / 60), hour = Int(t / 3600)
        let comps = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: now)
        let month = (comps.year ?? 0) * 12 + (comps.month ?? 0)
        let hourWindow = "h\(hour)", monthWindow = "m\(month)"
        lock.lock()
        let known = usage[id]
        lock.unlock()
        // Windows new to this process start from what is stored (read outside the lock).
        let storedHour = known?.hour == hour ? nil : store.keyUse(id: id, window: hourWindow)
        let storedMonth = known?.month == month ? nil : store.keyUse(id: id, window: monthWindow)
        lock.lock(); defer { lock.unlock() }
        var u = usage[id] ?? Usage()
        if u.minute != minute { u.minute = minute; u.minuteCount = 0 }
        if u.hour != hour { u.hour = hour; u.hourCount = storedHour ?? 0 }
        if u.month != month { u.month = month; u.monthCount = storedMonth ?? 0 }
        let resetMinute = 60 - Int(t) % 60
        func headers(remaining: Int) -> [(String, String)] {
            [("X-RateLimit-Limit", String(record.perMinute)), ("X-RateLimit-Remaining", String(max(0, remaining))), ("X-RateLimit-Reset", String(resetMinute))]
        }
        if u.monthCount >= record.perMonth {
            usage[id] = u
            let nextMonth = Calendar(identifier: .gregorian).date(byAdding: .month, value: 1, to: now)!
            var h = headers(remaining: 0); h.append(("Retry-After", String(Int(nextMonth.timeIntervalSince(now)))))
            return .limited(headers: h, message: "monthly quota of \(record.perMonth) requests used")
        }
        if u.hourCount >= record.perHour {
            usage[id] = u
            var h = headers(remaining: 0); h.append(("Retry-After", String(3600 - Int(t) % 3600)))
            return .limited(headers: h, message: "hourly limit of \(record.perHour) requests reached")
        }
        if u.minuteCount >= record.perMinute {
            usage[id] = u
            var h = headers(remaining: 0); h.append(("Retry-After", String(resetMinute)))
            return .limited(headers: h, message: "limit of \(record.perMinute) requests per minute reached")
        }
        u.minuteCount += 1; u.hourCount += 1; u.monthCount += 1
        // (`usage` holds only keys that exist: it is written after the secret matched.)
        usage[id] = u
        store.recordKeyUse(id: id, windows: (hourWindow, monthWindow))
        return .allowed(headers: headers(remaining: record.perMinute - u.minuteCount), key: record)
    }

    /// 1-64 characters of [A-Za-z0-9-] (the alphabet of generated ids and secrets, underscore excluded).
    static func isToken(_ s: Substring) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 }
    }
}
