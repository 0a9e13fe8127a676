import XCTest

@testable import Cluster
@testable import Hub

/// The pure parts of the cluster's keys, quotas and activity log: records and entries as stored in
/// Redis, the quota windows and which limit refuses, and the charge script's answer.
final class SharedAccountingTests: XCTestCase {
    func testAKeyRecordReadsBackAsWritten() {
        let r = APIKeyRecord(
            id: "abc-DEF1", name: "ci \"deploy\" ✓", secretSHA256: (0..<32).map { UInt8($0 * 7 % 256) },
            createdAt: 1_765_000_000_123, revokedAt: 42, perMinute: 6, perHour: 100, perMonth: 1000,
            scopes: ["runs:publish", "runs:read"], runs: ["ci-*"], owners: ["team, a", "b*"])
        var expected = r
        expected.revokedAt = nil  // kept apart (chub:{keys}:revoked)
        XCTAssertEqual(KeyRecordJSON.decode(KeyRecordJSON.encode(r)), expected)
        var open = r
        open.runs = nil; open.owners = nil; open.revokedAt = nil
        XCTAssertEqual(KeyRecordJSON.decode(KeyRecordJSON.encode(open)), open)
    }

    func testARecordThatDoesNotReadIsNoKey() {
        let good = String(decoding: KeyRecordJSON.encode(sample()), as: UTF8.self)
        for bad in [
            "", "[]", "{}", good.replacingOccurrences(of: "\"sha256\":\"", with: "\"sha256\":\"zz"),
            good.replacingOccurrences(of: "\"scopes\":[", with: "\"scopes\":[1,"),
            good.replacingOccurrences(of: "\"per_minute\":6", with: "\"per_minute\":\"6\""),
            good.replacingOccurrences(of: "\"runs\":[", with: "\"runs\":[null,"),
        ] {
            XCTAssertNil(KeyRecordJSON.decode(Array(bad.utf8)), bad)
        }
        // A hash of the wrong length (a truncated record) fails closed too.
        var short = sample()
        short.secretSHA256 = [1, 2, 3]
        XCTAssertNil(KeyRecordJSON.decode(KeyRecordJSON.encode(short)))
    }

    func testAnActivityEntryReadsBackWithTheIdTheScriptGave() {
        let e = ActivityEntry(
            actor: "key abc", action: "api_key_created", target: "id1", session: "K7QX3M9A", address: "::1",
            details: "a name with \"quotes\"", ts: 1_765_000_000_999)
        let stored = Array("17 ".utf8) + ActivityJSON.encode(e)
        let back = ActivityJSON.decode(stored)
        XCTAssertEqual(back?.id, 17)
        XCTAssertEqual(back?.ts, e.ts)
        XCTAssertEqual(back?.actor, e.actor)
        XCTAssertEqual(back?.action, e.action)
        XCTAssertEqual(back?.target, e.target)
        XCTAssertEqual(back?.session, e.session)
        XCTAssertEqual(back?.address, e.address)
        XCTAssertEqual(back?.details, e.details)
        XCTAssertNil(ActivityJSON.decode(Array("{\"ts\":1}".utf8)))
        XCTAssertNil(ActivityJSON.decode(Array("x {\"ts\":1,\"actor\":\"a\",\"action\":\"b\"}".utf8)))
        let bare = ActivityJSON.decode(Array("3 {\"ts\":1,\"actor\":\"a\",\"action\":\"b\"}".utf8))
        XCTAssertEqual(bare?.id, 3)
        XCTAssertNil(bare?.target)
    }

