import CSQLite
import Foundation
import Hub

/// Webhook endpoints (changed on a connection of their own, like API keys, then handed to the writer,
/// which writes the outbox) and the outbox's reads.
extension SQLiteStore: WebhookStore {
    public func webhooks() throws -> [WebhookEndpoint] { try read { try Self.loadWebhooks($0) } }

    public func saveWebhook(_ e: WebhookEndpoint, actor: String, action: String?) throws {
        let db = try Self.openDirect(directory)
        try db.exec("BEGIN IMMEDIATE")
        do {
            let s = try db.prepare(
                """
                INSERT OR REPLACE INTO webhooks(id, url, events, description, headers, timeout_ms, max_attempts, secret,
                  previous_secret, previous_until, active, created_at, failing_since, disabled_reason)
                VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                """)
            s.bind(1, e.id); s.bind(2, e.url); s.bind(3, e.events.joined(separator: ",")); s.bind(4, e.description)
            s.bind(5, Self.headersJSON(e.headers)); s.bind(6, Int64(e.timeoutSeconds * 1000)); s.bind(7, e.maxAttempts)
            s.bind(8, e.secret); s.bind(9, e.previousSecret)
            if let until = e.previousUntil { s.bind(10, until) } else { s.bind(10, nil as String?) }
            s.bind(11, e.active ? 1 : 0); s.bind(12, e.createdAt)
            if let f = e.failingSince { s.bind(13, f) } else { s.bind(13, nil as String?) }
            s.bind(14, e.disabledReason)
            _ = try s.step()
            if let action {
                // Not the URL itself: its path or query may hold the receiver's credential.
                try Self.logActivity(
                    db,
                    ActivityEntry(
                        actor: actor, action: action, target: e.id,
                        details: e.disabledReason ?? WebhookURL.origin(of: e.url)))
            }
            try db.exec("COMMIT")
        } catch {
            try? db.exec("ROLLBACK")
            throw error
        }
        try syncSubscriptions(db)
    }

    public func deleteWebhook(id: String, actor: String) throws -> Bool {
        let db = try Self.openDirect(directory)
        try db.exec("BEGIN IMMEDIATE")
        let deleted: Bool
        do {
            let s = try db.prepare("DELETE FROM webhooks WHERE id=?")
            s.bind(1, id)
            _ = try s.step()
            deleted = db.changes > 0
            let o = try db.prepare("DELETE FROM webhook_outbox WHERE webhook=?")
            o.bind(1, id)
            _ = try o.step()
            if deleted { try Self.logActivity(db, ActivityEntry(actor: actor, action: "webhook_deleted", target: id)) }
            try db.exec("COMMIT")
        } catch {
            try? db.exec("ROLLBACK")
            throw error
        }
        try syncSubscriptions(db)
        // Rows the writer made for it before it heard of the deletion go too.
        let late = try db.prepare("DELETE FROM webhook_outbox WHERE webhook=?")
        late.bind(1, id)
        _ = try late.step()
        return deleted
    }

    /// Hands the writer the endpoints as they now are, and waits until it has them: an event committed
    /// after this returns is reported to them.
    private func syncSubscriptions(_ db: Database) throws {
        let all = try Self.loadWebhooks(db)
        activeWebhooks.set(all.filter(\.active).count)
        let applied = DispatchSemaphore(value: 0)
        enqueue(.webhooks(all))
        barrier { _ in applied.signal() }
        applied.wait()
    }

    public func deliveries(webhook: String, status: DeliveryStatus?, before: Int?, limit: Int) throws
        -> [WebhookDelivery]
    {
        try read { db in
            let s = try db.prepare(
                """
                SELECT \(Self.deliveryColumns) FROM webhook_outbox WHERE webhook=?1 AND (?2 IS NULL OR status=?2)
                  AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4
                """)
            s.bind(1, webhook); s.bind(2, status?.rawValue)
            if let before { s.bind(3, before) } else { s.bind(3, nil as String?) }
            s.bind(4, limit)
            var out: [WebhookDelivery] = []
            while try s.step() { if let d = Self.delivery(s) { out.append(d) } }
            return out
        }
    }

