import XCTest

@testable import Hub
import TestSupport

/// The parser's validation without errors (`skimValue`, used by the app event's one-pass scan) against the
/// throwing reader (`value`): the same texts accepted, with the same kind and end, under the same depth
/// limits. A text the skim refuses but the reader accepts would only send an event down the slow path; one
/// it accepts but the reader refuses would let an invalid event through: both fail here.
final class JSONSkimTests: XCTestCase {
    func testHandPickedValues() {
        let accepted = [
            "0", "-0", "1", "-12.5e+3", "1E9", "0.0", "123456789012345", #""""#, #""a\"b""#, #""\u00e9\n""#,
            "true", "false", "null", "[]", "{}", " [ 1 , \"x\" , {} ] ", #"{"t":1733550000123456,"p":"xxxx"}"#,
            #"{ "a" : [ true , null , { "b" : -1 } ] }"#, "[[[]]]", #"{"":""}"#,
        ]
        let refused = [
            "", " ", "-", "01x", "1.", "1e", "1e+", ".5", "+1", "tru", "nul", "falsey", #"""#, #""\x""#, #""\u12g4""#,
            "\"a\u{01}b\"", "[", "[1,]", "[,1]", "{,}", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, #"{a:1}"#, "]", "}",
            #"{"a":1"#, "[1 2]", #"{"a":1 "b":2}"#,
        ]
        for text in accepted { assertSame(Array(text.utf8), maxDepth: 16, text) }
        for text in refused { assertSame(Array(text.utf8), maxDepth: 16, text) }
        // Depth: the top-level value's members are depth 1's values, so `[[[]]]` needs 4.
        for depth in 1...5 { assertSame(Array("[[[]]]".utf8), maxDepth: depth, "depth \(depth)") }
    }

    /// Generated values, each also cut short and with one byte changed, under four depth limits.
    func testAgreementOverGeneratedValues() {
        var rng = SplitMix64(seed: 0x5EED_0038)
        for round in 0..<6000 {
            var text = ""
            generate(&text, &rng, depth: 0)
            var bytes = Array(text.utf8)
            let depth = [16, 1, 2, 3][Int(rng.next() % 4)]
            assertSame(bytes, maxDepth: depth, "round \(round)")
            guard !bytes.isEmpty else { continue }
            let at = Int(rng.next() % UInt64(bytes.count))
            assertSame(Array(bytes[..<at]), maxDepth: depth, "round \(round) cut at \(at)")
            let swaps: [UInt8] = [
                0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x20, 0x00, 0x2D, 0x30, 0x2E, 0x65, 0xFF,
            ]
            bytes[at] = swaps[Int(rng.next() % UInt64(swaps.count))]
            assertSame(bytes, maxDepth: depth, "round \(round) byte \(at)")
        }
    }

    private func generate(_ out: inout String, _ rng: inout SplitMix64, depth: Int) {
        let space = ["", " ", "\n", "\t ", "\r"]
        func ws() -> String { space[Int(rng.next() % UInt64(space.count))] }
        let pick = depth > 3 ? rng.next() % 5 : rng.next() % 7
        switch pick {
        case 0:
            let numbers = ["0", "-0", "7", "-42", "3.25", "1e5", "-2.5E-3", "1733550000123456", "0.5e+10", "10"]
            out += numbers[Int(rng.next() % UInt64(numbers.count))]
        case 1:
            let strings = [
                #""""#, #""x""#, #""load""#, #""\"q\"""#, #""a\\b""#, #""\u0041\u00e9""#, #""\/\b\f\n\r\t""#,
                #""éé""#, "\"" + String(repeating: "x", count: Int(rng.next() % 40)) + "\"",
            ]
            out += strings[Int(rng.next() % UInt64(strings.count))]
        case 2: out += ["true", "false", "null"][Int(rng.next() % 3)]
        case 3, 4:
            out += "[" + ws()
            for i in 0..<Int(rng.next() % 4) {
                if i > 0 { out += ws() + "," + ws() }
                generate(&out, &rng, depth: depth + 1)
            }
            out += ws() + "]"
        default:
            out += "{" + ws()
            for i in 0..<Int(rng.next() % 4) {
                if i > 0 { out += ws() + "," + ws() }
                out += ["\"t\"", "\"p\"", "\"\"", "\"k\\u0065y\""][Int(rng.next() % 4)] + ws() + ":" + ws()
                generate(&out, &rng, depth: depth + 1)
            }
            out += ws() + "}"
        }
    }

    /// `value(depth: 1)` and `skimValue(depth: 1)` from the text's start: both refuse, or both accept with
    /// the same kind and end.
    private func assertSame(_ bytes: [UInt8], maxDepth: Int, _ note: String) {
        let what = "\(String(decoding: bytes, as: UTF8.self)) (\(note), depth \(maxDepth))"
        bytes.withUnsafeBufferPointer { buffer in
            var full = JSONReader.Parser(buffer, 0..<buffer.count, maxDepth: maxDepth)
            var skim = full
            let a = try? full.value(depth: 1)
            let b = skim.skimValue(depth: 1)
            XCTAssertEqual(a, b, what)
            if a != nil, b != nil { XCTAssertEqual(full.pos, skim.pos, what) }
        }
    }
}
