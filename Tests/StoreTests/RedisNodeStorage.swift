@testable import Cluster
import EventLoop
import Foundation
import Hub
import Store

/// A loop of its own on a thread, as an executor: what a cluster node's Redis links run on.
final class ThreadLoop: Executor, @unchecked Sendable {
    let loop = Loop(index: 0)
    private var keepAlive: Loop.Timer?

    init() {
        keepAlive = Loop.Timer(loop: loop, after: 3600, repeat: 3600) {}
        let loop = loop
        Thread { loop.run() }.start()
    }

    func execute(_ work: @escaping () -> Void) { loop.post(work) }

    func stop() {
        loop.post { [self] in
            keepAlive?.cancel()
            keepAlive = nil
            loop.stop()
        }
    }
}

/// A cluster node's storage as `collabhub serve --redis` puts it together (`Backends.cluster`): Redis's
/// shared ports beside a SQLite store, its links on a `ThreadLoop`. Only where `REDIS_URL` names a
/// Redis the tests may wipe (scripts/test.sh starts one on a free loopback port): its database is
/// flushed first, so each test starts from an empty log.
enum RedisNodeStorage {
    static var url: String? { ProcessInfo.processInfo.environment["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    static func open() throws -> (Storage, ThreadLoop)? {
        guard let url else { return nil }
        let redisURL = try RedisURL(url)
        _ = try RedisSync(url: redisURL).call(.command("FLUSHDB"))
        let loop = ThreadLoop()
        let local = try SQLiteStore(directory: NSTemporaryDirectory() + "chub-\(UUID().uuidString)")
        let backends = try Backends.cluster(redis: redisURL, loops: [(loop, loop.loop)], local: local)
        return (NodeStorage(backends), loop)
    }
}
