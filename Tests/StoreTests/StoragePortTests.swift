import Foundation
import Hub
@testable import Store
import TestSupport
import XCTest

/// The storage ports' contract, checked against every implementation: what Hub and Server rely on
/// holds for SQLite, for memory and, where `REDIS_URL` is set, for a cluster node's storage (Redis's
/// shared ports beside SQLite's, `RedisNodeStorage`).
final class StoragePortTests: XCTestCase {
    private var loops: [ThreadLoop] = []

    override func tearDown() {
        for l in loops { l.stop() }
        loops.removeAll()
    }

    /// Each backend with the executor its appends are made with (and answered on).
    func backends() throws -> [(String, Storage, Executor)] {
        var all: [(String, Storage, Executor)] = [
            ("sqlite", try SQLiteStore(directory: NSTemporaryDirectory() + "chub-\(UUID().uuidString)"), ManualExecutor()),
            ("memory", MemoryStorage(), ManualExecutor()),
        ]
        if let (redis, loop) = try RedisNodeStorage.open() {
            loops.append(loop)
            all.append(("redis", redis, loop))
        }
        return all
    }

    /// Calls `body` (on the loop, for a backend with one) and waits for the answer it is handed.
    func wait<T>(_ ex: Executor, _ body: @escaping (@escaping (T) -> Void) -> Void) -> T? {
        let lock = NSLock()
        var out: T?
        let answer: (T) -> Void = { v in lock.withLock { out = v } }
        if let loop = ex as? ThreadLoop { loop.execute { body(answer) } } else { body(answer) }
        for _ in 0..<5000 where lock.withLock({ out == nil }) {
            (ex as? ManualExecutor)?.runAll()
            usleep(1000)
        }
        return lock.withLock { out }
    }

    static func event(_ session: String, _ id: String?, member: String = "m1") -> DurableEvent {
        DurableEvent(session: session, type: "chat", member: member, clientId: id, body: Array("\"text\":\"hi\"".utf8))
    }

    func testAppendAssignsContiguousSeqsAndRecognisesResends() throws {
        for (name, s, ex) in try backends() {
            defer { s.close() }
            let seqs = (0..<5).compactMap { i in
                wait(ex) { s.append(Self.event("AAAAAA", "c\(i)"), executor: ex, done: $0) }.flatMap { try? $0.get().seq }
            }
            XCTAssertEqual(seqs, [1, 2, 3, 4, 5], name)
            let again = wait(ex) { s.append(Self.event("AAAAAA", "c2"), executor: ex, done: $0) }
            XCTAssertEqual(try again?.get(), Committed(seq: 3, ts: try again!.get().ts, duplicate: true), name)
            let other = wait(ex) { s.append(Self.event("AAAAAA", "c2", member: "m2"), executor: ex, done: $0) }
            XCTAssertEqual(try other?.get().seq, 6, "\(name): the same id from another member is new")
            XCTAssertEqual(try s.lastSeq(session: "AAAAAA"), 6, name)
            XCTAssertEqual(try s.tail(session: "AAAAAA", limit: 2).map(\.seq), [5, 6], name)
            XCTAssertEqual(try s.events(session: "AAAAAA", after: 4, limit: 10).map(\.seq), [5, 6], name)
            XCTAssertEqual(try s.lastSeq(session: "BBBBBB"), 0, name)
        }
    }

