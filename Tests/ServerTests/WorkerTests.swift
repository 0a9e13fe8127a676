import Foundation
@testable import Server
import XCTest

/// The worker's queue: FIFO within a lane, lanes taking turns, a bound that refuses rather than grows.
final class WorkerTests: XCTestCase {
    /// Holds the worker busy until `release`, so that what is submitted meanwhile queues up.
    private func blocked(_ worker: Worker) -> DispatchSemaphore {
        let gate = DispatchSemaphore(value: 0), running = DispatchSemaphore(value: 0)
        XCTAssertTrue(worker.submit { running.signal(); gate.wait() })
        running.wait()
        return gate
    }

    /// Records what ran, in order (appended on the worker's thread, read after `wait`).
    private final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        private let done = DispatchSemaphore(value: 0)
        func add(_ s: String) { lock.lock(); items.append(s); lock.unlock(); done.signal() }
        func wait(_ n: Int) -> [String] {
            for _ in 0..<n { XCTAssertEqual(done.wait(timeout: .now() + 5), .success) }
            lock.lock(); defer { lock.unlock() }
            return items
        }
    }

    func testOneLaneRunsInOrder() {
        let worker = Worker(name: "test-order")
        defer { worker.stop() }
        let gate = blocked(worker)
        let log = Log()
        for i in 0..<1000 { XCTAssertTrue(worker.submit { log.add("\(i)") }) }
        XCTAssertEqual(worker.queued, 1000)
        gate.signal()
        XCTAssertEqual(log.wait(1000), (0..<1000).map { "\($0)" })
    }

    func testLanesTakeTurns() {
        let worker = Worker(name: "test-fair")
        defer { worker.stop() }
        let gate = blocked(worker)
        let log = Log()
        // One address queues 100 reads before two others queue theirs: they still go second and third.
        for i in 0..<100 { XCTAssertTrue(worker.submit(lane: "10.0.0.1") { log.add("a\(i)") }) }
        for i in 0..<3 { XCTAssertTrue(worker.submit(lane: "10.0.0.2") { log.add("b\(i)") }) }
        XCTAssertTrue(worker.submit(lane: "10.0.0.3") { log.add("c0") })
        gate.signal()
        let ran = log.wait(104)
        XCTAssertEqual(Array(ran.prefix(8)), ["a0", "b0", "c0", "a1", "b1", "a2", "b2", "a3"])
        // Each lane in its own order, nothing lost or repeated.
        XCTAssertEqual(ran.filter { $0.hasPrefix("a") }, (0..<100).map { "a\($0)" })
        XCTAssertEqual(ran.filter { $0.hasPrefix("b") }, ["b0", "b1", "b2"])
        XCTAssertEqual(ran.count, 104)
    }

    func testALaneThatEmptiesJoinsAgainAtTheBack() {
        let worker = Worker(name: "test-rejoin")
        defer { worker.stop() }
        let gate = blocked(worker)
        let log = Log()
        XCTAssertTrue(worker.submit(lane: "x") { log.add("x0") })
        XCTAssertTrue(worker.submit(lane: "y") { log.add("y0") })
        XCTAssertTrue(worker.submit(lane: "y") { log.add("y1") })
        gate.signal()
        XCTAssertEqual(log.wait(3), ["x0", "y0", "y1"])
        let gate2 = blocked(worker)
        XCTAssertTrue(worker.submit(lane: "y") { log.add("y2") })
        XCTAssertTrue(worker.submit(lane: "x") { log.add("x1") })
        XCTAssertTrue(worker.submit(lane: "y") { log.add("y3") })
        gate2.signal()
        XCTAssertEqual(Array(log.wait(3).suffix(3)), ["y2", "x1", "y3"])
    }

    func testAFullQueueRefusesAndTakesWorkAgainOnceItDrains() {
        let worker = Worker(name: "test-bound", capacity: 8)
        defer { worker.stop() }
        let gate = blocked(worker)  // running, so not counted
        let log = Log()
        for i in 0..<8 { XCTAssertTrue(worker.submit(lane: "l\(i % 3)") { log.add("\(i)") }) }
        XCTAssertFalse(worker.submit { log.add("refused") }, "the ninth item must be refused")
        XCTAssertFalse(worker.submit(lane: "new") { log.add("refused") })
        XCTAssertEqual(worker.queued, 8)
        gate.signal()
        XCTAssertEqual(log.wait(8).count, 8)
        XCTAssertTrue(worker.submit { log.add("after") })
        XCTAssertEqual(log.wait(1).last, "after")
        XCTAssertFalse(log.wait(0).contains("refused"))
    }

    func testStopRunsWhatIsQueued() {
        let worker = Worker(name: "test-stop")
        let gate = blocked(worker)
        let log = Log()
        for i in 0..<5 { XCTAssertTrue(worker.submit { log.add("\(i)") }) }
        gate.signal()
        worker.stop()
        XCTAssertEqual(log.wait(5), ["0", "1", "2", "3", "4"])
    }

    func testRingKeepsOrderAcrossGrowthAndWrapAround() {
        var ring = Ring<Int>()
        var expected: [Int] = []
        var next = 0
        // Interleaved pushes and pops wrap the head around before the buffer grows, several times.
        for round in 0..<50 {
            for _ in 0..<(round % 7 + 3) { ring.append(next); expected.append(next); next += 1 }
            for _ in 0..<(round % 5 + 1) {
                XCTAssertEqual(ring.popFirst(), expected.isEmpty ? nil : expected.removeFirst())
            }
            XCTAssertEqual(ring.count, expected.count)
        }
        while let x = ring.popFirst() { XCTAssertEqual(x, expected.removeFirst()) }
        XCTAssertTrue(expected.isEmpty && ring.isEmpty)
        XCTAssertNil(ring.popFirst())
    }
}
