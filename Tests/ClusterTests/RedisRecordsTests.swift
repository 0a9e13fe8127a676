import XCTest

@testable import Cluster
@testable import Hub

/// What `FuzzRedisRecords` found in what a node reads back from Redis, each kept fixed: a webhook
/// endpoint whose stored timeout is out of range (a corrupted key) trapped when written back, and a
/// timeout of 1001 ms came back as 1000; a `CLUSTER SLOTS` master whose host is no address went into the
/// slot map.
final class RedisRecordsTests: XCTestCase {
    private func endpoint(_ fields: String) throws -> WebhookEndpoint {
        try XCTUnwrap(
            WebhookRecords.endpoint(Array("{\"id\":\"w\",\"url\":\"u\",\"events\":[],\"secret\":\"s\"\(fields)}".utf8)))
    }

    func testAnEndpointWithAStoredTimeoutOutOfRangeReadsAsTheNearestAllowedAndWritesBack() throws {
        for (stored, seconds) in [("9223372036854775807", 60.0), ("-9223372036854775808", 1.0), ("0", 1.0)] {
            let e = try endpoint(",\"timeout_ms\":\(stored),\"max_attempts\":\(stored)")
            XCTAssertEqual(e.timeoutSeconds, seconds, stored)
            XCTAssertEqual(e.maxAttempts, seconds == 60 ? 20 : 1, stored)
            XCTAssertEqual(WebhookRecords.endpoint(WebhookRecords.encode(e)), e, stored)
        }
        // Written from a value no stored record holds: still no trap.
        var e = try endpoint("")
        for t in [Double.infinity, -.infinity, .nan, 1e300] {
            e.timeoutSeconds = t
            XCTAssertNotNil(WebhookRecords.endpoint(WebhookRecords.encode(e)))
        }
    }

    func testAnEndpointsTimeoutStaysTheSameWhenReadAndWrittenBack() throws {
        for ms in [1000, 1001, 1003, 29_999, 30_000, 59_999, 60_000] {
            let e = try endpoint(",\"timeout_ms\":\(ms)")
            let again = try XCTUnwrap(WebhookRecords.endpoint(WebhookRecords.encode(e)))
            XCTAssertEqual(again.timeoutSeconds, Double(ms) / 1000, "\(ms)")
        }
        // No stored timeout or attempts: the defaults, as before.
        let plain = try endpoint("")
        XCTAssertEqual(plain.timeoutSeconds, 30)
        XCTAssertEqual(plain.maxAttempts, 3)
    }

    func testASlotMapWhoseMasterIsNoAddressIsRefused() {
        func reply(_ host: String) -> RedisReply {
            .array([.array([.integer(0), .integer(16383), .array([.string(Array(host.utf8)), .integer(7000)])])])
        }
        for bad in ["a b", "host\u{7F}", "tab\there", "[]"] {
            XCTAssertNil(ClusterRouting.slots(reply(bad), asked: "10.0.0.1:7000"), bad)
        }
        for good in ["10.0.0.2", "::1", "redis-0.example"] {
            let ranges = ClusterRouting.slots(reply(good), asked: "10.0.0.1:7000")
            XCTAssertEqual(ranges?.map(\.1), [ClusterRouting.address(good, 7000)], good)
        }
    }

    /// A log's `seq` and `floor` as Redis answers them (19 digits, negative, missing) are kept where the reads
    /// can add to them: `floor + 1` and `at + 499` must not trap on a Redis that is corrupt or not ours.
    func testALogsBoundsReadFromRedisStayWhereTheReadsCanAddToThem() {
        XCTAssertEqual(RedisStorage.seqBound(nil), 0)
        XCTAssertEqual(RedisStorage.seqBound(-5), 0)
        XCTAssertEqual(RedisStorage.seqBound(42), 42)
        XCTAssertEqual(RedisStorage.seqBound(Int.max), 1 << 62)
        XCTAssertEqual(RedisStorage.seqBound(Int.min), 0)
        let b = RedisStorage.seqBound(Int.max)
        XCTAssertGreaterThan(b + 1 + 499, b)  // the reads' arithmetic, without a trap
    }
}
