import COpenSSL
import EventLoop
import Foundation
import Hub

#if canImport(Glibc)
    import Glibc
#endif

/// Blocking Redis calls for the worker threads (history reads, wake-ups, the API): a few connections
/// (`SyncLink`, plain or TLS) shared behind a lock, each taken by one call at a time, made again after
/// an error. Connecting, each write and each read give up after `timeout`.
final class RedisSync: @unchecked Sendable {
    let url: RedisURL
    let tls: TLSContext?
    private let lock = NSLock()
    private var idle: [SyncLink] = []
    static let timeout = 2.0

    /// `redis+cluster://`: every call is routed to its slot's master (`ClusterSync`).
    private(set) var router: ClusterSync?

    init(url: RedisURL, tls: TLSContext? = nil) {
        self.url = url
        self.tls = tls
        if url.cluster { router = ClusterSync(seed: url, tls: tls) }
    }

    /// Runs one command; a failure to connect or a connection error throws `StoreFailure`.
    func call(_ args: [[UInt8]], retry: Bool = true) throws -> RedisReply {
        if let router { return try router.call(args) }
        let reply = try raw(args, retry: retry)
        if let e = reply.errorMessage { throw StoreFailure("redis: \(e)") }
        return reply
    }

    /// Where a command over every key runs (SCAN): each master of a cluster, else this one Redis.
    func shards() throws -> [RedisSync] { try router?.masters() ?? [self] }

    /// One command (after ASKING when `asking`: a cluster's redirection), its reply as Redis gave it,
    /// an error reply included.
    func raw(_ args: [[UInt8]], asking: Bool = false, retry: Bool = true) throws -> RedisReply {
        let c = try checkout()
        let reply: RedisReply
        do {
            if asking { _ = try c.call(.command("ASKING")) }
            reply = try c.call(args)
        } catch {
            c.close()
            // A pooled connection that Redis closed (a restart): every idle one is as stale; once more
            // on a new connection.
            if retry {
                drop()
                return try raw(args, asking: asking, retry: false)
            }
            throw StoreFailure("redis: \(error)")
        }
        checkin(c)
        return reply
    }

    /// Runs several commands in one round trip (each reply in order; an error reply stays a reply).
    func pipeline(_ commands: [[[UInt8]]], retry: Bool = true) throws -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        // A cluster: each command on its slot's master, in turn.
        if let router { return try commands.map(router.reply) }
        let c = try checkout()
        let replies: [RedisReply]
        do { replies = try c.pipeline(commands) } catch {
            c.close()
            if retry {
                drop()
                return try pipeline(commands, retry: false)
            }
            throw StoreFailure("redis: \(error)")
        }
        checkin(c)
        return replies
    }

    private func checkout() throws -> SyncLink {
        if let c = lock.withLock({ idle.popLast() }) { return c }
        var lastError = "no address"
        let addresses: [String]
        do { addresses = try RedisAddress.resolve(url.host) } catch { throw StoreFailure("redis \(url): \(error)") }
        for address in addresses {
            let c: SyncLink
            do { c = try SyncLink(address: address, url: url, tls: tls, timeout: Self.timeout) } catch {
                lastError = "\(error)"
                continue
            }
            var setup: [[[UInt8]]] = []
            if let p = url.password { setup.append(url.user.map { .command("AUTH", $0, p) } ?? .command("AUTH", p)) }
            if url.db != 0 { setup.append(.command("SELECT", url.db)) }
            for args in setup {
                let reply: RedisReply
                do { reply = try c.call(args) } catch {
                    c.close()
                    throw StoreFailure("redis \(url): \(error)")
                }
                if let e = reply.errorMessage {
                    c.close()
                    throw StoreFailure("redis \(url): \(e)")
                }
            }
            return c
        }
        throw StoreFailure("redis \(url): \(lastError)")
    }

    private func drop() {
        let stale = lock.withLock {
            defer { idle.removeAll() }
            return idle
        }
        for c in stale { c.close() }
    }

    private func checkin(_ c: SyncLink) {
        let kept = lock.withLock {
            guard idle.count < 8 else { return false }
            idle.append(c)
            return true
        }
        if !kept { c.close() }
    }
}

