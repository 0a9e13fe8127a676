import EventLoop
import Foundation
import Hub

/// Control between the nodes (`SharedControl`): the channel `chub:ctl` that every node's loop 0
/// follows, the registry of run publisher sockets (`chub:pub:{RUN}` -> node id, with a TTL its holder
/// renews: `Lua/run_publisher.lua`), and a barrier on this node's own channel `chub:sync:NODE`.
///
/// The barrier: Redis runs commands one at a time and writes each publication into its subscribers'
/// buffers as the `PUBLISH` runs, so on one subscriber connection messages arrive in the order they
/// were published, whatever their channels. A token this node publishes on its own channel, followed
/// by the same connection as `chub:runs`, therefore arrives after every run event whose append Redis
/// had answered before: once it is heard, the node's copy has them all.
final class RedisControl: SharedControl {
    static let channel = "chub:ctl"
    /// How long a publisher record lives without being renewed (every 10 s, `ClusterControl`).
    static let recordMillis = 30_000
    unowned let storage: RedisStorage
    private var barriers: [String: (done: (StoreFailure?) -> Void, timer: Loop.Timer)] = [:]
    private var tokens = 0
    /// Redis Cluster: a barrier's token is published on every master (each forwards publications to the
    /// node this one subscribes on in order, but not in order with the others): hearings still due.
    private var awaiting: [String: Int] = [:]
    /// The runs whose publisher sockets are on this node, as far as the registry was told.
    private var publishers = PublisherRecords()

    init(storage: RedisStorage) { self.storage = storage }

    var nodeID: String { storage.node }
    private var syncChannel: String { "chub:sync:" + storage.node }
    static func publisherKey(_ run: String) -> String { "chub:pub:{\(run)}" }

    func followControls(executor: Executor, _ sink: @escaping ([UInt8]) -> Void) {
        guard let link = storage.link(executor) else { return }
        link.followNodeChannel(Self.channel) { [weak self] payload in
            guard let payload else {
                self?.reassertPublishers(executor: executor)
                // A removal published while the subscription was being made again was not heard: every
                // session says again who it holds, and the removals kept in Redis are refused then.
                self?.storage.reannounce()
                return
            }
            sink(payload)
        }
        link.followNodeChannel(syncChannel) { [weak self] payload in
            guard let payload, let self else { return }
            let token = String(decoding: payload, as: UTF8.self)
            if let left = self.awaiting[token] {
                self.awaiting[token] = left > 1 ? left - 1 : nil
                if left > 1 { return }
            }
            guard let b = self.barriers.removeValue(forKey: token) else { return }
            b.timer.cancel()
            b.done(nil)
        }
    }

    func sendControl(_ payload: [UInt8], executor: Executor, done: @escaping (StoreFailure?) -> Void) {
        guard let link = storage.link(executor) else { return done(StoreFailure("redis: not called from a loop")) }
        link.commands.send(.command("PUBLISH", Self.channel, payload)) { reply in
            done(reply.int == nil ? StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")") : nil)
        }
    }

    func caughtUp(executor: Executor, timeout: Double, done: @escaping (StoreFailure?) -> Void) {
        guard let link = storage.link(executor) else { return done(StoreFailure("redis: not called from a loop")) }
        tokens += 1
        let token = "\(tokens)"
        let timer = Loop.Timer(loop: link.loop, after: timeout) { [weak self] in
            guard let b = self?.barriers.removeValue(forKey: token) else { return }
            self?.awaiting[token] = nil
            b.done(StoreFailure("redis: this node did not hear its own publication within \(timeout) s"))
        }
        barriers[token] = (done, timer)
        if let cluster = link.commands as? ClusterCommands {
            awaiting[token] = cluster.router.map.masters.count
            return cluster.sendToEveryMaster(.command("PUBLISH", syncChannel, token)) { [weak self] replies in
                // Heard on no master (the subscription is not in effect), or a master refused: no wait.
                let heard = replies.contains { ($0.int ?? 0) > 0 }  // by some master's subscriber
                guard !heard || replies.contains(where: { $0.int == nil }), let self,
                    let b = self.barriers.removeValue(forKey: token)
                else { return }
                self.awaiting[token] = nil
                b.timer.cancel()
                b.done(StoreFailure("redis: the barrier's publication was not heard or refused"))
            }
        }
        link.commands.send(.command("PUBLISH", syncChannel, token)) { [weak self] reply in
            // Nobody heard it (this node's subscription is not in effect) or Redis refused: no wait.
            guard reply.int ?? 0 < 1, let self, let b = self.barriers.removeValue(forKey: token) else { return }
            b.timer.cancel()
            b.done(StoreFailure("redis: \(reply.errorMessage ?? "this node's subscription is not in effect")"))
        }
    }

    private func registry(
        _ op: String, run: String, executor: Executor, _ reply: @escaping (RedisReply) -> Void = { _ in }
    ) {
        guard let link = storage.link(executor) else { return }
        link.eval(
            Self.script, sha: Self.scriptSHA, keys: [Self.publisherKey(run)],
            args: .command(op, storage.node, Self.recordMillis), reply)
    }
    static let script = Scripts.lua(PackageResources.run_publisher_lua)
    static let scriptSHA = Scripts.sha1Hex(script)

    func publisherHere(run: String, executor: Executor) {
        publishers.taken(run)
        registry("take", run: run, executor: executor) { [weak self] reply in
            self?.publishers.answered(run, took: reply.int == 1)
        }
    }
    func publisherGone(run: String, executor: Executor) {
        publishers.gone(run)
        registry("drop", run: run, executor: executor)
    }
    func keepPublishers(_ runs: [String], executor: Executor) {
        for run in runs { registry(publishers.op(run), run: run, executor: executor) }
    }

    /// The records of this node's publisher sockets again, once the control subscription took effect
    /// again (Redis back): a `take` Redis did not answer is made now, and every other record is kept,
    /// or written again if Redis lost it meanwhile (`keep` writes an absent record).
    /// One that Redis does not answer (its command connection is not back yet) is tried again, 0.25 s
    /// doubling to 2 s, until every record was answered.
    private func reassertPublishers(executor: Executor) {
        publishers.retry?.cancel()
        publishers.retry = nil
        var failed = false
        var left = publishers.held.count
        for run in publishers.held.sorted() {
            let op = publishers.op(run)
            registry(op, run: run, executor: executor) { [weak self] reply in
                guard let self else { return }
                if op == "take" { self.publishers.answered(run, took: reply.int == 1) }
                failed = failed || reply.int == nil
                left -= 1
                guard left == 0 else { return }
                guard failed, let loop = self.storage.link(executor)?.loop else {
                    self.publishers.wait = 0
                    return
                }
                self.publishers.wait = min(max(self.publishers.wait * 2, 0.25), 2)
                self.publishers.retry = Loop.Timer(loop: loop, after: self.publishers.wait) { [weak self] in
                    self?.reassertPublishers(executor: executor)
                }
            }
        }
    }

    func publisherNode(run: String, executor: Executor, done: @escaping (Result<String?, StoreFailure>) -> Void) {
        guard let link = storage.link(executor) else {
            return done(.failure(StoreFailure("redis: not called from a loop")))
        }
        link.commands.send(.command("GET", Self.publisherKey(run))) { reply in
            if let e = reply.errorMessage { return done(.failure(StoreFailure("redis: \(e)"))) }
            done(.success(reply.text))
        }
    }
}
