import XCTest

@testable import Cluster
@testable import Hub
import WebSocket

final class RedisURLTests: XCTestCase {
    func testParsesHostPortDatabaseAndPassword() throws {
        let u = try RedisURL("redis://:s%40cret@10.0.0.5:7000/3")
        XCTAssertEqual(u.host, "10.0.0.5")
        XCTAssertEqual(u.port, 7000)
        XCTAssertEqual(u.db, 3)
        XCTAssertNil(u.user)
        XCTAssertEqual(u.password, "s@cret")
        XCTAssertEqual(u.description, "redis://:***@10.0.0.5:7000/3")
        let v = try RedisURL("redis://alice:pw@redis.internal")
        XCTAssertEqual(v.user, "alice")
        XCTAssertEqual(v.port, 6379)
        XCTAssertEqual(v.db, 0)
        XCTAssertEqual(try RedisURL("redis://[::1]:6380/").host, "::1")
    }

    func testRefusesWhatItCannotUse() {
        for bad in ["http://h:1", "redis://", "redis://h:0", "redis://h:70000", "redis://h:1/16", "redis://h/x"] {
            XCTAssertThrowsError(try RedisURL(bad), bad)
        }
        // rediss:// is TLS now (RESPTests.testRedissURLs); a bad one is refused like any other.
        XCTAssertThrowsError(try RedisURL("rediss://h:0"))
        XCTAssertThrowsError(try RedisURL("redisss://h")) { error in
            XCTAssertTrue("\(error)".contains("rediss:// (TLS)"), "\(error)")
        }
    }
}

final class LogEntryTests: XCTestCase {
    func testRoundTripsWithAndWithoutMember() {
        let a = LogEntry(seq: 7, ts: 1_700_000_000_123, type: "chat", origin: "n1", member: "sub:a b\nc",
                         body: Array("\"id\":\"x\"".utf8))
        XCTAssertEqual(LogEntry.decode(a.encode()[...]), a)
        let b = LogEntry(seq: 1, ts: 0, type: "presence", origin: "n2", member: nil, body: [])
        XCTAssertEqual(LogEntry.decode(b.encode()[...]), b)
    }

    func testRefusesMalformedEntries() {
        for bad in ["", "1 2 chat n1 0", "x 2 chat n1 0\n", "1 2 chat n1 9\nab", "0 2 chat n1 0\n", "1 2  n1 0\n",
                    "1 2 chat n1 -1\n", "1 2 chat n1 0 extra\n", "99999999999999999999 2 chat n1 0\n"] {
            XCTAssertNil(LogEntry.decode(Array(bad.utf8)[...]), bad)
        }
    }

    func testChannelMessagesRoundTripAndOnlyWholeServerFramesPass() {
        let e = LogEntry(seq: 3, ts: 5, type: "chat", origin: "n", member: "k", body: Array("\"a\":1".utf8))
        let d = ChannelMessage.committed(epoch: "EP", e)
        XCTAssertEqual(ChannelMessage.decode(d.encode()), d)
        let chunk = Chunk.text(Array("{\"type\":\"cursors\"}".utf8))
        let frame = withExtendedLifetime(chunk) { Array(chunk.bytes) }
        let m = ChannelMessage.ephemeral(
            origin: "n", [Relayed(.cursor, key: "k 1", frame: frame), Relayed(.typing, key: "", frame: frame)])
        XCTAssertEqual(ChannelMessage.decode(m.encode()), m)
        var cut = m.encode()
        cut.removeLast()
        XCTAssertNil(ChannelMessage.decode(cut), "a frame cut short")
        XCTAssertNil(ChannelMessage.decode(m.encode() + [0x20]), "bytes after the last item")
        let longChunk = Chunk.text([UInt8](repeating: 0x61, count: 300))
        let long = withExtendedLifetime(longChunk) { Array(longChunk.bytes) }
        XCTAssertTrue(ChannelMessage.isServerTextFrame(long))
        XCTAssertFalse(ChannelMessage.isServerTextFrame(Array(long.dropLast())))
        XCTAssertFalse(ChannelMessage.isServerTextFrame([0x82, 0]))  // binary
        XCTAssertFalse(ChannelMessage.isServerTextFrame([0x81, 0x81, 0, 0, 0, 0, 0]))  // masked
        XCTAssertNil(ChannelMessage.decode(Array("en 1\ncursor 0 3\n".utf8) + [0x81, 5, 0x61]))
        XCTAssertNil(ChannelMessage.decode(Array("en 1\nbogus 0 2\n".utf8) + [0x81, 0]))
        XCTAssertNil(ChannelMessage.decode(Array("en 0\n".utf8)))
        XCTAssertNil(ChannelMessage.decode(Array("en 99999\n".utf8)))
        XCTAssertNil(ChannelMessage.decode(Array("x".utf8)))
        XCTAssertNil(ChannelMessage.decode([]))
    }

