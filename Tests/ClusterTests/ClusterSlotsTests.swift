import XCTest

@testable import Cluster

/// Redis Cluster routing: key slots against the values the cluster specification documents and that
/// `redis-cli CLUSTER KEYSLOT` gives, redirections, the slot map read from `CLUSTER SLOTS`, which key
/// routes a command, and `redis+cluster://` URLs.
final class ClusterSlotsTests: XCTestCase {
    func testCRC16IsXMODEMAsTheSpecificationSays() {
        // The specification's check value: CRC16 of "123456789" is 0x31C3.
        XCTAssertEqual(KeySlot.crc16(Array("123456789".utf8)), 0x31C3)
        XCTAssertEqual(KeySlot.crc16([UInt8]()), 0)
    }

    func testSlotsOfKnownKeys() {
        // Values from `redis-cli CLUSTER KEYSLOT` (Redis 7.0).
        XCTAssertEqual(KeySlot.of("123456789"), 0x31C3)
        XCTAssertEqual(KeySlot.of("foo"), 12182)
        XCTAssertEqual(KeySlot.of("bar"), 5061)
        XCTAssertEqual(KeySlot.of("hello"), 866)
        XCTAssertEqual(KeySlot.of(""), 0)
        XCTAssertEqual(KeySlot.of("{user1000}.following"), 3443)
        XCTAssertEqual(KeySlot.of("{}.following"), 6098)
        XCTAssertEqual(KeySlot.of("foo{{bar}}zap"), 4015)
        XCTAssertEqual(KeySlot.of("{{bar"), 16086)
    }

    func testHashTags() {
        // The specification's examples: only the tag is hashed.
        XCTAssertEqual(KeySlot.of("{user1000}.following"), KeySlot.of("user1000"))
        XCTAssertEqual(KeySlot.of("{user1000}.followers"), KeySlot.of("{user1000}.following"))
        XCTAssertEqual(KeySlot.of("foo{bar}{zap}"), KeySlot.of("bar"))
        XCTAssertEqual(KeySlot.of("{}.following"), Int(KeySlot.crc16(Array("{}.following".utf8)) & 0x3FFF))
        XCTAssertEqual(Array(KeySlot.hashed(Array("foo{}{bar}".utf8))), Array("foo{}{bar}".utf8))
        XCTAssertEqual(Array(KeySlot.hashed(Array("foo{{bar}}zap".utf8))), Array("{bar".utf8))
        XCTAssertEqual(Array(KeySlot.hashed(Array("no tag {here".utf8))), Array("no tag {here".utf8))
        // Every key of a session, and its channel, is in one slot.
        let s = "ABCD2345"
        let slot = KeySlot.of("{\(s)}:m")
        for k in ["log", "ids", "members", "conns", "info", "wh", "ch"] {
            XCTAssertEqual(KeySlot.of("{\(s)}:\(k)"), slot)
        }
        for k in ["foo", "bar", "hello", "ABCD2345"] { XCTAssertLessThan(KeySlot.of(k), KeySlot.count) }
    }

    func testRedirections() {
        XCTAssertEqual(
            ClusterRouting.redirect("MOVED 3999 127.0.0.1:6381"),
            .init(ask: false, slot: 3999, address: "127.0.0.1:6381"))
        XCTAssertEqual(
            ClusterRouting.redirect("ASK 3999 [::1]:6381"), .init(ask: true, slot: 3999, address: "[::1]:6381"))
        for bad in [
            "MOVED", "MOVED x 1.2.3.4:5", "MOVED 16384 1.2.3.4:5", "MOVED 1 host", "MOVED 1 :5", "ERR 1 a:1",
            "MOVED 1 a:0", "MOVED -1 a:1", "MOVED 1 a:70000",
        ] {
            XCTAssertNil(ClusterRouting.redirect(bad), bad)
        }
        XCTAssertEqual(ClusterRouting.parseAddress("[::1]:7000")?.host, "::1")
        XCTAssertEqual(ClusterRouting.address("::1", 7000), "[::1]:7000")
    }

