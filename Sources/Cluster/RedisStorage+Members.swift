import Hub

/// Members keyed by identity across the cluster (`MemberScripts`): joins, leaves, a node saying again
/// what it holds, and a dead node's members leaving. Each is one script call in the session's slot
/// that also commits the presence event, whose webhooks go out from this node as any append's do.
extension RedisStorage: SharedRoster {
    static func connsKey(_ session: String) -> String { "{\(session)}:conns" }

    private func memberKeys(_ session: String) -> [String] {
        let k = Self.keys(session)
        return [k.m, k.log, k.members, Self.connsKey(session), RedisWebhooks.stream(session)]
    }

    /// The arguments every member script starts with (`MemberScripts.prelude`).
    private func prelude(_ session: String) -> [[UInt8]] {
        .command(publishTarget(session), newEpoch(), seen(session), keepEvents(session), node)
    }

    /// The endpoints that want a join and a leave (the last two arguments of every member script). The
    /// stream of webhook work is made findable first, on the same connection, as an append does.
    private func presenceHooks(_ session: String, link: LoopLink) -> PresenceHooks {
        let h = PresenceHooks(joined: hooks.wanted(.memberJoined), left: hooks.wanted(.memberLeft))
        if !h.joined.isEmpty || !h.left.isEmpty {
            link.commands.send(.command("SADD", WebhookScripts.streams, session)) { _ in }
        }
        return h
    }

    public func join(
        session: String, identity: String, memberID: String, json: (before: [UInt8], after: [UInt8]),
        maxParticipants: Int, executor: Executor, done: @escaping (Result<RosterJoin, StoreFailure>) -> Void
    ) {
        guard let link = link(executor) else {
            return executor.execute { done(.failure(StoreFailure("redis: not called from a loop"))) }
        }
        let palette = Session.palette
        let wanted = presenceHooks(session, link: link)
        let args =
            prelude(session)
            + .command(identity, memberID, json.before, json.after, maxParticipants, palette.count)
            + palette.map { Array($0.utf8) } + wanted.args
        link.eval(
            MemberScripts.join, sha: MemberScripts.joinSHA, keys: memberKeys(session), args: args, durable: true
        ) {
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
                guard items.count == 6, let color = items[1].text, let seq = items[2].int, let ts = items[3].int,
                    let epoch = items[4].text
                else { return fail() }
                let body = EventBody.presence(joins: [json.before + Array(color.utf8) + json.after], leaves: [])
                let committed = Committed(seq: seq, ts: Int64(ts), duplicate: false)
                stored(session, epoch: epoch, [(memberID, body, committed)], [items[5].text ?? ""], wanted, link: link)
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
        let wanted = presenceHooks(session, link: link)
        let args = prelude(session) + .command(identity, memberID, body) + wanted.args
        link.eval(
            MemberScripts.leave, sha: MemberScripts.leaveSHA, keys: memberKeys(session), args: args, durable: true
        ) {
            [self] reply in
            let items = reply.items
            let fail = { done(.failure(StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")"))) }
            switch items.first?.int {
            case 1 where items.count == 2 && items[1].bytes != nil:
                done(.success(.stillPresent(json: items[1].bytes!)))
            case 2:
                done(.success(.gone))
            case 0:
                guard items.count == 5, let seq = items[1].int, let ts = items[2].int, let epoch = items[3].text
                else { return fail() }
                let committed = Committed(seq: seq, ts: Int64(ts), duplicate: false)
                stored(session, epoch: epoch, [(memberID, body, committed)], [items[4].text ?? ""], wanted, link: link)
                done(.success(.left(committed)))
            default:
                fail()
            }
        }
    }

