import Foundation

/// A thread for blocking work the loops must not do (SQLite reads for history and export). Work is
/// queued and run in order; results go back to a loop with `Loop.post`.
final class Worker: @unchecked Sendable {
    private let cond = NSCondition()
    private var queue: [() -> Void] = []
    private var stopping = false
    private var thread: Thread!

    init(name: String) {
        thread = Thread { self.run() }  // the thread keeps its worker alive until stopped
        thread.name = name
        thread.start()
    }

    func submit(_ work: @escaping () -> Void) {
        cond.lock(); queue.append(work); cond.signal(); cond.unlock()
    }

    func stop() {
        cond.lock(); stopping = true; cond.signal(); cond.unlock()
        while !thread.isFinished { usleep(1000) }
    }

    private func run() {
        while true {
            cond.lock()
            while queue.isEmpty && !stopping { cond.wait() }
            if queue.isEmpty { cond.unlock(); return }
            let work = queue.removeFirst()
            cond.unlock()
            work()
        }
    }
}