    func testPointReadsAndARedactionRewritesTheOriginalInTheSameCommit() throws {
        for (name, s, ex) in try backends() {
            defer { s.close() }
            _ = wait(ex) { s.append(Self.event("RRRRRR", "c1", member: "sub:ann"), executor: ex, done: $0) }
            let found = try s.event(session: "RRRRRR", seq: 1)
            XCTAssertEqual(found?.member, "sub:ann", name)
            XCTAssertEqual(found?.event.body, Array("\"text\":\"hi\"".utf8), name)
            XCTAssertNil(try s.event(session: "RRRRRR", seq: 2), name)
            var redact = DurableEvent(session: "RRRRRR", type: "redact", member: "host", clientId: "r1", body: [])
            redact.replaces = Replacement(seq: 1, type: "chat", ts: found!.event.ts, body: Array("\"redacted\":true".utf8))
            let c = wait(ex) { s.append(redact, executor: ex, done: $0) }
            XCTAssertEqual(try c?.get().seq, 2, name)
            XCTAssertEqual(try s.event(session: "RRRRRR", seq: 1)?.event.body, Array("\"redacted\":true".utf8), name)
            XCTAssertEqual(try s.events(session: "RRRRRR", after: 0, limit: 10).map(\.type), ["chat", "redact"], name)
        }
    }

