import XCTest

@testable import Hub

/// The JSON reader reads a raw buffer by offsets (2026-12-06). Every refusal keeps the text the reader
/// before it gave (these were taken from that reader); values, lookups and nested reads stay the same.
/// The fuzz target FuzzMessages compares the two readers on arbitrary bytes.
final class JSONReaderRefusalTests: XCTestCase {
    func testRefusalsKeepTheirTexts() {
        let cases: [(String, Int, String?)] = [
            ("", 32, "message must be a JSON object"),
            ("   ", 32, "message must be a JSON object"),
            ("[1]", 32, "message must be a JSON object"),
            ("{", 32, "expected a member name at offset 1"),
            ("{ ", 32, "expected a member name at offset 2"),
            ("{\"a\"", 32, "expected ':' at offset 4"),
            ("{\"a\":", 32, "unexpected end of JSON"),
            ("{\"a\":1", 32, "unterminated object"),
            ("{\"a\":1,}", 32, "expected a member name at offset 7"),
            ("{\"a\" 1}", 32, "expected ':' at offset 5"),
            ("{\"a\":1 \"b\":2}", 32, "expected ',' or '}' at offset 7"),
            ("{a:1}", 32, "expected a member name at offset 1"),
            ("{\"a\":tru}", 32, "invalid literal at offset 5"),
            ("{\"a\":nul}", 32, "invalid literal at offset 5"),
            ("{\"a\":falsy}", 32, "invalid literal at offset 5"),
            ("{\"a\":-}", 32, "invalid value at offset 5"),
            ("{\"a\":01}", 32, "expected ',' or '}' at offset 6"),
            ("{\"a\":1.}", 32, "invalid number at offset 5"),
            ("{\"a\":1e}", 32, "invalid number at offset 5"),
            ("{\"a\":1e+}", 32, "invalid number at offset 5"),
            ("{\"a\":.5}", 32, "invalid value at offset 5"),
            ("{\"a\":+1}", 32, "invalid value at offset 5"),
            ("{\"a\":\"x}", 32, "unterminated string"),
            ("{\"a\":\"x\\\"}", 32, "unterminated string"),
            ("{\"a\":\"\\q\"}", 32, "invalid escape at offset 6"),
            ("{\"a\":\"\\u12G4\"}", 32, "invalid \\u escape at offset 6"),
            ("{\"a\":\"\\u12\"}", 32, "invalid \\u escape at offset 6"),
            ("{\"a\":\"\u{01}\"}", 32, "control character in string at offset 6"),
            ("{\"a\":\"x\\", 32, "unterminated string"),
            ("{\"a\":[1,]}", 32, "invalid value at offset 8"),
            ("{\"a\":[1 2]}", 32, "expected ',' or ']' at offset 8"),
            ("{\"a\":[1", 32, "unterminated array"),
            ("{\"a\":[", 32, "unexpected end of JSON"),
            ("{\"a\":{}} x", 32, "unexpected bytes after the JSON value at offset 9"),
            ("{\"a\":{\"b\":{}}}", 2, "JSON nested deeper than 2"),
            ("{\"a\":[[1]]}", 2, "JSON nested deeper than 2"),
            ("{}", 0, "JSON nested deeper than 0"),
            ("{\"a\":1}}", 32, "unexpected bytes after the JSON value at offset 7"),
            ("{\"a\":\"é\",\"b\":-0.5e-3}", 32, nil),
            ("{\"a\":1,\"a\":2}", 32, nil),
            ("{\"a\":", 32, "unexpected end of JSON"),
            ("{\"\":1}", 32, nil),
        ]
        for (text, depth, expected) in cases {
            do {
                _ = try JSONReader.readObject(Array(text.utf8), maxDepth: depth)
                XCTAssertNil(expected, "accepted: \(text)")
            } catch let e as JSONError {
                XCTAssertEqual(e.message, expected, text)
            } catch {
                XCTFail("\(error)")
            }
        }
    }

    func testArrayRefusals() {
        for (text, expected) in [
            ("{}", "expected a JSON array"), ("[1,]", "invalid value at offset 3"), ("[1", "unterminated array"),
            ("[1] x", "unexpected bytes after the JSON value at offset 4"),
            ("[\"a\" 1]", "expected ',' or ']' at offset 5"),
        ] {
            XCTAssertThrowsError(try JSONReader.readArray(Array(text.utf8)), text) { e in
                XCTAssertEqual((e as? JSONError)?.message, expected, text)
            }
        }
        XCTAssertEqual(
            try JSONReader.readArray(Array(" [ 1 , \"b\" , {\"c\":[]} ] ".utf8)).map(\.kind),
            [.number, .string, .object])
    }

