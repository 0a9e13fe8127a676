@testable import Hub
import XCTest

final class ProtocolParsingTests: XCTestCase {
    func error(_ json: String) -> MessageError? {
        do { _ = try ClientMessage.parse(Array(json.utf8)); return nil } catch let e as MessageError { return e } catch { return nil }
    }

    func testErrorsNameTheField() {
        XCTAssertEqual(error(#"{"type":"nope"}"#)?.code, "unknown_type")
        XCTAssertEqual(error(#"{"name":"x"}"#)?.field, "type")
        XCTAssertEqual(error(#"{"type":"join"}"#)?.field, "name")
        XCTAssertEqual(error(#"{"type":"join","name":5}"#)?.field, "name")
        XCTAssertEqual(error(#"{"type":"join","name":"a","resume_from":-1}"#)?.field, "resume_from")
        XCTAssertEqual(error(#"{"type":"chat","text":"hi"}"#)?.field, "id")
        XCTAssertEqual(error(#"{"type":"chat","id":"1","kind":"video"}"#)?.field, "kind")
        XCTAssertEqual(error(#"{"type":"chat","id":"1","kind":"file","file":{"name":"a","size":-1,"url":"/a"}}"#)?.field, "file.size")
        XCTAssertEqual(error(#"{"type":"cursor","x":"1","y":2}"#)?.field, "x")
        XCTAssertEqual(error(#"{"type":"typing","state":"maybe"}"#)?.field, "state")
        XCTAssertEqual(error(#"{"type":"event","name":"bad name!","data":{}}"#)?.field, "name")
        XCTAssertEqual(error(#"{"type":"event","name":"ok","data":[1]}"#)?.field, "data")
        XCTAssertEqual(error(#"{"type":"join","name":""#)?.code, "bad_json")
        XCTAssertEqual(error(#"[1,2]"#)?.code, "bad_json")
        let big = #"{"type":"chat","id":"1","text":""# + String(repeating: "a", count: 70_000) + #""}"#
        XCTAssertEqual(error(big)?.code, "too_large")
    }

    func testJSONReaderStrictness() {
        for bad in ["{", #"{"a":}"#, #"{"a":01}"#, #"{"a":1,}"#, #"{"a":"\x"}"#, "{\"a\":\"\u{01}\"}", #"{"a":tru}"#, #"{"a":1} x"#, #"{"a":.5}"#] {
            XCTAssertThrowsError(try JSONReader.readObject(Array(bad.utf8)), bad)
        }
        let deep = String(repeating: "{\"a\":", count: 40) + "1" + String(repeating: "}", count: 40)
        XCTAssertThrowsError(try JSONReader.readObject(Array(deep.utf8), maxDepth: 32))
        let o = try! JSONReader.readObject(Array(#"{"s":"a\"b\u00e9\ud83c\udf89","n":-1.5e3,"b":true,"z":null,"o":{"x":[1,{}]}}"#.utf8))
        XCTAssertEqual(o["s"]?.string, "a\"bé🎉")
        XCTAssertEqual(o["n"]?.double, -1500)
        XCTAssertEqual(o["b"]?.bool, true)
        XCTAssertEqual(o["z"]?.kind, .null)
        XCTAssertEqual(String(decoding: o["o"]!.bytes, as: UTF8.self), #"{"x":[1,{}]}"#)
    }

    func testJSONWriterEscapes() {
        var w = JSONWriter()
        w.beginObject(); w.field("t", "a\"b\\c\n\u{01}é"); w.endObject()
        let back = try! JSONSerialization.jsonObject(with: Data(w.bytes)) as! [String: String]
        XCTAssertEqual(back["t"], "a\"b\\c\n\u{01}é")
    }

    func testJSONWriterEscapesEveryControlCharacterAndCopiesPlainRuns() {
        var all = ""
        for v in 0..<0x80 { all.unicodeScalars.append(Unicode.Scalar(UInt8(v))) }
        all += "日本語 🎉 \u{7F}"
        var w = JSONWriter()
        w.beginObject(); w.field("s", all); w.field("plain", "no escapes at all"); w.field("empty", ""); w.endObject()
        let text = String(decoding: w.bytes, as: UTF8.self)
        XCTAssertTrue(text.contains(#"\u0000\u0001"#) && text.contains(#"\n"#) && text.contains(#"\u001f"#) && text.contains(##"!\"#"##) && text.contains(#"[\\]"#), text)
        let back = try! JSONSerialization.jsonObject(with: Data(w.bytes)) as! [String: String]
        XCTAssertEqual(back, ["s": all, "plain": "no escapes at all", "empty": ""])
    }

    func testMemberNamesCompareAsBytesAndEscapedNamesStillMatch() throws {
        let obj = try JSONReader.readObject(Array(#"{"t\u0079pe":"chat","id":"a","id":"b","é":1,"typ":2}"#.utf8))
        XCTAssertEqual(obj["type"]?.string, "chat", "an escaped name is decoded to compare")
        XCTAssertEqual(obj["id"]?.string, "a", "the first of a repeated name")
        XCTAssertEqual(obj["é"]?.int, 1)
        XCTAssertEqual(obj["typ"]?.int, 2)
        XCTAssertNil(obj["ty"])
        XCTAssertNil(obj["types"])
        XCTAssertEqual(obj.members.map(\.key), ["type", "id", "id", "é", "typ"])
        guard case .leave = try ClientMessage.parse(Array(#"{"t\u0079pe":"leave"}"#.utf8)) else { return XCTFail("not a leave") }
    }

    func testDecimalsWithoutStrings() {
        for v in [0, 7, -7, 10, 1_000_000_007, Int.max, Int.min, Int(Int64.max / 3)] {
            var bytes: [UInt8] = [1]
            bytes.appendDecimal(v)
            XCTAssertEqual(bytes, [1] + Array(String(v).utf8))
        }
        XCTAssertEqual(String(decoding: ServerMessage.durable(type: "chat", seq: 42, ts: -5, body: Array(#""x":1"#.utf8)).json, as: UTF8.self),
                       #"{"type":"chat","seq":42,"ts":-5,"x":1}"#)
    }

    func testSessionCodes() {
        for _ in 0..<200 {
            let c = SessionCode.generate()
            XCTAssertEqual(c.count, 8)
            XCTAssertFalse(c.contains { "01OIL".contains($0) })
        }
        XCTAssertEqual(SessionCode.normalize("abcd-efgh"), "ABCDEFGH")
        XCTAssertNil(SessionCode.normalize("ABC"))
        XCTAssertNil(SessionCode.normalize("ABCDEFG0"))
        XCTAssertEqual(SessionCode.owner(of: "ABCDEFGH", loops: 4), SessionCode.owner(of: "ABCDEFGH", loops: 4))
    }
}
