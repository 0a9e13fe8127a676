import Cluster
import Server

#if canImport(Glibc)
    import Glibc
#endif

/// The cluster's Redis as `serve` is told it: `--redis URL`
/// (`redis://[[user]:password@]host[:port][/db]`: the node joins a cluster whose sessions, directory and
/// history live in that Redis), its TLS settings (`--redis-ca`, `--redis-cert`, `--redis-key`: with a
/// `rediss://` URL, the CAs Redis's certificate is checked against, and the client certificate and key
/// for a Redis that asks for one) and `--redis-wait-replicas` / `--redis-wait-timeout-ms` (a durable
/// append is acknowledged once that many replicas have it: scripts/deploy/CLUSTER.md). Read from the
/// configuration layers and checked once, in `ServeOptions.resolve` (nil: no `--redis`, one process with
/// SQLite); what cannot work is refused before the hub starts, in a sentence that never shows the URL's
/// password.
struct RedisOptions {
    let url: RedisURL
    let tls: RedisTLS
    let wait: RedisWait
    /// The URL as given names a user or password (`@`): on the command line that is warned about.
    let hasCredentials: Bool
}

extension ServeOptions {
    func redisOptions(_ L: ConfigLayers, _ fail: (String, String) -> ConfigError) throws -> RedisOptions? {
        let given = try L.optional("redis", flag: redis, secret: true)
        let tls = RedisTLS(
            caFile: try L.optional("redis-ca", flag: redisCa),
            certificate: try L.optional("redis-cert", flag: redisCert),
            key: try L.optional("redis-key", flag: redisKey))
        let replicas = try L.value("redis-wait-replicas", flag: redisWaitReplicas, default: 0)
        guard RedisWait.replicaCounts.contains(replicas) else { throw fail("redis-wait-replicas", "must be 0-16") }
        let timeout = try L.value("redis-wait-timeout-ms", flag: redisWaitTimeoutMs, default: 1000)
        guard RedisWait.timeouts.contains(timeout) else {
            throw fail("redis-wait-timeout-ms", "must be 1-2000 (the Redis reply watchdog is 3 s)")
        }
        let files = [("redis-ca", tls.caFile), ("redis-cert", tls.certificate), ("redis-key", tls.key)]
        guard let given else {
            if let (key, _) = files.first(where: { $0.1 != nil }) {
                throw fail(key, "needs --redis with a rediss:// URL")
            }
            return nil
        }
        let url: RedisURL
        do { url = try RedisURL(given) } catch { throw fail("redis", "is not usable: \(error)") }
        if let problem = tls.problem(with: url) { throw fail("redis", "is not usable: \(problem)") }
        for case let (key, path?) in files where access(path, R_OK) != 0 {
            throw fail(key, "cannot be read (\(path): \(String(cString: strerror(errno))))")
        }
        return RedisOptions(
            url: url, tls: tls, wait: RedisWait(replicas: replicas, timeoutMillis: timeout),
            hasCredentials: given.contains("@"))
    }
}
