/// `redis://[[user]:password@]host[:port][/db]`, as `--redis` takes it; `rediss://` for TLS (the
/// certificate checked against the host as written here); `redis+cluster://` and `rediss+cluster://`
/// for a Redis Cluster, the host one of its nodes (`ClusterSync`), database 0 only.
public struct RedisURL: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    /// `rediss://`: the connection is TLS.
    public var tls = false
    /// `redis+cluster://`: the host is a seed node of a Redis Cluster; commands go to each slot's master.
    public var cluster = false
    public var port: Int
    public var db: Int
    public var user: String?
    public var password: String?

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    static let schemes = ["redis://", "rediss://", "redis+cluster://", "rediss+cluster://"]

    public init(_ text: String) throws {
        let rest: Substring
        if let scheme = Self.schemes.first(where: text.hasPrefix) {
            rest = text.dropFirst(scheme.count)
            tls = scheme.hasPrefix("rediss")
            cluster = scheme.contains("+cluster")
        } else {
            throw Invalid(
                description:
                    "the Redis URL must start with redis://, rediss:// (TLS), redis+cluster:// or rediss+cluster://")
        }
        var hostPart = rest
        if let at = rest.lastIndex(of: "@") {
            let auth = rest[..<at]
            hostPart = rest[rest.index(after: at)...]
            if let colon = auth.firstIndex(of: ":") {
                let u = String(auth[..<colon])
                user = u.isEmpty ? nil : Self.unescape(u)
                password = Self.unescape(String(auth[auth.index(after: colon)...]))
            } else {
                password = Self.unescape(String(auth))
            }
        }
        db = 0
        if let slash = hostPart.firstIndex(of: "/") {
            let d = hostPart[hostPart.index(after: slash)...]
            if !d.isEmpty {
                guard let n = Int(d), n >= 0, n <= 15 else {
                    throw Invalid(description: "the Redis database must be 0-15 (got \"\(d)\")")
                }
                db = n
            }
            guard db == 0 || !cluster else {
                throw Invalid(description: "a Redis Cluster has only database 0 (the URL names database \(db))")
            }
            hostPart = hostPart[..<slash]
        }
        port = 6379
        if let colon = hostPart.lastIndex(of: ":"), !hostPart.hasSuffix("]") {
            guard let p = Int(hostPart[hostPart.index(after: colon)...]), p > 0, p < 65536 else {
                throw Invalid(description: "the Redis port must be 1-65535")
            }
            port = p
            hostPart = hostPart[..<colon]
        }
        host = String(hostPart).trimmingBrackets
        guard !host.isEmpty else { throw Invalid(description: "the Redis URL names no host") }
        guard host.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw Invalid(description: "the Redis host has a space or a control character")
        }
    }

    /// Percent-escapes in the user and password (`%40` for `@`).
    static func unescape(_ s: String) -> String {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%"), bytes.count >= 2,
                let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16)
            {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Without the password.
    public var description: String {
        let scheme = (tls ? "rediss" : "redis") + (cluster ? "+cluster" : "")
        return "\(scheme)://\(password != nil ? "\(user ?? ""):***@" : "")\(host):\(port)/\(db)"
    }
}

extension String {
    fileprivate var trimmingBrackets: String {
        hasPrefix("[") && hasSuffix("]") ? String(dropFirst().dropLast()) : self
    }
}
