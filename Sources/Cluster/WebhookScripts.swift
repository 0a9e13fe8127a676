/// The Lua scripts of the cluster's webhooks. Each touches only the node-wide webhook keys, which all
/// carry the hash tag `{wh}` (one slot under Redis Cluster); the outbox entry itself is written by the
/// session's (or run's) own append script, in the session's slot (`Scripts.append`, `{S}:wh`).
///
/// Keys: `{wh}:endpoints` (hash: id -> endpoint JSON), the channel `{wh}:changed` (an id whose endpoint
/// changed), `{wh}:streams` (set: streams that have had webhook work), `{wh}:next` (the last delivery
/// id), `{wh}:d` (hash: delivery id -> record JSON), `{wh}:index` (hash: `stream entry webhook` ->
/// delivery id, so that a stream entry taken over makes the same records), `{wh}:created` (sorted set:
/// delivery id by creation time, for trimming), `{wh}:pending` (hash: endpoint -> pending deliveries),
/// `{wh}:by:<endpoint>` (sorted set of the endpoint's delivery ids, for its list).
enum WebhookScripts {
    static let endpoints = "{wh}:endpoints"
    static let changed = "{wh}:changed"
    static let streams = "{wh}:streams"
    static let next = "{wh}:next"
    static let records = "{wh}:d"
    static let index = "{wh}:index"
    static let created = "{wh}:created"
    static let pending = "{wh}:pending"
    static let byPrefix = "{wh}:by:"
    static func by(_ webhook: String) -> String { byPrefix + webhook }
    /// The consumer group of every `{S}:wh` stream.
    static let group = "hub"

    /// Stores an endpoint and tells every node. KEYS: endpoints. ARGV: id, JSON, channel.
    static let save = """
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('PUBLISH', ARGV[3], ARGV[1])
        return 1
        """

    /// Deletes an endpoint and tells every node. KEYS: endpoints, pending. ARGV: id, channel.
    /// Returns 1 if there was one.
    static let delete = """
        local n = redis.call('HDEL', KEYS[1], ARGV[1])
        redis.call('HDEL', KEYS[2], ARGV[1])
        redis.call('PUBLISH', ARGV[2], ARGV[1])
        return n
        """

    /// Replaces an endpoint only if it is still `old` (health changes lose to a change made meanwhile).
    /// KEYS: endpoints. ARGV: id, old JSON, new JSON, channel. Returns 1 if it was replaced.
    static let swap = """
        if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
        redis.call('PUBLISH', ARGV[4], ARGV[1])
        return 1
        """

    /// The record of one (stream entry, endpoint), made once: a second call (a node that took the
    /// entry over) gets the record already there. KEYS: index, next, records, created, pending, by.
    /// ARGV: index key, record JSON, created at, endpoint. Returns {id, existing record or ''}.
    static let record = """
        local id = redis.call('HGET', KEYS[1], ARGV[1])
        if id then return {tonumber(id), redis.call('HGET', KEYS[3], id) or ''} end
        id = redis.call('INCR', KEYS[2])
        redis.call('HSET', KEYS[1], ARGV[1], id)
        redis.call('HSET', KEYS[3], id, ARGV[2])
        redis.call('ZADD', KEYS[4], ARGV[3], id)
        redis.call('ZADD', KEYS[6], id, id)
        redis.call('HINCRBY', KEYS[5], ARGV[4], 1)
        return {id, ''}
        """

    /// An attempt's outcome (or a retry asked for): the record replaced, the endpoint's pending count
    /// kept. KEYS: records, pending. ARGV: id, record JSON, endpoint. Returns 0 if the record is gone.
    /// A record's own `status` is its first (the message body comes last).
    static let attempt = """
        local old = redis.call('HGET', KEYS[1], ARGV[1])
        if not old then return 0 end
        local was = string.match(old, '"status":"(%a+)"')
        local now = string.match(ARGV[2], '"status":"(%a+)"')
        if was == 'pending' and now ~= 'pending' then redis.call('HINCRBY', KEYS[2], ARGV[3], -1) end
        if was ~= 'pending' and now == 'pending' then redis.call('HINCRBY', KEYS[2], ARGV[3], 1) end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        return 1
        """

    /// The delivery log kept a while: finished records created before ARGV[1], at most ARGV[2] of them.
    /// KEYS: created, records, index. ARGV: before, limit, the `by` prefix. Returns how many went.
    static let trim = """
        local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
        local n = 0
        for _, id in ipairs(ids) do
          local r = redis.call('HGET', KEYS[2], id)
          if not r or string.match(r, '"status":"(%a+)"') ~= 'pending' then
            redis.call('ZREM', KEYS[1], id)
            if r then
              redis.call('HDEL', KEYS[2], id)
              local wh = string.match(r, '^{"webhook":"([^"]*)"')
              if wh then redis.call('ZREM', ARGV[3] .. wh, id) end
              local key = string.match(r, '"key":"([^"]*)"')
              if key then redis.call('HDEL', KEYS[3], key) end
            end
            n = n + 1
          end
        end
        return n
        """
}
