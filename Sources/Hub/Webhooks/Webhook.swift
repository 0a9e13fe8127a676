import Foundation
import WebSocket

/// What a webhook endpoint can subscribe to.
public enum WebhookEventType: String, Sendable, CaseIterable {
    case sessionStarted = "session.started", sessionEnded = "session.ended"
    case memberJoined = "member.joined", memberLeft = "member.left"
    case chatCreated = "chat.created", chatUpdated = "chat.updated", chatDeleted = "chat.deleted"
    case eventCreated = "event.created"
    case runStarted = "run.started", runPaused = "run.paused", runResumed = "run.resumed"
    case runStepFailed = "run.step_failed", runCompleted = "run.completed"
    /// Sent by `POST /api/webhooks/{id}/test` only.
    case test = "webhook.test"

    /// Subscriptions that carry what members wrote (chat text, app event data): `*` and these.
    public static let contentEvents: Set<String> = [
        "*", "chat.created", "chat.updated", "chat.deleted", "event.created",
    ]
}

/// A header an endpoint adds to every delivery.
public struct WebhookHeader: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(name: String, value: String) { self.name = name; self.value = value }
}

/// A receiver of webhooks, as configured through `/api/webhooks`.
public struct WebhookEndpoint: Sendable, Equatable {
    public var id: String
    public var url: String
    /// Event types, or `["*"]` for all.
    public var events: [String]
    public var description: String?
    public var headers: [WebhookHeader]
    public var timeoutSeconds: Double
    public var maxAttempts: Int
    /// `whsec_` + base64 of the key bytes.
    public var secret: String
    /// The secret before the last rotation, still signing until `previousUntil` (Unix ms).
    public var previousSecret: String?
    public var previousUntil: Int64?
    public var active: Bool
    public var createdAt: Int64
    /// When deliveries started failing without a success since (Unix ms).
    public var failingSince: Int64?
    /// Why the hub disabled it (nil when it is active or was disabled by hand).
    public var disabledReason: String?

    public init(
        id: String, url: String, events: [String], description: String? = nil, headers: [WebhookHeader] = [],
        timeoutSeconds: Double = 30, maxAttempts: Int = 3, secret: String, active: Bool = true,
        createdAt: Int64
    ) {
        self.id = id; self.url = url; self.events = events; self.description = description; self.headers = headers
        self.timeoutSeconds = timeoutSeconds; self.maxAttempts = maxAttempts; self.secret = secret
        self.active = active; self.createdAt = createdAt
    }

    public func wants(_ type: WebhookEventType) -> Bool {
        type == .test || events.contains("*") || events.contains(type.rawValue)
    }

    /// The secrets that sign a delivery made at `now` (the previous one too during a rotation).
    public func signingSecrets(now: Int64) -> [String] {
        if let previousSecret, let until = previousUntil, now < until { return [secret, previousSecret] }
        return [secret]
    }
}

/// One webhook to send: its stable id (the same on every retry, so receivers deduplicate), type, the
/// stream and seq it reports, and the JSON body.
public struct WebhookMessage: Sendable, Equatable {
    public var id: String
    public var type: WebhookEventType
    public var stream: String
    public var seq: Int
    public var body: [UInt8]
    public init(id: String, type: WebhookEventType, stream: String, seq: Int, body: [UInt8]) {
        self.id = id; self.type = type; self.stream = stream; self.seq = seq; self.body = body
    }
}

public enum DeliveryStatus: String, Sendable { case pending, delivered, failed }

/// A message on its way to one endpoint (a row of the outbox), with what its attempts found.
public struct WebhookDelivery: Sendable, Equatable {
    public var id: Int
    public var webhook: String
    public var message: WebhookMessage
    public var status: DeliveryStatus
    public var attempts: Int
    /// When the next attempt is due (Unix ms).
    public var nextAttempt: Int64
    public var lastStatus: Int?
    public var lastError: String?
    public var durationMillis: Int?
    public var createdAt: Int64
    public var deliveredAt: Int64?
    public init(
        id: Int, webhook: String, message: WebhookMessage, status: DeliveryStatus = .pending, attempts: Int = 0,
        nextAttempt: Int64, createdAt: Int64
    ) {
        self.id = id; self.webhook = webhook; self.message = message; self.status = status; self.attempts = attempts
        self.nextAttempt = nextAttempt; self.createdAt = createdAt
    }
}

/// The webhook rules, pure: which committed events become which webhooks, the body, the Standard
/// Webhooks signature, and when to try again.
public enum Webhook {
    /// The webhooks a committed event makes (none for most: cursors and run updates in sessions are
    /// not reported). `data` is the event as clients saw it, with its `session` (or `run`) and `seq`.
    /// `wanted` says whether anyone subscribes to a type: the body is only built for one that is.
    public static func messages(
        for event: DurableEvent, committed: Committed,
        wanted: (WebhookEventType) -> Bool = { _ in true }
    ) -> [WebhookMessage] {
        guard let type = type(of: event), wanted(type) else { return [] }
        let stream = event.session
        let seen = ServerMessage.durable(type: event.type, seq: committed.seq, ts: committed.ts, body: event.body).json
        let data: [UInt8]
        if stream.hasPrefix("run:") {
            data = seen  // run events carry their `run`
        } else {
            var w = JSONWriter()
            w.field("session", stream)
            data = [UInt8(ascii: "{")] + w.bytes + [UInt8(ascii: ",")] + seen.dropFirst()
        }
        // `{session}:{seq}` or `run:{id}:{seq}`: stable across retries.
        return [
            WebhookMessage(
                id: "\(stream):\(committed.seq)", type: type, stream: stream, seq: committed.seq,
                body: body(type: type, millis: committed.ts, data: data))
        ]
    }

