import EventLoop
import Hub

extension Backends {
    /// A cluster node: Redis's shared ports (the log and its reads, the session rows, the shared log
    /// and runs) beside the node-local ports of `local` (API keys, activity, webhooks and their outbox,
    /// cursor samples), which also keeps a copy of each session row. Redis is checked and its scripts
    /// loaded here (a node does not start without it).
    public static func cluster(
        redis url: RedisURL, loops: [(executor: Executor, loop: Loop)], local: Storage
    ) throws -> Backends {
        let redis = try RedisStorage(url: url, loops: loops, webhooks: local)
        return Backends(
            events: redis, reads: redis, sessions: redis, sessionCopies: local, keys: local, activity: local,
            webhooks: local, cursors: local, maintenance: [redis, local], shared: redis, runs: redis)
    }
}
