/// The Lua scripts of the cluster's webhooks. Each touches only the node-wide webhook keys, which all
/// carry the hash tag `{wh}` (one slot under Redis Cluster); the outbox entry itself is written by the
/// session's (or run's) own append script, in the session's slot (`Scripts.append`, `{S}:wh`).
///
/// Keys: `chub:{wh}:endpoints` (hash: id -> endpoint JSON), the channel `chub:{wh}:changed` (an id whose endpoint
/// changed), `chub:{wh}:streams` (set: streams that have had webhook work), `chub:{wh}:next` (the last delivery
/// id), `chub:{wh}:d` (hash: delivery id -> record JSON), `chub:{wh}:index` (hash: `stream entry webhook` ->
/// delivery id, so that a stream entry taken over makes the same records), `chub:{wh}:created` (sorted set:
/// delivery id by creation time, for trimming), `chub:{wh}:pending` (hash: endpoint -> pending deliveries),
/// `chub:{wh}:by:<endpoint>` (sorted set of the endpoint's delivery ids, for its list).
enum WebhookScripts {
    static let endpoints = "chub:{wh}:endpoints"
    static let changed = "chub:{wh}:changed"
    static let streams = "chub:{wh}:streams"
    static let next = "chub:{wh}:next"
    static let records = "chub:{wh}:d"
    static let index = "chub:{wh}:index"
    static let created = "chub:{wh}:created"
    static let pending = "chub:{wh}:pending"
    static let byPrefix = "chub:{wh}:by:"
    static func by(_ webhook: String) -> String { byPrefix + webhook }
    /// The consumer group of every `{S}:wh` stream.
    static let group = "hub"

    /// The scripts: `Sources/Cluster/Lua/webhook_*.lua` (KEYS, ARGV and the reply at the top of each).
    static let save = Scripts.lua(PackageResources.webhook_save_lua)
    static let delete = Scripts.lua(PackageResources.webhook_delete_lua)
    static let swap = Scripts.lua(PackageResources.webhook_swap_lua)
    static let record = Scripts.lua(PackageResources.webhook_record_lua)
    static let attempt = Scripts.lua(PackageResources.webhook_attempt_lua)
    static let trim = Scripts.lua(PackageResources.webhook_trim_lua)
}
