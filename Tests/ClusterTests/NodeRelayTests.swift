import Bytes
import Hub
import XCTest

@testable import Cluster

/// Ephemeral relays per destination loop: `NodeBatch` (one publication carrying many sessions' items)
/// read back as written and refused whole when anything in it is malformed, and `EphemeralRoutes`
/// (which loops follow which session, and one publication per destination per iteration).
final class NodeRelayTests: XCTestCase {
    private func frame(_ text: String) -> [UInt8] {
        let c = Chunk.text(Array(text.utf8))
        return withExtendedLifetime(c) { Array(c.bytes) }
    }

    private func relayed(_ s: NodeBatch.Section) -> [Relayed] {
        s.items.map { Relayed($0.traffic, key: $0.key, frame: withExtendedLifetime($0.frame) { Array($0.bytes) }) }
    }

    private let a = Array("{AAAA}:ch".utf8), b = Array("{BB}:ch".utf8)

    func testReadsBackWhatItWrites() {
        let one = [
            Relayed(.event, key: "event:m:ping", frame: frame("{\"type\":\"event\"}")),
            Relayed(.typing, key: "", frame: frame(String(repeating: "x", count: 300))),
        ]
        let two = [Relayed(.presence, key: "presence:m", frame: frame("{}"))]
        let bytes = NodeBatch.encode(origin: "n1.0", [(a, one), (b, two)])
        guard let (origin, sections) = NodeBatch.read(bytes) else { return XCTFail("refused its own encoding") }
        XCTAssertEqual(origin, Array("n1.0".utf8))
        XCTAssertEqual(sections.map(\.channel), [a, b])
        XCTAssertEqual(relayed(sections[0]), one)
        XCTAssertEqual(relayed(sections[1]), two)
    }

    func testRefusesAnythingMalformedWhole() {
        let first = (a, [Relayed(.cursor, key: "k", frame: frame("{}"))])
        let good = NodeBatch.encode(origin: "n", [first, (b, [Relayed(.cursor, key: "", frame: frame("{}"))])])
        // Cut where the first section ends, it is a whole publication of one session.
        let whole = NodeBatch.encode(origin: "n", [first]).count
        var bad: [[UInt8]] = [
            [], Array("E".utf8), Array("En\n".utf8), Array("E\n".utf8), Array("en\n".utf8), good + [0x20],
            Array("En\n0 1\n".utf8), Array("En\n9 0\n{AAAA}:ch".utf8), Array("En\n9 1\n{AAAA}:ch".utf8),
            Array("En\n9 1\nXAAAA}:chcursor 0 2\n".utf8) + [0x81, 0],
            Array("En\n9 1\n{AAAA}:chcursor 0 2\n".utf8) + [0x82, 0],
            Array("En\n9 1\n{AAAA}:chbogus 0 2\n".utf8) + [0x81, 0],
            Array("En\n9 99999\n{AAAA}:ch".utf8), Array("En\n600 1\n{".utf8) + [UInt8](repeating: 0x61, count: 599),
            Array("E n\n9 1\n{AAAA}:chcursor 0 2\n".utf8) + [0x81, 0],
            Array("E\(String(repeating: "n", count: 200))\n9 1\n{AAAA}:chcursor 0 2\n".utf8) + [0x81, 0],
        ]
        for cut in 1..<good.count where cut != whole { bad.append(Array(good[..<cut])) }
        for x in bad {
            XCTAssertNil(NodeBatch.read(x), String(decoding: x, as: UTF8.self))
        }
        XCTAssertNotNil(NodeBatch.read(good))
    }

