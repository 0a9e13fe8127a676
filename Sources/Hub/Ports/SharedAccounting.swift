import Foundation

/// The fixed windows a key's requests are counted in: the minute, the hour and the calendar month (UTC)
/// that a moment falls in, numbered from the epoch (`month` is year * 12 + month).
public struct QuotaWindows: Sendable, Equatable {
    public var minute: Int
    public var hour: Int
    public var month: Int
    /// Seconds left in each window (for `Retry-After` and the counters' expiry).
    public var minuteLeft: Int
    public var hourLeft: Int
    public var monthLeft: Int

    public init(_ now: Date) {
        let t = now.timeIntervalSince1970
        let utc = TimeZone(identifier: "UTC")!
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = utc
        let comps = calendar.dateComponents(in: utc, from: now)
        minute = Int(t / 60)
        hour = Int(t / 3600)
        month = (comps.year ?? 0) * 12 + (comps.month ?? 0)
        minuteLeft = 60 - Int(t) % 60
        hourLeft = 3600 - Int(t) % 3600
        let start = calendar.date(from: DateComponents(year: comps.year, month: comps.month, day: 1)) ?? now
        let next = calendar.date(byAdding: .month, value: 1, to: start) ?? now
        monthLeft = max(1, Int(next.timeIntervalSince(now)))
    }

    /// The names the stored usage counts go by (`h<hour>`, `m<month>`), as `APIKeyStore.usage` takes them.
    public var hourName: String { "h\(hour)" }
    public var monthName: String { "m\(month)" }
}

/// A key's request counts in its current windows.
public struct QuotaCounts: Sendable, Equatable {
    public var minute: Int, hour: Int, month: Int
    public init(minute: Int, hour: Int, month: Int) { self.minute = minute; self.hour = hour; self.month = month }
}

/// A key's limits per window.
public struct QuotaLimits: Sendable, Equatable {
    public var perMinute: Int, perHour: Int, perMonth: Int
    public init(perMinute: Int, perHour: Int, perMonth: Int) {
        self.perMinute = perMinute; self.perHour = perHour; self.perMonth = perMonth
    }

    /// The window that refuses one more request with `counts` (the month first, then the hour, then the
    /// minute: the longest wait is the one to tell), or nil when one more is allowed.
    public func exceeded(_ counts: QuotaCounts) -> QuotaWindow? {
        if counts.month >= perMonth { return .month }
        if counts.hour >= perHour { return .hour }
        if counts.minute >= perMinute { return .minute }
        return nil
    }
}

public enum QuotaWindow: String, Sendable { case minute, hour, month }

/// What one charge of a key came to, cluster-wide: the counts after it (unchanged when refused) and
/// the window that refused it, if one did.
public struct QuotaCharge: Sendable, Equatable {
    public var counts: QuotaCounts
    public var refused: QuotaWindow?
    public init(counts: QuotaCounts, refused: QuotaWindow?) { self.counts = counts; self.refused = refused }
}

/// Accounting that several nodes share (Redis): API key quotas counted atomically for the cluster, the
/// failed-join throttle's counts, and word of key changes made on any node. A backend without it (SQLite,
/// memory) counts per process.
public protocol SharedAccounting: AnyObject {
    /// Counts one request of key `id` if `limits` allow it in every window, atomically for the cluster.
    /// `done` runs on `executor`'s loop; nil when the shared store could not be asked (the caller then
    /// goes by its own counts).
    func chargeKey(
        id: String, limits: QuotaLimits, windows: QuotaWindows, executor: Executor,
        _ done: @escaping (QuotaCharge?) -> Void)
    /// A key's counts in its current windows, as the cluster has them. Blocking: off the loops.
    func keyCounts(id: String, windows: QuotaWindows) throws -> QuotaCounts
    /// Counts one failed join of the client `key` in a window of `window` seconds that starts with its first
    /// failure; `done` (on `executor`'s loop) gets the cluster's count, nil when it could not be asked.
    func countFailedJoin(key: String, window: Double, executor: Executor, _ done: @escaping (Int?) -> Void)
    /// Calls `changed` (on `executor`'s loop) when a key was made or revoked on any node, and each time
    /// the subscription to that news takes effect again after it was lost (what was said meanwhile was
    /// missed): the keys are to be read again.
    func followKeyChanges(executor: Executor, _ changed: @escaping () -> Void)
}
