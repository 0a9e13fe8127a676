@testable import WebSocket
import XCTest

final class CodecTests: XCTestCase {
    func testUTF8ValidatorAgainstStandardLibrary() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let count = Int.random(in: 0..<12, using: &rng)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            XCTAssertEqual(UTF8Validator.isValid(bytes), expected, "\(bytes)")
        }
    }

    /// ASCII texts of 8 bytes or more are read a word at a time, the last word overlapping the one before
    /// (2026-12-07): a non-ASCII byte, valid or not, at every position, the tail's included, is still seen.
    func testUTF8AsciiWordsWithOneOtherByteAnywhere() {
        for length in 8..<41 {
            let ascii = [UInt8](repeating: UInt8(ascii: "x"), count: length)
            XCTAssertTrue(UTF8Validator.isValid(ascii))
            for at in 0..<length {
                for other: [UInt8] in [[0x80], [0xFF], [0xC3, 0xA9], [0xE2, 0x82], [0xF0, 0x9F, 0x8E, 0x89]] {
                    var bytes = ascii
                    bytes.replaceSubrange(at..<min(at + other.count, length), with: other)
                    let expected = String(validating: bytes, as: UTF8.self) != nil
                    XCTAssertEqual(UTF8Validator.isValid(bytes), expected, "\(bytes)")
                }
            }
        }
    }

    func testUTF8BoundaryCases() {
        let valid: [[UInt8]] = [[0x7F], [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF],
                                [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],
                                Array("κόσμε 🎉 hello world, this is long ascii".utf8)]
        let invalid: [[UInt8]] = [[0x80], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x9F, 0xBF], [0xED, 0xA0, 0x80],
                                  [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],
                                  [0xFF], [0xC2], [0xE2, 0x82]]
        for v in valid { XCTAssertTrue(UTF8Validator.isValid(v), "\(v)") }
        for v in invalid { XCTAssertFalse(UTF8Validator.isValid(v), "\(v)") }
    }

    func testUTF8ValidatorIsIncremental() {
        let text = Array("aé€🎉".utf8)
        for split in 0...text.count {
            var v = UTF8Validator()
            XCTAssertTrue(text[..<split].withUnsafeBytes { v.validate($0) })
            XCTAssertTrue(text[split...].withUnsafeBytes { v.validate($0) })
            XCTAssertTrue(v.isComplete)
        }
    }

    func testMaskingMatchesNaiveAtEveryOffsetAndLength() {
        let key: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        let keyWord = key.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        for length in [0, 1, 3, 7, 8, 9, 31, 32, 33, 100] {
            for offset in 0..<4 {
                var data = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 7) }
                let expected = data.enumerated().map { $0.element ^ key[($0.offset + offset) % 4] }
                data.withUnsafeMutableBytes { applyMask($0.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 1)!, count: length, key: keyWord, offset: offset) }
                XCTAssertEqual(data, expected, "length \(length) offset \(offset)")
            }
        }
    }

    func testEncoderRoundTripsThroughClientReader() {
        for size in [0, 125, 126, 65535, 65536] {
            let payload = [UInt8](repeating: 0x5A, count: size)
            let frame = FrameEncoder.frame(.binary, payload)
            XCTAssertEqual(frame.count, FrameEncoder.headerLength(payload: size, masked: false) + size)
            var reader = MessageReader(role: .client)
            var got: [UInt8]?
            var bytes = frame
            _ = bytes.withUnsafeMutableBytes { reader.read($0) { if case .message(_, let p, _) = $0 { got = Array(p) }; return true } }
            XCTAssertEqual(got, payload)
            // Masked (client) frames round-trip through a server reader.
            var masked = FrameEncoder.frame(.binary, payload, maskKey: 0xDEADBEEF)
            var server = MessageReader(role: .server)
            got = nil
            _ = masked.withUnsafeMutableBytes { server.read($0) { if case .message(_, let p, _) = $0 { got = Array(p) }; return true } }
            XCTAssertEqual(got, payload)
        }
    }

    func testClosePayloadTruncatesReasonOnCharacterBoundary() {
        let payload = FrameEncoder.closePayload(.normal, reason: String(repeating: "é", count: 100))
        XCTAssertLessThanOrEqual(payload.count, 125)
        XCTAssertTrue(UTF8Validator.isValid(payload[2...]))
        XCTAssertEqual(Array(payload.prefix(2)), [0x03, 0xE8])
    }

    func testOpcodeAndCloseCodeTypes() {
        XCTAssertNil(Opcode(rawValue: 3))
        XCTAssertTrue(Opcode.ping.isControl)
        XCTAssertFalse(Opcode.binary.isControl)
        XCTAssertFalse(CloseCode(1005).isValidOnWire)
        XCTAssertTrue(CloseCode(4000).isValidOnWire)
    }

    func testBase64() {
        XCTAssertEqual(Base64.encode(Array("foobar".utf8)), "Zm9vYmFy")
        XCTAssertEqual(Base64.encode(Array("fo".utf8)), "Zm8=")
        XCTAssertEqual(Base64.decode("Zm8="), Array("fo".utf8))
        XCTAssertNil(Base64.decode("Zm9=") == nil ? nil : Base64.decode("Zm9="), "non-canonical padding bits")
        XCTAssertNil(Base64.decode("Zm8"))
        XCTAssertNil(Base64.decode("Zm 8="))
        XCTAssertEqual(Base64.decode("Zm8", urlSafe: true), Array("fo".utf8))
    }
}