    func testFollowersAreLearnedHeardAndForgotten() {
        let r = EphemeralRoutes(node: "me", loop: 0)
        let s = ChannelKey(a)
        // Not followed: nothing is kept.
        r.heard(s, Array("f+n2.0".utf8))
        XCTAssertTrue(r.peerChannels(s).isEmpty)
        r.started(s)
        r.learned(s, ids: [Array("me.0".utf8), Array("n2.0".utf8), Array("n3.1".utf8), Array("bad id".utf8), []])
        r.heard(s, Array("f+n2.0".utf8))
        r.heard(s, Array("f+n4.0".utf8))
        XCTAssertEqual(r.peerChannels(s), ["chub:e:n2.0", "chub:e:n3.1", "chub:e:n4.0"].map { Array($0.utf8) })
        r.heard(s, Array("f-n3.1".utf8))
        r.heard(s, Array("f?n2.0".utf8))
        r.heard(s, Array("f+".utf8))
        XCTAssertEqual(r.peerChannels(s), ["chub:e:n2.0", "chub:e:n4.0"].map { Array($0.utf8) })
        XCTAssertEqual(EphemeralRoutes.setKey(s), Array("{AAAA}:eph".utf8))
        r.stopped(s)
        XCTAssertTrue(r.peerChannels(s).isEmpty)
        r.learned(s, ids: [Array("n5.0".utf8)])
        XCTAssertTrue(r.peerChannels(s).isEmpty)
    }

    func testOnePublicationPerDestinationNoneToItselfNoneForALonelySession() {
        let r = EphemeralRoutes(node: "me", loop: 0)
        let (sa, sb, sc) = (ChannelKey(a), ChannelKey(b), ChannelKey(Array("{C}:ch".utf8)))
        for s in [sa, sb, sc] { r.started(s) }
        r.learned(sa, ids: [Array("p.0".utf8), Array("q.0".utf8)])
        r.learned(sb, ids: [Array("q.0".utf8), Array("me.0".utf8)])
        let ia = [Relayed(.event, key: "", frame: frame("{\"a\":1}"))]
        let ib = [Relayed(.cursor, key: "c", frame: frame("{\"b\":2}"))]
        let ic = [Relayed(.typing, key: "", frame: frame("{\"c\":3}"))]
        for round in 0..<2 {
            var sent: [[UInt8]: [UInt8]] = [:]
            r.publish(origin: "me", [sa: ia, sb: ib, sc: ic]) { channel, payload in
                XCTAssertNil(sent[channel], "two publications to one loop")
                sent[channel] = payload
            }
            XCTAssertEqual(Set(sent.keys), [Array("chub:e:p.0".utf8), Array("chub:e:q.0".utf8)], "round \(round)")
            let p = NodeBatch.read(sent[Array("chub:e:p.0".utf8)]!)!
            XCTAssertEqual(p.sections.map(\.channel), [a])
            XCTAssertEqual(relayed(p.sections[0]), ia)
            let q = NodeBatch.read(sent[Array("chub:e:q.0".utf8)]!)!
            XCTAssertEqual(Set(q.sections.map(\.channel)), [a, b])
            for s in q.sections { XCTAssertEqual(relayed(s), s.channel == a ? ia : ib) }
        }
        var none = 0
        r.publish(origin: "me", [sc: ic]) { _, _ in none += 1 }
        XCTAssertEqual(none, 0)
    }

    func testABusyIterationGoesOutInPiecesToEachDestinationInTurn() {
        let r = EphemeralRoutes(node: "me", loop: 0)
        let big = frame(String(repeating: "y", count: 10_000))
        var batches: [ChannelKey: [Relayed]] = [:]
        for k in 0..<40 {
            let s = ChannelKey(Array("{S\(k)}:ch".utf8))
            r.started(s)
            r.learned(s, ids: [Array("p.0".utf8), Array("q.0".utf8)])
            batches[s] = [Relayed(.event, key: "", frame: big), Relayed(.event, key: "\(k)", frame: frame("{}"))]
        }
        var order: [[UInt8]] = []
        var got: [[UInt8]: [[UInt8]: [Relayed]]] = [:]
        r.publish(origin: "me", batches) { channel, payload in
            XCTAssertLessThan(payload.count, EphemeralRoutes.maxPublication + 20_100)
            order.append(channel)
            for sec in NodeBatch.read(payload)!.sections { got[channel, default: [:]][sec.channel] = relayed(sec) }
        }
        XCTAssertGreaterThan(order.count, 4)
        // Each destination gets every session's items, whole; neither waits for all of the other's.
        for dest in ["chub:e:p.0", "chub:e:q.0"].map({ Array($0.utf8) }) {
            XCTAssertEqual(got[dest]?.count, 40)
            for (s, items) in batches { XCTAssertEqual(got[dest]?[s.bytes], items) }
        }
        XCTAssertNotEqual(order.prefix(order.count / 2).filter { $0 == order[0] }.count, order.count / 2)
    }
}
