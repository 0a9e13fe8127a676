@testable import Hub
import TestSupport
import XCTest

/// The order committed events are applied in (`LogOrder`), without a session or a store: the actions
/// each input gives, and random interleavings checked by `LogOrderSimulation` (which `FuzzLogOrder`
/// also runs).
final class LogOrderTests: XCTestCase {
    typealias Order = LogOrder<String>

    /// The actions as short strings: "apply 3 x", "ack x", "read 2+5", "reset 4 lost".
    func describe(_ actions: [Order.Action]) -> [String] {
        actions.map {
            switch $0 {
            case .apply(let seq, let e): return "apply \(seq) \(e)"
            case .ack(let e): return "ack \(e)"
            case .read(let after, let limit): return "read \(after)+\(limit)"
            case .reset(let seq, let why): return "reset \(seq) \(why)"
            }
        }
    }

    func testOneStoreAppliesEachAnswerAsItComes() {
        var o = Order(last: 4)
        o.sent()
        o.sent()
        XCTAssertEqual(describe(o.answered(.committed(seq: 5, duplicate: false, "a"), now: 0)), ["apply 5 a"])
        XCTAssertEqual(describe(o.answered(.failed("b"), now: 0)), ["ack b"])
        XCTAssertEqual(o.last, 5)
        XCTAssertFalse(o.needsTick, "a failure with one store reads nothing")
        o.sent()
        XCTAssertEqual(describe(o.answered(.committed(seq: 3, duplicate: true, "c"), now: 0)), ["ack c"])
        XCTAssertEqual(o.inFlight, 0)
    }

    func testAnEventPastAGapWaitsForThePublicationThenForARead() {
        var o = Order(last: 1, shared: true)
        o.sent()
        XCTAssertEqual(describe(o.answered(.committed(seq: 4, duplicate: false, "own4"), now: 10)), [])
        XCTAssertEqual(describe(o.published(2, "p2", now: 10.5)), ["apply 2 p2"])
        XCTAssertEqual(o.gapSince, 10, "the gap before 4 is still the one open since 10")
        XCTAssertEqual(describe(o.tick(now: 10.9)), [], "still patient")
        XCTAssertEqual(describe(o.tick(now: 11)), ["read 2+2"], "reads only the gap")
        XCTAssertEqual(describe(o.tick(now: 12)), [], "one read at a time")
        XCTAssertEqual(describe(o.published(3, "p3", now: 12)), ["apply 3 p3", "apply 4 own4"])
        XCTAssertEqual(describe(o.read([(3, false, "r3"), (4, true, "r4")], now: 12.1)), [], "already applied")
        XCTAssertFalse(o.needsTick)
    }

    func testAFailedReadBacksOffDoublingUpToTwoSecondsAndAForcedOneIsOwed() {
        var o = Order(last: 0, shared: true)
        XCTAssertEqual(describe(o.subscribed(now: 0)), ["read 0+500"])
        XCTAssertEqual(describe(o.subscribed(now: 0)), [], "owed, not doubled")
        var reads: [Double] = []
        var now = 0.0
        XCTAssertEqual(describe(o.read(nil, now: now)), [])
        while now < 10 {
            now += 0.125
            let actions = o.tick(now: now)
            if !actions.isEmpty {
                reads.append(now)
                XCTAssertEqual(describe(o.read(nil, now: now)), [])
            }
        }
        XCTAssertEqual(reads.prefix(4), [0.25, 0.75, 1.75, 3.75])
        XCTAssertEqual(reads.dropFirst(4).first, 5.75)
        XCTAssertEqual(o.retry.wait, 2)
        now += 2
        XCTAssertEqual(describe(o.tick(now: now)), ["read 0+500"])
        XCTAssertEqual(describe(o.read([(1, false, "e1")], now: now)), ["apply 1 e1"])
        XCTAssertEqual(o.retry.wait, 0)
        XCTAssertFalse(o.needsTick)
    }

    func testAReadLeavesOwnEventsToTheirAnswersAndSkipsWhatRetentionDeleted() {
        var o = Order(last: 2, shared: true)
        o.sent()
        _ = o.subscribed(now: 0)
        // 3..5 were deleted; 6 is another node's, 7 this node's own with its answer on its way.
        let actions = o.read([(6, false, "e6"), (7, true, "r7"), (8, false, "e8")], now: 0)
        XCTAssertEqual(describe(actions), ["reset 5 deleted", "apply 6 e6"])
        XCTAssertEqual(describe(o.answered(.committed(seq: 7, duplicate: false, "own7"), now: 0)), ["apply 7 own7"])
    }

    func testALostLogResetsAndAnswersWhatWaited() {
        var o = Order(last: 3, shared: true)
        o.sent()
        _ = o.answered(.committed(seq: 6, duplicate: false, "own6"), now: 0)
        _ = o.published(5, "p5", now: 0)
        XCTAssertEqual(describe(o.lost(continuingAt: 9)), ["reset 9 lost", "ack p5", "ack own6"])
        XCTAssertEqual(o.last, 9)
        XCTAssertEqual(describe(o.published(4, "old", now: 0)), [], "the old log's publications are ignored")
        XCTAssertEqual(describe(o.published(10, "p10", now: 0)), ["apply 10 p10"])
    }

    func testADuplicateOrAFailureWithASharedLogReadsTheLog() {
        var o = Order(last: 3, shared: true)
        o.sent()
        XCTAssertEqual(describe(o.answered(.committed(seq: 5, duplicate: true, "d"), now: 0)), ["read 3+500", "ack d"])
        o.sent()
        XCTAssertEqual(describe(o.answered(.failed("f"), now: 0)), ["ack f"])
        XCTAssertTrue(o.needsTick, "the failed append's read is owed")
        XCTAssertEqual(
            describe(o.read([(4, false, "e4"), (5, true, "e5")], now: 0)),
            [
                "apply 4 e4", "apply 5 e5", "read 5+500",
            ])
    }

    /// Random interleavings (the fuzz target's checks, from seeded generators): a failure prints its seed.
    func testRandomInterleavingsApplyEachSeqOnceInOrderAndAnswerEveryAppend() {
        for seed in UInt64(1)...3000 {
            var rng = SplitMix64(seed: seed)
            let length = Int(rng.next() % 400) + 1
            var n = 0
            let failure = LogOrderSimulation.run {
                guard n < length else { return nil }
                n += 1
                return UInt8(truncatingIfNeeded: rng.next())
            }
            XCTAssertNil(failure, "seed \(seed)")
            if failure != nil { break }
        }
    }
}
