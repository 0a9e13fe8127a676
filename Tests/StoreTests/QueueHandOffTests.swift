@testable import Hub
@testable import Store
import TestSupport
import XCTest

/// The writer's hand-off of the append queue (`QueueHandOff.swift`): whole queues taken by swapping
/// arrays, longer ones in parts of `maxBatch`, the storage recycled between batches.
final class QueueHandOffTests: XCTestCase {
    func temp() -> String { NSTemporaryDirectory() + "chub-\(UUID().uuidString)" }

    /// More appends than one batch takes, queued faster than the writer commits, in three waves (the
    /// second and third append into storage handed back by earlier batches): every event is stored once,
    /// with its own body, and every session's completions come in append order with contiguous seqs.
    func testQueuesTakenWholeOrInPartsKeepEveryAppendInOrder() throws {
        let store = try SQLiteStore(directory: temp())
        let ex = ManualExecutor()
        let sessions = ["A", "B", "C"]
        var seqs: [String: [Int]] = [:]
        var total = 0
        var expected: [String: Int] = [:]
        let perWave = SQLiteStore.maxBatch * 2 + 123
        for wave in 0..<3 {
            for i in 0..<perWave {
                let s = sessions[i % sessions.count]
                expected[s, default: 0] += 1
                let body = Array(#""text":"\#(wave)-\#(i)""#.utf8)
                store.append(
                    DurableEvent(session: s, type: "chat", member: "m", clientId: "\(wave)-\(i)", body: body),
                    executor: ex
                ) { seqs[s, default: []].append(try! $0.get().seq) }
            }
            total += perWave
            let deadline = Date().addingTimeInterval(30)
            while seqs.values.reduce(0, { $0 + $1.count }) < total && Date() < deadline { ex.runAll(); usleep(500) }
        }
        for s in sessions {
            let n = expected[s]!
            XCTAssertEqual(seqs[s], Array(1...n), "session \(s): contiguous seqs in append order")
            let stored = try store.events(session: s, after: 0, limit: n + 10)
            XCTAssertEqual(stored.map(\.seq), Array(1...n))
        }
        // Bodies follow their appends: session A got appends 0, 3, 6, ... of each wave.
        let a = try store.events(session: "A", after: 0, limit: 5)
        XCTAssertEqual(a.map { String(decoding: $0.body, as: UTF8.self) }.first, #""text":"0-0""#)
        XCTAssertEqual(a.map { String(decoding: $0.body, as: UTF8.self) }.last, #""text":"0-12""#)
        store.close()
    }

    /// The hand-off itself, with the writer held off by the lock: a part of the queue is taken in order and
    /// the rest stays, a whole queue is swapped out, and a recycled batch's storage is what the loops then
    /// append into (no regrowth from empty).
    func testTakeInPartsThenWholeAndRecycleTheStorage() throws {
        let store = try SQLiteStore(directory: temp())
        func stamps(_ requests: [SQLiteStore.Request]) -> [Int64] {
            requests.map { if case .cursors(_, let ts, _) = $0 { return ts } else { return -1 } }
        }
        store.cond.lock()
        store.queue = (0..<10).map { .cursors("S", Int64($0), []) }
        let part = store.takeBatch(4)
        XCTAssertEqual(stamps(part), [0, 1, 2, 3])
        XCTAssertEqual(stamps(store.queue), [4, 5, 6, 7, 8, 9])
        var whole = store.takeBatch(6)
        XCTAssertEqual(stamps(whole), [4, 5, 6, 7, 8, 9])
        XCTAssertTrue(store.queue.isEmpty)
        store.cond.unlock()
        whole.reserveCapacity(100)
        let grown = whole.capacity
        store.recycle(&whole)  // takes the lock itself
        store.cond.lock()
        XCTAssertGreaterThanOrEqual(store.spareQueue.capacity, grown, "the batch's storage is kept")
        XCTAssertTrue(store.spareQueue.isEmpty, "and its requests released")
        store.queue.append(.cursors("S", 10, []))
        let next = store.takeBatch(1)
        XCTAssertEqual(stamps(next), [10])
        XCTAssertGreaterThanOrEqual(store.queue.capacity, grown, "the loops append into the recycled storage")
        store.cond.unlock()
        store.close()
    }
}