    public func reassert(
        session: String, holdings: [RosterHolding], maxParticipants: Int, executor: Executor,
        done: @escaping (Result<RosterReassert, StoreFailure>) -> Void
    ) {
        guard let link = link(executor) else {
            return executor.execute { done(.failure(StoreFailure("redis: not called from a loop"))) }
        }
        let wanted = presenceHooks(session, link: link)
        var args = prelude(session) + .command(maxParticipants, holdings.count)
        for h in holdings { args += .command(h.identity, h.memberID, h.connections, h.json) }
        args += .command(Session.palette.count) + Session.palette.map { Array($0.utf8) } + wanted.args
        let keys = memberKeys(session) + [Self.removedKey(session)]
        link.eval(MemberScripts.reassert, sha: MemberScripts.reassertSHA, keys: keys, args: args, durable: true) {
            [self] reply in
            // The refusals come last, after the entries and their webhook entry ids.
            let refusals = Self.refusals(reply.items.last)
            let rest = RedisReply.array(Array(reply.items.dropLast()))
            guard let refused = refusals, let entries = committedEntries(rest) else {
                return done(.failure(StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")")))
            }
            if !holdings.isEmpty { noteMembers(in: session, link: link) }
            stored(session, epoch: entries.epoch, entries.events, entries.webhooks, wanted, link: link)
            done(.success(RosterReassert(committed: entries.events.count, refused: refused)))
        }
    }

    /// A dead node's members leave (`NodeWatch.bury`, on loop 0's link): `done` gets false if the
    /// script did not run (the burial is tried again).
    func buryMembers(session: String, node dead: String, link: LoopLink, done: @escaping (Bool) -> Void) {
        let wanted = presenceHooks(session, link: link)
        let args = prelude(session) + .command(dead) + wanted.args
        link.eval(
            MemberScripts.nodeLost, sha: MemberScripts.nodeLostSHA, keys: memberKeys(session), args: args, durable: true
        ) {
            [self] reply in
            guard let entries = committedEntries(reply) else { return done(false) }
            reportWebhooks(session, entries.events, entries.webhooks, wanted)
            done(true)
        }
    }

    /// `{epoch, entry..., {webhook entry id...}}` as `reassert` and `nodeLost` answer.
    private func committedEntries(_ reply: RedisReply)
        -> (epoch: String, events: [(member: String?, body: [UInt8], Committed)], webhooks: [String])?
    {
        let items = reply.items
        guard let epoch = items.first?.text else { return nil }
        let events = items.dropFirst().compactMap { $0.bytes.flatMap { LogEntry.decode($0[...]) } }.map {
            ($0.member, $0.body, Committed(seq: $0.seq, ts: $0.ts, duplicate: false))
        }
        let webhooks = items.count > 1 && items[items.count - 1].bytes == nil ? items[items.count - 1].items : []
        return (epoch, events, webhooks.map { $0.text ?? "" })
    }

    /// What follows a member script's commits on the session's loop: the epoch and seq learned (a new
    /// epoch is told to the session) and the webhooks reported.
    private func stored(
        _ session: String, epoch: String, _ events: [(member: String?, body: [UInt8], Committed)],
        _ webhooks: [String], _ wanted: PresenceHooks, link: LoopLink
    ) {
        guard let last = events.last?.2.seq else { return }
        if learned(session, epoch: epoch, seq: last) != nil { link.notify(session, .lost(lastSeq: last - 1)) }
        reportWebhooks(session, events, webhooks, wanted)
    }

    /// The webhooks of the presence events a script committed: each one's outbox entry (written by the
    /// script) goes to this node's engine, as an append's does.
    private func reportWebhooks(
        _ session: String, _ events: [(member: String?, body: [UInt8], Committed)], _ webhooks: [String],
        _ wanted: PresenceHooks
    ) {
        for (e, entry) in zip(events, webhooks) where !entry.isEmpty {
            let event = DurableEvent(session: session, type: "presence", member: e.member, clientId: nil, body: e.body)
            let messages = Webhook.messages(for: event, committed: e.2)
            let type = Webhook.type(of: event)
            hooks.appended(
                stream: session, entry: entry, hooks: type == .memberJoined ? wanted.joined : wanted.left,
                messages: messages)
        }
    }

    /// This node was declared lost and beats again: every session it follows says what it holds.
    func reannounce() {
        for link in allLinks() {
            link.loop.post {
                link.announceAll()
                link.notifyAll(.reannounce)
            }
        }
    }
}

/// The endpoints that want a member's join and leave, as one script call sees them.
struct PresenceHooks {
    var joined: [String]
    var left: [String]
    /// The last two arguments of a member script.
    var args: [[UInt8]] { .command(joined.joined(separator: " "), left.joined(separator: " ")) }
}
