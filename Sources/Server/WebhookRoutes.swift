import EventLoop
import Foundation
import Hub
import WebSocket

/// `/api/webhooks` (scope `webhooks:admin`): endpoints, their secrets, tests and deliveries. Storage
/// work runs on the API worker; the delivery engine (loop 0) is told of every change.
extension SessionAPI {
    /// The webhook routes of the table, one case each: they share their set-up (the engine, the actor,
    /// telling loop 0 of a change).
    enum WebhookAction {
        case create, list, read, change, delete, rotateSecret, test, deliveries, retryDelivery
    }

    func webhookRoute(_ request: RouteRequest, _ action: WebhookAction) -> Reply {
        guard let engine = webhooks else {
            return .error(.serviceUnavailable, "unavailable", "webhooks are not available")
        }
        let head = request.head, body = request.body, access = request.access
        let actor = access.keyId.map { "key \($0)" } ?? "admin (api)"
        let store = self.store, loop0 = loops[0].loop
        let tell: (String, WebhookEndpoint?) -> Void = { id, e in loop0.post { engine.update(id, e) } }
        let id = request.params.names.contains("id") ? request["id"] : ""
        switch action {
        case .create:
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let fresh = WebhookEndpoint(
                id: "wh_" + Base64.encodeID(Crypto.randomBytes(9)), url: "", events: ["*"],
                secret: Webhook.newSecret(), createdAt: now)
            let e: WebhookEndpoint
            switch webhookFields(body, fresh, requireURL: true, access: access) {
            case .refused(let r): return .now(r)
            case .valid(let v): e = v
            }
            return request.offLoop(worker) {
                // The engine hears of it first: outbox rows for it can follow as soon as it is saved
                // (loop 0 takes both in order), and rows of endpoints it does not know are left out.
                guard try store.webhooks().count < Self.maxWebhooks else {
                    return .error(.conflict, "too_many_webhooks", "at most \(Self.maxWebhooks) webhook endpoints")
                }
                tell(e.id, e)
                do {
                    try store.saveWebhook(e, actor: actor, action: "webhook_created")
                } catch {
                    tell(e.id, nil)
                    throw error
                }
                return Response(status: .created, body: Self.webhookJSON(e, secret: true))
            }
        case .list:
            let paging: Paging
            switch Paging.parse(head.query, route: "webhooks", defaultLimit: 100) {
            case .failure(let r): return .now(r)
            case .success(let p): paging = p
            }
            if paging.position != nil && paging.integer == nil { return .now(Paging.badCursor) }
            return request.offLoop(worker) {
                guard let (page, next) = paging.slice(try store.webhooks(), route: "webhooks") else {
                    return Paging.badCursor
                }
                var w = JSONWriter()
                w.beginObject(); w.beginArray("webhooks")
                for e in page { w.rawElement(Self.webhookJSON(e, secret: false)) }
                w.endArray()
                w.field("next", next)
                w.endObject()
                return Response(status: .ok, body: w.bytes)
            }
        case .read:
            return request.offLoop(worker) {
                guard let e = try store.webhooks().first(where: { $0.id == id }) else { return Self.noWebhook(id) }
                let depth = try store.outboxDepth()[id] ?? 0
                var json = Self.webhookJSON(e, secret: false)
                json.removeLast()
                json += Array(",\"pending\":\(depth)}".utf8)
                return Response(status: .ok, body: json)
            }
        case .change:
            let fields = body
            return request.offLoop(worker) {
                guard let old = try store.webhooks().first(where: { $0.id == id }) else { return Self.noWebhook(id) }
                var e: WebhookEndpoint
                switch self.webhookFields(fields, old, requireURL: false, access: access) {
                case .refused(let r): return r
                case .valid(let v): e = v
                }
                if e.active && !old.active { e.failingSince = nil; e.disabledReason = nil }  // enabled again
                try store.saveWebhook(e, actor: actor, action: "webhook_changed")
                tell(id, e)
                return Response(status: .ok, body: Self.webhookJSON(e, secret: false))
            }
        case .delete:
            return request.offLoop(worker) {
                guard try store.deleteWebhook(id: id, actor: actor) else { return Self.noWebhook(id) }
                tell(id, nil)
                return .json(.ok, "{\"id\":\(jsonString(id)),\"deleted\":true}")
            }
        case .rotateSecret:
            return request.offLoop(worker) {
                guard var e = try store.webhooks().first(where: { $0.id == id }) else { return Self.noWebhook(id) }
                // The old secret keeps signing beside the new one for a day, while receivers switch.
                e.previousSecret = e.secret
                e.previousUntil = Int64(Date().timeIntervalSince1970 * 1000) + 86_400_000
                e.secret = Webhook.newSecret()
                try store.saveWebhook(e, actor: actor, action: "webhook_secret_rotated")
                tell(id, e)
                return Response(status: .ok, body: Self.webhookJSON(e, secret: true))
            }
        case .test:
            return request.offLoop(worker) {
                guard try store.webhooks().contains(where: { $0.id == id }) else { return Self.noWebhook(id) }
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                var w = JSONWriter()
                w.beginObject(); w.field("webhook", id); w.field("message", "a test from CollabHub"); w.endObject()
                let m = WebhookMessage(
                    id: "test:" + Base64.encodeID(Crypto.randomBytes(9)), type: .test,
                    stream: "test:" + id, seq: 0, body: Webhook.body(type: .test, millis: now, data: w.bytes))
                let d = try store.enqueue(m, webhook: id)
                loop0.post { engine.add([d]) }
                return Response(status: .accepted, body: Self.deliveryJSON(d))
            }
        case .deliveries:
            let q = head.query
            let status = q["status"].flatMap(DeliveryStatus.init(rawValue:))
            if q["status"] != nil && status == nil {
                return .error(
                    .badRequest, "invalid_field", "status must be pending, delivered or failed", field: "status")
            }
            // Newest first: `cursor` (or the older `after`, a delivery id) starts below that id.
            var after = q["after"].flatMap { Int($0) }
            if q["after"] != nil && after == nil {
                return .error(.badRequest, "invalid_field", "after must be a delivery id", field: "after")
            }
            let paging: Paging
            switch Paging.parse(q, route: "deliveries", defaultLimit: 100) {
            case .failure(let r): return .now(r)
            case .success(let p): paging = p
            }
            if paging.position != nil {
                guard let below = paging.integer else { return .now(Paging.badCursor) }
                after = below
            }
            let limit = paging.limit
            return request.offLoop(worker) {
                guard try store.webhooks().contains(where: { $0.id == id }) else { return Self.noWebhook(id) }
                var w = JSONWriter()
                w.beginObject(); w.beginArray("deliveries")
                let rows = try store.deliveries(webhook: id, status: status, before: after, limit: limit + 1)
                for d in rows.prefix(limit) { w.rawElement(Self.deliveryJSON(d)) }
                w.endArray()
                w.field(
                    "next",
                    Paging.next(
                        route: "deliveries", rows.count > limit ? rows.prefix(limit).last.map { String($0.id) } : nil))
                w.endObject()
                return Response(status: .ok, body: w.bytes)
            }
        case .retryDelivery:
            guard let deliveryId = Int(request["delivery"]) else {
                return .error(.notFound, "unknown_delivery", "no delivery \(request["delivery"])")
            }
            return request.offLoop(worker) {
                guard let current = try store.delivery(id: deliveryId), current.webhook == id else {
                    return .error(.notFound, "unknown_delivery", "no delivery \(deliveryId) for webhook \(id)")
                }
                guard current.status != .pending else {
                    return .json(.accepted, String(decoding: Self.deliveryJSON(current), as: UTF8.self))
                }
                guard let d = try store.retryDelivery(id: deliveryId) else {
                    return .error(.notFound, "unknown_delivery", "no delivery \(deliveryId)")
                }
                loop0.post { engine.add([d]) }
                return Response(status: .accepted, body: Self.deliveryJSON(d))
            }
        }
    }