    public func pendingDeliveries(webhook: String?, after: Int, limit: Int) throws -> [WebhookDelivery] {
        try read { db in
            let s = try db.prepare(
                """
                SELECT \(Self.deliveryColumns) FROM webhook_outbox WHERE status='pending' AND id > ?1
                  AND (?2 IS NULL OR webhook=?2) ORDER BY id LIMIT ?3
                """)
            s.bind(1, after); s.bind(2, webhook); s.bind(3, limit)
            var out: [WebhookDelivery] = []
            while try s.step() { if let d = Self.delivery(s) { out.append(d) } }
            return out
        }
    }

    public func delivery(id: Int) throws -> WebhookDelivery? {
        try read { db in
            let s = try db.prepare("SELECT \(Self.deliveryColumns) FROM webhook_outbox WHERE id=?")
            s.bind(1, id)
            return try s.step() ? Self.delivery(s) : nil
        }
    }

    public func enqueue(_ m: WebhookMessage, webhook: String) throws -> WebhookDelivery {
        let db = try Self.openDirect(directory)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let s = try db.prepare(
            """
            INSERT INTO webhook_outbox(webhook, message_id, type, stream, seq, body, status, attempts, next_attempt,
              created_at) VALUES(?,?,?,?,?,?,'pending',0,?,?)
            """)
        s.bind(1, webhook); s.bind(2, m.id); s.bind(3, m.type.rawValue); s.bind(4, m.stream); s.bind(5, m.seq)
        s.bind(6, blob: m.body); s.bind(7, now); s.bind(8, now)
        _ = try s.step()
        return WebhookDelivery(
            id: Int(sqlite3_last_insert_rowid(db.db)), webhook: webhook, message: m,
            nextAttempt: now, createdAt: now)
    }

    public func recordAttempt(_ delivery: WebhookDelivery) { enqueue(.attempt(delivery)) }

    public func recordHealth(_ id: String, _ health: WebhookHealth) { enqueue(.health(id, health)) }

    public func trimDeliveryLog(before: Int64, limit: Int) { enqueue(.trimDeliveries(before: before, limit: limit)) }

    /// On the writer thread, inside the batch's transaction: only the health fields, and a disable only
    /// if the endpoint is still failing since the time the engine saw (a re-enable meanwhile wins).
    func recordHealth(_ id: String, _ health: WebhookHealth, now: Int64) throws {
        let s: Statement
        switch health {
        case .failing(let since):
            s = try writer.prepare("UPDATE webhooks SET failing_since=? WHERE id=? AND failing_since IS NULL")
            s.bind(1, since); s.bind(2, id)
        case .recovered:
            s = try writer.prepare("UPDATE webhooks SET failing_since=NULL WHERE id=?")
            s.bind(1, id)
        case .disabled(let since, let reason):
            s = try writer.prepare(
                """
                UPDATE webhooks SET active=0, disabled_reason=? WHERE id=? AND active=1 AND failing_since=?
                """)
            s.bind(1, reason); s.bind(2, id); s.bind(3, since)
        }
        _ = try s.step()
        guard case .disabled(_, let reason) = health, writer.changes > 0 else { return }
        let a = insertActivity!
        a.bind(1, now); a.bind(2, "system"); a.bind(3, "webhook_disabled"); a.bind(4, id)
        a.bind(5, nil as String?); a.bind(6, nil as String?); a.bind(7, reason)
        defer { a.reset() }
        _ = try a.step()
        // The writer's subscriptions follow (a disabled endpoint gets no outbox rows).
        subscriptions.removeAll { $0.id == id }
    }

