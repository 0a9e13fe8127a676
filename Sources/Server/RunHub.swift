import EventLoop
import Foundation
import Hub
import WebSocket

/// Loop 0's side of the run board (`Hub.RunBoard`, where the run logic lives): it reads the stored
/// runs at start-up, runs the board on loop 0, and routes a run's changes to the session it is
/// attached to, on that session's loop.
final class RunHub: RunHost {
    unowned let context: LoopContext
    let store: Storage
    let board: RunBoard
    var metrics: HubMetrics { context.hub! }

    init(context: LoopContext, store: Storage) {
        self.context = context
        self.store = store
        board = RunBoard(
            history: (try? store.streams(prefix: "run:")) ?? [], store: store, executor: LoopExecutor(context.loop),
            policy: context.config.sessionPolicy, host: nil,
            wallClockMillis: { Int64(Date().timeIntervalSince1970 * 1000) })
        board.host = self
    }

    func runChanged(session code: String, run: String, summary: [UInt8], event: String, durable: Bool) {
        let all = context.server.contexts
        let owner = all[SessionCode.owner(of: code, loops: all.count)]
        owner.loop.post {
            owner.hub?.withSession(code) { $0?.runUpdate(run: run, summary: summary, event: event, durable: durable) }
        }
    }
}
