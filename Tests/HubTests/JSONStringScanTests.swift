import XCTest

@testable import Hub

/// A string is scanned eight bytes at a time and jumps to the first quote, backslash or control byte of the
/// word that holds one (2026-12-07). Every position in the word, after bytes that make the word test borrow
/// (0x00-0x01, 0x20-0x22, 0x5B-0x5D), is read the same as byte by byte.
final class JSONStringScanTests: XCTestCase {
    /// Fillers next to which a borrow in the word test can flag a byte that is not special.
    let fillers: [UInt8] = [0x41, 0x21, 0x23, 0x5B, 0x5D, 0x7F, 0xC3, 0xA9, 0x20, 0x01 + 0x60]

    func testEveryPositionOfTheFirstSpecialByte() throws {
        for length in 0..<20 {
            for filler in fillers {
                let body = [UInt8](repeating: filler, count: length)
                // The string ends: its value is the bytes before the quote, what follows is read too.
                let text = #"{"k":""# + String(decoding: body, as: UTF8.self) + #"","n":1}"#
                let obj = try JSONReader.readObject(Array(text.utf8))
                XCTAssertEqual(obj["k"]?.string, String(decoding: body, as: UTF8.self), "length \(length)")
                XCTAssertEqual(obj["n"]?.int, 1)
                // An escape at that position: decoded, and the scan goes on after it.
                let escaped = #"{"k":""# + String(decoding: body, as: UTF8.self) + #"\"x\\y","n":2}"#
                let e = try JSONReader.readObject(Array(escaped.utf8))
                XCTAssertEqual(e["k"]?.string, String(decoding: body, as: UTF8.self) + "\"x\\y")
                XCTAssertEqual(e["n"]?.int, 2)
                // A control byte at that position is refused where it is.
                var raw = Array(#"{"k":""#.utf8) + body + [0x1F] + Array(#"x"}"#.utf8)
                XCTAssertThrowsError(try JSONReader.readObject(raw)) { error in
                    XCTAssertEqual(
                        (error as? JSONError)?.message, "control character in string at offset \(6 + length)")
                }
                raw = Array(#"{"k":""#.utf8) + body
                XCTAssertThrowsError(try JSONReader.readObject(raw))
            }
        }
    }

    /// The word test against a byte-by-byte reading, over words with one or two special bytes among
    /// bytes that borrow.
    func testTheLowestFlagIsTheFirstSpecialByte() {
        let bytes: [UInt8] = [0x00, 0x01, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x41, 0x80, 0xFF]
        func special(_ b: UInt8) -> Bool { b < 0x20 || b == 0x22 || b == 0x5C }
        var checked = 0
        for a in bytes {
            for b in bytes {
                for i in 0..<8 {
                    for j in 0..<8 {
                        var word = [UInt8](repeating: 0x41, count: 8)
                        word[i] = a
                        word[j] = b
                        let w = word.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                        let found = JSONReader.Parser.specialBytes(w)
                        let first = word.firstIndex(where: special)
                        XCTAssertEqual(found == 0 ? nil : found.trailingZeroBitCount >> 3, first, "\(word)")
                        XCTAssertEqual(JSONReader.Parser.hasSpecialByte(w), first != nil)
                        checked += 1
                    }
                }
            }
        }
        XCTAssertEqual(checked, bytes.count * bytes.count * 64)
    }
}
