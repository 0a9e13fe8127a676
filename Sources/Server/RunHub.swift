import EventLoop
import Foundation
import Hub
import WebSocket

/// Loop 0's side of the run board (`Hub.RunBoard`, where the run logic lives): it reads the stored
/// runs at start-up, runs the board on loop 0, and routes a run's changes to the session it is
/// attached to, on that session's loop. In a cluster it also feeds the board every run event any
/// node appends (`SharedRuns`), and reads from the shared log what it missed.
final class RunHub: RunHost {
    unowned let context: LoopContext
    let store: Storage
    let board: RunBoard
    var metrics: HubMetrics { context.hub! }
    /// Runs whose missing events are being read, and reads waiting to be tried again (Redis down).
    private var reading: Set<String> = []
    private var retries: [String: Loop.Timer] = [:]
    private var backoff: [String: Double] = [:]

    init(context: LoopContext, store: Storage, shared: SharedRuns?) {
        self.context = context
        self.store = store
        let executor = context.executor
        board = RunBoard(
            history: (try? store.streams(prefix: "run:")) ?? [], store: store, executor: executor,
            policy: context.config.sessionPolicy, host: nil,
            wallClockMillis: { Int64(Date().timeIntervalSince1970 * 1000) })
        board.host = self
        if let shared {
            board.shared = shared
            shared.followRuns(executor: executor) { [unowned self] item in self.heard(item) }
        }
    }

    func runChanged(session code: String, run: String, summary: [UInt8], event: String, durable: Bool) {
        let all = context.server.contexts
        let owner = all[SessionCode.owner(of: code, loops: all.count)]
        owner.loop.post {
            owner.hub?.withSession(code) { $0?.runUpdate(run: run, summary: summary, event: event, durable: durable) }
        }
    }

    // MARK: Cluster

    private func heard(_ item: RunItem) {
        switch item {
        case .committed(let run, let event, let own): board.heard(run, event, own: own)
        case .lost(let run, let lastSeq): board.lost(run, lastSeq: lastSeq)
        case .subscribed: resync()
        }
    }

    /// The subscription took effect (at start-up, or after the link was down): every run whose log is
    /// ahead of this node's copy is read up.
    private func resync() {
        guard let shared = board.shared else { return }
        let loop = context.loop
        _ = context.server.historyReads.submit { [weak self] in
            guard let heads = try? shared.runHeads() else { return }
            loop.post {
                guard let self else { return }
                for (run, seq) in heads where seq > (self.board.committed[run]?.seq ?? 0) {
                    self.runGap(run, after: self.board.committed[run]?.seq ?? 0)
                }
            }
        }
    }

    /// Reads what the board misses of `run` off the loop; a read that fails (Redis down) or finds
    /// nothing new is tried again with backoff (50 ms doubling to 2 s), not at every event.
    func runGap(_ run: String, after: Int) {
        guard let shared = board.shared, retries[run] == nil, reading.insert(run).inserted else { return }
        let loop = context.loop
        let queued = context.server.historyReads.submit { [weak self] in
            let read = try? shared.runEvents(run: run, after: after, limit: 1000)
            loop.post { self?.read(run, read) }
        }
        if !queued { loop.post { [weak self] in self?.read(run, nil) } }
    }

    /// Reads up what the shared log has of `run` past this node's copy, then runs `then` (on loop 0):
    /// a `/watch` snapshot or resume on this node starts from the run as the cluster has it.
    func catchUp(_ run: String, _ then: @escaping () -> Void) {
        guard let shared = board.shared else { return then() }
        let loop = context.loop, after = board.committed[run]?.seq ?? 0
        let queued = context.server.historyReads.submit { [weak self] in
            let read = try? shared.runEvents(run: run, after: after, limit: 1000)
            loop.post {
                if let self, let read { self.apply(run, read) }
                then()
            }
        }
        if !queued { then() }
    }

    private func apply(_ run: String, _ read: RunRead) {
        if let lost = read.lost { board.lost(run, lastSeq: lost) }
        for (event, own) in read.events { board.heard(run, event, own: own) }
    }

    private func read(_ run: String, _ read: RunRead?) {
        reading.remove(run)
        let before = board.committed[run]?.seq ?? 0
        if let read { apply(run, read) }
        let now = board.committed[run]?.seq ?? 0
        guard board.hasGap(run) else {
            backoff[run] = nil
            return
        }
        if read != nil && now > before {
            backoff[run] = nil
            return runGap(run, after: now)
        }
        let delay = backoff[run] ?? 0.05
        backoff[run] = min(delay * 2, 2)
        let timer = Loop.Timer(loop: context.loop, after: delay) { [unowned self] in
            retries[run] = nil
            if board.hasGap(run) { runGap(run, after: board.committed[run]?.seq ?? 0) } else { backoff[run] = nil }
        }
        timer.unref()
        retries[run] = timer
    }
}