/// One blocking connection to Redis, plain or TLS; used by one thread at a time.
final class SyncLink {
    private let fd: Int32
    private var ssl: OpaquePointer?
    private var parser = RESPParser()
    private let timeout: Double
    private var closed = false

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init(address: String, url: RedisURL, tls: TLSContext?, timeout: Double) throws {
        self.timeout = timeout
        fd = try RedisDial.connect(address: address, port: url.port, timeout: timeout)
        guard let tls else { return }
        guard let ssl = tls.clientSession(fd: fd, serverName: url.host) else {
            Glibc.close(fd)
            throw Failure(description: "cannot start TLS: \(TLSContext.takeErrors())")
        }
        self.ssl = ssl
        ERR_clear_error()
        if SSL_connect(ssl) != 1 {
            let why = errno == EAGAIN ? "no answer in \(timeout) s" : RedisTLS.failure(ssl)
            close()
            throw Failure(description: "the TLS handshake with \(address):\(url.port) failed: \(why)")
        }
    }

    deinit { close() }

    func close() {
        guard !closed else { return }
        closed = true
        if let ssl { SSL_free(ssl) }
        ssl = nil
        Glibc.close(fd)
    }

    /// Sends one command and reads its reply.
    func call(_ args: [[UInt8]]) throws -> RedisReply {
        try write(RESPCommand.encode(args))
        return try reply()
    }

    /// Sends several commands at once and reads their replies, in order.
    func pipeline(_ commands: [[[UInt8]]]) throws -> [RedisReply] {
        try write(commands.flatMap(RESPCommand.encode))
        return try commands.map { _ in try reply() }
    }

    private func reply() throws -> RedisReply {
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            do {
                if let parsed = try parser.next(), !parsed.push { return parsed.reply }
            } catch {
                throw Failure(description: "a broken reply: \(error)")
            }
            let n = try buf.withUnsafeMutableBytes { try read($0) }
            buf.withUnsafeBytes { parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    private func write(_ bytes: [UInt8]) throws {
        var at = 0
        while at < bytes.count {
            let n = bytes.withUnsafeBytes { b -> Int in
                let p = b.baseAddress! + at, left = b.count - at
                if let ssl {
                    ERR_clear_error()
                    return Int(SSL_write(ssl, p, Int32(min(left, Int(Int32.max)))))
                }
                return Glibc.send(fd, p, left, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 {
                if ssl == nil && n < 0 && errno == EINTR { continue }
                let reason = why(n)
                // A TLS server that refused the handshake (no client certificate, with TLS 1.3 only
                // known after it) sent an alert before it closed: read it, it says why.
                if let ssl {
                    var scratch = [UInt8](repeating: 0, count: 512)
                    ERR_clear_error()
                    let r = SSL_read(ssl, &scratch, Int32(scratch.count))
                    if r <= 0 && SSL_get_error(ssl, r) == SSL_ERROR_SSL {
                        throw Failure(description: "TLS: \(RedisTLS.failure(ssl))")
                    }
                }
                throw Failure(description: "cannot send to Redis: \(reason)")
            }
            at += n
        }
    }

    /// Reads some bytes (at least one).
    private func read(_ buf: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n: Int
            if let ssl {
                ERR_clear_error()
                n = Int(SSL_read(ssl, buf.baseAddress, Int32(buf.count)))
            } else {
                n = recv(fd, buf.baseAddress, buf.count, 0)
            }
            if n > 0 { return n }
            if n < 0 && ssl == nil && errno == EINTR { continue }
            if n == 0 && ssl == nil { throw Failure(description: "Redis closed the connection") }
            throw Failure(description: why(n))
        }
    }

    /// Why a read or write returning `n` failed.
    private func why(_ n: Int) -> String {
        let e = errno
        if let ssl {
            switch SSL_get_error(ssl, Int32(n)) {
            case SSL_ERROR_ZERO_RETURN: return "Redis closed the connection"
            case SSL_ERROR_SYSCALL, SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                if e == EAGAIN || e == EWOULDBLOCK { return "no reply in \(timeout) s" }
                return n == 0 || e == 0 ? "Redis closed the connection" : String(cString: strerror(e))
            default: return "TLS: \(RedisTLS.failure(ssl))"
            }
        }
        if e == EAGAIN || e == EWOULDBLOCK { return "no reply in \(timeout) s" }
        return String(cString: strerror(e))
    }
}
