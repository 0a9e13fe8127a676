import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where the Redis host is: the URL's host resolved to a numeric address, which is what the loops'
/// Redis connections are given, so that connecting never runs a DNS query on a loop thread. It is
/// resolved once at start-up (before any loop runs) and again before each reconnect, on a worker
/// thread (`refresh`); if a later resolution fails, the addresses found last are kept. A name with
/// several addresses (`localhost` as `::1` and `127.0.0.1`) is tried address by address: a connection
/// that fails before Redis answered moves on to the next (`failed`).
final class RedisAddress: @unchecked Sendable {
    let host: String
    private let lock = NSLock()
    private var addresses: [String]
    private var index = 0
    private static let queue = DispatchQueue(label: "collabhub.redis.resolve")

    /// Resolves `host` now (blocking: call it before the loops run).
    init(host: String) throws {
        self.host = host
        addresses = try Self.resolve(host)
    }

    /// The address to connect to.
    var current: String { lock.withLock { addresses[index % addresses.count] } }

    /// A connection to `address` failed before Redis answered: the next one is tried.
    func failed(_ address: String) {
        lock.withLock { if addresses[index % addresses.count] == address { index = (index + 1) % addresses.count } }
    }

    /// Resolves the host again on a worker thread, then runs `done` (on that thread) with the address
    /// to use. `forbidden` is the calling loop's thread: resolving on it is a bug, checked in debug builds.
    func refresh(forbidden: pthread_t, _ done: @escaping @Sendable (String) -> Void) {
        Self.queue.async { [self] in
            assert(pthread_equal(pthread_self(), forbidden) == 0, "the Redis host was resolved on a loop thread")
            if let found = try? Self.resolve(host) {
                lock.withLock {
                    if found != addresses { (addresses, index) = (found, 0) }
                }
            }
            done(current)
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The addresses `getaddrinfo` gives for `host` (IPv4 and IPv6, in its order, each once), as text;
    /// a numeric host is returned as it is, with no lookup.
    static func resolve(_ host: String) throws -> [String] {
        if isNumeric(host) { return [host] }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0, let first = list else {
            let why = String(cString: gai_strerror(status))
            throw Failure(description: "cannot resolve the Redis host \(host): \(why)")
        }
        defer { freeaddrinfo(list) }
        var out: [String] = []
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let entry = next {
            next = entry.pointee.ai_next
            var text = [CChar](repeating: 0, count: 1025)
            guard
                getnameinfo(
                    entry.pointee.ai_addr, entry.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0,
                    NI_NUMERICHOST) == 0
            else { continue }
            let address = String(cString: text)
            if !out.contains(address) { out.append(address) }
        }
        guard !out.isEmpty else { throw Failure(description: "cannot resolve the Redis host \(host)") }
        return out
    }

    static func isNumeric(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
