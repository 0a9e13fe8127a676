import Bytes
@testable import Hub
import XCTest

/// A member's compact state (issue 30: memory per member): the guest key held as its client id and 128
/// bits reads back as the same text, and the rarely used fields live in a side object that exists only
/// while one of them differs from a fresh member's.
final class MemberStateTests: XCTestCase {
    func testAGuestKeyReadsBackAsTheSameText() {
        for (id, secret) in [("c1", "s-0123456789abcdef"), ("idle-019499", "x"), ("", "y"), ("a:b:c", "z"),
                             ("ünïcode-id", "w"), (String(repeating: "long", count: 20), "v")] {
            let key = Admission.guestKey(clientId: id, secret: secret)
            XCTAssertEqual(MemberKey(key).text, key)
            XCTAssertEqual(MemberKey(key), MemberKey(key))
        }
        for n in 0..<500 {  // every bit position of the 128 bits, through many hashes
            let key = Admission.guestKey(clientId: "r\(n)", secret: "secret-\(n)")
            XCTAssertEqual(MemberKey(key).text, key)
        }
        let a = Admission.guestKey(clientId: "c1", secret: "one"), b = Admission.guestKey(clientId: "c1", secret: "two")
        XCTAssertNotEqual(MemberKey(a), MemberKey(b), "another secret is another member")
        XCTAssertNotEqual(MemberKey(a), MemberKey(Admission.guestKey(clientId: "c2", secret: "one")))
    }

    func testOtherKeysAreKeptAsTheyCame() {
        // Tokens' and anonymous keys, and strings that only look like a guest key (padding, a 16-byte value
        // with non-canonical base64, a short or long tail, all zeros), are the same text and compare as text.
        let hash = Base64.encode(Array(repeating: 7, count: 16), urlSafe: true)
        for key in ["sub:alice", "anon:abcdefghi", "c:x:" + hash + "=", "c:x:" + String(hash.dropLast()) + "B",
                    "c:x:" + String(hash.dropLast()), "c:x:" + hash + "A", "c:" + hash, "c:x;" + hash,
                    "c:x:" + Base64.encode(Array(repeating: 0, count: 16), urlSafe: true), "", "c:"] {
            XCTAssertEqual(MemberKey(key).text, key)
        }
        XCTAssertNotEqual(MemberKey("c:x:" + hash), MemberKey("c:y:" + hash))
        XCTAssertEqual(MemberKey("c:x:" + hash).text, "c:x:" + hash)
        // Keys compare as bytes: texts `String` calls equal (composed and decomposed accents) are two keys.
        XCTAssertNotEqual(MemberKey("sub:caf\u{E9}"), MemberKey("sub:cafe\u{301}"))
        XCTAssertNotEqual(MemberKey("c:caf\u{E9}:" + hash), MemberKey("c:cafe\u{301}:" + hash))
    }

    func testRareFieldsLiveInASideObjectOnlyWhileSet() {
        let m = Member(id: "m1", key: Admission.guestKey(clientId: "c1", secret: "s"), name: "Ann",
                       color: Session.palette[0], role: .editor)
        XCTAssertNil(m.rare, "a fresh member has no side object")
        XCTAssertNil(m.cursor); XCTAssertNil(m.location); XCTAssertNil(m.typingUntil); XCTAssertNil(m.graceDeadline)
        XCTAssertFalse(m.cursorDirty); XCTAssertFalse(m.cursorUnsampled)
        XCTAssertEqual(m.cursorRecordedAt, -Double.infinity)
        m.typingUntil = 5
        XCTAssertEqual(m.typingUntil, 5)
        XCTAssertNotNil(m.rare)
        m.graceDeadline = 9
        m.typingUntil = nil
        XCTAssertEqual(m.graceDeadline, 9, "another field keeps the object")
        XCTAssertNotNil(m.rare)
        m.graceDeadline = nil
        XCTAssertNil(m.rare, "given back once every field is at its default")
        m.cursorDirty = false
        m.location = nil
        XCTAssertNil(m.rare, "setting a default makes nothing")
        m.cursor = Array("{}".utf8); m.cursorDirty = true; m.cursorUnsampled = true; m.cursorRecordedAt = 1
        XCTAssertEqual(m.cursor, Array("{}".utf8))
        XCTAssertTrue(m.cursorDirty && m.cursorUnsampled)
        XCTAssertEqual(m.cursorRecordedAt, 1)
        XCTAssertEqual(String(decoding: m.fromJSON, as: UTF8.self), ##"{"id":"m1","name":"Ann","color":"#e6194b"}"##)
        m.recolor("#000")
        XCTAssertEqual(String(decoding: m.fromJSON, as: UTF8.self), ##"{"id":"m1","name":"Ann","color":"#000"}"##)
    }

    func testAColourIsAPaletteIndexOrKeptAside() {
        let m = Member(id: "m1", key: "sub:ann", name: "Ann", color: Session.palette[3], role: .editor)
        XCTAssertEqual(m.color, Session.palette[3])
        XCTAssertNil(m.rare, "a palette colour is an index")
        m.color = "?"  // the cluster's mark while a colour is agreed
        XCTAssertEqual(m.color, "?")
        XCTAssertNotNil(m.rare)
        m.color = Session.palette[13]
        XCTAssertEqual(m.color, Session.palette[13])
        XCTAssertNil(m.rare, "back in the palette: the side object goes")
        XCTAssertEqual(Member(id: "m2", key: "k", name: "B", color: "#123456", role: .viewer).color, "#123456")
    }
}
