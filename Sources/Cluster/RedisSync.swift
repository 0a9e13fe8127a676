import CHiredis
import Foundation
import Hub

/// Blocking Redis calls for the worker threads (history reads, wake-ups, the API): a few hiredis
/// connections shared behind a lock, each taken by one call at a time, reconnected after an error.
final class RedisSync: @unchecked Sendable {
    let url: RedisURL
    private let lock = NSLock()
    private var idle: [OpaquePointer] = []
    static let timeout = 2.0

    init(url: RedisURL) { self.url = url }

    /// Runs one command; a failure to connect or a connection error throws `StoreFailure`.
    func call(_ args: [[UInt8]], retry: Bool = true) throws -> RedisReply {
        let c = try checkout()
        let raw = withArgv(args) { argc, argv, lens in redisCommandArgv(UnsafeMutablePointer(c), argc, argv, lens) }
        guard let raw else {
            redisFree(UnsafeMutablePointer(c))
            // A pooled connection that Redis closed (a restart): every idle one is as stale; once more
            // on a new connection.
            if retry {
                drop()
                return try call(args, retry: false)
            }
            throw StoreFailure("redis: connection lost")
        }
        let reply = RedisReply(raw.assumingMemoryBound(to: redisReply.self))
        freeReplyObject(raw)
        checkin(c)
        if let e = reply.errorMessage { throw StoreFailure("redis: \(e)") }
        return reply
    }

    private func checkout() throws -> OpaquePointer {
        lock.lock()
        if let c = idle.popLast() { lock.unlock(); return c }
        lock.unlock()
        guard let c = chub_redis_connect_sync(url.host, Int32(url.port), Self.timeout) else {
            throw StoreFailure("redis: out of memory")
        }
        if c.pointee.err != 0 {
            let why = withUnsafeBytes(of: c.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            redisFree(c)
            throw StoreFailure("redis \(url): \(why)")
        }
        let handle = OpaquePointer(c)
        var setup: [[[UInt8]]] = []
        if let p = url.password {
            setup.append(
                url.user.map { [Array("AUTH".utf8), Array($0.utf8), Array(p.utf8)] }
                    ?? [Array("AUTH".utf8), Array(p.utf8)])
        }
        if url.db != 0 { setup.append([Array("SELECT".utf8), Array(String(url.db).utf8)]) }
        for args in setup {
            let raw = withArgv(args) { argc, argv, lens in redisCommandArgv(c, argc, argv, lens) }
            let reply = raw.map { RedisReply($0.assumingMemoryBound(to: redisReply.self)) }
            if let raw { freeReplyObject(raw) }
            if reply == nil || reply?.errorMessage != nil {
                redisFree(c)
                throw StoreFailure("redis \(url): \(reply?.errorMessage ?? "connection lost")")
            }
        }
        return handle
    }

    private func drop() {
        lock.lock()
        let stale = idle
        idle.removeAll()
        lock.unlock()
        for c in stale { redisFree(UnsafeMutablePointer(c)) }
    }

    private func checkin(_ c: OpaquePointer) {
        lock.lock()
        if idle.count < 8 { idle.append(c); lock.unlock() } else { lock.unlock(); redisFree(UnsafeMutablePointer(c)) }
    }
}
