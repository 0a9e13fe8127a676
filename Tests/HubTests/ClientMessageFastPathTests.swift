import XCTest

@testable import Hub
import TestSupport

/// An app event is read in one pass (`ClientMessage.scanEvent`) before the full path (`parseFully`); the
/// scan may only answer for an event the full path accepts, with the same event, and `parse` must give
/// what `parseFully` gives for every input, refusals included (2026-12-07).
final class ClientMessageFastPathTests: XCTestCase {
    /// The common events: the scan must take them (else the fast path is dead code and this would not show).
    func testPlainEventsAreScanned() throws {
        let plain = [
            #"{"type":"event","name":"load","data":{"t":1,"p":"xxxx"}}"#,
            #"{"type":"event","name":"a","data":{}}"#,
            #"{"type":"event","name":"cursor.move:x-1_Y"}"#,
            #" { "name" : "n" , "type" : "event" , "data" : null , "durable" : false } "#,
            #"{"type":"event","name":"save","durable":true,"id":"r1","data":{"a":[1,2,{"b":null}]}}"#,
            #"{"type":"event","name":"save","durable":true,"id":"r\u00e9\n","data":{}}"#,
            #"{"type":"event","name":"n","id":7,"extra":{"deep":[[[]]]}}"#,
            // The first member of each name counts, as in the full path's lookups.
            #"{"type":"event","name":"n","type":"chat","name":"","data":{},"data":5,"durable":false,"durable":7}"#,
            "{\"type\":\"event\",\"name\":\"" + String(repeating: "z", count: 64) + "\"}",
        ]
        for text in plain {
            let bytes = Array(text.utf8)
            XCTAssertNotNil(ClientMessage.scanEvent(bytes, limits: MessageLimits()), text)
            try assertSame(bytes, MessageLimits())
        }
    }