    /// Endpoints at most: each one is a copy of every event it wants, in the outbox and on the wire.
    static let maxWebhooks = 100

    private static func noWebhook(_ id: String) -> Response { .error(.notFound, "unknown_webhook", "no webhook \(id)") }

    enum Checked { case valid(WebhookEndpoint), refused(Response) }

    /// Validates the fields of a create or a change; errors name the field.
    func webhookFields(_ body: [UInt8], _ base: WebhookEndpoint, requireURL: Bool, access: Access) -> Checked {
        func bad(_ field: String, _ message: String) -> Checked {
            .refused(.error(.badRequest, "invalid_field", "\"\(field)\" \(message)"))
        }
        guard let obj = try? JSONReader.readObject(body, maxDepth: 4) else {
            return .refused(.error(.badRequest, "bad_json", "the body must be a JSON object"))
        }
        let fields = ["url", "events", "description", "headers", "timeout_s", "max_attempts", "active"]
        if let unknown = BodyFields.unknown(obj, known: fields) { return .refused(unknown) }
        var e = base
        if let v = obj["url"], v.kind != .null {
            guard let s = v.string, let url = WebhookURL(s) else {
                return bad("url", "must be an http:// or https:// URL")
            }
            if !config.webhookAllowPrivate, let literal = AddressPolicy.literal(url.host),
                AddressPolicy.isPrivate(literal) || url.host == "localhost"
            {
                return bad("url", "names a private address (allowed only with --webhook-allow-private)")
            }
            if !config.webhookAllowPrivate && (url.host == "localhost" || url.host.hasSuffix(".localhost")) {
                return bad("url", "names a private address (allowed only with --webhook-allow-private)")
            }
            e.url = s
        } else if requireURL {
            return .refused(.error(.badRequest, "missing_field", "\"url\" is required"))
        }
        if let v = obj["events"], v.kind != .null {
            guard let list = v.array?.compactMap(\.string), list.count == v.array?.count, !list.isEmpty,
                list == ["*"] || list.allSatisfy({ WebhookEventType(rawValue: $0) != nil && $0 != "webhook.test" })
            else {
                let names = WebhookEventType.allCases.filter { $0 != .test }.map(\.rawValue).joined(separator: ", ")
                return bad("events", "must be [\"*\"] or a list of: \(names)")
            }
            e.events = list
        }
        // Chat text and app events are every session's content: subscribing to them reads every
        // transcript from then on, so it takes a credential that may (N7).
        if e.events.contains(where: WebhookEventType.contentEvents.contains),
            !access.principals.contains(where: Authorization.mayReadEveryTranscript)
        {
            return .refused(
                .error(
                    .forbidden, "forbidden",
                    "\"events\" includes chat or app events (or *), which carry every session's content: that needs "
                        + "scope transcripts:read as well as webhooks:admin"))
        }
        if let v = obj["description"], v.kind != .null {
            guard let s = v.string, s.fits(256) else {
                return bad("description", "must be a string of at most 256 characters")
            }
            e.description = s
        }
        if let v = obj["headers"], v.kind != .null {
            guard let h = v.object, h.members.count <= 20 else {
                return bad("headers", "must be an object of at most 20 headers")
            }
            var headers: [WebhookHeader] = []
            let reserved: Set<String> = [
                "host", "content-type", "content-length", "connection", "transfer-encoding",
                "webhook-id", "webhook-timestamp", "webhook-signature", "user-agent", "expect", "upgrade", "te",
            ]
            for (name, value) in h.members {
                let tokenChars = name.utf8.allSatisfy {
                    $0 > 32 && $0 < 127 && !"()<>@,;:\\\"/[]?={}".utf8.contains($0)
                }
                guard !name.isEmpty, name.utf8.count <= 64, tokenChars, !reserved.contains(name.lowercased()) else {
                    return bad("headers", "has a name that is not an HTTP token, or is set by the hub: \(name)")
                }
                guard let s = value.string, s.utf8.count <= 1024, s.utf8.allSatisfy({ $0 >= 32 && $0 != 127 }) else {
                    return bad("headers", "values must be strings of at most 1024 printable bytes (\(name))")
                }
                headers.append(WebhookHeader(name: name, value: s))
            }
            e.headers = headers
        }
        if let v = obj["timeout_s"], v.kind != .null {
            guard let t = v.double, t >= 1, t <= 60 else {
                return bad("timeout_s", "must be a number of seconds from 1 to 60")
            }
            e.timeoutSeconds = t
        }
        if let v = obj["max_attempts"], v.kind != .null {
            guard let n = v.int, n >= 1, n <= 20 else { return bad("max_attempts", "must be an integer from 1 to 20") }
            e.maxAttempts = n
        }
        if let v = obj["active"], v.kind != .null {
            guard let b = v.bool else { return bad("active", "must be true or false") }
            e.active = b
        }
        return .valid(e)
    }