    func testTheKeyACommandIsRoutedBy() {
        func key(_ parts: String...) -> String? {
            ClusterRouting.key(parts.map { Array($0.utf8) }).map { String(decoding: $0, as: UTF8.self) }
        }
        XCTAssertEqual(key("GET", "{a}:info"), "{a}:info")
        XCTAssertEqual(key("hget", "k", "f"), "k")
        XCTAssertEqual(key("EVALSHA", "abc", "2", "{a}:m", "{a}:log", "x"), "{a}:m")
        XCTAssertNil(key("EVAL", "return 1", "0", "x"))
        XCTAssertNil(key("EVAL", "return 1", "nope"))
        XCTAssertEqual(key("XREADGROUP", "GROUP", "hub", "n", "COUNT", "1", "STREAMS", "{a}:wh", ">"), "{a}:wh")
        XCTAssertEqual(key("SPUBLISH", "{a}:ch", "m"), "{a}:ch")
        for keyless in [["PUBLISH", "chub:dir", "x"], ["SCRIPT", "LOAD", "x"], ["PING"], ["SCAN", "0"]] {
            XCTAssertNil(ClusterRouting.key(keyless.map { Array($0.utf8) }), "\(keyless)")
        }
    }

    func testTheSlotMapFromClusterSlots() throws {
        func node(_ host: String, _ port: Int) -> RedisReply {
            .array([.string(Array(host.utf8)), .integer(port), .string(Array("id".utf8))])
        }
        let reply = RedisReply.array([
            .array([.integer(0), .integer(5460), node("127.0.0.1", 7000), node("127.0.0.1", 7003)]),
            .array([.integer(5461), .integer(10922), node("", 7001)]),
            .array([.integer(10923), .integer(16383), node("::1", 7002)]),
        ])
        let ranges = try XCTUnwrap(ClusterRouting.slots(reply, asked: "10.0.0.9:7001"))
        XCTAssertEqual(ranges.map(\.1), ["127.0.0.1:7000", "10.0.0.9:7001", "[::1]:7002"])
        let map = ClusterMap()
        XCTAssertTrue(map.set(ranges))
        XCTAssertFalse(map.set(ranges))
        XCTAssertEqual(map.master(slot: 0), "127.0.0.1:7000")
        XCTAssertEqual(map.master(slot: 5461), "10.0.0.9:7001")
        XCTAssertEqual(map.master(slot: 16383), "[::1]:7002")
        let v = map.version
        map.moved(slot: 5461, to: "127.0.0.1:7009")
        XCTAssertEqual(map.master(slot: 5461), "127.0.0.1:7009")
        XCTAssertEqual(map.master(slot: 5462), "10.0.0.9:7001")
        XCTAssertEqual(map.version, v + 1)
        // A slot no master serves.
        XCTAssertTrue(map.set([(0...99, "127.0.0.1:7000")]))
        XCTAssertNil(map.master(slot: 100))
        // Not that shape: refused, never a crash.
        for bad: RedisReply in [
            .integer(1), .array([.array([.integer(5), .integer(1), node("a", 1)])]),
            .array([.array([.integer(0), .integer(16384), node("a", 1)])]),
            .array([.array([.integer(0), .integer(1), .array([.string(Array("a".utf8)), .integer(0)])])]),
            .array([.array([.integer(0)])]),
        ] {
            XCTAssertNil(ClusterRouting.slots(bad, asked: "a:1"), "\(bad)")
        }
    }

    func testClusterURLs() throws {
        let u = try RedisURL("redis+cluster://:pw@10.0.0.1:7000")
        XCTAssertTrue(u.cluster)
        XCTAssertFalse(u.tls)
        XCTAssertEqual(u.port, 7000)
        XCTAssertEqual(u.description, "redis+cluster://:***@10.0.0.1:7000/0")
        let t = try RedisURL("rediss+cluster://redis.example:7000/0")
        XCTAssertTrue(t.cluster && t.tls)
        XCTAssertFalse(try RedisURL("redis://h").cluster)
        XCTAssertThrowsError(try RedisURL("redis+cluster://h:7000/2")) { error in
            XCTAssertTrue("\(error)".contains("only database 0"), "\(error)")
        }
        XCTAssertThrowsError(try RedisURL("redis+clusters://h"))
    }
}
