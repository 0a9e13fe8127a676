@testable import Hub
import XCTest

final class RunTests: XCTestCase {
    func ev(_ json: String) -> RunEvent { try! RunEvent.parse(try! JSONReader.readObject(Array(json.utf8))) }

    func drive(_ events: [String]) -> (Run, String?) {
        var run = Run(id: "r1")
        for (i, e) in events.enumerated() {
            let event = ev(e)
            if let problem = run.check(event) { return (run, problem) }
            run.apply(event, seq: i + 1, ts: Int64(1000 + i * 10))
        }
        return (run, nil)
    }

    func testLegalLifecycle() {
        let (run, problem) = drive([
            #"{"type":"started","owner":"ci","name":"build","session":"abcd-efgh"}"#,
            #"{"type":"step_started","step":"compile"}"#,
            #"{"type":"log","line":"ok"}"#,
            #"{"type":"progress","percent":50,"message":"half"}"#,
            #"{"type":"step_completed","step":"compile"}"#,
            #"{"type":"step_started","step":"test"}"#,
            #"{"type":"step_failed","step":"test","error":"1 failure"}"#,
            #"{"type":"step_started","step":"test"}"#,
            #"{"type":"step_completed","step":"test"}"#,
            #"{"type":"completed","outcome":"succeeded"}"#,
        ])
        XCTAssertNil(problem)
        XCTAssertEqual(run.status, .succeeded)
        XCTAssertEqual(run.session, "ABCDEFGH")
        XCTAssertEqual(run.steps.map(\.status), [.completed, .failed, .completed])
        XCTAssertEqual(run.steps[0].endedAt! - run.steps[0].startedAt, 30)
        XCTAssertEqual(run.logCount, 1)
        XCTAssertEqual(run.progress?.percent, 50)
        XCTAssertEqual(run.seq, 10)
    }

    func testIllegalTransitionsAreNamed() {
        let start = #"{"type":"started","owner":"ci"}"#
        let cases: [([String], String)] = [
            ([#"{"type":"step_started","step":"a"}"#], "has not started"),
            ([#"{"type":"log","line":"x"}"#], "has not started"),
            ([start, start], "already started"),
            ([start, #"{"type":"step_completed","step":"a"}"#], "step a completed but never started"),
            ([start, #"{"type":"step_failed","step":"a"}"#], "step a failed but never started"),
            ([start, #"{"type":"step_started","step":"a"}"#, #"{"type":"step_started","step":"a"}"#], "already running"),
            ([start, #"{"type":"step_started","step":"a"}"#, #"{"type":"completed","outcome":"succeeded"}"#], "still running"),
            ([start, #"{"type":"completed","outcome":"failed"}"#, #"{"type":"log","line":"late"}"#], "already completed (failed)"),
            ([start, #"{"type":"completed","outcome":"cancelled"}"#, #"{"type":"completed","outcome":"succeeded"}"#], "already completed"),
        ]
        for (events, expected) in cases {
            let (_, problem) = drive(events)
            XCTAssertNotNil(problem, "\(events)")
            XCTAssertTrue(problem?.contains(expected) ?? false, "\(problem ?? "nil") should mention \(expected)")
        }
        // Cancelling with a step running is legal: the step ends cancelled.
        let (run, p) = drive([start, #"{"type":"step_started","step":"a"}"#, #"{"type":"completed","outcome":"cancelled"}"#])
        XCTAssertNil(p)
        XCTAssertEqual(run.steps[0].status, .cancelled)
    }

    func testParseErrorsNameTheField() {
        func err(_ json: String) -> String? {
            do { _ = try RunEvent.parse(try JSONReader.readObject(Array(json.utf8))); return nil } catch let e as MessageError { return e.field } catch { return "?" }
        }
        XCTAssertEqual(err(#"{"type":"exploded"}"#), "type")
        XCTAssertEqual(err(#"{"type":"started"}"#), "owner")
        XCTAssertEqual(err(#"{"type":"step_started"}"#), "step")
        XCTAssertEqual(err(#"{"type":"completed","outcome":"meh"}"#), "outcome")
        XCTAssertEqual(err(#"{"type":"progress","percent":120}"#), "percent")
        XCTAssertEqual(err(#"{"type":"started","owner":"x","session":"0O1"}"#), "session")
    }

    func testStoredBodyRoundTrips() {
        let e = ev(#"{"type":"step_failed","step":"t","error":"boom","id":"e9"}"#)
        let back = RunEvent.fromStored(e.body(run: "r"))!
        XCTAssertEqual(back.kind, .stepFailed)
        XCTAssertEqual(back.error, "boom")
        XCTAssertEqual(back.id, "e9")
    }
}

final class RunPauseTests: XCTestCase {
    func testPauseAndResume() {
        var run = Run(id: "r")
        func step(_ json: String) -> String? {
            let e = try! RunEvent.parse(try! JSONReader.readObject(Array(json.utf8)))
            if let p = run.check(e) { return p }
            run.apply(e, seq: run.seq + 1, ts: 0)
            return nil
        }
        XCTAssertNotNil(step(#"{"type":"paused"}"#))
        XCTAssertNil(step(#"{"type":"started","owner":"o"}"#))
        XCTAssertNotNil(step(#"{"type":"resumed"}"#), "not paused")
        XCTAssertNil(step(#"{"type":"step_started","step":"a"}"#))
        XCTAssertNil(step(#"{"type":"paused","by":"Ann"}"#))
        XCTAssertEqual(run.status, .paused)
        XCTAssertEqual(step(#"{"type":"step_started","step":"b"}"#), "run r is paused; no step_started until it is resumed")
        XCTAssertNotNil(step(#"{"type":"paused"}"#))
        XCTAssertNil(step(#"{"type":"step_completed","step":"a"}"#), "work in flight may finish while paused")
        XCTAssertNil(step(#"{"type":"log","line":"x"}"#))
        XCTAssertNotNil(step(#"{"type":"completed","outcome":"succeeded"}"#))
        XCTAssertNil(step(#"{"type":"resumed"}"#))
        XCTAssertNil(step(#"{"type":"step_started","step":"b"}"#))
        XCTAssertNil(step(#"{"type":"paused"}"#))
        XCTAssertNil(step(#"{"type":"completed","outcome":"cancelled"}"#))
        XCTAssertEqual(run.status, .cancelled)
    }
}
