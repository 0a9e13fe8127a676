import Hub
import WebSocket

/// Runs in the cluster: the run append script (`Scripts.runAppend`) checks each event against the
/// run's state kept beside its log and numbers it, and publishes it on `chub:runs`, which every node's
/// loop 0 follows (its `RunBoard` is the node's copy of every run).
extension RedisStorage: SharedRuns {
    static let runsChannel = "chub:runs"

    public func appendRun(
        _ run: String, _ events: [RunEvent], bodies: [[UInt8]], seed: RunSeed, executor: Executor,
        done: @escaping (Result<RunAppend, StoreFailure>) -> Void
    ) {
        guard !events.isEmpty, events.count == bodies.count else {
            return executor.execute { done(.success(.appended([]))) }
        }
        guard let link = link(executor) else {
            return executor.execute { done(.failure(StoreFailure("redis: not called from a loop"))) }
        }
        let stream = "run:" + run
        let k = Self.keys(stream)
        var args: [[UInt8]] = .command(
            run, node, Self.runsChannel, newEpoch(), max(seed.seq, seen(stream)), seed.status.rawValue, seed.owner,
            Self.jsonArray(seed.running), events.count)
        for (e, body) in zip(events, bodies) {
            args += .command(e.kind.rawValue, e.id ?? "", e.step ?? "", e.outcome?.rawValue ?? "", e.owner ?? "", body)
        }
        // The endpoints that want each event: the script writes their outbox entries with them.
        let durable = zip(events, bodies).map {
            DurableEvent(session: stream, type: "run_event", member: "publisher", clientId: $0.0.id, body: $0.1)
        }
        let wanted = durable.map { hooks.wanted($0) }
        let anyWanted = wanted.contains { !$0.isEmpty }
        if anyWanted {
            args += .command(wanted.map { $0.joined(separator: " ") }.joined(separator: "|"), node)
            link.commands.send(.command("SADD", WebhookScripts.streams, stream)) { _ in }
        }
        let keys = anyWanted ? [k.m, k.log, k.ids, RedisWebhooks.stream(stream)] : [k.m, k.log, k.ids]
        link.eval(Scripts.runAppend, sha: Scripts.runAppendSHA, keys: keys, args: args, durable: true) {
            [self] reply in
            switch Self.runAppendReply(reply, count: events.count) {
            case .failure(let f): done(.failure(f))
            case .success((.illegal(let why), _)): done(.success(.illegal(why)))
            case .success((let answer, let epoch)):
                guard case .appended(let commits) = answer else { return }
                let fresh = commits.filter { !$0.duplicate }
                if learned(stream, epoch: epoch, seq: commits.map(\.seq).max() ?? 0) != nil, let first = fresh.first {
                    link.runSink?(.lost(run: run, lastSeq: first.seq - 1))
                }
                // The webhooks of what this node stored go out from this node (once per cluster).
                let entries = reply.items.dropFirst(3 + 2 * events.count).map { $0.text ?? "" }
                if anyWanted, entries.count == events.count {
                    for i in commits.indices where !commits[i].duplicate && !entries[i].isEmpty {
                        hooks.appended(
                            stream: stream, entry: entries[i], hooks: wanted[i],
                            messages: Webhook.messages(for: durable[i], committed: commits[i]))
                    }
                }
                done(.success(answer))
            }
        }
    }

    /// The script's reply: `{0, why}` or `{1, ts, epoch, seq, duplicate, ...}` for `count` events.
    public static func runAppendReply(
        _ reply: RedisReply, count: Int
    ) -> Result<(RunAppend, epoch: String), StoreFailure> {
        let items = reply.items
        if items.count == 2, items[0].int == 0, let why = items[1].text { return .success((.illegal(why), "")) }
        // Outbox entry ids may follow (one per event).
        guard items.count == 3 + 2 * count || items.count == 3 + 3 * count, items[0].int == 1, let ts = items[1].int,
            let epoch = items[2].text
        else {
            return .failure(StoreFailure("redis: \(reply.errorMessage ?? "unexpected reply")"))
        }
        var commits: [Committed] = []
        for i in 0..<count {
            guard let seq = items[3 + 2 * i].int, seq > 0, let dup = items[4 + 2 * i].int else {
                return .failure(StoreFailure("redis: unexpected reply"))
            }
            commits.append(Committed(seq: seq, ts: Int64(ts), duplicate: dup == 1))
        }
        return .success((.appended(commits), epoch))
    }

    static func jsonArray(_ names: [String]) -> String {
        var w = JSONWriter()
        w.beginArray()
        for n in names { w.element(n) }
        w.endArray()
        return String(decoding: w.bytes, as: UTF8.self)
    }

    public func followRuns(executor: Executor, _ sink: @escaping (RunItem) -> Void) {
        link(executor)?.followRuns(sink)
    }

    public func runEvents(run: String, after: Int, limit: Int) throws -> RunRead {
        let stream = "run:" + run
        let b = try bounds(stream)
        var lost: Int?
        // A log under another epoch (Redis lost the run's data): the copy goes on from its floor.
        if let now = b.epoch, learned(stream, epoch: now, seq: b.floor) != nil { lost = b.floor }
        let start = lost ?? after
        guard limit > 0, start < b.last else { return RunRead(lost: lost, events: []) }
        let from = max(start, b.floor) + 1
        let through = from + min(limit, b.last - from + 1) - 1
        return RunRead(
            lost: lost, events: try entries(stream, from: from, through: through).map { ($0.stored, $0.origin == node) }
        )
    }

    public func runHeads() throws -> [(run: String, seq: Int)] {
        var out: [(run: String, seq: Int)] = []
        for key in try scan("{run:*}:m") {
            let run = String(key.dropFirst(5).dropLast(3))
            guard Run.isValidId(run), let seq = try sync.call(.command("HGET", key, "seq")).int else { continue }
            out.append((run, seq))
        }
        return out
    }
}
