import Cluster
import Server

#if canImport(Glibc)
    import Glibc
#endif

/// `--redis` and its TLS settings (`--redis-ca`, `--redis-cert`, `--redis-key`): what cannot work is
/// refused before the hub starts, in a sentence that never shows the URL's password.
extension ServeOptions {
    static func checkRedis(_ c: Config, _ fail: (String, String) -> ConfigError) throws {
        let files = [("redis-ca", c.redisCAFile), ("redis-cert", c.redisCertFile), ("redis-key", c.redisKeyFile)]
        guard let r = c.redis else {
            if let (key, _) = files.first(where: { $0.1 != nil }) {
                throw fail(key, "needs --redis with a rediss:// URL")
            }
            return
        }
        let url: RedisURL
        do { url = try RedisURL(r) } catch { throw fail("redis", "is not usable: \(error)") }
        if let problem = redisTLS(c).problem(with: url) { throw fail("redis", "is not usable: \(problem)") }
        for case let (key, path?) in files where access(path, R_OK) != 0 {
            throw fail(key, "cannot be read (\(path): \(String(cString: strerror(errno))))")
        }
    }

    static func redisTLS(_ c: Config) -> RedisTLS {
        RedisTLS(caFile: c.redisCAFile, certificate: c.redisCertFile, key: c.redisKeyFile)
    }
}