    func testNestedValuesAreReadInPlace() throws {
        let text = #"{"type":"chat","file":{"name":"a\u00e9.txt","size":12,"tags":["x",{"k":true}]},"n":null}"#
        let obj = try JSONReader.readObject(Array(text.utf8))
        let file = try XCTUnwrap(obj["file"]?.object)
        XCTAssertEqual(file["name"]?.string, "aé.txt")
        XCTAssertEqual(file["size"]?.int, 12)
        XCTAssertEqual(String(decoding: file["size"]!.bytes, as: UTF8.self), "12")
        let tags = try XCTUnwrap(file["tags"]?.array)
        XCTAssertEqual(tags.count, 2)
        XCTAssertEqual(tags[0].string, "x")
        XCTAssertEqual(tags[1].object?["k"]?.bool, true)
        XCTAssertEqual(obj["n"]?.kind, .null)
        XCTAssertNil(obj["missing"])
        XCTAssertEqual(obj.members.map(\.key), ["type", "file", "n"])
        // A member's bytes are its text in the input, white space outside it excluded.
        let spaced = try JSONReader.readObject(Array(#" { "a" : { "b" : [ 1 ] } , "c":"d" } "#.utf8))
        XCTAssertEqual(String(decoding: spaced["a"]!.bytes, as: UTF8.self), #"{ "b" : [ 1 ] }"#)
        XCTAssertEqual(spaced["a"]?.object?["b"]?.array?.first?.int, 1)
    }

    func testEscapedNamesAndEmptyInputs() throws {
        let obj = try JSONReader.readObject(Array(#"{"\u0074ype":"event","":1,"n\"":2}"#.utf8))
        XCTAssertEqual(obj["type"]?.string, "event")
        XCTAssertEqual(obj[""]?.int, 1)
        XCTAssertEqual(obj["n\""]?.int, 2)
        XCTAssertThrowsError(try JSONReader.readObject([]))
        XCTAssertThrowsError(try JSONReader.readArray([]))
        XCTAssertEqual(try JSONReader.readObject(Array("{}".utf8)).members.count, 0)
    }
}

/// App events are read apart from the other types (before any is tried): their refusals are the ones the
/// shared path gave.
final class EventParsingTests: XCTestCase {
    private func refusal(_ text: String) -> MessageError? {
        do {
            _ = try ClientMessage.parse(Array(text.utf8))
            return nil
        } catch { return error as? MessageError }
    }

    func testEventRefusals() {
        let cases: [(String, String, String, String?, String?)] = [
            (#"{"type":"event"}"#, "missing_field", #"event needs "name""#, "name", nil),
            (#"{"type":"event","name":null,"id":"r"}"#, "missing_field", #"event needs "name""#, "name", "r"),
            (#"{"type":"event","name":5}"#, "invalid_field", #""name" must be a string"#, "name", nil),
            (
                #"{"type":"event","name":"\#(String(repeating: "a", count: 65))"}"#, "too_large",
                #""name" is longer than 64 characters (256 bytes)"#, "name", nil
            ),
            (
                #"{"type":"event","name":"a b","id":"r"}"#, "invalid_field",
                #""name" must be 1-64 characters of a-z, 0-9, _ . : -"#, "name", "r"
            ),
            (
                #"{"type":"event","name":""}"#, "invalid_field",
                #""name" must be 1-64 characters of a-z, 0-9, _ . : -"#, "name", nil
            ),
            (#"{"type":"event","name":"n","data":[1]}"#, "invalid_field", #""data" must be an object"#, "data", nil),
            (
                #"{"type":"event","name":"n","durable":1}"#, "invalid_field", #""durable" must be a boolean"#,
                "durable", nil
            ),
            (
                #"{"type":"event","name":"n","durable":true}"#, "missing_field", #"a durable event needs an "id""#,
                "id", nil
            ),
            // The same refusals when "event" is written with an escape (the decoding path).
            (
                #"{"type":"\u0065vent","name":"a b"}"#, "invalid_field",
                #""name" must be 1-64 characters of a-z, 0-9, _ . : -"#, "name", nil
            ),
            (#"{"type":"\u0065vent"}"#, "missing_field", #"event needs "name""#, "name", nil),
        ]
        for (text, code, message, field, ref) in cases {
            let e = refusal(text)
            XCTAssertEqual(e?.code, code, text)
            XCTAssertEqual(e?.message, message, text)
            XCTAssertEqual(e?.field, field, text)
            XCTAssertEqual(e?.ref, ref, text)
        }
        var small = MessageLimits()
        small.maxEventBytes = 10
        XCTAssertThrowsError(
            try ClientMessage.parse(Array(#"{"type":"event","name":"n","id":"q"}"#.utf8), limits: small)
        ) {
            XCTAssertEqual($0 as? MessageError, MessageError("too_large", "event is larger than 10 bytes", ref: "q"))
        }
    }

    func testEventsReadTheSameEitherWay() throws {
        for type in [#""event""#, #""\u0065vent""#, #""ev\u0065nt""#] {
            let text = #"{"id":"e1","type":\#(type),"name":"doc.saved","data":{"k":[1,"x"]},"durable":true}"#
            guard case .event(let e) = try ClientMessage.parse(Array(text.utf8)) else { return XCTFail(type) }
            XCTAssertEqual(e.name, "doc.saved")
            XCTAssertEqual(String(decoding: e.data, as: UTF8.self), #"{"k":[1,"x"]}"#)
            XCTAssertTrue(e.durable)
            XCTAssertEqual(e.id, "e1")
        }
        guard case .event(let bare) = try ClientMessage.parse(Array(#"{"type":"event","name":"n","data":null}"#.utf8))
        else { return XCTFail() }
        XCTAssertEqual(String(decoding: bare.data, as: UTF8.self), "{}")
        XCTAssertFalse(bare.durable)
        XCTAssertNil(bare.id)
    }
}
