import Hub

/// How webhook endpoints and delivery records are stored in Redis (cluster mode): JSON, one hash
/// field each. Endpoints keep every field, the secrets included (Redis is the cluster's storage, as
/// SQLite is a node's); a record keeps the message it delivers, so any node can retry it or report it.
enum WebhookRecords {
    static func encode(_ e: WebhookEndpoint) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.field("id", e.id); w.field("url", e.url)
        w.beginArray("events"); for x in e.events { w.element(x) }; w.endArray()
        w.field("description", e.description)
        w.beginObject("headers"); for h in e.headers { w.field(h.name, h.value) }; w.endObject()
        w.field("timeout_ms", timeoutMillis(e.timeoutSeconds)); w.field("max_attempts", e.maxAttempts)
        w.field("secret", e.secret); w.field("previous_secret", e.previousSecret)
        if let until = e.previousUntil { w.field("previous_until", Int(until)) }
        w.field("active", e.active); w.field("created_at", Int(e.createdAt))
        if let f = e.failingSince { w.field("failing_since", Int(f)) }
        w.field("disabled_reason", e.disabledReason)
        w.endObject()
        return w.bytes
    }

    static func endpoint(_ bytes: [UInt8]) -> WebhookEndpoint? {
        guard let o = try? JSONReader.readObject(bytes), let id = o["id"]?.string, let url = o["url"]?.string,
            let events = o["events"]?.array?.compactMap(\.string), let secret = o["secret"]?.string
        else { return nil }
        var e = WebhookEndpoint(
            id: id, url: url, events: events, description: o["description"]?.string,
            headers: (o["headers"]?.object?.members ?? []).compactMap { m in
                m.value.string.map { WebhookHeader(name: m.key, value: $0) }
            },
            timeoutSeconds: Double(timeoutRange.clamp(o["timeout_ms"]?.int ?? 30_000)) / 1000,
            maxAttempts: attemptRange.clamp(o["max_attempts"]?.int ?? 3),
            secret: secret, active: o["active"]?.bool ?? true, createdAt: Int64(o["created_at"]?.int ?? 0))
        e.previousSecret = o["previous_secret"]?.string
        e.previousUntil = o["previous_until"]?.int.map(Int64.init)
        e.failingSince = o["failing_since"]?.int.map(Int64.init)
        e.disabledReason = o["disabled_reason"]?.string
        return e
    }

    /// What the API accepts (1-60 s, 1-20 attempts): a stored value beyond it (a corrupted key) reads as the
    /// nearest it allows, and the milliseconds written are rounded, so that a value read and written back
    /// (an update, a secret rotation) stays the same.
    static let timeoutRange = 1000...60_000
    static let attemptRange = 1...20
    static func timeoutMillis(_ seconds: Double) -> Int {
        let ms = (seconds * 1000).rounded()
        guard !ms.isNaN else { return 30_000 }
        return timeoutRange.clamp(Int(Swift.min(Swift.max(ms, -1e9), 1e9)))
    }

    /// A delivery without its id (the hash field is the id). `entry` names the stream entry it comes
    /// from (`stream entry-id`), empty for a test; `key` is its index key (trimmed with it).
    static func encode(_ d: WebhookDelivery, key: String) -> [UInt8] {
        var w = JSONWriter(capacity: d.message.body.count + 320)
        w.beginObject()
        w.field("webhook", d.webhook); w.field("message_id", d.message.id); w.field("type", d.message.type.rawValue)
        w.field("stream", d.message.stream); w.field("seq", d.message.seq)
        w.field("status", d.status.rawValue); w.field("attempts", d.attempts)
        w.field("next_attempt", Int(d.nextAttempt)); w.field("created_at", Int(d.createdAt))
        if let s = d.lastStatus { w.field("last_status", s) }
        if let e = d.lastError { w.field("last_error", e) }
        if let ms = d.durationMillis { w.field("duration_ms", ms) }
        if let at = d.deliveredAt { w.field("delivered_at", Int(at)) }
        w.field("key", key)
        w.raw("body", d.message.body)
        w.endObject()
        return w.bytes
    }

    static func delivery(id: Int, _ bytes: [UInt8]) -> (WebhookDelivery, key: String)? {
        guard let o = try? JSONReader.readObject(bytes, maxDepth: 64), let webhook = o["webhook"]?.string,
            let type = o["type"]?.string.flatMap(WebhookEventType.init(rawValue:)),
            let status = o["status"]?.string.flatMap(DeliveryStatus.init(rawValue:)), let body = o["body"]
        else { return nil }
        let m = WebhookMessage(
            id: o["message_id"]?.string ?? "", type: type, stream: o["stream"]?.string ?? "",
            seq: o["seq"]?.int ?? 0, body: Array(body.bytes))
        var d = WebhookDelivery(
            id: id, webhook: webhook, message: m, status: status, attempts: o["attempts"]?.int ?? 0,
            nextAttempt: Int64(o["next_attempt"]?.int ?? 0), createdAt: Int64(o["created_at"]?.int ?? 0))
        d.lastStatus = o["last_status"]?.int
        d.lastError = o["last_error"]?.string
        d.durationMillis = o["duration_ms"]?.int
        d.deliveredAt = o["delivered_at"]?.int.map(Int64.init)
        return (d, o["key"]?.string ?? "")
    }
}

extension ClosedRange where Bound == Int {
    fileprivate func clamp(_ v: Int) -> Int { Swift.min(Swift.max(v, lowerBound), upperBound) }
}
