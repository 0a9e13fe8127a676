@testable import Hub
import TestSupport
import WebSocket
import XCTest

/// The run board without a server: publishing (checked, idempotent, all or nothing), watchers with
/// resume, dashboards under the fan-out policy, run control, and runs attached to sessions.
final class RunBoardTests: XCTestCase {
    final class Host: CountingMetrics, RunHost {
        var changes: [(String, String, Bool)] = []
        var gaps: [(String, Int)] = []
        var metrics: HubMetrics { self }
        func runGap(_ run: String, after: Int) { gaps.append((run, after)) }
        func runChanged(session: String, run: String, summary: [UInt8], event: String, durable: Bool) {
            changes.append((session, event, durable))
        }
    }

    let store = MemoryStorage()
    let executor = ManualExecutor()
    let host = Host()
    lazy var board = RunBoard(history: [], store: store, executor: executor, policy: SessionPolicy(), host: host,
                              wallClockMillis: { 1000 })

    func ev(_ json: String) -> RunEvent { try! RunEvent.parse(try! JSONReader.readObject(Array(json.utf8))) }

    @discardableResult
    func publish(_ run: String, _ events: [String]) -> Result<[(seq: Int, duplicate: Bool)], RunBoard.Rejection> {
        var out: Result<[(seq: Int, duplicate: Bool)], RunBoard.Rejection>?
        board.publish(run, events.map(ev)) { out = $0 }
        executor.runAll()
        return out!
    }

