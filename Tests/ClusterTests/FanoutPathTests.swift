import Bytes
import Hub
import XCTest

@testable import Cluster

/// The receiving path of cross-node fan-out, each fast part against the general code it stands in for:
/// `RelayedBatch` against `ChannelMessage.decode`, `RESPParser.nextMessage` against `next`, and
/// `PubSubKind` against the names Redis sends.
final class FanoutPathTests: XCTestCase {
    private func frame(_ text: String) -> [UInt8] {
        let c = Chunk.text(Array(text.utf8))
        return withExtendedLifetime(c) { Array(c.bytes) }
    }

    private func items(_ o: RelayedBatch.Outcome) -> [Relayed]? {
        guard case .items(let list) = o else { return nil }
        return list.map { r in
            Relayed(r.traffic, key: r.key, frame: withExtendedLifetime(r.frame) { Array($0.bytes) })
        }
    }

    func testReadsWhatDecodeReadsAndDropsItsOwnFromTheHeader() {
        let long = frame(String(repeating: "x", count: 300))
        let batch = ChannelMessage.ephemeral(
            origin: "n1",
            [
                Relayed(.event, key: "event:m:ping", frame: frame("{\"type\":\"event\"}")),
                Relayed(.typing, key: "", frame: long), Relayed(.presence, key: "presence:m", frame: frame("{}")),
            ])
        let bytes = batch.encode()
        guard case .ephemeral(_, let expected) = ChannelMessage.decode(bytes) else { return XCTFail("decode") }
        XCTAssertEqual(items(RelayedBatch.read(bytes, node: Array("n2".utf8))), expected)
        guard case .own = RelayedBatch.read(bytes, node: Array("n1".utf8)) else { return XCTFail("own batch") }
        // Another node whose id starts like this one's is not this one.
        XCTAssertNotNil(items(RelayedBatch.read(bytes, node: Array("n".utf8))))
        XCTAssertNotNil(items(RelayedBatch.read(bytes, node: Array("n12".utf8))))
        let committed = ChannelMessage.committed(
            epoch: "E", LogEntry(seq: 1, ts: 2, type: "chat", origin: "n1", member: nil, body: []))
        guard case .notEphemeral = RelayedBatch.read(committed.encode(), node: []) else { return XCTFail("d") }
    }

    func testRefusesWhatDecodeRefuses() {
        let good = ChannelMessage.ephemeral(origin: "n", [Relayed(.cursor, key: "k", frame: frame("{}"))]).encode()
        var bad: [[UInt8]] = [
            Array(good.dropLast()), good + [0x20], Array("en 1\ncursor 0 3\n".utf8) + [0x81, 5, 0x61],
            Array("en 1\nbogus 0 2\n".utf8) + [0x81, 0], Array("en 0\n".utf8), Array("en 99999\n".utf8),
            Array("e".utf8), Array("en\n".utf8), Array("e n 1\n".utf8), Array("en  1\n".utf8),
            Array("en 1\ncursor 0  2\n".utf8) + [0x81, 0], Array("en 1\ncursor 0 2 \n".utf8) + [0x81, 0],
            Array("en 1\ncursor 5 2\n".utf8) + [0x81, 0], Array("en 1\ncursor 0 2\n".utf8) + [0x82, 0],
            Array("en 1\ncursor 0 7\n".utf8) + [0x81, 0x81, 0, 0, 0, 0, 0], Array("e\u{7f} 1\n".utf8),
            Array("en 1\n".utf8) + [UInt8](repeating: 0x61, count: 70) + [0x0A],
            Array("e\(String(repeating: "n", count: 300)) 1\n".utf8),
        ]
        bad.append(Array(good[..<(good.count - 3)]))
        for b in bad {
            XCTAssertNil(ChannelMessage.decode(b), String(decoding: b, as: UTF8.self))
            guard case .malformed = RelayedBatch.read(b, node: Array("x".utf8)) else {
                return XCTFail("accepted: \(String(decoding: b, as: UTF8.self))")
            }
        }
    }

    /// Every prefix and every single-byte change of a good batch: both readers agree.
    func testAgreesWithDecodeOnMutations() {
        let good = ChannelMessage.ephemeral(
            origin: "n", [Relayed(.cursor, key: "k", frame: frame("{}")), Relayed(.run, key: "", frame: frame("a"))]
        ).encode()
        var inputs: [[UInt8]] = (0...good.count).map { Array(good[..<$0]) }
        for i in good.indices {
            for v: UInt8 in [0x20, 0x0A, 0x30, 0x39, 0x81, 0x00, 0xFF] {
                var m = good
                m[i] = v
                inputs.append(m)
            }
        }
        for b in inputs {
            let decoded: [Relayed]?
            if case .ephemeral(_, let list) = ChannelMessage.decode(b) { decoded = list } else { decoded = nil }
            XCTAssertEqual(items(RelayedBatch.read(b, node: Array("other".utf8))), decoded, "\(b)")
        }
    }

