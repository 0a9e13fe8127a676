import Foundation

/// A thread for blocking work the loops must not do (SQLite reads for history, export and replay).
/// Results go back to a loop with `Loop.post`.
///
/// Work is queued in lanes (a client address, say) and the lanes take turns, one item each, round
/// robin: with one lane that is plain FIFO order; with many, one lane's hundred items do not make
/// another's one wait behind them all. The queue is bounded: past `capacity` items `submit` refuses
/// (returns false) and the caller answers "busy", so a flood costs a refusal, not memory.
final class Worker: @unchecked Sendable {
    private let cond = NSCondition()
    /// Waiting work per lane; a lane is here only while it has work.
    private var lanes: [String: Ring<() -> Void>] = [:]
    /// Lanes with work, in the order of their next turn.
    private var turns = Ring<String>()
    private var count = 0
    private var stopping = false
    private var thread: Thread!
    /// Items that may wait at once (running ones not counted).
    let capacity: Int

    init(name: String, capacity: Int = 10_000) {
        self.capacity = max(capacity, 1)
        thread = Thread { self.run() }  // the thread keeps its worker alive until stopped
        thread.name = name
        thread.start()
    }

    /// Queues `work` in the shared lane; false (and not queued) when the queue is full.
    func submit(_ work: @escaping () -> Void) -> Bool { submit(lane: "", work) }

    /// Queues `work` behind the lane's earlier work; false (and not queued) when the queue is full.
    func submit(lane: String, _ work: @escaping () -> Void) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        guard count < capacity else { return false }
        if lanes[lane] == nil { turns.append(lane) }
        lanes[lane, default: Ring()].append(work)
        count += 1
        cond.signal()
        return true
    }

    /// Items waiting now.
    var queued: Int { cond.lock(); defer { cond.unlock() }; return count }

    /// Runs what is queued, then ends the thread (new work is still accepted until then).
    func stop() {
        cond.lock(); stopping = true; cond.signal(); cond.unlock()
        while !thread.isFinished { usleep(1000) }
    }

    private func run() {
        while true {
            cond.lock()
            while count == 0 && !stopping { cond.wait() }
            guard let lane = turns.popFirst(), let work = lanes[lane]?.popFirst() else { cond.unlock(); return }
            count -= 1
            if lanes[lane]?.isEmpty ?? true { lanes[lane] = nil } else { turns.append(lane) }
            cond.unlock()
            work()
        }
    }
}

/// A worker's queue was full: the work was not queued.
struct WorkerBusy: Error, CustomStringConvertible {
    var description: String { "too many reads are waiting; try again shortly" }
}

/// A FIFO queue on a growable ring buffer: append and popFirst in O(1) (an Array's `removeFirst`
/// moves every element behind it).
struct Ring<Element> {
    private var slots: [Element?] = []
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func append(_ e: Element) {
        if count == slots.count { grow() }
        slots[(head + count) % slots.count] = e
        count += 1
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let e = slots[head]
        slots[head] = nil  // the closure (and what it captured) goes now, not when the slot is reused
        head = (head + 1) % slots.count
        count -= 1
        return e
    }

    private mutating func grow() {
        var bigger = [Element?](repeating: nil, count: max(8, slots.count * 2))
        for i in 0..<count { bigger[i] = slots[(head + i) % slots.count] }
        slots = bigger
        head = 0
    }
}