    static func webhookJSON(_ e: WebhookEndpoint, secret: Bool) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.field("id", e.id); w.field("url", e.url)
        w.beginArray("events"); for x in e.events { w.element(x) }; w.endArray()
        if let d = e.description { w.field("description", d) }
        w.beginObject("headers"); for h in e.headers { w.field(h.name, h.value) }; w.endObject()
        w.field("timeout_s", e.timeoutSeconds); w.field("max_attempts", e.maxAttempts); w.field("active", e.active)
        w.field("created_at", Int(e.createdAt))
        if let r = e.disabledReason { w.field("disabled_reason", r) }
        if let f = e.failingSince { w.field("failing_since", Int(f)) }
        if secret { w.field("secret", e.secret) }
        w.endObject()
        return w.bytes
    }

    static func deliveryJSON(_ d: WebhookDelivery) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.field("id", d.id); w.field("webhook", d.webhook); w.field("webhook_id", d.message.id)
        w.field("event", d.message.type.rawValue); w.field("status", d.status.rawValue); w.field("attempts", d.attempts)
        if let s = d.lastStatus { w.field("response_status", s) }
        if let ms = d.durationMillis { w.field("duration_ms", ms) }
        if let e = d.lastError { w.field("last_error", e) }
        if d.status == .pending { w.field("next_attempt", Int(d.nextAttempt)) }
        w.field("created_at", Int(d.createdAt))
        if let at = d.deliveredAt { w.field("delivered_at", Int(at)) }
        w.endObject()
        return w.bytes
    }
}
