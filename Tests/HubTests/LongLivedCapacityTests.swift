@testable import Hub
import WebSocket
import XCTest

/// A session's long-lived arrays reach their size in few steps (`LongLivedCapacity`): every block a growing
/// array frees while members join is a hole in the heap between the members' objects.
final class LongLivedCapacityTests: XCTestCase {
    /// A frame of `size` bytes (header included).
    private func frame(_ seq: Int, size: Int) -> Chunk {
        let head = "{\"seq\":\(seq),\"p\":\""
        func make(_ pad: Int) -> Chunk { Chunk.text(Array((head + String(repeating: "x", count: pad) + "\"}").utf8)) }
        let guess = size - make(0).count
        let c = make(guess - (make(guess).count - size))  // (a payload over 125 bytes has a longer header)
        XCTAssertEqual(c.count, size)
        return c
    }

    func testTenJoinFramesFitTheWindowsBytesWithoutSlackOrManySteps() {
        var w = ResumeWindow(maxCount: 1000, maxBytes: 2 << 20)
        var capacities: [Int] = []
        for seq in 1...10 {
            w.append((seq, frame(seq, size: 173)))
            if capacities.last != w.capacities.bytes { capacities.append(w.capacities.bytes) }
        }
        // One more frame of room at each step: 346, 692, 1,038, 1,384, 1,730 (malloc may round up a little).
        XCTAssertEqual(capacities.count, 5, "\(capacities)")
        XCTAssertLessThanOrEqual(w.capacities.bytes, 1730 + 16, "\(capacities)")
        XCTAssertEqual(w.bytes, 1730)
    }

    func testAWindowOfManySmallFramesGrowsByAQuarterOnceOver4KB() {
        var w = ResumeWindow(maxCount: 100_000, maxBytes: 1 << 30)
        var steps = 0, last = 0
        for seq in 1...20_000 {
            w.append((seq, frame(seq, size: 40)))
            if w.capacities.bytes != last { (steps, last) = (steps + 1, w.capacities.bytes) }
        }
        // 800,000 bytes: ~60 steps by a frame below 4 KB, then ~30 by a quarter (not one per frame).
        XCTAssertEqual(w.bytes, 800_000)
        XCTAssertLessThan(steps, 120)
        XCTAssertLessThanOrEqual(w.capacities.bytes, 800_000 + 800_000 / 4 + 64)
    }

    func testTheWindowsEntriesAreReservedWithTheFirstFrame() {
        var w = ResumeWindow(maxCount: 1000, maxBytes: 2 << 20)
        w.append((1, frame(1, size: 60)))
        let first = w.capacities.entries
        XCTAssertGreaterThanOrEqual(first, LongLivedCapacity.firstWindowEntries)
        for seq in 2...16 { w.append((seq, frame(seq, size: 60))) }
        XCTAssertEqual(w.capacities.entries, first, "sixteen frames: no step")
        // A window that holds fewer frames reserves no more than it may hold.
        var small = ResumeWindow(maxCount: 3, maxBytes: 1 << 20)
        small.append((1, frame(1, size: 60)))
        XCTAssertLessThan(small.capacities.entries, LongLivedCapacity.firstWindowEntries)
    }

    func testASessionReservesItsParticipantLimitWithTheFirstMember() {
        let h = Harness(maxParticipants: 10)
        h.join("m0")
        let first = h.session.members.capacity
        XCTAssertGreaterThanOrEqual(first, 10)
        for i in 1..<10 { h.join("m\(i)") }
        XCTAssertEqual(h.session.members.count, 10)
        XCTAssertEqual(h.session.members.capacity, first, "ten members: no step")
        // A large limit reserves sixteen, then doubles.
        let big = Harness(maxParticipants: 500)
        big.join("a")
        XCTAssertGreaterThanOrEqual(big.session.members.capacity, LongLivedCapacity.firstMembers)
        XCTAssertLessThan(big.session.members.capacity, 32)
    }

    func testJoinedListsEveryAnnouncedMemberOnce() {
        let h = Harness()
        for i in 0..<5 { h.join("m\(i)") }
        let c = h.join("last")
        let names = (c.of("joined")[0]["members"] as! [[String: Any]]).map { $0["name"] as! String }
        XCTAssertEqual(names, ["m0", "m1", "m2", "m3", "m4", "last"])
    }
}
