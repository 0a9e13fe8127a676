import Foundation
@testable import Hub
import WebSocket
import XCTest

/// Every case of the message catalogue encodes to JSON that its schema in `Protocol/schemas/server`
/// accepts: a drift between the code and the published protocol fails here, not only in pytest.
final class ServerMessageTests: XCTestCase {
    static let schemas = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Protocol/schemas/server").standardized

    func schema(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: Self.schemas.appendingPathComponent(name + ".json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    let member = Array(##"{"id":"m1","name":"Ann","color":"#e6194b","role":"host","connections":1}"##.utf8)
    /// A real run's summary and state (a run that started and ran a step).
    let run: Run = {
        var r = Run(id: "r1")
        var started = RunEvent(kind: .started); started.owner = "o"; started.name = "n"
        var step = RunEvent(kind: .stepStarted); step.step = "build"
        r.apply(started, seq: 1, ts: 10)
        r.apply(step, seq: 2, ts: 11)
        return r
    }()
    var summary: [UInt8] { run.summaryJSON }

    /// One sample of every case, with the schema it must satisfy.
    var samples: [(ServerMessage, String)] {
        let from = Array(##"{"id":"m1","name":"Ann","color":"#e6194b"}"##.utf8)
        let chat = EventBody.chat(id: "c1", from: from, message: Array(#""kind":"text","text":"hi""#.utf8))
        return [
            (.durable(type: "chat", seq: 1, ts: 5, body: chat), "chat"),
            (.durable(type: "chat", seq: 2, ts: 5, body: EventBody.system(text: "Session ended: x", event: "session_ended")),
             "chat"),
            (.durable(type: "chat", seq: 1, ts: 5,
                      body: EventBody.tombstone(of: try? JSONReader.readObject(Array("{".utf8) + chat + Array("}".utf8)))),
             "chat"),
            (.durable(type: "chat", seq: 1, ts: 5,
                      body: EventBody.deletedTombstone(
                        of: try? JSONReader.readObject(Array("{".utf8) + chat + Array("}".utf8)), by: .host)),
             "chat"),
            (.durable(type: "chat_edit", seq: 6, ts: 5, body: EventBody.editTombstone(
                EventBody.chatChange(.edit, id: "e1", from: from, target: 1, text: "new"), .deleted)!), "chat_edit"),
            (.durable(type: "chat_edit", seq: 6, ts: 5, body: EventBody.chatChange(.edit, id: "e1", from: from, target: 1,
                                                                                   text: "new")), "chat_edit"),
            (.durable(type: "chat_edit", seq: 6, ts: 5, body: EventBody.editTombstone(
                EventBody.chatChange(.edit, id: "e1", from: from, target: 1, text: "new"))!), "chat_edit"),
            (.durable(type: "chat_delete", seq: 7, ts: 5, body: EventBody.chatChange(.delete, id: "d1", from: from,
                                                                                     target: 1, text: nil)), "chat_delete"),
            (.durable(type: "redact", seq: 8, ts: 5, body: EventBody.chatChange(.redact, id: "r1", from: from, target: 1,
                                                                                text: "secret")), "redact"),
            (.durable(type: "redact", seq: 9, ts: 5, body: EventBody.chatChange(.redact, id: "r2", from: from, target: 1,
                                                                                text: nil)), "redact"),
            (.durable(type: "presence", seq: 3, ts: 5, body: EventBody.presence(joins: [member], leaves: [("m2", "left", "Bob")])),
             "presence"),
            (.durable(type: "event", seq: 4, ts: 5, body: EventBody.event(name: "x.y", from: "m1", id: "e1",
                                                                          data: Array("{}".utf8))), "event"),
            (.durable(type: "run", seq: 5, ts: 5, body: EventBody.run(event: "started", summary: summary)), "run"),
            (.durable(type: "run_event", seq: 1, ts: 5, body: { var e = RunEvent(kind: .started); e.owner = "o"
                return e.body(run: "r1") }()), "run_event"),
            (.ack(id: "c1", seq: 1, ts: 5, duplicate: false), "ack"),
            (.ack(id: "c1", seq: 1, ts: 5, duplicate: true), "ack"),
            (.runAck(run: "r1", id: "p1", seqs: [1, 2]), "run_ack"),
            (.error(code: "forbidden", message: "no", ref: "c1", field: "kind"), "error"),
            (.error(MessageError("bad_json", "not JSON")), "error"),
            (.joined(session: "ABCDEF", title: "T", you: member, members: [member], seq: 7), "joined"),
            (.joined(session: "ABCDEF", title: "T", you: member, members: [member], seq: 7,
                     recovered: Recovered(from: 3, to: 7, count: 5), resumeSecret: Admission.newResumeSecret()), "joined"),
            (.reset(reason: "history_truncated", message: "reload", seq: 9), "reset"),
            (.pong(id: nil), "pong"), (.pong(id: "p"), "pong"),
            (.tokenRefreshed(exp: 100), "token_refreshed"), (.tokenExpiring(exp: 100), "token_expiring"),
            (.typing(member: "m1", state: .start), "typing"), (.typing(member: "m1", state: .stop), "typing"),
            (.presenceUpdates([member]), "presence"),
            (.presenceUnstored(joins: [member], leaves: ["m2"]), "presence"),
            (.event(body: EventBody.event(name: "x", from: "m1", id: nil, data: Array(#"{"a":1}"#.utf8))), "event"),
            (.runUpdate(body: EventBody.run(event: "progress", summary: summary)), "run"),
            (.cursors([Array(#"{"id":"m1","x":1,"y":2}"#.utf8)]), "cursors"),
            (.replayedCursors(ts: 5, updates: Array(#"[{"id":"m1","x":1,"y":2}]"#.utf8)), "cursors"),
            (.sessionEnded(reason: "ended by host"), "session_ended"),
            (.runControlSent(run: "r1", action: .pause, id: "x"), "run_control_sent"),
            (.control(run: "r1", action: .cancel, session: "ABCDEF", by: (id: "m1", name: "Ann")), "control"),
            (.subscribed(channel: "run:r1", seq: 3), "subscribed"),
            (.runSnapshot(channel: "run:r1", seq: 3, run: run.stateJSON), "run_snapshot"),
            (.runStatus(run: summary), "run_status"), (.runProgress(run: summary), "run_progress"),
            (.dashboard(owner: "o", runs: Array("[\(String(decoding: summary, as: UTF8.self))]".utf8)), "dashboard"),
            (.replayStarted(from: 1, to: 9, count: 9, speed: 2, durationMillis: 100), "replay_started"),
            (.replayState(.paused, seq: 4, speed: 1), "replay_state"),
            (.replayFinished, "replay_finished"),
        ]
    }

    func testEveryMessageMatchesItsSchema() throws {
        var covered = Set<String>()
        for (message, name) in samples {
            let json = message.json
            let value = try SchemaCheck.parse(json)
            let problems = SchemaCheck.problems(value, try schema(name), path: "$")
            XCTAssertEqual(problems, [], "\(name): \(String(decoding: json, as: UTF8.self))")
            covered.insert(name)
        }
        // Every schema in the protocol has at least one message that produces it.
        let all = try FileManager.default.contentsOfDirectory(atPath: Self.schemas.path)
            .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }
        XCTAssertEqual(Set(all).subtracting(covered), [], "schemas no catalogue case produces")
    }

    func testTheCheckerRejectsWhatTheSchemasForbid() throws {
        let ack = try schema("ack")
        func check(_ json: String, _ s: [String: Any]) throws -> [String] {
            SchemaCheck.problems(try SchemaCheck.parse(Array(json.utf8)), s, path: "$")
        }
        XCTAssertEqual(try check(#"{"type":"ack","id":"x","seq":1,"ts":1}"#, ack), [])
        XCTAssertFalse(try check(#"{"type":"ack","id":"x","seq":1}"#, ack).isEmpty, "ts missing")
        XCTAssertFalse(try check(#"{"type":"ack","id":"x","seq":1,"ts":1,"extra":1}"#, ack).isEmpty)
        XCTAssertFalse(try check(#"{"type":"nack","id":"x","seq":1,"ts":1}"#, ack).isEmpty)
        XCTAssertFalse(try check(#"{"type":"ack","id":"x","seq":1.5,"ts":1}"#, ack).isEmpty, "not an integer")
        XCTAssertFalse(try check(#"{"type":"ack","id":"x","seq":true,"ts":1}"#, ack).isEmpty, "a boolean is no number")
        XCTAssertFalse(try check(#"{"type":"typing","member":"m","state":"maybe"}"#, try schema("typing")).isEmpty)
    }

    func testFramesCarryTheJSON() {
        let m = ServerMessage.pong(id: "a")
        let frame = m.frame
        XCTAssertEqual(Array(frame.bytes.dropFirst(2)), m.json)
        XCTAssertEqual(frame.bytes.first, 0x81, "FIN + text")
    }

    /// A durable event's frame is written straight into its chunk: the same bytes as `json` framed, for
    /// seqs and stamps of every length and sign, an empty body, and payloads past each header size.
    func testDurableFrameIsItsJSONFramed() {
        let bodies: [[UInt8]] = [
            [], Array(#""id":"c1","from":{"id":"m1"},"message":"hi""#.utf8),
            Array(repeating: UInt8(ascii: "a"), count: 60), Array(repeating: UInt8(ascii: "b"), count: 200),
            Array(repeating: UInt8(ascii: "c"), count: 70_000),
        ]
        for body in bodies {
            for (seq, ts) in [(0, 0), (1, 1_700_000_000_123), (-7, -1), (Int.max, Int64.min), (Int.min, Int64.max)] {
                for type in ["chat", "", "run_event"] {
                    let m = ServerMessage.durable(type: type, seq: seq, ts: ts, body: body)
                    let direct = m.frame, viaJSON = Chunk.text(m.json)
                    withExtendedLifetime((direct, viaJSON)) {
                        XCTAssertEqual(
                            Array(direct.bytes), Array(viaJSON.bytes), "\(type) \(seq) \(ts) \(body.count)")
                    }
                }
            }
        }
    }

    /// An ack is written without the generic writer: its bytes, escaping of the client's id included.
    func testAckBytes() {
        func text(_ m: ServerMessage) -> String { String(decoding: m.json, as: UTF8.self) }
        XCTAssertEqual(
            text(.ack(id: "c1", seq: 12, ts: 1_700_000_000_123, duplicate: false)),
            #"{"type":"ack","id":"c1","seq":12,"ts":1700000000123}"#)
        XCTAssertEqual(
            text(.ack(id: "q\"b\\\n\u{1}", seq: 0, ts: 5, duplicate: true)),
            #"{"type":"ack","id":"q\"b\\\n\u0001","seq":0,"ts":5,"duplicate":true}"#)
        XCTAssertEqual(text(.ack(id: "", seq: 1, ts: 2, duplicate: false)), #"{"type":"ack","id":"","seq":1,"ts":2}"#)
        let odd = ServerMessage.ack(id: "\u{7f}é", seq: 3, ts: 4, duplicate: false)
        XCTAssertNoThrow(try JSONReader.readObject(odd.json))
    }
}

/// The part of JSON Schema (2020-12) the protocol's schemas use: type, const, enum, properties,
/// required, additionalProperties, items, minimum, maxLength, pattern, oneOf/anyOf. Values are read
/// with the hub's own JSON reader, which keeps numbers, booleans and strings apart.
enum SchemaCheck {
    /// A whole message as one value (an object, checked by the reader first).
    static func parse(_ json: [UInt8]) throws -> JSONValue {
        _ = try JSONReader.readObject(json)
        return JSONValue(kind: .object, bytes: json[...])
    }

    static func problems(_ v: JSONValue, _ s: [String: Any], path: String) -> [String] {
        var out: [String] = []
        if let c = s["const"], !equal(v, c) { out.append("\(path): not \(c)") }
        if let e = s["enum"] as? [Any], !e.contains(where: { equal(v, $0) }) { out.append("\(path): not one of \(e)") }
        if let t = s["type"], !matches(v, t) { out.append("\(path): not \(t)") }
        for key in ["oneOf", "anyOf"] {
            if let options = s[key] as? [[String: Any]] {
                let ok = options.filter { problems(v, $0, path: path).isEmpty }.count
                if key == "oneOf" ? ok != 1 : ok == 0 { out.append("\(path): \(key) matched \(ok)") }
            }
        }
        if v.kind == .number, let d = v.double, let min = (s["minimum"] as? NSNumber)?.doubleValue, d < min {
            out.append("\(path): below \(min)")
        }
        if let str = v.string {
            if let max = s["maxLength"] as? Int, str.count > max { out.append("\(path): longer than \(max)") }
            if let p = s["pattern"] as? String, str.range(of: p, options: .regularExpression) == nil {
                out.append("\(path): does not match \(p)")
            }
        }
        if let obj = v.object {
            let props = s["properties"] as? [String: [String: Any]] ?? [:]
            let keys = Set(obj.members.map(\.key))
            for r in s["required"] as? [String] ?? [] where !keys.contains(r) { out.append("\(path): \(r) missing") }
            for (k, value) in obj.members {
                if let ps = props[k] {
                    out += problems(value, ps, path: "\(path).\(k)")
                } else if let extra = s["additionalProperties"] as? Bool, !extra {
                    out.append("\(path): \(k) not allowed")
                } else if let extra = s["additionalProperties"] as? [String: Any] {
                    out += problems(value, extra, path: "\(path).\(k)")
                }
            }
        }
        if let arr = v.array, let items = s["items"] as? [String: Any] {
            for (i, e) in arr.enumerated() { out += problems(e, items, path: "\(path)[\(i)]") }
        }
        return out
    }

    static func matches(_ v: JSONValue, _ t: Any) -> Bool {
        if let ts = t as? [String] { return ts.contains { matches(v, $0) } }
        switch t as? String {
        case "object": return v.kind == .object
        case "array": return v.kind == .array
        case "string": return v.kind == .string
        case "boolean": return v.kind == .bool
        case "integer": return v.kind == .number && v.int != nil && !v.bytes.contains(UInt8(ascii: "."))
        case "number": return v.kind == .number
        case "null": return v.kind == .null
        default: return true
        }
    }

    static func equal(_ v: JSONValue, _ c: Any) -> Bool {
        if let s = c as? String { return v.string == s }
        if let b = c as? Bool, v.kind == .bool { return v.bool == b }
        if let n = c as? NSNumber { return v.double == n.doubleValue }
        return false
    }
}
