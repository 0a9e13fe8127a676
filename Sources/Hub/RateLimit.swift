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

/// Per-connection message rates by kind (`--limit-*`), each with a burst of twice the rate.
public struct MessageRates: Sendable {
    public var cursor = 60.0
    public var chat = 20.0
    public var event = 200.0
    public var typing = 10.0
    public var other = 20.0
    public init() {}
}

/// The buckets of one connection.
public struct ConnectionLimiter: Sendable {
    private var cursor, chat, event, typing, other: TokenBucket
    /// Messages refused since the connection opened.
    public private(set) var refused = 0

    public init(_ r: MessageRates, now: Double) {
        cursor = TokenBucket(rate: r.cursor, burst: r.cursor * 2, now: now)
        chat = TokenBucket(rate: r.chat, burst: r.chat * 2, now: now)
        event = TokenBucket(rate: r.event, burst: r.event * 2, now: now)
        typing = TokenBucket(rate: r.typing, burst: r.typing * 2, now: now)
        other = TokenBucket(rate: r.other, burst: r.other * 2, now: now)
    }

    /// Whether `message` is within its kind's rate.
    public mutating func allow(_ message: ClientMessage, now: Double) -> Bool {
        let ok: Bool
        switch message {
        case .cursor: ok = cursor.take(now: now)
        case .chat: ok = chat.take(now: now)
        case .event: ok = event.take(now: now)
        case .typing: ok = typing.take(now: now)
        default: ok = other.take(now: now)
        }
        if !ok { refused += 1 }
        return ok
    }
}