    public func retryDelivery(id: Int) throws -> WebhookDelivery? {
        let db = try Self.openDirect(directory)
        let s = try db.prepare(
            """
            UPDATE webhook_outbox SET status='pending', attempts=0, next_attempt=?, last_error=NULL WHERE id=?
            """)
        s.bind(1, Int64(Date().timeIntervalSince1970 * 1000)); s.bind(2, id)
        _ = try s.step()
        guard db.changes > 0 else { return nil }
        let q = try db.prepare("SELECT \(Self.deliveryColumns) FROM webhook_outbox WHERE id=?")
        q.bind(1, id)
        return try q.step() ? Self.delivery(q) : nil
    }

    public var reportsWebhooks: Bool { activeWebhooks.get > 0 }

    /// Only for endpoints that want them; rides with the next group commit.
    public func report(_ messages: [WebhookMessage]) {
        if !messages.isEmpty { enqueue(.outbox(messages)) }
    }

    public func outboxDepth() throws -> [String: Int] {
        try read { db in
            let s = try db.prepare(
                "SELECT webhook, COUNT(*) FROM webhook_outbox WHERE status='pending' GROUP BY webhook")
            var out: [String: Int] = [:]
            while try s.step() { out[s.string(0) ?? ""] = Int(s.int(1)) }
            return out
        }
    }

    // MARK: - Rows

    static func loadWebhooks(_ db: Database) throws -> [WebhookEndpoint] {
        let s = try db.prepare(
            """
            SELECT id, url, events, description, headers, timeout_ms, max_attempts, secret, previous_secret,
              previous_until, active, created_at, failing_since, disabled_reason FROM webhooks ORDER BY created_at
            """)
        var out: [WebhookEndpoint] = []
        while try s.step() {
            var e = WebhookEndpoint(
                id: s.string(0) ?? "", url: s.string(1) ?? "",
                events: (s.string(2) ?? "").split(separator: ",").map(String.init), description: s.string(3),
                headers: headers(s.string(4) ?? "{}"), timeoutSeconds: Double(s.int(5)) / 1000,
                maxAttempts: Int(s.int(6)), secret: s.string(7) ?? "", active: s.int(10) != 0, createdAt: s.int(11))
            e.previousSecret = s.string(8)
            e.previousUntil = s.isNull(9) ? nil : s.int(9)
            e.failingSince = s.isNull(12) ? nil : s.int(12)
            e.disabledReason = s.string(13)
            out.append(e)
        }
        return out
    }

    static let deliveryColumns = """
        id, webhook, message_id, type, stream, seq, body, status, attempts, next_attempt, last_status, last_error,
          duration_ms, created_at, delivered_at
        """

    static func delivery(_ s: Statement) -> WebhookDelivery? {
        guard let type = WebhookEventType(rawValue: s.string(3) ?? ""),
            let status = DeliveryStatus(rawValue: s.string(7) ?? "")
        else { return nil }
        let m = WebhookMessage(
            id: s.string(2) ?? "", type: type, stream: s.string(4) ?? "", seq: Int(s.int(5)),
            body: s.blob(6))
        var d = WebhookDelivery(
            id: Int(s.int(0)), webhook: s.string(1) ?? "", message: m, status: status,
            attempts: Int(s.int(8)), nextAttempt: s.int(9), createdAt: s.int(13))
        d.lastStatus = s.isNull(10) ? nil : Int(s.int(10))
        d.lastError = s.string(11)
        d.durationMillis = s.isNull(12) ? nil : Int(s.int(12))
        d.deliveredAt = s.isNull(14) ? nil : s.int(14)
        return d
    }

    static func headersJSON(_ headers: [WebhookHeader]) -> String {
        var w = JSONWriter()
        w.beginObject()
        for h in headers { w.field(h.name, h.value) }
        w.endObject()
        return String(decoding: w.bytes, as: UTF8.self)
    }

    static func headers(_ json: String) -> [WebhookHeader] {
        guard let obj = try? JSONReader.readObject(Array(json.utf8)) else { return [] }
        return obj.members.compactMap { m in m.value.string.map { WebhookHeader(name: m.key, value: $0) } }
    }
}
