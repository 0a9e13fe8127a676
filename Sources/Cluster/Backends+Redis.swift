import EventLoop
import Hub

extension Backends {
    /// A cluster node: Redis's shared ports (the log and its reads, the session rows, the shared log
    /// and runs, webhooks, API keys and their quotas, the activity log) beside the node-local ports of
    /// `local` (cursor samples for playback), which also keeps a copy of each session row. Redis is
    /// checked and its scripts loaded here (a node does not start without it).
    public static func cluster(
        redis url: RedisURL, tls: RedisTLS = RedisTLS(), loops: [(executor: Executor, loop: Loop)], local: Storage,
        wait: RedisWait? = nil
    ) throws -> Backends {
        let redis = try RedisStorage(url: url, tls: tls, loops: loops, activityFallback: local, wait: wait)
        return Backends(
            events: redis, reads: redis, sessions: redis, sessionCopies: local, keys: redis.keyStore,
            activity: redis.activityLog, webhooks: redis, cursors: local, maintenance: [redis, local], shared: redis,
            runs: redis, roster: redis, control: RedisControl(storage: redis))
    }
}
