import EventLoop
import Hub
import Logging

/// Which nodes are alive. Each node sets `chub:node:<id>` with a TTL every second (`heartbeat`) and
/// is in the set `chub:nodes`; every two seconds it looks for members of that set whose key expired.
/// The first survivor to take a dead node out of the set (SREM answers 1 to exactly one caller) takes,
/// in every session, the dead node's connections out of `{S}:conns` (`MemberScripts.nodeLost`): each
/// member no node holds then leaves, one durable leave with reason `node_lost`. Its origin is
/// `lost:<id>`, so every node applies it, the emitting one included.
final class NodeWatch {
    unowned let storage: RedisStorage
    let link: LoopLink
    private var beat: Loop.Timer?
    private var sweep: Loop.Timer?
    private let log = Logger(label: "collabhub.redis")
    static let ttlMillis = 5000

    init(storage: RedisStorage, link: LoopLink) {
        self.storage = storage
        self.link = link
        beat = Loop.Timer(loop: link.commands.loop, after: 0, repeat: 1) { [unowned self] in self.heartbeat() }
        beat?.unref()
        sweep = Loop.Timer(loop: link.commands.loop, after: 2, repeat: 2) { [unowned self] in self.lookForDead() }
        sweep?.unref()
    }

    /// Since when this node's heartbeats have been stored without a break.
    private var beatingSince: Double?
    /// Redis has answered this node's SADD once: the node is in `chub:nodes`. Until then an SADD that
    /// adds it is the node's first announcement, not a return from the dead.
    private var announced = false

    private func heartbeat() {
        let me = storage.node, loop = link.commands.loop
        let beat: [[UInt8]] = .command("SET", "chub:node:\(me)", "1", "PX", Self.ttlMillis)
        link.commands.send(beat, priority: true) { [self] reply in
            if case .status = reply {
                if beatingSince == nil { beatingSince = loop.now }
            } else {
                beatingSince = nil
            }
        }
        link.commands.send(.command("SADD", "chub:nodes", me), priority: true) { [self] added in
            // Back in a set this node never left: a survivor declared it dead (it could not beat for a
            // TTL) or Redis lost the set. Its sessions are noted again, and each says again who it holds
            // (members a survivor buried join again).
            guard let n = added.int else { return }
            defer { announced = true }
            if n == 1 && announced && beatingSince != nil {
                log.warning("this node was declared lost; its members are announced again")
                storage.forgetMemberSessions()
                storage.reannounce()
            }
        }
    }

    private func lookForDead() {
        // After Redis was away, every heartbeat key may have expired: the living get a TTL to beat again
        // before anyone is declared dead.
        guard let since = beatingSince, link.commands.loop.now - since > Double(Self.ttlMillis) / 1000 + 1 else {
            return
        }
        link.commands.send(.command("SMEMBERS", "chub:nodes")) { [self] reply in
            for id in reply.items.compactMap(\.text) where id != storage.node {
                link.commands.send(.command("EXISTS", "chub:node:\(id)")) { [self] alive in
                    guard alive.int == 0 else { return }
                    link.commands.send(.command("SREM", "chub:nodes", id)) { [self] won in
                        if won.int == 1 { bury(id) }
                    }
                }
            }
        }
    }

    /// This node won: every member the dead one had leaves, once. The dead node's set of sessions goes
    /// only after every leave is stored; if anything fails, the node goes back into `chub:nodes` and the
    /// next sweep (of any node) buries it again (the leaves are idempotent).
    private func bury(_ id: String) {
        log.notice("node lost: its members leave", metadata: ["node": "\(id)"])
        // Its undelivered webhooks go out from here (they wait in its pending lists of `{S}:wh`).
        storage.hooks.takeOver(from: id)
        var outstanding = 1, failed = false
        let finish: (Bool) -> Void = { [self] ok in
            failed = failed || !ok
            outstanding -= 1
            guard outstanding == 0 else { return }
            if failed {
                link.commands.send(.command("SADD", "chub:nodes", id)) { _ in }
            } else {
                link.commands.send(.command("DEL", "chub:node:\(id):sessions")) { _ in }
            }
        }
        link.commands.send(.command("SMEMBERS", "chub:node:\(id):sessions")) { [self] reply in
            if reply.errorMessage != nil { return finish(false) }
            for session in reply.items.compactMap(\.text) {
                outstanding += 1
                storage.buryMembers(session: session, node: id, link: link, done: finish)
                link.forgetFollowers(of: id, session: ChannelKey(Array(RedisStorage.keys(session).channel.utf8)))
            }
            finish(true)
        }
    }
}
