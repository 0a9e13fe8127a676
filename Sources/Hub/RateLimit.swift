import WebSocket

/// Per-connection message rates by kind (`--limit-*`), each with a burst of twice the rate.
public struct MessageRates: Sendable {
    public var cursor = 60.0
    /// People type a few messages a second at most; a higher rate is a script.
    public var chat = 5.0
    public var event = 200.0
    public var typing = 10.0
    public var other = 20.0
    public init() {}
}

/// The buckets of one connection: a token bucket per kind, each `rate` tokens a second and at most twice
/// that saved up. Every joined member has one, so it is compact: the buckets share one refill clock
/// (refilling all of them whenever one is used gives what refilling each on its own use would: the cap
/// applies either way), and only their tokens are stored beside the rates.
public struct ConnectionLimiter: Sendable {
    /// The rates, one object shared by the connections of a loop (not a copy in each).
    public final class Rates: Sendable {
        public let value: MessageRates
        public init(_ value: MessageRates) { self.value = value }
    }
    private let shared: Rates
    /// Tokens, as 32-bit floats (a bucket holds at most twice its rate: a float's 24 bits keep fractions
    /// of a token at any rate the flags allow; the refill is computed in doubles): 40 bytes, not 64.
    private var cursor, chat, event, typing, other: Float
    private var refusedCount: Int32 = 0
    private var last: Double
    /// Messages refused since the connection opened.
    public var refused: Int { Int(refusedCount) }

    public init(_ r: MessageRates, now: Double) { self.init(Rates(r), now: now) }

    public init(_ shared: Rates, now: Double) {
        self.shared = shared
        let r = shared.value
        cursor = Float(r.cursor * 2); chat = Float(r.chat * 2); event = Float(r.event * 2)
        typing = Float(r.typing * 2); other = Float(r.other * 2)
        last = now
    }

    public enum Kind { case cursor, chat, event, typing, other }

    /// The bucket a parsed message is counted in.
    public static func kind(of message: ClientMessage) -> Kind {
        switch message {
        case .cursor: return .cursor
        case .chat: return .chat
        case .event: return .event
        case .chatChange: return .chat
        // Presence state is as light as typing and comes from the same input events.
        case .typing, .presence: return .typing
        default: return .other
        }
    }

    /// Whether `message` is within its kind's rate.
    public mutating func allow(_ message: ClientMessage, now: Double) -> Bool {
        allow(Self.kind(of: message), now: now)
    }

    public mutating func allow(_ kind: Kind, now: Double) -> Bool {
        let elapsed = now - last, rates = shared.value
        last = now
        @inline(__always) func refill(_ tokens: inout Float, _ rate: Double) {
            tokens = Float(min(rate * 2, Double(tokens) + elapsed * rate))
        }
        refill(&cursor, rates.cursor); refill(&chat, rates.chat); refill(&event, rates.event)
        refill(&typing, rates.typing); refill(&other, rates.other)
        @inline(__always) func take(_ tokens: inout Float) -> Bool {
            guard tokens >= 1 else { return false }
            tokens -= 1
            return true
        }
        let ok: Bool
        switch kind {
        case .cursor: ok = take(&cursor)
        case .chat: ok = take(&chat)
        case .event: ok = take(&event)
        case .typing: ok = take(&typing)
        case .other: ok = take(&other)
        }
        if !ok && refusedCount < Int32.max { refusedCount += 1 }
        return ok
    }

    /// The kind of a message from its first bytes (`{"type":"chat"...`), without parsing it, so a flood
    /// is refused before it costs a JSON parse. Nil when the message does not start that way.
    private static let typePrefix: [UInt8] = Array("{\"type\":\"".utf8)

    public static func sniff(_ p: UnsafeRawBufferPointer) -> Kind? {
        let prefix = typePrefix
        guard p.count > prefix.count + 4, (0..<prefix.count).allSatisfy({ p[$0] == prefix[$0] }) else { return nil }
        let i = prefix.count
        // An escape in the type (`\u0063hat`) is left to the parser: the parsed kind is what counts.
        if p[i] == UInt8(ascii: "\\") || p[i + 1] == UInt8(ascii: "\\") { return nil }
        switch (p[i], p[i + 1], p[i + 2]) {
        case (UInt8(ascii: "c"), UInt8(ascii: "u"), _): return .cursor
        case (UInt8(ascii: "c"), UInt8(ascii: "h"), _): return .chat
        case (UInt8(ascii: "e"), UInt8(ascii: "v"), _): return .event
        case (UInt8(ascii: "t"), UInt8(ascii: "y"), _): return .typing
        // `redact` counts as chat and `presence` as typing, like the kinds they parse as (one charge).
        case (UInt8(ascii: "r"), UInt8(ascii: "e"), UInt8(ascii: "d")): return .chat
        case (UInt8(ascii: "p"), UInt8(ascii: "r"), UInt8(ascii: "e")): return .typing
        default: return .other
        }
    }
}