    func testQuotaWindowsAndWhatIsLeftOfThem() {
        // 2026-12-31 23:59:30 UTC: the last half minute of the year.
        let now = Date(timeIntervalSince1970: 1_798_761_570)
        let w = QuotaWindows(now)
        XCTAssertEqual(w.minute, 1_798_761_570 / 60)
        XCTAssertEqual(w.hour, 1_798_761_570 / 3600)
        XCTAssertEqual(w.month, 2026 * 12 + 12)
        XCTAssertEqual(w.minuteLeft, 30)
        XCTAssertEqual(w.hourLeft, 30)
        XCTAssertEqual(w.monthLeft, 30)
        XCTAssertEqual(w.hourName, "h\(w.hour)")
        XCTAssertEqual(w.monthName, "m\(2026 * 12 + 12)")
        // A month of 28 days: what is left of it counts from its real end.
        let feb = QuotaWindows(Date(timeIntervalSince1970: 1_771_977_600))  // 2026-02-25 00:00 UTC
        XCTAssertEqual(feb.month, 2026 * 12 + 2)
        XCTAssertEqual(feb.monthLeft, 4 * 86_400)
    }

    func testTheLongestWaitRefusesFirst() {
        let l = QuotaLimits(perMinute: 2, perHour: 5, perMonth: 9)
        XCTAssertNil(l.exceeded(QuotaCounts(minute: 1, hour: 4, month: 8)))
        XCTAssertEqual(l.exceeded(QuotaCounts(minute: 2, hour: 4, month: 8)), .minute)
        XCTAssertEqual(l.exceeded(QuotaCounts(minute: 2, hour: 5, month: 8)), .hour)
        XCTAssertEqual(l.exceeded(QuotaCounts(minute: 2, hour: 5, month: 9)), .month)
        XCTAssertEqual(l.exceeded(QuotaCounts(minute: 0, hour: 0, month: 9)), .month)
    }

    func testTheChargeScriptsAnswer() {
        func reply(_ v: [Int]) -> RedisReply { .array(v.map { .integer($0) }) }
        XCTAssertEqual(
            RedisAPIKeys.chargeReply(reply([0, 1, 2, 3])),
            QuotaCharge(counts: QuotaCounts(minute: 1, hour: 2, month: 3), refused: nil))
        XCTAssertEqual(RedisAPIKeys.chargeReply(reply([1, 6, 6, 6]))?.refused, .minute)
        XCTAssertEqual(RedisAPIKeys.chargeReply(reply([2, 0, 5, 5]))?.refused, .hour)
        XCTAssertEqual(RedisAPIKeys.chargeReply(reply([3, 0, 0, 9]))?.refused, .month)
        // Anything else (an error, a short array, an unknown code) is no answer: the node's counts decide.
        XCTAssertNil(RedisAPIKeys.chargeReply(.error("NOSCRIPT")))
        XCTAssertNil(RedisAPIKeys.chargeReply(reply([0, 1, 2])))
        XCTAssertNil(RedisAPIKeys.chargeReply(reply([7, 1, 2, 3])))
    }

    func testKeysLiveApartFromSessionKeys() {
        // Session scans match `{*}:...`: node-wide keys start with `chub:`, and a key's counters share a slot.
        for k in [
            RedisAPIKeys.records, RedisAPIKeys.revoked, RedisAPIKeys.counter("abc", "h1"),
            RedisAPIKeys.failures("10.0.0.1"), RedisActivityLog.list, RedisActivityLog.ids,
        ] {
            XCTAssertTrue(k.hasPrefix("chub:"), k)
        }
        let args = RedisAPIKeys.chargeArgs(
            "abc", QuotaLimits(perMinute: 1, perHour: 2, perMonth: 3), QuotaWindows(Date()))
        XCTAssertEqual(args.count, 9)
        XCTAssertTrue(args.prefix(3).allSatisfy { $0.hasPrefix("chub:{key:abc}:") })
    }

    private func sample() -> APIKeyRecord {
        APIKeyRecord(
            id: "id1", name: "n", secretSHA256: Array(repeating: 1, count: 32), createdAt: 1, revokedAt: nil,
            perMinute: 6, perHour: 7, perMonth: 8, scopes: ["runs:read"], runs: ["r"], owners: nil)
    }
}
