@testable import Hub
import Foundation
import TestSupport
import WebSocket
import XCTest

/// An in-memory `EventStore` with the same contract as the SQLite one (seq assigned at commit, taken back
/// on failure, duplicates by client id), whose completions go through the executor.
final class MemoryStore: EventStore {
    var events: [String: [StoredEvent]] = [:]
    var ids: [String: Committed] = [:]
    var failing = false
    var now: Int64 = 1_000
    func append(_ event: DurableEvent, executor: Executor, done: @escaping (Result<Committed, StoreFailure>) -> Void) {
        if failing { executor.execute { done(.failure(StoreFailure("disk full"))) }; return }
        let key = "\(event.session)|\(event.member ?? "")|\(event.clientId ?? "")"
        if event.clientId != nil, let c = ids[key] {
            executor.execute { done(.success(Committed(seq: c.seq, ts: c.ts, duplicate: true))) }
            return
        }
        let seq = lastSeq(session: event.session) + 1
        now += 1
        events[event.session, default: []].append(StoredEvent(seq: seq, ts: now, type: event.type, body: event.body))
        let c = Committed(seq: seq, ts: now, duplicate: false)
        if event.clientId != nil { ids[key] = c }
        executor.execute { done(.success(c)) }
    }
    func tail(session: String, limit: Int) -> [StoredEvent] { Array((events[session] ?? []).suffix(limit)) }
    func lastSeq(session: String) -> Int { events[session]?.last?.seq ?? 0 }
    var cursorSamples: [(String, [[String: Any]])] = []
    func recordCursors(session: String, ts: Int64, updates: [UInt8]) {
        cursorSamples.append((session, try! JSONSerialization.jsonObject(with: Data(updates)) as! [[String: Any]]))
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
    var seqs: [Int] { received.compactMap { $0["seq"] as? Int }.filter { _ in true } }
    func durableSeqs() -> [Int] { received.filter { $0["type"] as? String != "joined" && $0["type"] as? String != "ack" }.compactMap { $0["seq"] as? Int } }
}

final class FakeHost: SessionHost, HubMetrics {
    var pending: [Session] = []
    var finished: [Session] = []
    var dropped = 0, slow = 0, committed = 0, failures = 0
    var metrics: HubMetrics { self }
    func cursorsPending(_ session: Session) { pending.append(session) }
    func sessionFinished(_ session: Session) { finished.append(session) }
    func droppedEphemeral() { dropped += 1 }
    func slowConsumer() { slow += 1 }
    func durableCommitted() { committed += 1 }
    func storeFailure() { failures += 1 }
    var activity: [(String, String?)] = []
    func record(_ action: String, session: Session, actor: Member?, target: String?, details: String?, address: String?) {
        activity.append((action, target))
    }
    var controlReply: MessageError?
    var controls: [(String, String)] = []
    func controlRun(_ run: String, action: String, session: Session, by: Member, reply: @escaping (MessageError?) -> Void) {
        controls.append((run, action)); reply(controlReply)
    }
}

/// A session with fakes around it and a clock the test moves.
final class Harness {
    let store = MemoryStore()
    let executor = ManualExecutor()
    let host = FakeHost()
    var now = 0.0
    let session: Session

    init(code: String = "ABCDEFGH", maxParticipants: Int = 10, policy: SessionPolicy = SessionPolicy()) {
        let info = SessionInfo(code: code, title: "T", maxParticipants: maxParticipants, guestPolicy: "allow", hostKey: "hk", createdAt: 0)
        var clockRef: (() -> Double)!
        let s = Session(info: info, policy: policy, store: store, executor: executor, host: nil,
                        clock: { clockRef() }, wallClockMillis: { 42 })
        session = s
        clockRef = { [unowned self] in self.now }
        s.host = host
    }

    @discardableResult
    func join(_ name: String, clientId: String? = nil, resumeFrom: Int? = nil, hostKey: String? = nil, commit: Bool = true) -> FakeClient {
        let c = FakeClient(name)
        session.join(c, ClientMessage.Join(session: nil, name: name, clientId: clientId, resumeFrom: resumeFrom, hostKey: hostKey))
        if commit { executor.runAll() }
        return c
    }

    /// Like the hub endpoint: a message that does not parse is answered with an error.
    func send(_ c: FakeClient, _ json: String, commit: Bool = true) {
        do {
            session.received(c, try ClientMessage.parse(Array(json.utf8)))
        } catch let e as MessageError {
            session.send(c, Wire.error(e.code, e.message, ref: e.ref, field: e.field))
        } catch {
            XCTFail("\(error)")
        }
        if commit { executor.runAll() }
    }
}
