@testable import Hub
@testable import Store
import TestSupport
import XCTest

final class SQLiteStoreTests: XCTestCase {
    func temp() -> String { NSTemporaryDirectory() + "chub-\(UUID().uuidString)" }

    func append(_ store: SQLiteStore, _ session: String, _ id: String?, executor: ManualExecutor) -> Result<Committed, StoreFailure> {
        let done = expectation(description: "commit")
        var out: Result<Committed, StoreFailure>!
        store.append(DurableEvent(session: session, type: "chat", member: "m1", clientId: id, body: Array(#""text":"x""#.utf8)), executor: executor) {
            out = $0; done.fulfill()
        }
        let deadline = Date().addingTimeInterval(5)
        while out == nil && Date() < deadline { executor.runAll(); usleep(1000) }
        wait(for: [done], timeout: 1)
        return out
    }

    func testSeqIsContiguousPerSessionAndSurvivesRestart() throws {
        let dir = temp()
        let ex = ManualExecutor()
        var store: SQLiteStore? = try SQLiteStore(directory: dir)
        XCTAssertEqual(try append(store!, "S1", "a", executor: ex).get().seq, 1)
        XCTAssertEqual(try append(store!, "S2", "a", executor: ex).get().seq, 1)
        XCTAssertEqual(try append(store!, "S1", "b", executor: ex).get().seq, 2)
        let dup = try append(store!, "S1", "a", executor: ex).get()
        XCTAssertEqual(dup.seq, 1)
        XCTAssertTrue(dup.duplicate)
        store!.close()
        store = nil
        let reopened = try SQLiteStore(directory: dir)
        XCTAssertEqual(try reopened.lastSeq(session: "S1"), 2)
        XCTAssertEqual(try append(reopened, "S1", "c", executor: ex).get().seq, 3)
        XCTAssertEqual(try reopened.events(session: "S1", after: 0, limit: 10).map(\.seq), [1, 2, 3])
        XCTAssertEqual(try reopened.tail(session: "S1", limit: 2).map(\.seq), [2, 3])
        reopened.close()
    }

    /// Exports and replay pages read under a byte budget: the first event always, then only what fits,
    /// and the same from the SQLite override as from the protocol's default (which trims a full read).
    func testEventsUnderAByteBudgetStopBeforeTheEventThatWouldPassIt() throws {
        let store = try SQLiteStore(directory: temp())
        let ex = ManualExecutor()
        for i in 0..<6 { _ = try append(store, "B1", "b\(i)", executor: ex).get() }
        let body = try store.events(session: "B1", after: 0, limit: 1)[0].body.count
        XCTAssertEqual(try store.events(session: "B1", after: 0, limit: 10, maxBytes: 2 * body).map(\.seq), [1, 2])
        XCTAssertEqual(try store.events(session: "B1", after: 0, limit: 10, maxBytes: 2 * body + 1).map(\.seq), [1, 2])
        XCTAssertEqual(try store.events(session: "B1", after: 2, limit: 10, maxBytes: 0).map(\.seq), [3])
        XCTAssertEqual(try store.events(session: "B1", after: 0, limit: 4, maxBytes: 1 << 20).map(\.seq), [1, 2, 3, 4])
        XCTAssertEqual(try store.events(session: "B1", after: 6, limit: 4, maxBytes: 1 << 20).map(\.seq), [])
        let memory = MemoryStorage()
        for i in 0..<6 {
            memory.append(
                DurableEvent(session: "B1", type: "chat", member: "m1", clientId: "b\(i)", body: Array(#""text":"x""#.utf8)),
                executor: ex) { _ in }
        }
        ex.runAll()
        for (after, limit, budget) in [(0, 10, 2 * body), (2, 10, 0), (0, 4, 1 << 20), (6, 4, 1 << 20)] {
            XCTAssertEqual(
                try memory.events(session: "B1", after: after, limit: limit, maxBytes: budget).map(\.seq),
                try store.events(session: "B1", after: after, limit: limit, maxBytes: budget).map(\.seq))
        }
        store.close()
    }

    func testCursorSamplesAreStoredOutsideTheSeqOrder() throws {
        let dir = temp()
        let ex = ManualExecutor()
        let store = try SQLiteStore(directory: dir)
        XCTAssertEqual(try append(store, "S1", "a", executor: ex).get().seq, 1)
        store.recordCursors(session: "S1", ts: 100, updates: Array(#"[{"id":"m1","x":1,"y":2}]"#.utf8))
        store.recordCursors(session: "S1", ts: 200, updates: Array(#"[{"id":"m1","x":3,"y":4}]"#.utf8))
        store.recordCursors(session: "S2", ts: 150, updates: Array(#"[{"id":"m9","x":0,"y":0}]"#.utf8))
        XCTAssertEqual(try append(store, "S1", "b", executor: ex).get().seq, 2, "samples take no seq")
        XCTAssertEqual(try store.cursorSamples(session: "S1", from: 0, to: .max, limit: 10).map(\.ts), [100, 200])
        XCTAssertEqual(try store.cursorSamples(session: "S1", from: 150, to: .max, limit: 10).map { String(decoding: $0.updates, as: UTF8.self) },
                       [#"[{"id":"m1","x":3,"y":4}]"#])
        XCTAssertEqual(try store.events(session: "S1", after: 0, limit: 10).map(\.seq), [1, 2])
        store.close()
    }

    func testManyAppendsGroupCommitInOrder() throws {
        let store = try SQLiteStore(directory: temp())
        let ex = ManualExecutor()
        var seqs: [Int] = []
        let n = 5000
        for i in 0..<n {
            store.append(DurableEvent(session: "S", type: "chat", member: "m", clientId: "\(i)", body: []), executor: ex) {
                seqs.append(try! $0.get().seq)
            }
        }
        let deadline = Date().addingTimeInterval(10)
        while seqs.count < n && Date() < deadline { ex.runAll(); usleep(500) }
        XCTAssertEqual(seqs, Array(1...n))
        store.close()
    }

    /// Polls (running completions) until `condition` holds or 10 s pass.
    func eventually(_ ex: ManualExecutor, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if try condition() { return true }
            ex.runAll(); usleep(2000)
        }
        return try condition()
    }

    func testRetentionByCountDeletesInChunksAndKeepsTheNewest() throws {
        let store = try SQLiteStore(directory: temp())
        let ex = ManualExecutor()
        var done = 0
        for i in 0..<2500 {
            store.append(DurableEvent(session: "BIG", type: "chat", member: "m", clientId: "\(i)", body: []), executor: ex) { _ in done += 1 }
        }
        XCTAssertEqual(try append(store, "SMALL", "a", executor: ex).get().seq, 1)
        XCTAssertTrue(eventually(ex) { done == 2500 })
        store.enforce(RetentionPolicy(maxEventsPerSession: 10))
        // 2,490 events to delete are more than two chunks: the pass comes back to the session.
        XCTAssertTrue(try eventually(ex) { try store.events(session: "BIG", after: 0, limit: 5000).map(\.seq) == Array(2491...2500) })
        XCTAssertEqual(try store.events(session: "SMALL", after: 0, limit: 10).map(\.seq), [1])
        XCTAssertEqual(store.retentionDeleted, 2490)
        XCTAssertEqual(try append(store, "BIG", "new", executor: ex).get().seq, 2501)
        store.close()
    }

    func testRetentionLeavesRunStreamsWhole() throws {
        // H4: a run is rebuilt from its events at start-up, `started` first; retention must not trim it.
        let store = try SQLiteStore(directory: temp())
        let ex = ManualExecutor()
        var done = 0
        for i in 0..<50 {
            for stream in ["run:r1", "SESSION1", "zzz"] {
                store.append(DurableEvent(session: stream, type: "x", member: "m", clientId: "\(i)", body: []), executor: ex) { _ in done += 1 }
            }
        }
        XCTAssertTrue(eventually(ex) { done == 150 })
        store.enforce(RetentionPolicy(maxEventsPerSession: 5))
        XCTAssertTrue(try eventually(ex) { try store.events(session: "zzz", after: 0, limit: 100).count == 5 })
        XCTAssertEqual(try store.events(session: "SESSION1", after: 0, limit: 100).map(\.seq), Array(46...50))
        XCTAssertEqual(try store.events(session: "run:r1", after: 0, limit: 100).count, 50)
        store.close()
    }

    func testBatchesAreAllOrNothingOnTheSeqTheyWereCheckedAgainst() throws {
        // M3: a run batch is one transaction, refused if its stream moved on since it was checked.
        let store = try SQLiteStore(directory: temp())
        let ex = ManualExecutor()
        func batch(_ ids: [String], expected: Int?) -> Result<[Committed], StoreFailure> {
            var out: Result<[Committed], StoreFailure>?
            store.appendBatch(ids.map { DurableEvent(session: "run:r", type: "run_event", member: "publisher", clientId: $0, body: []) },
                              expectedLastSeq: expected, executor: ex) { out = $0 }
            XCTAssertTrue(eventually(ex) { out != nil })
            return out!
        }
        XCTAssertEqual(try batch(["a", "b", "c"], expected: 0).get().map(\.seq), [1, 2, 3])
        guard case .failure = batch(["d", "e"], expected: 1) else { return XCTFail("a batch checked against seq 1 was stored on top of 3") }
        XCTAssertEqual(try store.lastSeq(session: "run:r"), 3, "nothing of the refused batch is stored")
        XCTAssertEqual(try batch(["d", "e"], expected: 3).get().map(\.seq), [4, 5])
        let again = try batch(["e", "f"], expected: nil).get()
        XCTAssertEqual(again.map(\.seq), [5, 6])
        XCTAssertEqual(again.map(\.duplicate), [true, false])
        store.close()
    }

    func testRetentionByAgeThatEmptiesASessionKeepsItsSeqGoing() throws {
        let dir = temp()
        let ex = ManualExecutor()
        var store: SQLiteStore? = try SQLiteStore(directory: dir)
        for id in ["a", "b", "c"] { _ = try append(store!, "OLD", id, executor: ex).get() }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for i in 0..<2500 { store!.record(ActivityEntry(actor: "t", action: "old", ts: Int64(i))) }
        store!.record(ActivityEntry(actor: "t", action: "young", ts: now + 60_000))
        store!.recordCursors(session: "YOUNG", ts: 5, updates: Array("[]".utf8))
        store!.recordCursors(session: "YOUNG", ts: now + 60_000, updates: Array("[]".utf8))
        usleep(1_000_000)
        _ = try append(store!, "YOUNG", "y", executor: ex).get()
        store!.enforce(RetentionPolicy(maxAgeMillis: 600))
        XCTAssertTrue(try eventually(ex) { try store!.events(session: "OLD", after: 0, limit: 10).isEmpty })
        // More than two chunks of old activity go, a chunk per step; what is young stays.
        XCTAssertTrue(try eventually(ex) { try store!.activity(ActivityQuery(actor: "t", limit: 5000)).map(\.action) == ["young"] })
        XCTAssertTrue(try eventually(ex) { try store!.cursorSamples(session: "YOUNG", from: 0, to: .max, limit: 10).map(\.ts) == [now + 60_000] })
        XCTAssertEqual(try store!.events(session: "YOUNG", after: 0, limit: 10).count, 1)
        XCTAssertEqual(try store!.lastSeq(session: "OLD"), 3, "the seq floor stands in for the deleted events")
        store!.close()
        store = nil
        let reopened = try SQLiteStore(directory: dir)
        XCTAssertEqual(try reopened.lastSeq(session: "OLD"), 3)
        XCTAssertEqual(try append(reopened, "OLD", "d", executor: ex).get().seq, 4, "seq continues after a restart")
        reopened.close()
    }

    func testForgottenSessionsStillRecogniseResendsAndContinueTheirSeq() throws {
        let store = try SQLiteStore(directory: temp())
        store.forgetAfter = 0     // every sweep forgets every session's memories
        store.sweepInterval = 0   // and a sweep follows every batch
        let ex = ManualExecutor()
        XCTAssertEqual(try append(store, "S", "a", executor: ex).get().seq, 1)
        XCTAssertEqual(try append(store, "S", "b", executor: ex).get().seq, 2)
        let resent = try append(store, "S", "a", executor: ex).get()
        XCTAssertEqual(resent.seq, 1, "refilled from the table")
        XCTAssertTrue(resent.duplicate)
        XCTAssertEqual(try append(store, "S", "c", executor: ex).get().seq, 3)
        store.close()
    }

    func testAHashCollisionNeverAcknowledgesANewMessageAsAnOldOne() throws {
        let store = try SQLiteStore(directory: temp())
        store.idHash = { _, _ in 42 }   // every id collides
        let ex = ManualExecutor()
        let a = try append(store, "S", "a", executor: ex).get()
        let b = try append(store, "S", "b", executor: ex).get()
        XCTAssertEqual([a.seq, b.seq], [1, 2])
        XCTAssertFalse(b.duplicate, "b matched a's hash but is not a's resend: stored")
        let again = try append(store, "S", "b", executor: ex).get()
        XCTAssertEqual(again.seq, 2)
        XCTAssertTrue(again.duplicate, "a real resend is still recognised")
        store.close()
    }

    func testEventsAreStoredByteForByte() throws {
        let store = try SQLiteStore(directory: temp())
        let ex = ManualExecutor()
        func put(_ e: DurableEvent) -> Committed {
            var out: Committed?
            store.append(e, executor: ex) { out = try? $0.get() }
            let deadline = Date().addingTimeInterval(5)
            while out == nil && Date() < deadline { ex.runAll(); usleep(1000) }
            return out!
        }
        let body: [UInt8] = Array(#""text":"a\u0000b é 🎉""#.utf8) + [0, 255, 1]
        let long = String(repeating: "long session name ", count: 20)
        XCTAssertEqual(put(DurableEvent(session: long, type: "chat", member: "mé 🎉", clientId: "id-ü", body: body)).seq, 1)
        XCTAssertEqual(put(DurableEvent(session: long, type: "system", member: nil, clientId: nil, body: [])).seq, 2)
        XCTAssertEqual(put(DurableEvent(session: long, type: "chat", member: "", clientId: "", body: [1])).seq, 3)
        let resent = put(DurableEvent(session: long, type: "chat", member: "mé 🎉", clientId: "id-ü", body: body))
        XCTAssertTrue(resent.duplicate, "member and id were stored exactly (the resend is confirmed against them)")
        XCTAssertEqual(resent.seq, 1)
        XCTAssertTrue(put(DurableEvent(session: long, type: "chat", member: "", clientId: "", body: [1])).duplicate)
        let stored = try store.events(session: long, after: 0, limit: 10)
        XCTAssertEqual(stored.map(\.type), ["chat", "system", "chat"])
        XCTAssertEqual(stored.map(\.body), [body, [], [1]])
        store.close()
    }

    /// A version 9 database (plaintext host keys, no key owners) opened by this build: its host keys are
    /// replaced by their hash (and still open their sessions), and keys get owners.
    func testMigrationToV10HashesHostKeysAndAddsKeyOwners() throws {
        let dir = temp()
        var store: SQLiteStore? = try SQLiteStore(directory: dir)
        let info = SessionInfo(code: "LEGACY23", title: "t", maxParticipants: 4, guestPolicy: .deny,
                               hostKey: "legacy-plain-host-key-0042", createdAt: 5)
        let saved = expectation(description: "saved")
        store!.save(info) { ok in XCTAssertTrue(ok); saved.fulfill() }
        wait(for: [saved], timeout: 5)
        let (old, _) = try store!.createKey(APIKeySpec(name: "old", perMinute: 1, perHour: 1, perMonth: 1), actor: "t")
        store!.close()
        store = nil
        do {
            // Back to version 9 as it was: the plaintext key, and no owners column.
            let db = try Database(path: dir + "/collabhub.sqlite")
            try db.exec("UPDATE sessions SET host_key='legacy-plain-host-key-0042'")
            try db.exec("ALTER TABLE api_keys DROP COLUMN owners")
            try db.exec("PRAGMA user_version=9")
        }
        let reopened = try SQLiteStore(directory: dir)
        defer { reopened.close() }
        let stored = try reopened.sessions().map(\.0.hostKey)
        XCTAssertEqual(stored, [HostKey.stored("legacy-plain-host-key-0042")])
        XCTAssertTrue(HostKey.matches("legacy-plain-host-key-0042", stored: stored[0]))
        XCTAssertEqual(try reopened.allKeys().map(\.id), [old.id])
        XCTAssertNil(try reopened.allKeys().first?.owners, "an older key may start runs for any owner, as before")
        let (made, _) = try reopened.createKey(
            APIKeySpec(name: "new", perMinute: 1, perHour: 1, perMonth: 1, owners: ["team-a"]), actor: "t")
        XCTAssertEqual(try reopened.allKeys().first { $0.id == made.id }?.owners, ["team-a"])
    }

    /// Turns the store in `dir` back into version 10's events table (keyed by (session, seq), WITHOUT
    /// ROWID), rows and all, running `then` in the same transaction.
    func backToVersion10(_ dir: String, then: String = "") throws -> Database {
        let db = try Database(path: dir + "/collabhub.sqlite")
        try db.exec(
            """
            BEGIN;
            CREATE TABLE events_v10(session TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
              type TEXT NOT NULL, member TEXT, client_id TEXT, body BLOB NOT NULL,
              PRIMARY KEY(session, seq)) WITHOUT ROWID;
            INSERT INTO events_v10 SELECT session, seq, ts, type, member, client_id, body FROM events;
            DROP TABLE events;
            ALTER TABLE events_v10 RENAME TO events;
            \(then)
            PRAGMA user_version=10;
            COMMIT;
            """)
        return db
    }

    /// A version 10 database (events keyed by (session, seq), WITHOUT ROWID) opened by this build: its
    /// events move into the arrival-ordered table whole (bodies byte for byte, seqs, ids for resends), the
    /// unique (session, seq) index holds, and appends continue each session's seq.
    func testMigrationToV11KeepsEveryEventAndItsSeq() throws {
        let dir = temp()
        let ex = ManualExecutor()
        var store: SQLiteStore? = try SQLiteStore(directory: dir)
        for i in 0..<5 { _ = try append(store!, "M1", "a\(i)", executor: ex).get() }
        for i in 0..<3 { _ = try append(store!, "M2", "b\(i)", executor: ex).get() }
        let before = try store!.events(session: "M1", after: 0, limit: 10)
        store!.close()
        store = nil
        do {
            let db = try backToVersion10(dir)
            XCTAssertEqual(try db.scalar("SELECT COUNT(*) FROM pragma_index_list('events') WHERE origin='c'"), 0)
        }
        let reopened = try SQLiteStore(directory: dir)
        defer { reopened.close() }
        let after = try reopened.events(session: "M1", after: 0, limit: 10)
        XCTAssertEqual(after.map(\.seq), before.map(\.seq))
        XCTAssertEqual(after.map(\.body), before.map(\.body))
        XCTAssertEqual(after.map(\.ts), before.map(\.ts))
        XCTAssertEqual(try reopened.events(session: "M2", after: 0, limit: 10).map(\.seq), [1, 2, 3])
        // A resend of a migrated message is recognised (ids are read back from the new table) ...
        let again = try append(reopened, "M1", "a4", executor: ex).get()
        XCTAssertEqual(again.seq, 5)
        XCTAssertTrue(again.duplicate)
        // ... and the seq goes on.
        XCTAssertEqual(try append(reopened, "M1", "a5", executor: ex).get().seq, 6)
        XCTAssertEqual(try append(reopened, "M2", "b3", executor: ex).get().seq, 4)
        let db = try Database(path: dir + "/collabhub.sqlite", readOnly: true)
        XCTAssertEqual(try db.scalar("PRAGMA user_version"), Int64(SQLiteStore.schemaVersion))
        XCTAssertEqual(try db.scalar("SELECT COUNT(*) FROM events"), 10)
        // The (session, seq) order is kept by a unique index.
        let unique = "SELECT COUNT(*) FROM pragma_index_list('events') WHERE \"unique\"=1 AND name='events_session_seq'"
        XCTAssertEqual(try db.scalar(unique), 1)
    }

    /// A v11 copy that fails part way is rolled back whole: the store stays at version 10 with every event
    /// where it was, and the next start migrates it. (The failure here: a table in the copy's way.)
    func testAFailedMigrationToV11LeavesVersion10Whole() throws {
        let dir = temp()
        let ex = ManualExecutor()
        var store: SQLiteStore? = try SQLiteStore(directory: dir)
        for i in 0..<4 { _ = try append(store!, "R1", "r\(i)", executor: ex).get() }
        store!.close()
        store = nil
        _ = try backToVersion10(dir, then: "CREATE TABLE events_v11(x);")
        XCTAssertThrowsError(try SQLiteStore(directory: dir))
        do {
            let db = try Database(path: dir + "/collabhub.sqlite")
            XCTAssertEqual(try db.scalar("PRAGMA user_version"), 10)
            XCTAssertEqual(try db.scalar("SELECT COUNT(*) FROM events WHERE session='R1'"), 4)
            XCTAssertEqual(try db.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name='events_session_seq'"), 0)
            try db.exec("DROP TABLE events_v11")
        }
        let reopened = try SQLiteStore(directory: dir)
        defer { reopened.close() }
        XCTAssertEqual(try reopened.events(session: "R1", after: 0, limit: 10).map(\.seq), [1, 2, 3, 4])
        XCTAssertEqual(try append(reopened, "R1", "r4", executor: ex).get().seq, 5)
    }

    /// Events are stored in arrival order with their (session, seq) unique: the index refuses a duplicate
    /// seq, as the primary key did.
    func testEventsKeepTheirSeqUnique() throws {
        let dir = temp()
        let ex = ManualExecutor()
        let store = try SQLiteStore(directory: dir)
        _ = try append(store, "U1", "a", executor: ex).get()
        store.close()
        let db = try Database(path: dir + "/collabhub.sqlite")
        XCTAssertThrowsError(
            try db.exec("INSERT INTO events(session, seq, ts, type, body) VALUES('U1', 1, 0, 'chat', x'00')"))
        try db.exec("INSERT INTO events(session, seq, ts, type, body) VALUES('U1', 2, 0, 'chat', x'00')")
    }

    func testMigrationRefusesNewerSchema() throws {
        let dir = temp()
        try SQLiteStore(directory: dir).close()
        let db = try Database(path: dir + "/collabhub.sqlite")
        try db.exec("PRAGMA user_version=99")
        XCTAssertThrowsError(try SQLiteStore(directory: dir))
    }
}

final class CheckpointTests: XCTestCase {
    func walSize(_ dir: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: dir + "/collabhub.sqlite-wal"))?[.size] as? Int) ?? 0
    }

    func testCheckpointsOffTheCommitPathKeepTheWALSmall() throws {
        let dir = NSTemporaryDirectory() + "chub-\(UUID().uuidString)"
        let ex = ManualExecutor()
        let store = try SQLiteStore(directory: dir, checkpointPages: 16)
        var acked = 0
        var sizes: [Int] = []
        for round in 0..<3 {
            for i in 0..<300 {
                // Many sessions: every commit dirties several pages.
                store.append(DurableEvent(session: "S\(i % 50)", type: "chat", member: "m", clientId: "\(round)-\(i)",
                                          body: Array(#""text":"\#(String(repeating: "x", count: 200))""#.utf8)), executor: ex) { r in
                    if case .success = r { acked += 1 }
                }
                if i % 10 == 0 { usleep(2000) }  // several commits per round
            }
            let deadline = Date().addingTimeInterval(5)
            while acked < (round + 1) * 300 && Date() < deadline { ex.runAll(); usleep(1000) }
            usleep(400_000)  // idle: the writer restarts the WAL
            sizes.append(walSize(dir))
        }
        XCTAssertEqual(acked, 900)
        XCTAssertGreaterThan(store.checkpoints, 2, "checkpoints ran although SQLite's automatic ones are off")
        // Restarted WALs are reused from the start. Without checkpoints the file grows by over 1 MB a
        // round (1.1, 2.4 and 4.2 MB measured); with them it stayed at 0.13-0.3 MB, and at 1.35 MB at
        // most with both cores busy elsewhere (background passes then lag, and a round's frames pile up).
        XCTAssertLessThan(sizes[2], 2_500_000, "WAL sizes per round: \(sizes)")
        for s in 0..<50 {
            XCTAssertEqual(try store.events(session: "S\(s)", after: 0, limit: 100).map(\.seq), Array(1...18))
        }
        store.close()
        let reopened = try SQLiteStore(directory: dir)
        XCTAssertEqual(try reopened.lastSeq(session: "S7"), 18)
        reopened.close()
    }

    /// The WAL's bound is 1 GiB (`WALBound`), so a long burst may leave a large WAL file behind: once the
    /// writer is idle, a file over `walKeptBytes` is truncated, one under it is kept for reuse.
    func testAnIdleWriterTruncatesAWALFileOverTheKeptSize() throws {
        for (kept, truncated) in [(64 * 1024, true), (256 << 20, false)] {
            let dir = NSTemporaryDirectory() + "chub-\(UUID().uuidString)"
            let ex = ManualExecutor()
            let store = try SQLiteStore(directory: dir, checkpointPages: 1 << 30)  // no background passes
            store.walKeptBytes = kept  // set before the first append: the writer reads it after the queue's lock
            var acked = 0
            for i in 0..<400 {
                store.append(
                    DurableEvent(session: "S\(i % 40)", type: "chat", member: "m", clientId: "\(i)",
                                 body: Array(#""text":"\#(String(repeating: "y", count: 300))""#.utf8)),
                    executor: ex
                ) { r in if case .success = r { acked += 1 } }
                if i % 20 == 0 { usleep(1000) }  // several commits
            }
            let deadline = Date().addingTimeInterval(5)
            while acked < 400 && Date() < deadline { ex.runAll(); usleep(1000) }
            XCTAssertEqual(acked, 400)
            XCTAssertGreaterThan(walSize(dir), 64 * 1024, "the burst's WAL")
            let idle = Date().addingTimeInterval(3)
            while walSize(dir) > 0 && Date() < idle { usleep(20_000) }
            if truncated {
                XCTAssertEqual(walSize(dir), 0, "an idle writer truncates a WAL file over the kept size")
            } else {
                usleep(600_000)
                XCTAssertGreaterThan(walSize(dir), 64 * 1024, "a WAL file under the kept size is kept for reuse")
            }
            XCTAssertEqual(try store.events(session: "S3", after: 0, limit: 100).count, 10)
            store.close()
        }
    }
}
