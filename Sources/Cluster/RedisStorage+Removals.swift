import Foundation
import Hub

/// A host's removal kept in Redis, so that it sticks on a node that did not hear it (`chub:ctl`
/// publications are heard at most once): before the removal is published, the member's id goes into
/// `{S}:removed` (hash: member id -> when, in the session's slot; the hash expires `keepMillis` after
/// the last removal). Every node says again who it holds (`MemberScripts.reassert`) each time its
/// control subscription takes effect again, after its link to Redis was down and after it was declared
/// lost; that script refuses a member whose id is recorded, so the node closes its connections (4005).
/// A member id is made anew at each join, so the record refuses nobody who joins again.
extension RedisStorage {
    /// How long removals are kept: far longer than any resubscription or node loss takes to be noticed.
    static let removalKeepMillis = 86_400_000

    static func removedKey(_ session: String) -> String { "{\(session)}:removed" }

    public func recordRemoval(
        session: String, memberID: String, executor: Executor, done: @escaping (StoreFailure?) -> Void
    ) {
        guard let link = link(executor) else {
            return executor.execute { done(StoreFailure("redis: not called from a loop")) }
        }
        let key = Self.removedKey(session)
        var failure: StoreFailure?
        // One slot and one connection: the expiry is set after the field, and answered after it.
        link.commands.send(.command("HSET", key, memberID, Int(Date().timeIntervalSince1970 * 1000))) { reply in
            if reply.int == nil { failure = StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")") }
        }
        link.commands.send(.command("PEXPIRE", key, Self.removalKeepMillis)) { reply in
            if failure == nil && reply.int == nil {
                failure = StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")")
            }
            done(failure)
        }
    }

    /// The refusals a reassert answers last: identity, then `full` or `removed`; nil if malformed.
    static func refusals(_ reply: RedisReply?) -> [RosterRefusal]? {
        guard case .array(let items)? = reply, items.count % 2 == 0 else { return nil }
        var out: [RosterRefusal] = []
        for i in stride(from: 0, to: items.count, by: 2) {
            guard let identity = items[i].text else { return nil }
            switch items[i + 1].text {
            case "full": out.append(RosterRefusal(identity: identity, removed: false))
            case "removed": out.append(RosterRefusal(identity: identity, removed: true))
            default: return nil
            }
        }
        return out
    }
}
