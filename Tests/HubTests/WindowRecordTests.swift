@testable import Hub
import WebSocket
import XCTest

/// The resume window holds a frame as what differs from a template (`WindowRecord`): every frame comes
/// back byte for byte, and a join's frame (one per member, held for as long as its session lives) takes
/// well under its size.
final class WindowRecordTests: XCTestCase {
    private func bytes(_ c: Chunk) -> [UInt8] { Array(c.bytes) }

    private func roundTrip(_ frame: Chunk, file: StaticString = #filePath, line: UInt = #line) -> Int {
        let record = WindowRecord.record(frame.bytes)
        record.withUnsafeBytes { r in
            XCTAssertEqual(WindowRecord.frameLength(r), frame.count, file: file, line: line)
            XCTAssertEqual(bytes(WindowRecord.frame(r)), bytes(frame), file: file, line: line)
        }
        return record.count
    }

    private func join(seq: Int, id: String, name: String, color: String, role: MemberRole) -> Chunk {
        let member = Member(id: id, key: "k-\(id)", name: name, color: color, role: role)
        let body = EventBody.presence(joins: [member.json], leaves: [])
        return ServerMessage.durable(type: "presence", seq: seq, ts: 1_765_082_123_456, body: body).frame
    }

    func testAJoinsFrameIsHeldInAtMost64Bytes() {
        for (seq, role) in [(1, MemberRole.editor), (12_345, .host), (99, .viewer)] {
            let f = join(seq: seq, id: "m3k2j1a", name: "m\(seq)", color: Session.palette[seq % 8], role: role)
            let held = roundTrip(f)
            // ~170 bytes sent; what is kept: the seq, ts, id, name, colour, role, connections and status.
            XCTAssertGreaterThan(f.count, 165)
            XCTAssertLessThanOrEqual(held, 64, "\(f.count) -> \(held)")
        }
    }

    func testLeavesChatsAndEventsComeBackTheSame() {
        let leave = EventBody.presence(joins: [], leaves: [("m3k2j1a", "timeout", "Ada")])
        let leaveFrame = ServerMessage.durable(type: "presence", seq: 7, ts: 1, body: leave).frame
        XCTAssertLessThan(roundTrip(leaveFrame), leaveFrame.count / 2)
        let anonymous = EventBody.presence(joins: [], leaves: [("m3k2j1a", "left", nil)])
        _ = roundTrip(ServerMessage.durable(type: "presence", seq: 7, ts: 1, body: anonymous).frame)
        // Two joins in one event, a member with a location, a name of 300 bytes (a gap's long length).
        let a = Member(id: "m1", key: "k1", name: "A", color: "#123456", role: .viewer)
        let b = Member(id: "m2", key: "k2", name: String(repeating: "\u{e9}", count: 150), color: "#fff", role: .host)
        b.location = Array(#"{"page":"/x"}"#.utf8)
        for joins in [[a.json, b.json], [b.json], [a.json]] {
            let body = EventBody.presence(joins: joins, leaves: [])
            _ = roundTrip(ServerMessage.durable(type: "presence", seq: 1 << 40, ts: 1, body: body).frame)
        }
        let chat = Array(##"{"id":"c1","from":{"id":"m1","name":"A","color":"#fff"},"kind":"text","text":"hi"}"##.utf8)
        _ = roundTrip(ServerMessage.durable(type: "chat", seq: 8, ts: 2, body: chat).frame)
        let long = Array(#"{"kind":"text","text":""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: 300)
            + Array(#""}"#.utf8)
        _ = roundTrip(ServerMessage.durable(type: "chat", seq: 9, ts: 3, body: long).frame)
        let event = EventBody.event(name: "n", from: "m1", id: nil, data: Array("{}".utf8))
        _ = roundTrip(ServerMessage.durable(type: "event", seq: 10, ts: 4, body: event).frame)
    }

    func testAnyOtherFrameIsHeldAsItIs() {
        // Not a template's type, a frame without FIN, a masked header, a header longer than needed, a
        // frame of 64 KiB, and frames that are only a template's start or end.
        let plain = Chunk.text(Array(#"{"type":"reset","seq":1}"#.utf8))
        XCTAssertEqual(roundTrip(plain), plain.count)
        let noFin = Chunk([0x01, 3, 0x61, 0x62, 0x63])
        XCTAssertEqual(roundTrip(noFin), noFin.count + 1)
        let payload = Array(#"{"type":"presence","seq":1,"ts":0,"joins":[],"leaves":[]}"#.utf8)
        let masked = Chunk([0x81, 0x80 | UInt8(payload.count)] + payload)
        XCTAssertEqual(roundTrip(masked), masked.count)
        let padded = Chunk([0x81, 126, 0, UInt8(payload.count)] + payload)
        XCTAssertEqual(roundTrip(padded), padded.count)
        _ = roundTrip(Chunk.text(Array(#"{"type":"presence","seq":"#.utf8) + Array(repeating: 0x30, count: 70_000)))
        _ = roundTrip(Chunk.text(Array(#"{"type":"presence"}"#.utf8)))
        _ = roundTrip(Chunk.text(Array(#"{"type":"presence","seq":0,"ts":0,"joins":[],"leaves":[]}"#.utf8)))
        _ = roundTrip(Chunk.text(Array(#"{"type":"chat""#.utf8) + Array(#","text":""}"#.utf8)))
        _ = roundTrip(Chunk([0x81, 0]))
        _ = roundTrip(Chunk([]))
    }

    func testTheWindowKeepsJoinsSmallAndGivesThemBackThroughEvictionsAndRedactions() {
        var w = ResumeWindow(maxCount: 10, maxBytes: 1 << 20)
        let frames = (1...25).map { seq in
            join(seq: seq, id: "m\(100_000 + seq)", name: "m\(seq)", color: Session.palette[seq % 8], role: .editor)
        }
        for (i, f) in frames[..<10].enumerated() { w.append((i + 1, f)) }
        // Ten joins (a session of ten idle members): the buffer, slack included, is under 60% of the frames.
        XCTAssertEqual(w.bytes, frames[..<10].reduce(0) { $0 + $1.count }, "the frames as sent are counted")
        XCTAssertLessThanOrEqual(w.capacities.bytes, w.bytes * 6 / 10, "held in well under their size")
        for (i, f) in frames[10...].enumerated() { w.append((i + 11, f)) }
        XCTAssertEqual(w.bytes, frames[15...].reduce(0) { $0 + $1.count })
        XCTAssertEqual(w.missing(after: 15, through: 25)?.map(bytes), frames[15...].map(bytes))
        // A redaction puts a frame of another kind in a join's place; the rest read back the same.
        let chat = ServerMessage.durable(type: "chat", seq: 20, ts: 5, body: Array(#"{"kind":"text"}"#.utf8)).frame
        w.replace(seq: 20, with: chat)
        var expected = frames[15...].map(bytes)
        expected[4] = bytes(chat)
        XCTAssertEqual(w.missing(after: 15, through: 25)?.map(bytes), expected)
        XCTAssertEqual(w.bytes, expected.reduce(0) { $0 + $1.count })
        w.append((26, frames[0]))
        XCTAssertEqual(w.missing(after: 16, through: 26)?.map(bytes), Array(expected[1...]) + [bytes(frames[0])])
    }
}
