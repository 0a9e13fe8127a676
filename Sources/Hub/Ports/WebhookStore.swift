/// What the delivery engine learned about an endpoint's health.
public enum WebhookHealth: Sendable {
    /// Deliveries started failing (nothing changes unless none was failing).
    case failing(since: Int64)
    /// A delivery succeeded.
    case recovered
    /// No success since `since`: the endpoint is disabled (only if it is still failing since then,
    /// so a re-enable in the meantime wins), with an activity entry.
    case disabled(since: Int64, reason: String)
}

/// Webhook endpoints and their outbox. The outbox is written by the event log's writer in the same
/// transaction as the event it reports (so a crash between commit and delivery loses nothing), for
/// every active endpoint that wants it; `onOutbox` hears of new rows after their commit. Every call
/// but `recordAttempt` and `onOutbox` blocks on storage: call from a worker.
public protocol WebhookStore: AnyObject {
    func webhooks() throws -> [WebhookEndpoint]
    /// Creates or replaces an endpoint (the writer's subscriptions follow), with an activity entry.
    func saveWebhook(_ endpoint: WebhookEndpoint, actor: String, action: String?) throws
    /// Deletes an endpoint and its undelivered outbox rows; false when there is none.
    func deleteWebhook(id: String, actor: String) throws -> Bool
    /// An endpoint's deliveries, newest first, by status, paged by id (`after`: ids below it).
    func deliveries(webhook: String, status: DeliveryStatus?, before: Int?, limit: Int) throws -> [WebhookDelivery]
    /// Pending deliveries with id > `after`, oldest first (loaded at start-up and when a lane drains).
    func pendingDeliveries(webhook: String?, after: Int, limit: Int) throws -> [WebhookDelivery]
    func delivery(id: Int) throws -> WebhookDelivery?
    /// Adds one message for one endpoint (a test, say); returns the row.
    func enqueue(_ message: WebhookMessage, webhook: String) throws -> WebhookDelivery
    /// Makes a delivery pending again, with a fresh count of attempts; nil when there is none.
    func retryDelivery(id: Int) throws -> WebhookDelivery?
    /// Stores what an attempt found (queued with the next group commit).
    func recordAttempt(_ delivery: WebhookDelivery)
    /// Stores an endpoint's health (queued with the next group commit; changes only those fields).
    func recordHealth(_ id: String, _ health: WebhookHealth)
    /// Deletes delivered and failed deliveries created before `before` (Unix ms), at most `limit` of
    /// them (queued with the next group commit): the delivery log is kept for a while, not forever.
    func trimDeliveryLog(before: Int64, limit: Int)
    /// Pending deliveries per endpoint.
    func outboxDepth() throws -> [String: Int]
    /// Writes the webhooks of events committed elsewhere (a shared log) to the outbox of every active
    /// endpoint that wants them, with the next commit (`onOutbox` hears of them after it).
    func report(_ messages: [WebhookMessage])
    /// Whether any endpoint is active (nothing to build for `report` otherwise).
    var reportsWebhooks: Bool { get }
    /// Called on a storage thread with the outbox rows of each commit, after the commit.
    var onOutbox: (([WebhookDelivery]) -> Void)? { get set }
    /// Called on a storage thread when an endpoint was changed (nil: deleted) elsewhere: by another
    /// node of a cluster. A single node's changes are all made through its own API (none).
    var onEndpoints: ((String, WebhookEndpoint?) -> Void)? { get set }
}

extension WebhookStore {
    public var onEndpoints: ((String, WebhookEndpoint?) -> Void)? {
        get { nil }
        set {}
    }
}
