/// A token bucket: `rate` tokens a second, at most `burst` saved up. Pure (time is passed in).
public struct TokenBucket: Sendable {
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var last: Double

    public init(rate: Double, burst: Double, now: Double) {
        self.rate = rate; self.burst = burst; tokens = burst; last = now
    }

    /// Takes one token if there is one.
    public mutating func take(now: Double) -> Bool {
        tokens = min(burst, tokens + (now - last) * rate)
        last = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
