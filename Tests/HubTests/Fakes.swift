@testable import Hub
import Foundation
import TestSupport
import WebSocket
import XCTest

extension MemoryStorage {
    /// The cursor samples stored for playback, as JSON (every session).
    var cursorSamples: [(String, [[String: Any]])] {
        ((try? streams(prefix: "")) ?? []).flatMap { stream, _ in
            allCursorSamples(session: stream).map {
                (stream, try! JSONSerialization.jsonObject(with: Data($0.updates)) as! [[String: Any]])
            }
        }
    }
}

/// A connection that records the JSON messages it is sent.
final class FakeClient: HubClient {
    var queuedBytes = 0
    var isDisconnecting: Bool { closedWith != nil }
    var membership: Membership?
    var received: [[String: Any]] = []
    var closedWith: CloseCode?
    let name: String
    init(_ name: String) { self.name = name }

    func deliver(_ frame: Chunk) {
        guard closedWith == nil else { return }
        // Strip the (unmasked, server) frame header.
        var reader = MessageReader(role: .client)
        var bytes = Array(frame.bytes)
        _ = bytes.withUnsafeMutableBytes { reader.read($0) { event in
            if case .message(_, let p, _) = event {
                self.received.append(try! JSONSerialization.jsonObject(with: Data(p)) as! [String: Any])
            }
            return true
        } }
    }
    func disconnect(_ code: CloseCode, _ reason: String) { closedWith = code }
    var held: [String: Chunk] = [:]
    var address: String { "127.0.0.1" }
    func coalesce(_ frame: Chunk, key: String) { held[key] = frame }
    func uncoalesce(key: String) { held[key] = nil }
    /// The client caught up: what was held back is delivered.
    func drain() { queuedBytes = 0; let h = held; held = [:]; for f in h.values { deliver(f) } }

    func of(_ type: String) -> [[String: Any]] { received.filter { $0["type"] as? String == type } }
    func durableSeqs() -> [Int] { received.filter { $0["type"] as? String != "joined" && $0["type"] as? String != "ack" }.compactMap { $0["seq"] as? Int } }
}

final class FakeHost: SessionHost, HubMetrics {
    var pending: [Session] = []
    var finished: [Session] = []
    var dropped = 0, slow = 0, committed = 0, failures = 0
    var metrics: HubMetrics { self }
    func cursorsPending(_ session: Session) { pending.append(session) }
    var redactions: [Set<Int>] = []
    func redacted(_ session: Session, seqs: Set<Int>) { redactions.append(seqs) }
    var relayed = 0
    func relay(_ session: Session, traffic: Traffic, key: String?, frame: Chunk) { relayed += 1 }
    /// The store the session writes to (reads go to it, like the server's off-loop reads).
    var storage: MemoryStorage?
    var readsFail = false
    /// Reads are answered when the test runs `pendingReads` (off the loop, later), not at once.
    var pendingReads: [() -> Void] = []
    var reads = 0
    func readEvents(_ session: Session, after: Int, limit: Int, done: @escaping ([StoredEvent]?) -> Void) {
        reads += 1
        let events = readsFail ? nil : try? storage?.events(session: session.code, after: after, limit: limit)
        pendingReads.append { done(events) }
    }
    func readEvent(
        _ session: Session, seq: Int,
        done: @escaping (Result<(event: StoredEvent, member: String?)?, StoreFailure>) -> Void
    ) {
        let fail = readsFail
        let found = fail ? nil : try? storage?.event(session: session.code, seq: seq)
        pendingReads.append { done(fail ? .failure(StoreFailure("disk gone")) : .success(found ?? nil)) }
    }
    /// Answers the reads made so far (and those they make), like the loop receiving them.
    func answerReads() {
        while !pendingReads.isEmpty {
            let r = pendingReads
            pendingReads = []
            for read in r { read() }
        }
    }
    func sessionFinished(_ session: Session) { finished.append(session) }
    func behind(_ traffic: Traffic, coalesced: Bool) { dropped += 1 }
    func slowConsumer() { slow += 1 }
    func durableCommitted(latency: Double) { committed += 1 }
    func storeFailure() { failures += 1 }
    func resumed(_ outcome: ResumeOutcome) {}
    func refusedJoin(_ code: String, session: String, message: String, address: String) {}
    var activity: [(String, String?)] = []
    func record(_ action: String, session: Session, actor: Member?, target: String?, details: String?, address: String?) {
        activity.append((action, target))
    }
    var controlReply: MessageError?
    var controls: [(String, String)] = []
    func controlRun(_ run: String, action: RunControlAction, session: Session, by: Member, reply: @escaping (MessageError?) -> Void) {
        controls.append((run, action.rawValue)); reply(controlReply)
    }
}

/// A session with fakes around it and a clock the test moves.
final class Harness {
    let store = MemoryStorage()
    let executor = ManualExecutor()
    let host = FakeHost()
    var now = 0.0
    let session: Session

    init(code: String = "ABCDEFGH", maxParticipants: Int = 10, policy: SessionPolicy = SessionPolicy()) {
        let info = SessionInfo(code: code, title: "T", maxParticipants: maxParticipants, guestPolicy: .allow, hostKey: "hk", createdAt: 0)
        var clockRef: (() -> Double)!
        let history = try! SessionHistory.read(code, from: store, limit: policy.resumeWindow)
        let s = Session(info: info, history: history, policy: policy, store: store, executor: executor, host: nil,
                        clock: { clockRef() }, wallClockMillis: { 42 })
        session = s
        clockRef = { [unowned self] in self.now }
        s.host = host
        host.storage = store
    }

    /// What a guest sends with its client id: the harness's guests keep one secret per client id (a real
    /// client keeps the one its first `joined` brought), so the same client id is the same member.
    enum Secret { case kept, none, given(String) }
    static func secret(for clientId: String) -> String { "test-secret-for-" + clientId }

    @discardableResult
    func join(_ name: String, clientId: String? = nil, resumeFrom: Int? = nil, hostKey: String? = nil,
              secret: Secret = .kept, commit: Bool = true) -> FakeClient {
        let c = FakeClient(name)
        var join = ClientMessage.Join(session: nil, name: name, clientId: clientId, resumeFrom: resumeFrom, hostKey: hostKey)
        switch secret {
        case .kept: join.resumeSecret = clientId.map(Harness.secret(for:))
        case .none: break
        case .given(let s): join.resumeSecret = s
        }
        session.join(c, join)
        if commit { settle() }
        return c
    }

    /// Like the hub endpoint: a message that does not parse is answered with an error.
    func send(_ c: FakeClient, _ json: String, commit: Bool = true) {
        do {
            session.received(c, try ClientMessage.parse(Array(json.utf8)))
        } catch let e as MessageError {
            session.send(c, .error(e))
        } catch {
            XCTFail("\(error)")
        }
        if commit { settle() }
    }

    /// Commits and answers reads until nothing is pending.
    func settle() {
        for _ in 0..<100 {
            executor.runAll()
            host.answerReads()
        }
    }
}
