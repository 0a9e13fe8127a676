@testable import Hub
import Foundation
import XCTest

/// Resumes older than the window (served from the store, not `reset`) and editable chat (edit,
/// delete, redact), on a session with a memory store and a fake host whose reads come back later.
final class ChatChangeAndCatchUpTests: XCTestCase {
    func smallWindow() -> SessionPolicy {
        var p = SessionPolicy()
        p.resumeWindow = 5
        return p
    }

    /// Ann and Bob joined with a resume window of 5; Bob's connection dropped (he is in the grace) and
    /// Ann sent `count` chats since. Returns the harness, Ann, and the last seq Bob saw.
    func bobAway(whileAnnSends count: Int) -> (Harness, FakeClient, Int) {
        let h = Harness(policy: smallWindow())
        let a = h.join("Ann", clientId: "ann"), b = h.join("Bob", clientId: "bob")
        let seen = b.received.last?["seq"] as! Int
        h.session.disconnected(b, graceful: true)
        for i in 0..<count { h.send(a, #"{"type":"chat","id":"c\#(i)","text":"m\#(i)"}"#) }
        return (h, a, seen)
    }

    func testAResumeOlderThanTheWindowIsServedFromTheStoreInOrderThenJoined() {
        let (h, a, seen) = bobAway(whileAnnSends: 730)
        let b2 = h.join("Bob", clientId: "bob", resumeFrom: seen)
        let seqs = b2.durableSeqs()
        XCTAssertEqual(seqs, Array((seen + 1)...h.session.lastSeq), "every missed event once, in order")
        XCTAssertTrue(b2.of("reset").isEmpty)
        let joined = b2.received.last!
        XCTAssertEqual(joined["type"] as? String, "joined")
        let r = joined["recovered"] as! [String: Int]
        XCTAssertEqual(r["from"], seen + 1)
        XCTAssertEqual(r["to"], h.session.lastSeq)
        XCTAssertEqual(r["count"], 730)
        XCTAssertGreaterThanOrEqual(h.host.reads, 730 / Session.catchUpPage)
        // Live again: the next message reaches it once.
        h.send(a, #"{"type":"chat","id":"live","text":"live"}"#)
        XCTAssertEqual(b2.of("chat").last?["text"] as? String, "live")
        XCTAssertEqual(b2.of("chat").filter { $0["text"] as? String == "live" }.count, 1)
    }

    func testEventsCommittedDuringTheCatchUpAreNeitherLostNorDoubled() {
        let (h, a, seen) = bobAway(whileAnnSends: 300)
        let b2 = FakeClient("Bob")
        h.session.join(b2, ClientMessage.Join(session: nil, name: "Bob", clientId: "bob", resumeFrom: seen, resumeSecret: Harness.secret(for: "bob")))
        // Reads are slow: chat goes on while the pages come back.
        for i in 0..<40 {
            h.host.answerReads()
            h.send(a, #"{"type":"chat","id":"late\#(i)","text":"late"}"#, commit: false)
            h.executor.runAll()
        }
        h.settle()
        XCTAssertEqual(b2.durableSeqs(), Array((seen + 1)...h.session.lastSeq))
    }

    func testACatchUpWaitsWhileTheClientIsBehind() {
        let (h, _, seen) = bobAway(whileAnnSends: 600)
        let b2 = FakeClient("Bob")
        b2.queuedBytes = 10 << 20
        h.session.join(b2, ClientMessage.Join(session: nil, name: "Bob", clientId: "bob", resumeFrom: seen, resumeSecret: Harness.secret(for: "bob")))
        h.settle()
        XCTAssertTrue(b2.received.isEmpty, "nothing is read for a client past the soft limit")
        b2.queuedBytes = 0
        h.now += 0.25
        h.session.tick()
        h.settle()
        XCTAssertEqual(b2.durableSeqs(), Array((seen + 1)...h.session.lastSeq))
    }

    func testACrowdCatchingUpReadsAFewPagesAtATime() {
        let h = Harness(policy: smallWindow())
        let a = h.join("Ann", clientId: "ann")
        for i in 0..<300 { h.send(a, #"{"type":"chat","id":"c\#(i)","text":"m\#(i)"}"#) }
        let crowd = (0..<9).map { i -> FakeClient in
            let c = FakeClient("P\(i)")
            h.session.join(c, ClientMessage.Join(session: nil, name: "P\(i)", clientId: "p\(i)", resumeFrom: 0, resumeSecret: Harness.secret(for: "p\(i)")))
            return c
        }
        h.executor.runAll()
        XCTAssertEqual(h.host.pendingReads.count, Session.maxCatchUpReads, "reads in flight are bounded")
        for _ in 0..<50 {
            h.host.answerReads()
            h.executor.runAll()
            h.now += 0.25
            h.session.tick()
            XCTAssertLessThanOrEqual(h.host.pendingReads.count, Session.maxCatchUpReads)
        }
        h.settle()
        for c in crowd {
            XCTAssertEqual(c.of("joined").count, 1)
            XCTAssertEqual(c.of("chat").count, 300, c.name)
        }
    }

    func testAConnectionCatchingUpIsStillTheMembersForRemovalAndTheEnd() {
        let h = Harness(policy: smallWindow())
        let host = h.join("Host", clientId: "h", hostKey: "hk"), a = h.join("Ann", clientId: "ann")
        for i in 0..<50 { h.send(a, #"{"type":"chat","id":"c\#(i)","text":"m\#(i)"}"#) }
        let b = FakeClient("Bob")
        h.session.join(b, ClientMessage.Join(session: nil, name: "Bob", clientId: "bob", resumeFrom: 0, resumeSecret: Harness.secret(for: "bob")))
        h.executor.runAll()  // joined as a member; its catch-up's first read is still out
        XCTAssertNil(b.received.first { $0["type"] as? String == "joined" })
        let bob = h.session.members.first { $0.name == "Bob" }!
        XCTAssertTrue(bob.connections.contains { $0 === b }, "the member's connection, though it catches up")
        h.send(host, #"{"type":"remove","member":"\#(bob.id)"}"#)
        XCTAssertEqual(b.closedWith, .removed)
        XCTAssertTrue(h.session.catchUps.isEmpty)

        let c = FakeClient("Cat")
        h.session.join(c, ClientMessage.Join(session: nil, name: "Cat", clientId: "cat", resumeFrom: 0, resumeSecret: Harness.secret(for: "cat")))
        h.executor.runAll()
        h.send(host, #"{"type":"end","reason":"done"}"#, commit: false)
        h.executor.runAll()
        XCTAssertEqual(c.of("session_ended").count, 1)
    }

    func testARetentionGapIsAResetThenTheRestFollows() {
        let (h, _, seen) = bobAway(whileAnnSends: 40)
        h.store.enforce(RetentionPolicy(maxEventsPerSession: 20))
        let b2 = h.join("Bob", clientId: "bob", resumeFrom: seen)
        let reset = b2.of("reset").first!
        XCTAssertEqual(reset["reason"] as? String, "history_deleted")
        let kept = b2.received.filter { $0["type"] as? String == "chat" }.map { $0["seq"] as! Int }
        XCTAssertEqual(kept, Array((reset["seq"] as! Int + 1)...h.session.lastSeq))
        XCTAssertEqual(kept.count, 20)
    }

    func testUnreadableHistoryIsAReset() {
        let (h, _, seen) = bobAway(whileAnnSends: 20)
        h.host.readsFail = true
        let b2 = h.join("Bob", clientId: "bob", resumeFrom: seen)
        XCTAssertEqual(b2.of("reset").first?["reason"] as? String, "storage_unavailable")
        XCTAssertEqual(b2.received.last?["type"] as? String, "joined")
        XCTAssertNil(b2.received.last?["recovered"])
    }

    func chatSeq(_ c: FakeClient, _ text: String) -> Int {
        c.of("chat").first { $0["text"] as? String == text }!["seq"] as! Int
    }

    func testTheAuthorEditsAndDeletesOthersMayNot() {
        let h = Harness()
        let a = h.join("Ann", clientId: "ann"), b = h.join("Bob", clientId: "bob")
        h.send(a, #"{"type":"chat","id":"c1","text":"helo"}"#)
        let target = chatSeq(b, "helo")
        h.send(b, #"{"type":"chat_edit","id":"e0","seq":\#(target),"text":"mine now"}"#)
        XCTAssertEqual(b.of("error").last?["code"] as? String, "forbidden")
        h.send(a, #"{"type":"chat_edit","id":"e1","seq":\#(target),"text":"hello"}"#)
        let edit = b.of("chat_edit").last!
        XCTAssertEqual(edit["target"] as? Int, target)
        XCTAssertEqual(edit["text"] as? String, "hello")
        XCTAssertEqual((edit["from"] as? [String: Any])?["name"] as? String, "Ann")
        XCTAssertEqual(a.of("ack").last?["id"] as? String, "e1")
        // A resend of the same edit is acknowledged again, not stored twice.
        h.send(a, #"{"type":"chat_edit","id":"e1","seq":\#(target),"text":"hello"}"#)
        XCTAssertEqual(a.of("ack").last?["duplicate"] as? Bool, true)
        XCTAssertEqual(b.of("chat_edit").count, 1)
        h.send(b, #"{"type":"chat_delete","id":"d0","seq":\#(target)}"#)
        XCTAssertEqual(b.of("error").last?["code"] as? String, "forbidden")
        h.send(a, #"{"type":"chat_delete","id":"d1","seq":\#(target)}"#)
        XCTAssertEqual(b.of("chat_delete").last?["target"] as? Int, target)
        // Not a chat, not there yet, not a number.
        h.send(a, #"{"type":"chat_edit","id":"e2","seq":1,"text":"x"}"#)
        XCTAssertEqual(a.of("error").last?["field"] as? String, "seq")
        h.send(a, #"{"type":"chat_edit","id":"e3","seq":999,"text":"x"}"#)
        XCTAssertEqual(a.of("error").last?["field"] as? String, "seq")
        h.send(a, #"{"type":"chat_edit","id":"e4","seq":"x","text":"x"}"#)
        XCTAssertEqual(a.of("error").last?["field"] as? String, "seq")
        h.send(a, #"{"type":"chat_edit","id":"e5","seq":\#(target),"text":""}"#)
        XCTAssertEqual(a.of("error").last?["field"] as? String, "text")
    }

    func testAHostRedactsAndTheContentIsGoneFromTheStoreAndTheWindow() throws {
        let h = Harness()
        let host = h.join("Host", clientId: "h", hostKey: "hk"), a = h.join("Ann", clientId: "ann")
        h.send(a, #"{"type":"chat","id":"c1","text":"my password is hunter2"}"#)
        let target = chatSeq(host, "my password is hunter2")
        h.send(a, #"{"type":"chat_edit","id":"e1","seq":\#(target),"text":"my password is hunter2!"}"#)
        let editSeq = a.of("ack").last!["seq"] as! Int
        h.send(a, #"{"type":"redact","id":"r0","seq":\#(target)}"#)
        XCTAssertEqual(a.of("error").last?["code"] as? String, "forbidden")
        h.send(host, #"{"type":"redact","id":"r1","seq":\#(target),"reason":"a secret"}"#)
        let redact = a.of("redact").last!
        XCTAssertEqual(redact["target"] as? Int, target)
        XCTAssertEqual(redact["reason"] as? String, "a secret")
        let stored = try XCTUnwrap(try h.store.event(session: h.session.code, seq: target))
        let text = String(decoding: stored.event.body, as: UTF8.self)
        XCTAssertFalse(text.contains("hunter2"), text)
        XCTAssertTrue(text.contains(#""redacted":true"#), text)
        XCTAssertTrue(text.contains(#""id":"c1""#), text)
        // Its edit is cut too, in the store and in the window, and queued webhooks of both are dropped.
        let storedEdit = String(decoding: try XCTUnwrap(try h.store.event(session: h.session.code, seq: editSeq)).event.body, as: UTF8.self)
        XCTAssertFalse(storedEdit.contains("hunter2"), storedEdit)
        XCTAssertTrue(storedEdit.contains(#""redacted":true"#), storedEdit)
        XCTAssertEqual(h.host.redactions.last, [target, editSeq])
        // A resume from the window gets the tombstone, not the original.
        h.session.disconnected(a, graceful: true)
        let a2 = h.join("Ann", clientId: "ann", resumeFrom: target - 1)
        let replayed = a2.of("chat").first { $0["seq"] as? Int == target }!
        XCTAssertEqual(replayed["redacted"] as? Bool, true)
        XCTAssertNil(replayed["text"])
        let replayedEdit = a2.of("chat_edit").first { $0["seq"] as? Int == editSeq }!
        XCTAssertEqual(replayedEdit["redacted"] as? Bool, true)
        XCTAssertNil(replayedEdit["text"])
        // Redacted once: not again, and no edits.
        h.send(host, #"{"type":"redact","id":"r2","seq":\#(target)}"#)
        XCTAssertEqual(host.of("error").last?["field"] as? String, "seq")
        h.send(a2, #"{"type":"chat_edit","id":"e1","seq":\#(target),"text":"x"}"#)
        XCTAssertEqual(a2.of("error").last?["field"] as? String, "seq")
    }

    /// A deletion takes the text out of the store in its own commit, like a redaction: the original
    /// becomes a tombstone saying `deleted` (by its author or a host), its edits lose their text, and
    /// the window, a late joiner's history and a resume show only that.
    func testADeletionLeavesATombstoneInTheStoreTheWindowAndHistory() throws {
        let h = Harness()
        let host = h.join("Host", clientId: "h", hostKey: "hk"), a = h.join("Ann", clientId: "ann")
        h.send(a, #"{"type":"chat","id":"c1","text":"first draft of a bad idea"}"#)
        let target = chatSeq(host, "first draft of a bad idea")
        h.send(a, #"{"type":"chat_edit","id":"e1","seq":\#(target),"text":"second draft of a bad idea"}"#)
        let editSeq = a.of("ack").last!["seq"] as! Int
        h.send(a, #"{"type":"chat_delete","id":"d1","seq":\#(target)}"#)
        XCTAssertEqual(host.of("chat_delete").last?["target"] as? Int, target)
        let stored = String(
            decoding: try XCTUnwrap(try h.store.event(session: h.session.code, seq: target)).event.body, as: UTF8.self)
        XCTAssertFalse(stored.contains("bad idea"), stored)
        XCTAssertTrue(stored.contains(#""deleted":true,"deleted_by":"author""#), stored)
        XCTAssertTrue(stored.contains(#""id":"c1""#) && stored.contains(#""kind":"text""#), stored)
        let storedEdit = String(
            decoding: try XCTUnwrap(try h.store.event(session: h.session.code, seq: editSeq)).event.body, as: UTF8.self)
        XCTAssertFalse(storedEdit.contains("bad idea"), storedEdit)
        XCTAssertTrue(storedEdit.hasSuffix(#""deleted":true"#), storedEdit)
        XCTAssertEqual(h.host.redactions.last, [target, editSeq], "queued webhooks of both are dropped")
        // Nothing the session sends later carries the text: a newcomer's history (from the window)...
        let late = h.join("Late", clientId: "late", resumeFrom: 0)
        let all = late.received.map { String(describing: $0) }.joined()
        XCTAssertFalse(all.contains("bad idea"), all)
        let tomb = late.of("chat").first { $0["seq"] as? Int == target }!
        XCTAssertEqual(tomb["deleted"] as? Bool, true)
        XCTAssertEqual(tomb["deleted_by"] as? String, "author")
        XCTAssertNil(tomb["text"])
        XCTAssertEqual(late.of("chat_edit").first { $0["seq"] as? Int == editSeq }?["deleted"] as? Bool, true)
        // ... and the store's transcript, where exports and playback read.
        let transcript = try h.store.events(session: h.session.code, after: 0, limit: 100)
        XCTAssertFalse(transcript.map { String(decoding: $0.body, as: UTF8.self) }.joined().contains("bad idea"))
        // Nothing is left to change: no edit, no second deletion, no redaction.
        for (i, change) in [
            #""type":"chat_edit","seq":\#(target),"text":"x""#, #""type":"chat_delete","seq":\#(target)"#,
        ].enumerated() {
            h.send(a, "{\(change),\"id\":\"x\(i)\"}")
            XCTAssertEqual(a.of("error").last?["field"] as? String, "seq")
            XCTAssertEqual(a.of("error").last?["message"] as? String, "message \(target) was deleted: nothing is left to change")
        }
        h.send(host, #"{"type":"redact","id":"r1","seq":\#(target)}"#)
        XCTAssertEqual(host.of("error").last?["message"] as? String, "message \(target) was deleted: nothing is left to change")
        XCTAssertEqual(a.of("redact").count, 0)
    }

    /// A host deletes someone else's message (`deleted_by: host`); a redacted message cannot be deleted.
    func testAHostDeletesAnothersMessageAndARedactedOneCannotBeDeleted() throws {
        let h = Harness()
        let host = h.join("Host", clientId: "h", hostKey: "hk"), a = h.join("Ann", clientId: "ann")
        h.send(a, #"{"type":"chat","id":"c1","text":"off topic"}"#)
        h.send(a, #"{"type":"chat","id":"c2","text":"a pasted token"}"#)
        let offTopic = chatSeq(host, "off topic"), leaked = chatSeq(host, "a pasted token")
        h.send(host, #"{"type":"chat_delete","id":"d1","seq":\#(offTopic)}"#)
        let stored = String(
            decoding: try XCTUnwrap(try h.store.event(session: h.session.code, seq: offTopic)).event.body, as: UTF8.self)
        XCTAssertTrue(stored.contains(#""deleted":true,"deleted_by":"host""#), stored)
        XCTAssertFalse(stored.contains("off topic"), stored)
        h.send(host, #"{"type":"redact","id":"r1","seq":\#(leaked)}"#)
        h.send(a, #"{"type":"chat_delete","id":"d2","seq":\#(leaked)}"#)
        XCTAssertEqual(a.of("error").last?["message"] as? String, "message \(leaked) was redacted: nothing is left to change")
        XCTAssertEqual(a.of("chat_delete").count, 1, "only the host's deletion was stored")
    }

    /// A change whose read of the original was answered before a deletion committed still sees it
    /// deleted (the session remembers), and a deletion that failed to commit can be made again.
    func testAChangeRacingADeletionIsRefusedAndAFailedDeletionMayBeRetried() throws {
        let h = Harness()
        let a = h.join("Ann", clientId: "ann")
        h.send(a, #"{"type":"chat","id":"c1","text":"racy text"}"#)
        let target = chatSeq(a, "racy text")
        // Both reads are answered with the original; the deletion goes first.
        h.send(a, #"{"type":"chat_delete","id":"d1","seq":\#(target)}"#, commit: false)
        h.send(a, #"{"type":"chat_edit","id":"e1","seq":\#(target),"text":"racy text again"}"#, commit: false)
        h.settle()
        XCTAssertEqual(a.of("error").last?["message"] as? String, "message \(target) was deleted: nothing is left to change")
        XCTAssertEqual(a.of("chat_edit").count, 0)
        let all = try h.store.events(session: h.session.code, after: 0, limit: 100)
        XCTAssertFalse(all.map { String(decoding: $0.body, as: UTF8.self) }.joined().contains("racy text"))

        h.send(a, #"{"type":"chat","id":"c2","text":"kept for now"}"#)
        let second = chatSeq(a, "kept for now")
        h.store.failing = true
        h.send(a, #"{"type":"chat_delete","id":"d2","seq":\#(second)}"#)
        XCTAssertEqual(a.of("error").last?["code"] as? String, "storage_unavailable")
        h.store.failing = false
        h.send(a, #"{"type":"chat_delete","id":"d3","seq":\#(second)}"#)
        XCTAssertEqual(a.of("ack").last?["id"] as? String, "d3")
        XCTAssertEqual(a.of("chat_delete").last?["target"] as? Int, second)
    }

    func testChangesBecomeWebhooks() {
        func type(_ t: String) -> WebhookEventType? {
            Webhook.type(of: DurableEvent(session: "S", type: t, member: "k", clientId: "i", body: []))
        }
        XCTAssertEqual(type("chat_edit"), .chatUpdated)
        XCTAssertEqual(type("chat_delete"), .chatDeleted)
        XCTAssertEqual(type("redact"), .chatDeleted)
    }
}

/// Presence with state: what a member says of itself, and `stale` during the reconnect grace.
final class PresenceStateTests: XCTestCase {
    func testStateIsCarriedOnMembersAndInUpdates() {
        let h = Harness()
        let a = h.join("Ann", clientId: "ann"), b = h.join("Bob", clientId: "bob")
        h.send(a, #"{"type":"presence","state":{"status":"idle","location":{"view":"request","id":42}}}"#)
        let update = (b.of("presence").last!["updates"] as! [[String: Any]])[0]
        XCTAssertEqual(update["status"] as? String, "idle")
        XCTAssertEqual((update["location"] as? [String: Any])?["id"] as? Int, 42)
        let before = b.of("presence").count
        h.send(a, #"{"type":"presence","state":{"status":"idle","location":{"view":"request","id":42}}}"#)
        XCTAssertEqual(b.of("presence").count, before, "an unchanged state is not sent again")
        // A newcomer sees it in the snapshot.
        let c = h.join("Cat")
        let ann = (c.of("joined").last!["members"] as! [[String: Any]]).first { $0["name"] as? String == "Ann" }!
        XCTAssertEqual(ann["status"] as? String, "idle")
        // Bad states name the field.
        h.send(a, #"{"type":"presence","state":{"status":"asleep"}}"#)
        XCTAssertEqual(a.of("error").last?["field"] as? String, "state.status")
        let big = String(repeating: "x", count: 1100)
        h.send(a, #"{"type":"presence","state":{"status":"away","location":"\#(big)"}}"#)
        XCTAssertEqual(a.of("error").last?["field"] as? String, "state.location")
    }

    func testAMemberInTheGraceIsStaleThenLiveAgain() {
        let h = Harness()
        let a = h.join("Ann", clientId: "ann"), b = h.join("Bob", clientId: "bob")
        h.session.disconnected(a, graceful: true)
        let stale = (b.of("presence").last!["updates"] as! [[String: Any]])[0]
        XCTAssertEqual(stale["status"] as? String, "stale")
        _ = h.join("Ann", clientId: "ann", resumeFrom: 2)
        let live = (b.of("presence").last!["updates"] as! [[String: Any]])[0]
        XCTAssertEqual(live["status"] as? String, "active")
    }
}