    /// What the scan leaves to the full path: refusals, other types, escapes it does not decode.
    /// The scan's one-load compares: each word is its string's bytes, and only that string matches (a
    /// look-alike, one byte off in each place, goes the string scan's way and the same answer comes out).
    func testTheScansWordsAreTheirStrings() throws {
        func word(_ text: String) -> UInt64 {
            var w: UInt64 = 0
            for (i, b) in text.utf8.enumerated() { w |= UInt64(b) << (8 * UInt64(i)) }
            return w
        }
        XCTAssertEqual(EventScanWords.type, word(#""type""#))
        XCTAssertEqual(EventScanWords.name, word(#""name""#))
        XCTAssertEqual(EventScanWords.data, word(#""data""#))
        XCTAssertEqual(EventScanWords.event, word(#""event""#))
        for key in [#""type""#, #""name""#, #""data""#] {
            XCTAssertTrue(EventScanWords.isCommonKey(word(key + ":xy")))
            for i in 0..<6 {
                for b: UInt8 in [0x00, 0x5C, 0x22, 0x61] where b != Array(key.utf8)[i] {
                    var bytes = Array(key.utf8)
                    bytes[i] = b
                    let text = String(decoding: bytes, as: UTF8.self)
                    XCTAssertFalse(EventScanWords.isCommonKey(word(text)), text)
                }
            }
        }
        let limits = MessageLimits()
        // The words near the end of the text (fewer than eight bytes left: the string scan reads them).
        for text in [
            #"{"name":"a","data":{},"type":"event"}"#, #"{"data":{},"name":"a","type":"event"}"#,
            #"{"name":"a","type":"event" }"#, #"{"type":"event","name":"a"}"#, #"{"type":"event\u0041"}"#,
            #"{"type":"events","name":"a"}"#, #"{"typ\u0065":"event","name":"a"}"#, #"{"type":"event"  ,"name":"b"}"#,
        ] {
            try assertSame(Array(text.utf8), limits, text)
        }
        XCTAssertNotNil(ClientMessage.scanEvent(Array(#"{"name":"a","data":{},"type":"event"}"#.utf8), limits: limits))
    }

    func testTheRestIsLeftToTheFullPath() throws {
        let left = [
            #"{"type":"event"}"#,  // no name
            #"{"type":"event","name":null}"#,
            #"{"type":"event","name":5}"#,
            #"{"type":"event","name":""}"#,
            #"{"type":"event","name":"a b"}"#,
            #"{"type":"event","name":"\u006coad"}"#,  // a valid name, written with an escape
            "{\"type\":\"event\",\"name\":\"" + String(repeating: "z", count: 65) + "\"}",
            #"{"type":"event","name":"é"}"#,
            #"{"type":"event","name":"n","data":[]}"#,
            #"{"type":"event","name":"n","data":"x"}"#,
            #"{"type":"event","name":"n","durable":1}"#,
            #"{"type":"event","name":"n","durable":true}"#,  // durable without an id
            #"{"type":"event","name":"n","durable":true,"id":3}"#,
            #"{"type":"ev\u0065nt","name":"n"}"#,
            #"{"\u0074ype":"event","name":"n"}"#,
            #"{"type":"event","n\u0061me":"x y","name":"n"}"#,
            #"{"type":"event","name":"n"} x"#,
            #"{"type":"event","name":"n",}"#,
            #"{"type":"event","name":"n""#,
            #"{"type":"Event","name":"n"}"#,
            #"{"type":"chat","text":"hi","id":"1"}"#,
            #"{"type":"cursor","x":1,"y":2}"#,
            #"{"name":"n","data":{}}"#,
            #"{}"#,
            #"[]"#,
            "",
        ]
        for text in left {
            let bytes = Array(text.utf8)
            XCTAssertNil(ClientMessage.scanEvent(bytes, limits: MessageLimits()), text)
            try assertSame(bytes, MessageLimits())
        }
    }

    /// The limits the scan reads: the event's size and the nesting depth.
    func testLimits() throws {
        var limits = MessageLimits()
        let text = Array(#"{"type":"event","name":"n","data":{"a":{"b":{}}}}"#.utf8)
        for depth in 0...5 {
            limits.maxJSONDepth = depth
            XCTAssertEqual(ClientMessage.scanEvent(text, limits: limits) != nil, depth >= 4, "depth \(depth)")
            try assertSame(text, limits)
        }
        limits = MessageLimits()
        for size in [text.count - 1, text.count, text.count + 1] {
            limits.maxEventBytes = size
            XCTAssertEqual(ClientMessage.scanEvent(text, limits: limits) != nil, size >= text.count)
            try assertSame(text, limits)
        }
    }

    /// Differential: many messages made of fragments the two paths must agree on, and every one with each
    /// of its bytes changed or cut off.
    func testAgreementOverGeneratedMessages() throws {
        var rng = SplitMix64(seed: 0x5EED_0030)
        let keys = [
            #""type""#, #""name""#, #""data""#, #""durable""#, #""id""#, #""x""#, #""\u0074ype""#, #""nam\u0065""#,
            #""""#,
        ]
        let values = [
            #""event""#, #""chat""#, #""ev\u0065nt""#, #""load""#, #""a.b:c-d_E9""#, #""a b""#, #""""#, #""\u006c""#,
            #""é""#, "{}", #"{"t":1,"p":"xx\"y"}"#, #"{"a":{"b":{"c":{}}}}"#, "[]", "[1,{\"a\":null}]", "null",
            "true", "false", "0", "-1.5e3", #""r\u00e9""#, #""r1""#, "tru", "01", "{", #""\x""#,
        ]
        var limits = MessageLimits()
        for round in 0..<4000 {
            var members: [String] = []
            if rng.next() % 4 != 0 { members.append(#""type":"event""#) }
            for _ in 0..<Int(rng.next() % 6) {
                let key = keys[Int(rng.next() % UInt64(keys.count))]
                let value = values[Int(rng.next() % UInt64(values.count))]
                let space = [" ", "", "\n", "\t"][Int(rng.next() % 4)]
                members.append(key + space + ":" + space + value)
            }
            members.shuffle(using: &rng)
            let text = "{" + members.joined(separator: ",") + "}"
            var bytes = Array(text.utf8)
            limits.maxJSONDepth = [16, 1, 2, 3][Int(rng.next() % 4)]
            limits.maxEventBytes = rng.next() % 8 == 0 ? bytes.count - 1 : 64 * 1024
            try assertSame(bytes, limits, "round \(round)")
            // One byte changed, or the text cut short.
            if !bytes.isEmpty {
                let at = Int(rng.next() % UInt64(bytes.count))
                let cut = Array(bytes[..<at])
                try assertSame(cut, limits, "round \(round) cut at \(at)")
                bytes[at] = [0x22, 0x5C, 0x7B, 0x7D, 0x2C, 0x3A, 0x20, 0x00, 0x41, 0xFF][Int(rng.next() % 10)]
                try assertSame(bytes, limits, "round \(round) byte \(at)")
            }
        }
    }

    /// `parse` against `parseFully`, and the scan's event (when it answers) against the full path's.
    private func assertSame(_ bytes: [UInt8], _ limits: MessageLimits, _ note: String = "") throws {
        let what = String(decoding: bytes, as: UTF8.self) + " " + note
        let full = Result { try ClientMessage.parseFully(bytes, limits: limits) }
        let fast = Result { try ClientMessage.parse(bytes, limits: limits) }
        switch (full, fast) {
        case (.failure(let a), .failure(let b)):
            XCTAssertEqual(a as? MessageError, b as? MessageError, what)
        case (.success(let a), .success(let b)):
            XCTAssertEqual(describe(a), describe(b), what)
        default:
            XCTFail("the paths disagree: \(full) / \(fast) for \(what)")
        }
        if let scanned = ClientMessage.scanEvent(bytes, limits: limits) {
            guard case .success(let a) = full, case .event = a else {
                return XCTFail("the scan took what the full path does not read as an event: \(what)")
            }
            XCTAssertEqual(describe(a), describe(scanned), what)
        }
    }

    private func describe(_ m: ClientMessage) -> String {
        if case .event(let e) = m {
            return "event \(e.name) \(Array(e.data)) \(e.durable) \(e.id ?? "nil")"
        }
        return "\(m)"
    }
}