    func testEventsAreCheckedStoredInOrderAndIdempotent() throws {
        let first = try publish("r1", [#"{"type":"started","owner":"ci","id":"e1"}"#,
                                       #"{"type":"step_started","step":"build","id":"e2"}"#]).get()
        XCTAssertEqual(first.map(\.seq), [1, 2])
        let again = try publish("r1", [#"{"type":"step_started","step":"build","id":"e2"}"#]).get()
        XCTAssertEqual(again.map(\.seq), [2])
        XCTAssertTrue(again[0].duplicate, "a retried event gets its original seq")
        guard case .failure(let r) = publish("r1", [#"{"type":"started","owner":"ci"}"#]) else {
            return XCTFail("a second start was stored")
        }
        XCTAssertEqual(r.code, "illegal_transition")
        XCTAssertEqual(try store.lastSeq(session: "run:r1"), 2, "nothing of a refused batch is stored")
        store.failing = true
        guard case .failure(let down) = publish("r1", [#"{"type":"log","line":"x"}"#]) else { return XCTFail() }
        XCTAssertEqual(down.code, "storage_unavailable")
        store.failing = false
        XCTAssertEqual(try publish("r1", [#"{"type":"log","line":"x"}"#]).get().map(\.seq), [3],
                       "the projection starts again from what is committed")
    }

    func testWatchersGetSnapshotsOrResumeAndEveryEventInOrder() throws {
        let early = FakeClient("early")
        XCTAssertNil(board.subscribe(early, .run("r1"), resumeFrom: nil))
        XCTAssertEqual(early.of("run_snapshot").count, 1)
        publish("r1", [#"{"type":"started","owner":"ci"}"#, #"{"type":"log","line":"a"}"#, #"{"type":"log","line":"b"}"#])
        XCTAssertEqual(early.of("run_event").compactMap { $0["seq"] as? Int }, [1, 2, 3])
        let late = FakeClient("late")
        XCTAssertNil(board.subscribe(late, .run("r1"), resumeFrom: 1))
        XCTAssertEqual(late.of("run_event").compactMap { $0["seq"] as? Int }, [2, 3], "resumed from the window")
        XCTAssertEqual(late.of("subscribed").first?["seq"] as? Int, 3)
        board.unsubscribe(early, channel: "run:r1")
        publish("r1", [#"{"type":"log","line":"c"}"#])
        XCTAssertEqual(early.of("run_event").count, 3, "nothing after unsubscribing")
        XCTAssertEqual(late.of("run_event").count, 3)
        XCTAssertEqual(board.trackedChannels, 1)
        board.closed(late)
        XCTAssertEqual(board.trackedChannels, 0, "channels go with their last watcher")
    }

    func testDashboardsCoalesceProgressForASlowWatcherButNotStatusChanges() {
        let d = FakeClient("dash")
        XCTAssertNil(board.subscribe(d, .dashboard("ci"), resumeFrom: nil))
        publish("r1", [#"{"type":"started","owner":"ci"}"#])
        XCTAssertEqual(d.of("run_status").count, 1)
        d.queuedBytes = SessionPolicy().softOutputLimit + 1
        publish("r1", [#"{"type":"progress","percent":10}"#, #"{"type":"progress","percent":20}"#])
        XCTAssertEqual(d.of("run_progress").count, 0, "held back while behind")
        XCTAssertEqual(host.dropped, 2)
        d.drain()
        XCTAssertEqual(d.of("run_progress").count, 1, "only the latest")
        d.queuedBytes = SessionPolicy().softOutputLimit + 1
        publish("r1", [#"{"type":"progress","percent":30}"#, #"{"type":"completed","outcome":"succeeded"}"#])
        XCTAssertEqual(d.of("run_status").count, 2, "status changes always go")
        d.drain()
        XCTAssertEqual(d.of("run_progress").count, 1, "the held progress was overtaken by the status change")
    }

    func testControlGoesToThePublisherOfARunAttachedToTheSession() throws {
        publish("r1", [#"{"type":"started","owner":"ci","session":"ABCDEFGH"}"#])
        XCTAssertEqual(host.changes.map(\.1), ["started"])
        XCTAssertEqual(board.control("r1", action: .pause, session: "ABCDEFGH", by: ("m1", "Ann"))?.code, "no_publisher")
        let publisher = FakeClient("ci")
        board.publisherSeen(publisher, run: "r1")
        XCTAssertNil(board.control("r1", action: .pause, session: "ABCDEFGH", by: ("m1", "Ann")))
        XCTAssertEqual(publisher.of("control").first?["action"] as? String, "pause")
        XCTAssertEqual(board.control("r1", action: .pause, session: "ZZZZZZZZ", by: ("m1", "Ann"))?.code, "forbidden")
        XCTAssertEqual(board.control("r1", action: .resume, session: "ABCDEFGH", by: ("m1", "Ann"))?.code,
                       "illegal_transition")
        board.publisherClosed(publisher)
        XCTAssertEqual(board.trackedPublishers, 0)
        publish("r1", [#"{"type":"progress","percent":5}"#])
        XCTAssertEqual(host.changes.last.map { [$0.1, $0.2 ? "durable" : "ephemeral"] }, ["progress", "ephemeral"])
    }

    func testRunsAreRebuiltFromTheirStoredEvents() throws {
        publish("r1", [#"{"type":"started","owner":"ci","id":"s"}"#, #"{"type":"step_started","step":"a"}"#])
        let again = RunBoard(history: try store.streams(prefix: "run:"), store: store, executor: executor,
                             policy: SessionPolicy(), host: host, wallClockMillis: { 2000 })
        XCTAssertEqual(again.committed["r1"]?.seq, 2)
        XCTAssertEqual(again.committed["r1"]?.steps.map(\.name), ["a"])
        var out: Result<[(seq: Int, duplicate: Bool)], RunBoard.Rejection>?
        again.publish("r1", [ev(#"{"type":"started","owner":"ci","id":"s"}"#)]) { out = $0 }
        executor.runAll()
        XCTAssertEqual(try out?.get().first?.duplicate, true, "ids are remembered across a restart")
    }

    // MARK: Cluster: events heard from the shared log

    func stored(_ seq: Int, _ json: String, run: String = "c1") -> StoredEvent {
        StoredEvent(seq: seq, ts: Int64(1000 + seq), type: "run_event", body: ev(json).body(run: run))
    }

    func testHeardEventsApplyOnceInSeqOrderAndAGapAsksTheHost() {
        let w = FakeClient("w")
        XCTAssertNil(board.subscribe(w, .run("c1"), resumeFrom: nil))
        board.heard("c1", stored(1, #"{"type":"started","owner":"team","session":"ABCDEFGH"}"#), own: false)
        board.heard("c1", stored(3, #"{"type":"log","line":"b"}"#), own: false)
        XCTAssertEqual(host.gaps.map(\.1), [1], "an event past a gap asks for what follows seq 1")
        XCTAssertTrue(board.hasGap("c1"))
        board.heard("c1", stored(2, #"{"type":"log","line":"a"}"#), own: false)
        board.heard("c1", stored(2, #"{"type":"log","line":"a"}"#), own: true)
        XCTAssertFalse(board.hasGap("c1"))
        XCTAssertEqual(w.of("run_event").map { $0["seq"] as? Int }, [1, 2, 3], "each once, in order")
        XCTAssertEqual(board.committed["c1"]?.logCount, 2)
        XCTAssertEqual(board.list(owner: "team", status: .running).map(\.id), ["c1"])
        XCTAssertTrue(host.changes.isEmpty, "only the node that appended writes to the run's session")
        board.heard("c1", stored(4, #"{"type":"progress","percent":5}"#), own: true)
        XCTAssertEqual(host.changes.map(\.1), ["progress"])
    }

    func testALostLogNumbersOnAndWatchersGetASnapshot() {
        board.heard("c2", stored(1, #"{"type":"started","owner":"o"}"#, run: "c2"), own: false)
        board.heard("c2", stored(2, #"{"type":"step_started","step":"s"}"#, run: "c2"), own: false)
        let w = FakeClient("w")
        XCTAssertNil(board.subscribe(w, .run("c2"), resumeFrom: nil))
        board.lost("c2", lastSeq: 2)
        XCTAssertEqual(w.of("run_snapshot").count, 1, "numbering goes on: nothing to tell")
        board.lost("c2", lastSeq: 1)
        let snap = w.of("run_snapshot").last
        XCTAssertEqual(snap?["seq"] as? Int, 1, "another numbering: the watcher gets the state again")
        XCTAssertEqual((snap?["run"] as? [String: Any])?["status"] as? String, "running")
        board.heard("c2", stored(2, #"{"type":"step_completed","step":"s"}"#, run: "c2"), own: false)
        XCTAssertEqual(w.of("run_event").last?["seq"] as? Int, 2)
        XCTAssertEqual(board.committed["c2"]?.seed, RunSeed(seq: 2, status: .running, owner: "o", running: []))
    }

    func testASeedCarriesTheRunningStepsInStartOrder() {
        for (i, e) in [#"{"type":"started","owner":"o"}"#, #"{"type":"step_started","step":"b"}"#,
                       #"{"type":"step_started","step":"a"}"#, #"{"type":"step_completed","step":"b"}"#,
                       #"{"type":"step_started","step":"c"}"#, #"{"type":"paused"}"#].enumerated() {
            board.heard("c3", stored(i + 1, e, run: "c3"), own: false)
        }
        XCTAssertEqual(board.committed["c3"]?.seed, RunSeed(seq: 6, status: .paused, owner: "o", running: ["a", "c"]))
    }

}