    /// Which webhook a committed event makes, if any.
    public static func type(of event: DurableEvent) -> WebhookEventType? {
        let type: WebhookEventType?
        switch event.type {
        case "chat":
            type =
                event.member == nil && contains(event.body, #""event":"session_ended""#) ? .sessionEnded : .chatCreated
        case "presence":
            let members = try? JSONReader.readObject(Array("{".utf8) + event.body + Array("}".utf8))
            if members?["joins"]?.array?.isEmpty == false {
                type = .memberJoined
            } else if members?["leaves"]?.array?.isEmpty == false {
                type = .memberLeft
            } else {
                type = nil
            }
        case "chat_edit":
            type = .chatUpdated
        case "chat_delete", "redact":
            type = .chatDeleted
        case "event":
            type = .eventCreated
        case "run_event":
            switch (try? JSONReader.readObject(Array("{".utf8) + event.body + Array("}".utf8)))?["event"]?.string {
            case "started": type = .runStarted
            case "paused": type = .runPaused
            case "resumed": type = .runResumed
            case "step_failed": type = .runStepFailed
            case "completed": type = .runCompleted
            default: type = nil
            }
        default:
            type = nil
        }
        return type
    }

    /// `session.started`: a session was created (its id is `{session}:0`; seqs start at 1).
    public static func sessionStarted(_ info: SessionInfo) -> WebhookMessage {
        var w = JSONWriter()
        w.beginObject()
        w.field("session", info.code); w.field("title", info.title); w.field("max_participants", info.maxParticipants)
        w.field("guest_policy", info.guestPolicy.rawValue); w.field("created_at", Int(info.createdAt))
        w.endObject()
        return WebhookMessage(
            id: "\(info.code):0", type: .sessionStarted, stream: info.code, seq: 0,
            body: body(type: .sessionStarted, millis: info.createdAt, data: w.bytes))
    }

    /// `{"type", "timestamp" (RFC 3339, UTC), "data"}`.
    public static func body(type: WebhookEventType, millis: Int64, data: [UInt8]) -> [UInt8] {
        var w = JSONWriter(capacity: data.count + 96)
        w.beginObject()
        w.field("type", type.rawValue)
        w.field("timestamp", rfc3339(millis: millis))
        w.raw("data", data)
        w.endObject()
        return w.bytes
    }

    public static func rfc3339(millis: Int64) -> String {
        var t = time_t(millis / 1000)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let ms = Int(millis % 1000)
        let frac = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(frac)Z"
    }

    /// The key bytes of a `whsec_...` secret (Standard Webhooks: base64 after the prefix).
    public static func key(of secret: String) -> [UInt8]? {
        guard secret.hasPrefix("whsec_") else { return nil }
        return Base64.decode(String(secret.dropFirst(6)))
    }

    /// A new secret: `whsec_` + base64 of 24 random bytes.
    public static func newSecret() -> String { "whsec_" + Base64.encode(Crypto.randomBytes(24)) }

    /// `webhook-signature`: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), one per secret,
    /// space-separated (during a rotation both secrets sign).
    public static func signature(id: String, timestamp: Int64, body: [UInt8], secrets: [String]) -> String {
        let signed = Array("\(id).\(timestamp).".utf8) + body
        return secrets.compactMap { key(of: $0) }
            .map { "v1," + Base64.encode(Crypto.hmacSHA256(key: $0, message: signed)) }
            .joined(separator: " ")
    }

    /// Whether an attempt that ended like this is tried again: timeouts and connection errors (no
    /// status), 5xx, 408 and 429. Other answers are final.
    public static func isRetryable(status: Int?) -> Bool {
        guard let status else { return true }
        return status >= 500 || status == 408 || status == 429
    }

    /// Seconds until attempt `attempt + 1` (after `attempt` failed ones): exponential from 1 s, doubling,
    /// at most an hour, with ±20% jitter (`jitter` in 0..<1); a receiver's `Retry-After` (at most a day)
    /// wins when it asks for longer.
    public static func backoff(attempt: Int, retryAfter: Double?, jitter: Double) -> Double {
        let base = min(3600, pow(2, Double(max(0, min(attempt - 1, 20)))))
        let delay = base * (0.8 + 0.4 * jitter)
        if let retryAfter, retryAfter.isFinite, retryAfter > delay { return min(retryAfter, 86_400) }
        return delay
    }

    private static func contains(_ bytes: [UInt8], _ needle: String) -> Bool {
        bytes.firstRange(of: Array(needle.utf8)) != nil
    }
}
