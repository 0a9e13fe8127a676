import XCTest
@testable import Hub
import WebSocket

/// The I/O-free parts that meet hostile input: length limits, the resume rule, /watch messages, the
/// rate limiter's sniff.
final class HostileInputTests: XCTestCase {
    func testLimitsCountScalarsAndBytesNotGraphemeClusters() {
        let combining = "a" + String(repeating: "\u{301}", count: 100)  // one Character, 201 bytes
        XCTAssertEqual(combining.count, 1)
        XCTAssertFalse(combining.fits(64))
        XCTAssertTrue(String(repeating: "漢", count: 64).fits(64))   // 192 bytes, 64 scalars
        XCTAssertFalse(String(repeating: "漢", count: 65).fits(64))
        XCTAssertTrue(String(repeating: "x", count: 64).fits(64))
        XCTAssertFalse(String(repeating: "x", count: 65).fits(64))
        XCTAssertFalse(String(repeating: "😀", count: 65).fits(64))  // 260 bytes
        XCTAssertThrowsError(try ClientMessage.parse(Array("{\"type\":\"join\",\"name\":\"\(combining)\"}".utf8))) { e in
            XCTAssertEqual((e as? MessageError)?.code, "too_large")
            XCTAssertEqual((e as? MessageError)?.field, "name")
        }
    }

    func testCursorCoordinatesAreShort() {
        let long = "0." + String(repeating: "0", count: 100) + "1"
        XCTAssertThrowsError(try ClientMessage.parse(Array("{\"type\":\"cursor\",\"x\":\(long),\"y\":1}".utf8)))
        XCTAssertNoThrow(try ClientMessage.parse(Array("{\"type\":\"cursor\",\"x\":0.25,\"y\":-12.5}".utf8)))
    }

    private func window(_ seqs: ClosedRange<Int>, maxCount: Int = 100, maxBytes: Int = 1 << 20) -> ResumeWindow {
        var w = ResumeWindow(maxCount: maxCount, maxBytes: maxBytes)
        for s in seqs { w.append((s, Chunk.text(Array("{\"seq\":\(s)}".utf8)))) }
        return w
    }

    func testResumeNeverOverflowsOnExtremePositions() {
        let w = window(3...9)
        XCTAssertEqual(w.missing(after: Int.max, through: 9)?.count, 0)
        XCTAssertEqual(w.missing(after: Int.max - 1, through: 9)?.count, 0)
        XCTAssertEqual(w.missing(after: 2, through: 9)?.count, 7)
        XCTAssertEqual(w.missing(after: 5, through: 9)?.count, 4)
        XCTAssertNil(w.missing(after: 1, through: 9))   // seq 2 is gone: a reset
        XCTAssertNil(w.missing(after: 0, through: 9))
        XCTAssertNil(ResumeWindow(maxCount: 10, maxBytes: 100).missing(after: 0, through: 5))
    }

    func testResumeWindowIsBoundedInBytesAndKeepsTheNewest() {
        let frame = 12  // "{\"seq\":N}" framed: 2 + 9 or 10 bytes
        var w = ResumeWindow(maxCount: 1000, maxBytes: 5 * frame)
        for s in 1...100 { w.append((s, Chunk.text(Array("{\"seq\":\(s % 10)}".utf8)))) }
        XCTAssertLessThanOrEqual(w.bytes, 5 * frame)
        XCTAssertEqual(w.last?.seq, 100)
        XCTAssertEqual(w.count, 5)
        XCTAssertEqual(w.first?.seq, 96)
        // One frame bigger than the whole budget still stays (the newest is always kept).
        w.append((101, Chunk.text([UInt8](repeating: 32, count: 1000))))
        XCTAssertEqual(w.count, 1)
        XCTAssertEqual(w.first?.seq, 101)
        var counted = ResumeWindow(maxCount: 3, maxBytes: 1 << 20)
        for s in 1...10 { counted.append((s, Chunk.text([1]))) }
        XCTAssertEqual(counted.count, 3)
        XCTAssertEqual(counted.first?.seq, 8)
    }

    func testWatchMessages() throws {
        XCTAssertEqual(try WatchMessage.parse(Array("{\"type\":\"subscribe\",\"channel\":\"run:r1\",\"resume_from\":9223372036854775807}".utf8)),
                       .subscribe(.run("r1"), resumeFrom: Int.max, token: nil))
        XCTAssertEqual(try WatchMessage.parse(Array("{\"type\":\"unsubscribe\",\"channel\":\"dashboard:team-a\"}".utf8)),
                       .unsubscribe(.dashboard("team-a")))
        for (json, field) in [("{\"type\":\"subscribe\",\"channel\":\"run:r1\",\"resume_from\":-1}", "resume_from"),
                              ("{\"type\":\"subscribe\",\"channel\":\"run:r1\",\"resume_from\":18446744073709551615}", "resume_from"),
                              ("{\"type\":\"subscribe\",\"channel\":\"run:r1\",\"resume_from\":1.5}", "resume_from"),
                              ("{\"type\":\"subscribe\",\"channel\":\"run:\"}", "channel"),
                              ("{\"type\":\"subscribe\",\"channel\":\"run:a/b\"}", "channel"),
                              ("{\"type\":\"subscribe\",\"channel\":\"dashboard:\(String(repeating: "x", count: 129))\"}", "channel"),
                              ("{\"type\":\"subscribe\"}", "channel"),
                              ("{\"type\":\"watch\",\"channel\":\"run:r1\"}", "type")] {
            XCTAssertThrowsError(try WatchMessage.parse(Array(json.utf8)), json) { e in
                XCTAssertEqual((e as? MessageError)?.field, field, json)
            }
        }
        XCTAssertThrowsError(try WatchMessage.parse(Array("not json".utf8)))
    }

    func testSniffLeavesEscapedTypesToTheParser() {
        func sniff(_ s: String) -> ConnectionLimiter.Kind? { Array(s.utf8).withUnsafeBytes { ConnectionLimiter.sniff($0) } }
        XCTAssertEqual(sniff("{\"type\":\"chat\",\"id\":\"1\"}"), .chat)
        XCTAssertNil(sniff("{\"type\":\"\\u0063hat\",\"id\":\"1\"}"))
        XCTAssertNil(sniff("{\"type\":\"c\\u0068at\",\"id\":\"1\"}"))
        let parsed = try? ClientMessage.parse(Array("{\"type\":\"\\u0063hat\",\"id\":\"1\",\"kind\":\"text\",\"text\":\"x\"}".utf8))
        XCTAssertEqual(parsed.map(ConnectionLimiter.kind(of:)), .chat)
        // Every message the sniff classifies is charged once: its sniffed kind is its parsed kind.
        for json in [
            #"{"type":"chat_edit","id":"e","seq":1,"text":"x"}"#, #"{"type":"chat_delete","id":"d","seq":1}"#,
            #"{"type":"redact","id":"r","seq":1}"#, #"{"type":"presence","state":{"status":"idle"}}"#,
            #"{"type":"typing","state":"start"}"#, #"{"type":"ping"}"#,
        ] {
            let message = try! ClientMessage.parse(Array(json.utf8))
            XCTAssertEqual(sniff(json), ConnectionLimiter.kind(of: message), json)
        }
    }
}