    func testPublicationsAreTakenWholeAndAnythingElseIsLeftToNext() throws {
        var p = RESPParser()
        let message = Array("*3\r\n$7\r\nmessage\r\n$5\r\n{S}ch\r\n$3\r\nabc\r\n".utf8)
        // In pieces: nothing until it is whole.
        p.append(Array(message[..<20]))
        XCTAssertNil(p.nextMessage())
        p.append(Array(message[20...]) + Array("+OK\r\n".utf8) + message)
        let m = try XCTUnwrap(p.nextMessage())
        XCTAssertEqual(m.channel, Array("{S}ch".utf8))
        XCTAssertEqual(m.payload, Array("abc".utf8))
        XCTAssertNil(p.nextMessage(), "a status is not a publication")
        XCTAssertEqual(try p.next()?.reply, .status("OK"))
        XCTAssertNotNil(p.nextMessage())
        XCTAssertNil(p.nextMessage())
        XCTAssertEqual(p.buffered, 0)
        // Not strictly well formed: left to `next`, which refuses it.
        var q = RESPParser()
        q.append(Array("*3\r\n$7\r\nmessage\r\n$x\r\n".utf8) + [UInt8](repeating: 0x61, count: 20))
        XCTAssertNil(q.nextMessage())
        XCTAssertThrowsError(try q.next())
        // A bulk not ended by CRLF.
        var r = RESPParser()
        r.append(Array("*3\r\n$7\r\nmessage\r\n$1\r\nab\r\n$1\r\na\r\n".utf8))
        XCTAssertNil(r.nextMessage())
        XCTAssertThrowsError(try r.next())
    }

    /// A sharded publication (`smessage`, Redis Cluster) is taken the same way; a look-alike is not.
    func testShardedPublicationsAreTakenWholeToo() throws {
        var p = RESPParser()
        let message = Array("*3\r\n$8\r\nsmessage\r\n$5\r\n{S}ch\r\n$3\r\nabc\r\n".utf8)
        p.append(Array(message[..<25]))
        XCTAssertNil(p.nextMessage())
        p.append(Array(message[25...]) + Array("*3\r\n$8\r\nsmessagx\r\n$1\r\nc\r\n$1\r\nd\r\n".utf8))
        let m = try XCTUnwrap(p.nextMessage())
        XCTAssertEqual(m.channel, Array("{S}ch".utf8))
        XCTAssertEqual(m.payload, Array("abc".utf8))
        XCTAssertNil(p.nextMessage(), "not a publication's kind")
        XCTAssertNotNil(try p.next())
        XCTAssertEqual(p.buffered, 0)
    }

    /// Bytes in pieces, read as a subscribed link reads them (`nextMessage` first) and with `next` alone:
    /// the same publications and replies in the same order.
    func testSubscribedReadingMatchesTheGeneralParser() throws {
        let stream = Array(
            ("*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$0\r\n\r\n"
                + "*3\r\n$8\r\nmessagex\r\n$2\r\nch\r\n$1\r\na\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n"
                + "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$4\r\n\r\n\r\n\r\n").utf8)
        for piece in 1...stream.count {
            var general = RESPParser(), fast = RESPParser()
            var a: [RedisReply] = [], b: [RedisReply] = []
            var at = 0
            while at < stream.count {
                let chunk = Array(stream[at..<min(at + piece, stream.count)])
                at += piece
                general.append(chunk)
                fast.append(chunk)
                while let r = try general.next() { a.append(r.reply) }
                while true {
                    if let m = fast.nextMessage() {
                        b.append(.array([.string(Array("message".utf8)), .string(m.channel), .string(m.payload)]))
                    } else if let r = try fast.next() {
                        b.append(r.reply)
                    } else {
                        break
                    }
                }
            }
            XCTAssertEqual(a, b, "pieces of \(piece)")
            XCTAssertEqual(a.count, 5)
        }
    }

    func testPubSubKindsFromTheirBytes() {
        for name in [
            "message", "pmessage", "smessage", "subscribe", "unsubscribe", "psubscribe", "punsubscribe",
            "ssubscribe", "sunsubscribe",
        ] {
            XCTAssertEqual(PubSubKind(Array(name.utf8))?.name, name)
        }
        for name in ["", "messag", "messages", "MESSAGE", "pong"] { XCTAssertNil(PubSubKind(Array(name.utf8))) }
        XCTAssertTrue(RedisConnection.isPubSub(.array([.string(Array("message".utf8)), .string([]), .string([])])))
        XCTAssertFalse(RedisConnection.isPubSub(.array([.string(Array("pong".utf8)), .string([])])))
        XCTAssertFalse(RedisConnection.isPubSub(.array([.status("message"), .string([]), .string([])])))
    }
}
