import XCTest

@testable import Hub
import WebSocket

/// The ephemeral event's frame is written straight into its chunk: the same bytes as the generic path
/// (`ServerMessage.event(body: EventBody.event(...)).frame`), for plain strings and for any that need
/// escaping, and for every header length (7-bit, 16-bit and 64-bit payload lengths).
final class EventFrameTests: XCTestCase {
    private func bytes(_ c: Chunk) -> [UInt8] { Array(c.bytes) }

    func testTheFrameIsTheGenericPathsBytes() {
        let datas = [
            "{}", #"{"t":1,"p":"xxxx"}"#, "{\"s\":\"" + String(repeating: "y", count: 200) + "\"}",
            "{\"s\":\"" + String(repeating: "z", count: 70_000) + "\"}",
        ]
        let names = ["load", "doc.saved:v2", "A-b_c"]
        let froms = ["m1", "mAbC_123-x", "m\"q", "é漢"]
        let ids: [String?] = [nil, "e1", "", "a\"b\\c\n\u{01}", "😀"]
        for data in datas {
            for name in names {
                for from in froms {
                    for id in ids {
                        let fast = ServerMessage.eventFrame(name: name, from: from, id: id, data: Array(data.utf8)[...])
                        let body = EventBody.event(name: name, from: from, id: id, data: Array(data.utf8))
                        let generic = ServerMessage.event(body: body).frame
                        XCTAssertEqual(bytes(fast), bytes(generic), "\(name) \(from) \(id ?? "nil") \(data.count)")
                        XCTAssertEqual(fast.count, fast.capacity, "sized exactly")
                    }
                }
            }
        }
    }

    func testDataIsTakenWhereItLiesInTheMessage() throws {
        let message = Array(#"{"type":"event","name":"n","data":{"k":[1,2]},"id":"q"}"#.utf8)
        guard case .event(let e) = try ClientMessage.parse(message) else { return XCTFail() }
        let frame = ServerMessage.eventFrame(name: e.name, from: "m9", id: e.id, data: e.data)
        guard let (opcode, payload) = frame.framePayload else { return XCTFail("not a frame") }
        XCTAssertEqual(opcode, .text)
        XCTAssertEqual(
            String(decoding: payload, as: UTF8.self),
            #"{"type":"event","name":"n","from":"m9","id":"q","data":{"k":[1,2]}}"#)
    }
}