    /// A deletion, like a redaction, rewrites the original and cuts its edits' text in its own commit;
    /// their tombstones say `deleted`.
    func testADeletionRewritesTheOriginalAndItsEditsInTheSameCommit() throws {
        for (name, s, ex) in try backends() {
            defer { s.close() }
            _ = wait(ex) { s.append(Self.event("DDDDDD", "c1", member: "sub:ann"), executor: ex, done: $0) }
            let edit = DurableEvent(
                session: "DDDDDD", type: "chat_edit", member: "sub:ann", clientId: "e1",
                body: EventBody.chatChange(.edit, id: "e1", from: Array("{}".utf8), target: 1, text: "hi again"))
            _ = wait(ex) { s.append(edit, executor: ex, done: $0) }
            let found = try s.event(session: "DDDDDD", seq: 1)
            var delete = DurableEvent(
                session: "DDDDDD", type: "chat_delete", member: "sub:ann", clientId: "d1",
                body: Array(#""id":"d1","target":1"#.utf8))
            let tomb = Array(#""kind":"text","deleted":true,"deleted_by":"author""#.utf8)
            delete.replaces = Replacement(seq: 1, type: "chat", ts: found!.event.ts, body: tomb, reason: .deleted)
            let c = wait(ex) { s.append(delete, executor: ex, done: $0) }
            XCTAssertEqual(try c?.get().seq, 3, name)
            XCTAssertEqual(try s.event(session: "DDDDDD", seq: 1)?.event.body, tomb, name)
            let cut = String(decoding: try XCTUnwrap(try s.event(session: "DDDDDD", seq: 2)).event.body, as: UTF8.self)
            XCTAssertEqual(cut, #""id":"e1","from":{},"target":1,"deleted":true"#, name)
            XCTAssertEqual(
                try s.events(session: "DDDDDD", after: 0, limit: 10).map(\.type), ["chat", "chat_edit", "chat_delete"],
                name)
        }
    }

    func testBatchesAreAllOrNothingAndConditional() throws {
        for (name, s, ex) in try backends() {
            defer { s.close() }
            let first = wait(ex) { s.appendBatch([Self.event("run:r", nil), Self.event("run:r", nil)], expectedLastSeq: 0,
                                                 executor: ex, done: $0) }
            XCTAssertEqual(try first?.get().map(\.seq), [1, 2], name)
            let stale = wait(ex) { s.appendBatch([Self.event("run:r", nil)], expectedLastSeq: 1, executor: ex, done: $0) }
            XCTAssertThrowsError(try stale?.get(), name)
            XCTAssertEqual(try s.lastSeq(session: "run:r"), 2, "\(name): nothing of the refused batch is stored")
            XCTAssertEqual(try s.streams(prefix: "run:").map(\.0), ["run:r"], name)
        }
    }

    func testSessionRowsActivityAndKeys() throws {
        for (name, s, _) in try backends() {
            defer { s.close() }
            var info = SessionInfo(code: "CCCCCC", title: "t", maxParticipants: 4, guestPolicy: .allow,
                                   hostKey: HostKey.stored("k"),
                                   createdAt: 5)
            info.eventPolicy = ["viewer": ["reaction:*"]]
            let saved = expectation(description: "saved")
            s.save(info) { ok in XCTAssertTrue(ok); saved.fulfill() }
            wait(for: [saved], timeout: 5)
            let rows = try s.sessions()
            XCTAssertEqual(rows.map(\.0), [info], name)

            s.record(ActivityEntry(actor: "a", action: "x", session: "CCCCCC"))
            s.record(ActivityEntry(actor: "b", action: "y"))
            let barrier = expectation(description: "barrier")
            s.barrier { _ in barrier.fulfill() }
            wait(for: [barrier], timeout: 5)
            XCTAssertEqual(try s.activity(ActivityQuery(limit: 10)).map(\.action), ["y", "x"], name)
            XCTAssertEqual(try s.activity(ActivityQuery(session: "CCCCCC")).map(\.action), ["x"], name)
            XCTAssertEqual(try s.activity(ActivityQuery(actor: "b")).map(\.action), ["y"], name)

            let (record, key) = try s.createKey(APIKeySpec(name: "ci", perMinute: 5, perHour: 6, perMonth: 7,
                                                          scopes: ["sessions:read"]), actor: "test")
            XCTAssertTrue(key.hasPrefix("chk_\(record.id)_"), name)
            XCTAssertEqual(try s.allKeys().map(\.id), [record.id], name)
            // The windows of now: Redis counts a use in the windows it falls in (its counters expire).
            let w = QuotaWindows(Date())
            s.recordUse(id: record.id, windows: (w.hourName, w.monthName))
            s.recordUse(id: record.id, windows: (w.hourName, w.monthName))
            let used = expectation(description: "used")
            s.barrier { _ in used.fulfill() }
            wait(for: [used], timeout: 5)
            // Written with the next commit (SQLite), or soon after, off the caller (Redis).
            let counted = Date().addingTimeInterval(5)
            while (try s.usage(window: w.hourName)[record.id] ?? 0) < 2 && Date() < counted { usleep(20_000) }
            XCTAssertEqual(try s.usage(window: w.hourName)[record.id], 2, name)
            XCTAssertEqual(try s.usage(window: w.monthName)[record.id], 2, name)
            XCTAssertTrue(try s.revokeKey(id: record.id, actor: "test"), name)
            XCTAssertFalse(try s.revokeKey(id: record.id, actor: "test"), "\(name): revoked once")
            XCTAssertNotNil(try s.allKeys().first?.revokedAt, name)
        }
    }

    /// The outbox: a committed event is written for every active endpoint that wants it, in its
    /// transaction; attempts are stored; the delivery log is trimmed; a deleted endpoint's rows go.
    func testTheWebhookOutboxFollowsTheEventLog() throws {
        for (name, s, ex) in try backends() {
            defer { s.close() }
            var heard: [WebhookDelivery] = []
            let lock = NSLock()
            s.onOutbox = { rows in lock.lock(); heard += rows; lock.unlock() }
            let hook = WebhookEndpoint(id: "wh1", url: "https://example.com/", events: ["chat.created"],
                                       secret: Webhook.newSecret(), createdAt: 1)
            try s.saveWebhook(hook, actor: "test", action: "webhook_created")
            var off = hook
            off.id = "wh2"; off.active = false; off.events = ["*"]
            try s.saveWebhook(off, actor: "test", action: nil)
            _ = wait(ex) { s.append(Self.event("EEEEEE", "c1"), executor: ex, done: $0) }
            // Heard after the commit (SQLite: with it; Redis: the append script wrote the outbox entry,
            // the node's engine takes it just after).
            let until = Date().addingTimeInterval(5)
            while lock.withLock({ heard.isEmpty }) && Date() < until { usleep(20_000) }
            let rows = lock.withLock { heard }
            XCTAssertEqual(rows.map(\.webhook), ["wh1"], "\(name): only the active endpoint that wants it")
            XCTAssertEqual(rows.first?.message.id, "EEEEEE:1", name)
            XCTAssertEqual(rows.first?.message.type, .chatCreated, name)
            // What a node loads at start-up: SQLite's outbox; none in a cluster (a node's deliveries come
            // from its own appends and the take-over of a dead node's).
            let pending = try s.pendingDeliveries(webhook: nil, after: 0, limit: 10)
            XCTAssertEqual(pending.map(\.id), name == "redis" ? [] : rows.map(\.id), name)
            guard !rows.isEmpty else { continue }

            var done = rows[0]
            done.status = .delivered; done.attempts = 1; done.lastStatus = 200
            s.recordAttempt(done)
            s.recordHealth("wh1", .failing(since: 5))
            let b = expectation(description: "barrier")
            s.barrier { _ in b.fulfill() }
            wait(for: [b], timeout: 5)
            XCTAssertEqual(try s.deliveries(webhook: "wh1", status: .delivered, before: nil, limit: 10).count, 1, name)
            XCTAssertEqual(try s.webhooks().first { $0.id == "wh1" }?.failingSince, 5, name)
            s.trimDeliveryLog(before: Int64.max, limit: 100)
            let t = expectation(description: "trimmed")
            s.barrier { _ in t.fulfill() }
            wait(for: [t], timeout: 5)
            XCTAssertEqual(try s.deliveries(webhook: "wh1", status: nil, before: nil, limit: 10).count, 0, name)
            XCTAssertTrue(try s.deleteWebhook(id: "wh1", actor: "test"), name)
            XCTAssertFalse(try s.deleteWebhook(id: "wh1", actor: "test"), name)
        }
    }

    /// A key's `owners` are kept as given (commas and all), and nil stays "any owner".
    func testKeyOwnersRoundTrip() throws {
        for (name, s, _) in try backends() {
            defer { s.close() }
            let owners = ["team-a", "ci-*", "acme, inc.", "ünï \"q\""]
            let (limited, _) = try s.createKey(
                APIKeySpec(name: "ci", perMinute: 5, perHour: 6, perMonth: 7, owners: owners), actor: "test")
            let (any, _) = try s.createKey(APIKeySpec(name: "any", perMinute: 5, perHour: 6, perMonth: 7), actor: "test")
            let keys = try s.allKeys()
            XCTAssertEqual(keys.first { $0.id == limited.id }?.owners, owners, name)
            XCTAssertNil(keys.first { $0.id == any.id }?.owners, name)
        }
    }

    /// The activity log names a webhook's receiver by scheme, host and port only: its path or query may
    /// hold the receiver's own credential, and `activity:read` is a lesser scope than `webhooks:admin`.
    func testTheActivityLogHoldsNoWebhookPath() throws {
        for (name, s, _) in try backends() {
            defer { s.close() }
            let hook = WebhookEndpoint(id: "wh1", url: "https://hooks.example.com:8443/t/SECRET123?token=TOK456",
                                       events: ["*"], secret: Webhook.newSecret(), createdAt: 1)
            try s.saveWebhook(hook, actor: "test", action: "webhook_created")
            let b = expectation(description: "barrier")
            s.barrier { _ in b.fulfill() }
            wait(for: [b], timeout: 5)
            let entry = try s.activity(ActivityQuery(limit: 10)).first { $0.action == "webhook_created" }
            XCTAssertEqual(entry?.details, "https://hooks.example.com:8443", name)
        }
    }

    /// A long read (an export, a replay being loaded) holds one connection; another read, such as a
    /// session waking up for a join, does not wait for it.
    func testAReadDoesNotWaitForALongOne() throws {
        let store = try SQLiteStore(directory: NSTemporaryDirectory() + "chub-\(UUID().uuidString)")
        defer { store.close() }
        let ex = ManualExecutor()
        _ = wait(ex) { store.append(Self.event("DDDDDD", "x"), executor: ex, done: $0) }
        let inside = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        Thread {
            _ = try? store.read { _ in inside.signal(); release.wait() }
        }.start()
        inside.wait()
        let start = Date()
        XCTAssertEqual(try store.lastSeq(session: "DDDDDD"), 1)
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.0, "the second read went ahead")
        release.signal()
    }
}
