@testable import Hub
import Foundation
import TestSupport
import XCTest

/// A session whose log other nodes append to (Session+Shared): every committed event applied once,
/// in seq order, whether it is this node's (the store's answer) or another's (published, or read to
/// fill a gap); remote presence in the snapshot; a lost log answered with `reset`.
final class SharedLogTests: XCTestCase {
    /// Commits an event as another node would: in the shared store, unseen by this session.
    func elsewhere(_ h: Harness, _ text: String, type: String = "chat", body: [UInt8]? = nil) -> StoredEvent {
        let other = ManualExecutor()
        var committed: Committed?
        let b = body ?? Array(##""id":"x","from":{"id":"mX","name":"X","color":"#000"},"kind":"text","text":"\##(text)""##.utf8)
        h.store.append(
            DurableEvent(session: h.session.code, type: type, member: "other", clientId: nil, body: b),
            executor: other
        ) { committed = try? $0.get() }
        other.runAll()
        return StoredEvent(seq: committed!.seq, ts: committed!.ts, type: type, body: b)
    }

    func testEventsFromEveryNodeReachClientsOnceInSeqOrderAndGapsAreRead() {
        let h = Harness()
        h.session.relays = true
        let ann = h.join("Ann", clientId: "ann")
        h.send(ann, #"{"type":"chat","id":"a1","text":"one"}"#)
        let e3 = elsewhere(h, "three"), e4 = elsewhere(h, "four"), e5 = elsewhere(h, "five")
        // Published out of order: 5 arrives first and waits for 3 and 4.
        h.session.shared(.committed(e5))
        h.send(ann, #"{"type":"chat","id":"a2","text":"six"}"#)
        XCTAssertEqual(ann.durableSeqs(), [2], "nothing past a gap is delivered (1 is her own join)")
        XCTAssertTrue(ann.of("ack").filter { $0["id"] as? String == "a2" }.isEmpty, "nor acknowledged")
        h.session.shared(.committed(e3))
        XCTAssertEqual(ann.durableSeqs(), [2, 3])
        // 4's publication never comes (a lost message): after the patience, it is read from the log.
        h.now += LogOrder<Arrival>.patience + 0.25
        h.session.tick()
        h.settle()
        XCTAssertEqual(ann.durableSeqs(), [2, 3, 4, 5, 6])
        XCTAssertEqual(ann.of("ack").last?["seq"] as? Int, 6)
        // Late copies change nothing.
        h.session.shared(.committed(e4))
        h.session.shared(.committed(e5))
        XCTAssertEqual(ann.durableSeqs(), [2, 3, 4, 5, 6])
        XCTAssertEqual(h.session.lastSeq, 6)
    }

    func testGapReadsBackOffWhileTheLogCannotBeReadAndResumeAfter() {
        let h = Harness()
        h.session.relays = true
        let ann = h.join("Ann", clientId: "ann")
        _ = elsewhere(h, "two")
        h.session.shared(.committed(elsewhere(h, "three")))
        h.host.readsFail = true
        // Ten seconds of 4 Hz ticks with Redis down: reads 0.25, 0.5, 1, 2, 2... s apart, not one a tick.
        for _ in 0..<40 {
            h.now += 0.25
            h.session.tick()
            h.settle()
        }
        XCTAssertGreaterThanOrEqual(h.host.reads, 5)
        XCTAssertLessThanOrEqual(h.host.reads, 9, "\(h.host.reads) reads in 10 s")
        XCTAssertEqual(ann.durableSeqs(), [], "nothing past the gap meanwhile")
        // Back: the next try (at most 2 s later) reads the gap, and the wait starts over.
        h.host.readsFail = false
        for _ in 0..<8 {
            h.now += 0.25
            h.session.tick()
            h.settle()
        }
        XCTAssertEqual(ann.durableSeqs(), [2, 3])
        XCTAssertEqual(h.session.order.retry.wait, 0)
    }

    func testAReconnectReadsWhateverWasPublishedMeanwhile() {
        let h = Harness()
        h.session.relays = true
        let ann = h.join("Ann", clientId: "ann")
        _ = elsewhere(h, "missed 1")
        _ = elsewhere(h, "missed 2")
        h.session.shared(.subscribed)
        h.settle()
        XCTAssertEqual(ann.durableSeqs(), [2, 3])
    }

    func testMembersOnOtherNodesAreInTheSnapshotUntilTheyLeave() {
        let h = Harness()
        h.session.relays = true
        _ = h.join("Ann", clientId: "ann")
        let zed = ##"{"id":"mZ","name":"Zed","color":"#111","role":"editor","connections":1,"status":"active"}"##
        let joinBody = EventBody.presence(joins: [Array(zed.utf8)], leaves: [])
        h.session.shared(.committed(elsewhere(h, "", type: "presence", body: joinBody)))
        let bob = h.join("Bob", clientId: "bob")
        let names = (bob.of("joined").last?["members"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        XCTAssertEqual(Set(names ?? []), ["Ann", "Bob", "Zed"])
        let leaveBody = EventBody.presence(joins: [], leaves: [("mZ", "node_lost", "Zed")])
        h.session.shared(.committed(elsewhere(h, "", type: "presence", body: leaveBody)))
        let cy = h.join("Cy", clientId: "cy")
        let after = (cy.of("joined").last?["members"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        XCTAssertEqual(Set(after ?? []), ["Ann", "Bob", "Cy"])
    }

    func testEphemeralTrafficFromOtherNodesIsDeliveredAndNotRelayedBack() {
        let h = Harness()
        h.session.relays = true
        let ann = h.join("Ann", clientId: "ann")
        h.session.shared(
            .ephemeral(.typing, key: RelayedKey(""), frame: ServerMessage.typing(member: "mZ", state: .start).frame))
        XCTAssertEqual(ann.of("typing").last?["member"] as? String, "mZ")
        XCTAssertEqual(h.host.relayed, 0, "what came from another node is not sent back out")
        h.send(ann, #"{"type":"typing","state":"start"}"#)
        XCTAssertEqual(h.host.relayed, 1, "this node's traffic goes out to the others")
    }

    /// A relayed item's key (read from the publication only for a member that is behind): a member that
    /// keeps up gets every item; one that is behind gets the latest per key when it drains, and nothing
    /// of the keyless ones.
    func testRelayedTrafficIsCoalescedByItsKeyForAMemberThatIsBehind() {
        let h = Harness()
        h.session.relays = true
        let ann = h.join("Ann", clientId: "ann"), bob = h.join("Bob", clientId: "bob")
        bob.queuedBytes = h.session.policy.softOutputLimit + 1
        let publication = Array("..event:mZ:move..".utf8)
        for n in 1...3 {
            let data = Array("{\"n\":\(n)}".utf8)[...]
            let frame = ServerMessage.eventFrame(name: "move", from: "mZ", id: nil, data: data)
            h.session.shared(.ephemeral(.event, key: RelayedKey(publication, 2..<15), frame: frame))
        }
        h.session.shared(
            .ephemeral(.typing, key: RelayedKey(""), frame: ServerMessage.typing(member: "mZ", state: .start).frame))
        XCTAssertEqual(ann.of("event").count, 3)
        XCTAssertEqual(ann.of("typing").count, 1)
        XCTAssertTrue(bob.of("event").isEmpty && bob.of("typing").isEmpty)
        XCTAssertEqual(Array(bob.held.keys), ["event:mZ:move"], "the key is the publication's bytes in range")
        bob.drain()
        XCTAssertEqual(bob.of("event").count, 1, "only the latest of the same key")
        XCTAssertEqual((bob.of("event").first?["data"] as? [String: Any])?["n"] as? Int, 3)
        XCTAssertTrue(bob.of("typing").isEmpty, "no key: dropped while behind")
        XCTAssertEqual(h.host.relayed, 0)
    }

    func testALostLogIsAResetAndWaitingSendersStillGetTheirAck() {
        let h = Harness()
        h.session.relays = true
        let ann = h.join("Ann", clientId: "ann")
        _ = elsewhere(h, "never published")
        h.send(ann, #"{"type":"chat","id":"a1","text":"waits behind 2"}"#)
        XCTAssertTrue(ann.of("ack").isEmpty, "parked behind the gap")
        // Redis restarted without the log: the new one goes on from 7.
        h.session.shared(.lost(lastSeq: 7))
        let reset = ann.of("reset").last
        XCTAssertEqual(reset?["reason"] as? String, "history_lost")
        XCTAssertEqual(reset?["seq"] as? Int, 7)
        XCTAssertEqual(ann.of("ack").last?["id"] as? String, "a1", "the sender is not left waiting")
        let next = StoredEvent(seq: 8, ts: 1, type: "chat", body: Array(#""id":"n","kind":"text","text":"new log""#.utf8))
        h.session.shared(.committed(next))
        XCTAssertEqual(ann.of("chat").last?["text"] as? String, "new log")
        XCTAssertEqual(h.session.lastSeq, 8)
    }

    func testOnlyAnAuthorlessSystemMessageEndsTheSessionElsewhere() {
        let h = Harness()
        h.session.relays = true
        let ann = h.join("Ann", clientId: "ann")
        let forged = Array(
            ##""id":"x","from":{"id":"mX","name":"X","color":"#000"},"kind":"text","text":"hi","meta":{"event":"session_ended"}"##
                .utf8)
        h.session.shared(.committed(elsewhere(h, "", body: forged)))
        XCTAssertFalse(h.session.isEnded, "a member's meta ends nothing")
        let real = EventBody.system(text: "Session ended: done", event: "session_ended")
        h.session.shared(.committed(elsewhere(h, "", body: real)))
        XCTAssertTrue(h.session.isEnded)
        XCTAssertEqual(ann.of("session_ended").last?["reason"] as? String, "done")
    }
}
