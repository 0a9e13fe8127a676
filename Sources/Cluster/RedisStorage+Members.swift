import Hub

/// Members keyed by identity across the cluster (`MemberScripts`): joins, leaves, a node saying again
/// what it holds, and a dead node's members leaving. Each is one script call in the session's slot
/// that also commits the presence event, whose webhooks go out from this node as any append's do.
extension RedisStorage: SharedRoster {
    static func connsKey(_ session: String) -> String { "{\(session)}:conns" }

    private func memberKeys(_ session: String) -> [String] {
        let k = Self.keys(session)
        return [k.m, k.log, k.members, Self.connsKey(session)]
    }

    /// The arguments every member script starts with (`MemberScripts.prelude`).
    private func prelude(_ session: String) -> [[UInt8]] {
        .command(Self.keys(session).channel, newEpoch(), seen(session), keepEvents(session), node)
    }

    public func join(
        session: String, identity: String, memberID: String, json: (before: [UInt8], after: [UInt8]),
        maxParticipants: Int, executor: Executor, done: @escaping (Result<RosterJoin, StoreFailure>) -> Void
    ) {
        guard let link = link(executor) else {
            return executor.execute { done(.failure(StoreFailure("redis: not called from a loop"))) }
        }
        let palette = Session.palette
        let args =
            prelude(session)
            + .command(identity, memberID, json.before, json.after, maxParticipants, palette.count)
            + palette.map { Array($0.utf8) }
        link.eval(MemberScripts.join, sha: MemberScripts.joinSHA, keys: memberKeys(session), args: args) {
            [self] reply in
            let items = reply.items
            let fail = { done(.failure(StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")"))) }
            switch items.first?.int {
            case 1 where items.count == 2 && items[1].bytes != nil:
                noteMembers(in: session, link: link)
                done(.success(.existing(json: items[1].bytes!)))
            case 2:
                done(.success(.full))
            case 0:
                guard items.count == 5, let color = items[1].text, let seq = items[2].int, let ts = items[3].int,
                    let epoch = items[4].text
                else { return fail() }
                let body = EventBody.presence(joins: [json.before + Array(color.utf8) + json.after], leaves: [])
                let committed = Committed(seq: seq, ts: Int64(ts), duplicate: false)
                stored(session, epoch: epoch, [(memberID, body, committed)], link: link)
                noteMembers(in: session, link: link)
                done(.success(.admitted(color: color, committed)))
            default:
                fail()
            }
        }
    }

    public func leave(
        session: String, identity: String, memberID: String, name: String, reason: String, executor: Executor,
        done: @escaping (Result<RosterLeave, StoreFailure>) -> Void
    ) {
        guard let link = link(executor) else {
            return executor.execute { done(.failure(StoreFailure("redis: not called from a loop"))) }
        }
        let body = EventBody.presence(joins: [], leaves: [(memberID, reason, name)])
        let args = prelude(session) + .command(identity, memberID, body)
        link.eval(MemberScripts.leave, sha: MemberScripts.leaveSHA, keys: memberKeys(session), args: args) {
            [self] reply in
            let items = reply.items
            let fail = { done(.failure(StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")"))) }
            switch items.first?.int {
            case 1 where items.count == 2 && items[1].bytes != nil:
                done(.success(.stillPresent(json: items[1].bytes!)))
            case 2:
                done(.success(.gone))
            case 0:
                guard items.count == 4, let seq = items[1].int, let ts = items[2].int, let epoch = items[3].text
                else { return fail() }
                let committed = Committed(seq: seq, ts: Int64(ts), duplicate: false)
                stored(session, epoch: epoch, [(memberID, body, committed)], link: link)
                done(.success(.left(committed)))
            default:
                fail()
            }
        }
    }

    public func reassert(
        session: String, holdings: [RosterHolding], executor: Executor,
        done: @escaping (Result<Int, StoreFailure>) -> Void
    ) {
        guard let link = link(executor) else {
            return executor.execute { done(.failure(StoreFailure("redis: not called from a loop"))) }
        }
        var args = prelude(session) + .command(holdings.count)
        for h in holdings { args += .command(h.identity, h.memberID, h.connections, h.json) }
        link.eval(MemberScripts.reassert, sha: MemberScripts.reassertSHA, keys: memberKeys(session), args: args) {
            [self] reply in
            guard let entries = committedEntries(reply) else {
                return done(.failure(StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")")))
            }
            if !holdings.isEmpty { noteMembers(in: session, link: link) }
            stored(session, epoch: entries.epoch, entries.events, link: link)
            done(.success(entries.events.count))
        }
    }

    /// A dead node's members leave (`NodeWatch.bury`, on loop 0's link): `done` gets false if the
    /// script did not run (the burial is tried again).
    func buryMembers(session: String, node dead: String, link: LoopLink, done: @escaping (Bool) -> Void) {
        let args = prelude(session) + .command(dead)
        link.eval(MemberScripts.nodeLost, sha: MemberScripts.nodeLostSHA, keys: memberKeys(session), args: args) {
            [self] reply in
            guard let entries = committedEntries(reply) else { return done(false) }
            reportWebhooks(session, entries.events)
            done(true)
        }
    }

    /// `{epoch, entry...}` as `reassert` and `nodeLost` answer.
    private func committedEntries(_ reply: RedisReply)
        -> (epoch: String, events: [(member: String?, body: [UInt8], Committed)])?
    {
        let items = reply.items
        guard let epoch = items.first?.text else { return nil }
        let events = items.dropFirst().compactMap { $0.bytes.flatMap { LogEntry.decode($0[...]) } }.map {
            ($0.member, $0.body, Committed(seq: $0.seq, ts: $0.ts, duplicate: false))
        }
        return (epoch, events)
    }

    /// What follows a member script's commits on the session's loop: the epoch and seq learned (a new
    /// epoch is told to the session) and the webhooks reported.
    private func stored(
        _ session: String, epoch: String, _ events: [(member: String?, body: [UInt8], Committed)], link: LoopLink
    ) {
        guard let last = events.last?.2.seq else { return }
        if learned(session, epoch: epoch, seq: last) != nil { link.notify(session, .lost(lastSeq: last - 1)) }
        reportWebhooks(session, events)
    }

    private func reportWebhooks(_ session: String, _ events: [(member: String?, body: [UInt8], Committed)]) {
        guard local.reportsWebhooks, !events.isEmpty else { return }
        local.report(
            events.flatMap { e in
                Webhook.messages(
                    for: DurableEvent(
                        session: session, type: "presence", member: e.member, clientId: nil, body: e.body),
                    committed: e.2)
            })
    }

    /// This node was declared lost and beats again: every session it follows says what it holds.
    func reannounce() {
        for link in allLinks() { link.loop.post { link.notifyAll(.reannounce) } }
    }
}