    func testSessionRowsRoundTrip() {
        var info = SessionInfo(
            code: "ABCDEFGH", title: "T \"q\"", maxParticipants: 9, guestPolicy: .deny, hostKey: HostKey.stored("hk"),
            createdAt: 42)
        info.endedAt = 50
        info.endReason = "done"
        info.eventPolicy = ["guest": ["draw*", "vote"], "viewer": []]
        XCTAssertEqual(SessionInfoJSON.decode(SessionInfoJSON.encode(info)), info)
        info.revokedShares = ["abc", "d-e"]
        XCTAssertEqual(SessionInfoJSON.decode(SessionInfoJSON.encode(info)), info, "revoked share links travel too")
        XCTAssertNil(SessionInfoJSON.decode(Array("{\"code\":1}".utf8)))
        // A row from before host keys were hashed leaves hashed (review N13): no plaintext reaches Redis.
        info.hostKey = "legacy-plaintext-host-key"
        let out = SessionInfoJSON.decode(SessionInfoJSON.encode(info))
        XCTAssertEqual(out?.hostKey, HostKey.stored("legacy-plaintext-host-key"))
        XCTAssertTrue(HostKey.matches("legacy-plaintext-host-key", stored: out?.hostKey ?? ""))
        XCTAssertFalse(String(decoding: SessionInfoJSON.encode(info), as: UTF8.self).contains("legacy-plaintext"))
    }
}

final class OwnCommitTests: XCTestCase {
    func testOnlyThisNodesCommitsAreRecognisedFromTheHeader() {
        let e = LogEntry(seq: 9, ts: 5, type: "chat", origin: "me", member: "k", body: Array("\"a\":1".utf8))
        let mine = ChannelMessage.committed(epoch: "EP", e).encode()
        XCTAssertEqual(ChannelMessage.ownCommit(mine, node: "me")?.seq, 9)
        XCTAssertEqual(ChannelMessage.ownCommit(mine, node: "me")?.epoch, "EP")
        XCTAssertNil(ChannelMessage.ownCommit(mine, node: "other"))
        XCTAssertNil(ChannelMessage.ownCommit(Array("d".utf8), node: "me"))
        XCTAssertNil(ChannelMessage.ownCommit(Array("d \n".utf8), node: "me"))
        XCTAssertNil(ChannelMessage.ownCommit(Array("dEP 0 1 chat me 0\n".utf8), node: "me"))
    }
}

final class RedisURLSecrecyTests: XCTestCase {
    func testErrorsNeverEchoTheURL() {
        for bad in ["http://u:hunter2@h", "redis://:hunter2@h:99999", "redis://:hunter2@h:1/99", "redis://:hunter2@bad host"] {
            XCTAssertThrowsError(try RedisURL(bad)) { XCTAssertFalse("\($0)".contains("hunter2"), "\($0)") }
        }
    }
}

final class RunPublicationTests: XCTestCase {
    func testRoundTripsAndRefusesWhatTheScriptNeverWrites() {
        let entry = LogEntry(seq: 12, ts: 1_700_000_000_000, type: "run_event", origin: "n1", member: "publisher",
                             body: Array(#""run":"deploy-1.a","event":"log","line":"x y\nz""#.utf8))
        let p = RunPublication(epoch: "n1.3", run: "deploy-1.a", entry: entry)
        XCTAssertEqual(RunPublication.decode(p.encode()), p)
        XCTAssertEqual(p.encode(), Array("rn1.3 deploy-1.a ".utf8) + entry.encode())
        var chat = entry
        chat.type = "chat"
        let bad: [[UInt8]] = [
            [], Array("r".utf8), Array("rn1.3 deploy-1.a".utf8), Array("dn1.3 deploy-1.a ".utf8) + entry.encode(),
            Array("r n1 ".utf8) + entry.encode(), Array("rn1.3 bad/id ".utf8) + entry.encode(),
            Array("rn1.3  ".utf8) + entry.encode(), Array("rn1.3 deploy ".utf8) + chat.encode(),
            Array("rn1.3 deploy 12 1 run_event n1 99\npub".utf8),
        ]
        for b in bad { XCTAssertNil(RunPublication.decode(b), String(decoding: b, as: UTF8.self)) }
    }

    func testTheAppendScriptsReplyIsCheckedBeforeUse() {
        let ok = RedisReply.array([
            .integer(1), .integer(1000), .string(Array("e1".utf8)), .integer(4), .integer(0), .integer(2), .integer(1),
        ])
        guard case .success((.appended(let commits), let epoch)) = RedisStorage.runAppendReply(ok, count: 2) else {
            return XCTFail("a well-formed reply")
        }
        XCTAssertEqual(epoch, "e1")
        XCTAssertEqual(commits, [Committed(seq: 4, ts: 1000, duplicate: false), Committed(seq: 2, ts: 1000, duplicate: true)])
        let illegal = RedisReply.array([.integer(0), .string(Array("run r has already started".utf8))])
        guard case .success((.illegal(let why), _)) = RedisStorage.runAppendReply(illegal, count: 1) else {
            return XCTFail("an illegal transition")
        }
        XCTAssertEqual(why, "run r has already started")
        for bad: RedisReply in [
            .error("NOSCRIPT"), .null, .array([.integer(1), .integer(1000), .string(Array("e".utf8)), .integer(4)]),
            .array([.integer(1), .integer(1000), .string(Array("e".utf8)), .integer(0), .integer(0)]),
            .array([.integer(2), .integer(1000), .string(Array("e".utf8)), .integer(4), .integer(0)]),
        ] {
            guard case .failure = RedisStorage.runAppendReply(bad, count: 1) else { return XCTFail("\(bad)") }
        }
    }

    func testRunningStepsAreSentAsAJSONArray() {
        XCTAssertEqual(RedisStorage.jsonArray([]), "[]")
        XCTAssertEqual(RedisStorage.jsonArray(["a", "b\"c"]), #"["a","b\"c"]"#)
    }
}
