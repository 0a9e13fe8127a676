@testable import WebSocket
import XCTest

final class MessageReaderTests: XCTestCase {
    let sizes = [0, 1, 125, 126, 127, 65535, 65536, 100_000]

    func testEchoesEveryLengthFormByteByByteAndWhole() {
        for size in sizes {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 % 26 + 97) }
            let frame = clientFrame(0x1, payload)
            for chunk in size < 300 ? [1, 3, 7, .max] : [1000, .max] {
                let r = drive(frame, chunk: chunk)
                XCTAssertNil(r.failure, "size \(size) chunk \(chunk)")
                XCTAssertEqual(r.events, [.text(String(decoding: payload, as: UTF8.self))], "size \(size) chunk \(chunk)")
            }
        }
    }

    func testBinaryAndNonMinimalLengthEncodingAccepted() {
        let r = drive(clientFrame(0x2, [1, 2, 3], lengthForm: 64))
        XCTAssertEqual(r.events, [.binary([1, 2, 3])])
    }

    func testUnmaskedClientFrameIsProtocolError() {
        XCTAssertEqual(drive(clientFrame(0x1, Array("hi".utf8), mask: nil)).failure?.code, .protocolError)
    }

    func testServerRoleRejectsMaskedFrames() {
        var reader = MessageReader(role: .client)
        var bytes = clientFrame(0x1, [0x41])
        let outcome = bytes.withUnsafeMutableBytes { reader.read($0) { _ in true } }
        XCTAssertEqual(outcome, .failed(ProtocolViolation(.protocolError, "server frames must not be masked")))
    }

    func testReservedBitsRejectedUnlessNegotiated() {
        for rsv: UInt8 in 1...7 {
            XCTAssertEqual(drive(clientFrame(0x1, [0x41], rsv: rsv)).failure?.code, .protocolError, "rsv \(rsv)")
        }
        // RSV1 is the compression bit once permessage-deflate is negotiated: allowed on a first data frame...
        XCTAssertNil(drive(clientFrame(0x2, [1], rsv: 4), compression: true).failure)
        // ...but never on control frames or continuations.
        XCTAssertEqual(drive(clientFrame(0x9, [], rsv: 4), compression: true).failure?.code, .protocolError)
        let cont = clientFrame(0x2, [1], fin: false) + clientFrame(0x0, [2], rsv: 4)
        XCTAssertEqual(drive(cont, compression: true).failure?.code, .protocolError)
    }

    func testReservedOpcodesRejected() {
        for op: UInt8 in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            XCTAssertEqual(drive(clientFrame(op, [])).failure?.code, .protocolError, "opcode \(op)")
        }
    }

    func testControlFrameRules() {
        XCTAssertEqual(drive(clientFrame(0x9, Array(repeating: 1, count: 125))).events, [.ping(Array(repeating: 1, count: 125))])
        XCTAssertEqual(drive(clientFrame(0x9, Array(repeating: 1, count: 126))).failure?.code, .protocolError)
        XCTAssertEqual(drive(clientFrame(0x9, [1], fin: false)).failure?.code, .protocolError)
        XCTAssertEqual(drive(clientFrame(0xA, [9])).events, [.pong([9])])
    }

    func testFragmentationWithInterleavedControlFrames() {
        let input = clientFrame(0x1, Array("Hel".utf8), fin: false) + clientFrame(0x9, [7])
            + clientFrame(0x0, Array("lo, ".utf8), fin: false) + clientFrame(0xA, [])
            + clientFrame(0x0, Array("world".utf8))
        for chunk in [1, 2, 5, .max] {
            let r = drive(input, chunk: chunk)
            XCTAssertNil(r.failure)
            XCTAssertEqual(r.events, [.ping([7]), .pong([]), .text("Hello, world")], "chunk \(chunk)")
        }
    }

    func testEmptyFragmentsAndEmptyMessages() {
        let input = clientFrame(0x1, [], fin: false) + clientFrame(0x0, [], fin: false) + clientFrame(0x0, [])
        XCTAssertEqual(drive(input).events, [.text("")])
    }

    func testContinuationWithoutStartIsProtocolError() {
        XCTAssertEqual(drive(clientFrame(0x0, [1])).failure?.code, .protocolError)
    }

    func testNewMessageInsideFragmentedMessageIsProtocolError() {
        let input = clientFrame(0x1, [0x41], fin: false) + clientFrame(0x1, [0x42])
        XCTAssertEqual(drive(input).failure?.code, .protocolError)
    }

    func testTopBitOf64BitLengthIsProtocolError() {
        var frame: [UInt8] = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]
        frame += [0]
        XCTAssertEqual(drive(frame).failure?.code, .protocolError)
    }

    func testMessageTooBigRejectedAsSoonAsLengthIsKnown() {
        // Only the header of a 2 MiB frame is sent: the reader must fail without waiting for the payload.
        let header = Array(clientFrame(0x2, Array(repeating: 0, count: 2 << 20)).prefix(14))
        XCTAssertEqual(drive(header, maxMessageSize: 1 << 20).failure?.code, .messageTooBig)
        // Fragments are counted together.
        let fragments = clientFrame(0x2, Array(repeating: 0, count: 600), fin: false) + clientFrame(0x0, Array(repeating: 0, count: 600))
        XCTAssertEqual(drive(fragments, maxMessageSize: 1000).failure?.code, .messageTooBig)
        XCTAssertNil(drive(fragments, maxMessageSize: 1200).failure)
    }

    func testInvalidUTF8FailsFastOnTheFragmentThatBreaksIt() {
        // Autobahn 6.4.1-style: the first fragment is valid, the second contains an invalid byte; the
        // third never arrives. The reader must fail when it sees the second.
        let input = clientFrame(0x1, Array("κόσμε".utf8), fin: false) + clientFrame(0x0, [0xF4, 0x90, 0x80, 0x80], fin: false)
        XCTAssertEqual(drive(input).failure?.code, .invalidPayload)
        // And inside a single frame whose payload is still arriving (6.4.3): fail on the chunk with the bad byte.
        let frame = clientFrame(0x1, Array("abc".utf8) + [0xC0, 0xAF] + Array(repeating: 0x61, count: 1000))
        let partial = Array(frame.prefix(8 + 5))  // header (2+2+4) + "abc" + the invalid pair
        XCTAssertEqual(drive(partial, chunk: 4).failure?.code, .invalidPayload)
    }

    func testTextEndingInsideASequenceIsInvalid() {
        let input = clientFrame(0x1, [0xE2, 0x82], fin: false) + clientFrame(0x0, [])
        XCTAssertEqual(drive(input).failure?.code, .invalidPayload)
        // A sequence split across fragments is fine.
        let ok = clientFrame(0x1, [0xE2, 0x82], fin: false) + clientFrame(0x0, [0xAC])
        XCTAssertEqual(drive(ok).events, [.text("€")])
    }

    func testCloseFrameValidation() {
        XCTAssertEqual(drive(clientFrame(0x8, [])).events, [.close(nil, "")])
        XCTAssertEqual(drive(clientFrame(0x8, [0x03, 0xE8] + Array("bye".utf8))).events, [.close(1000, "bye")])
        XCTAssertEqual(drive(clientFrame(0x8, [0x03])).failure?.code, .protocolError)
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            XCTAssertEqual(drive(clientFrame(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)])).failure?.code, .protocolError, "code \(code)")
        }
        for code: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999] {
            XCTAssertEqual(drive(clientFrame(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)])).events, [.close(code, "")], "code \(code)")
        }
        XCTAssertEqual(drive(clientFrame(0x8, [0x03, 0xE8, 0xC0, 0xAF])).failure?.code, .invalidPayload)
    }

    func testNothingIsReadAfterClose() {
        let input = clientFrame(0x8, [0x03, 0xE8]) + clientFrame(0x1, Array("late".utf8))
        XCTAssertEqual(drive(input).events, [.close(1000, "")])
    }

    func testHandlerCanStopReading() {
        var reader = MessageReader(role: .server)
        var bytes = clientFrame(0x1, [0x41]) + clientFrame(0x1, [0x42])
        var seen = 0
        let outcome = bytes.withUnsafeMutableBytes { reader.read($0) { _ in seen += 1; return false } }
        XCTAssertEqual(seen, 1)
        XCTAssertEqual(outcome, .consumed(7))
    }
}
