import Foundation
import Hub
@testable import Server
import XCTest

/// API keys are checked from memory: the table is read at start, after changes and on refresh.
final class APIKeysTests: XCTestCase {
    func testKeysAreCheckedFromMemoryWithTheirLimits() throws {
        let store = MemoryStorage()
        let keys = APIKeys(store: store, refreshInterval: 5)
        let (record, key) = try store.createKey(APIKeySpec(name: "ci", perMinute: 2, perHour: 10, perMonth: 100), actor: "t")
        guard case .unknownId(record.id) = keys.check(key) else {
            return XCTFail("a key made since the last read is not known yet")
        }
        keys.reload()
        guard case .allowed(let headers, let r) = keys.check(key) else { return XCTFail("the key was refused") }
        XCTAssertEqual(r.id, record.id)
        XCTAssertEqual(headers.first { $0.0 == "X-RateLimit-Remaining" }?.1, "1")
        guard case .allowed = keys.check(key) else { return XCTFail("the second request was refused") }
        guard case .limited(_, let message) = keys.check(key) else { return XCTFail("the third request in a minute passed") }
        XCTAssertTrue(message.contains("per minute"))
        guard case .unknown = keys.check(String(key.dropLast(2)) + "zz") else { return XCTFail("a wrong secret passed") }
        guard case .unknown = keys.check("chk_" + String(repeating: "a", count: 200)) else { return XCTFail("oversized") }
        XCTAssertTrue(keys.isActive(record.id))
        // A /publish socket's message is charged to the same quota (N5): the minute is used up.
        guard case .limited = keys.charge(id: record.id) else { return XCTFail("a charge past the quota passed") }
        XCTAssertEqual(try store.usage(window: APIKeys.windows(Date()).hour)[record.id], 2, "allowed requests are counted")

        XCTAssertTrue(try store.revokeKey(id: record.id, actor: "t"))
        XCTAssertTrue(keys.isActive(record.id), "until the table is read again")
        keys.reload()
        XCTAssertFalse(keys.isActive(record.id))
        guard case .unknown = keys.charge(id: record.id) else { return XCTFail("a revoked key was charged") }
        guard case .unknown = keys.check(key) else { return XCTFail("a revoked key passed") }
    }

    func testAnIdAReadDidNotFindIsNotReadForAgainUntilTheNextRead() {
        let keys = APIKeys(store: MemoryStorage())
        guard case .unknownId("nope") = keys.check("chk_nope_secret") else { return XCTFail() }
        keys.reload(asked: ["nope"])
        guard case .unknown = keys.check("chk_nope_secret") else { return XCTFail("asked again for a known absent id") }
        keys.reload()
        guard case .unknownId = keys.check("chk_nope_secret") else { return XCTFail("the next read forgets") }
    }

    func testHourlyAndMonthlyCountsStartFromWhatIsStored() throws {
        let store = MemoryStorage()
        let (record, key) = try store.createKey(APIKeySpec(name: "q", perMinute: 100, perHour: 100, perMonth: 3), actor: "t")
        let windows = APIKeys.windows(Date())
        store.recordUse(id: record.id, windows: windows)
        store.recordUse(id: record.id, windows: windows)
        let keys = APIKeys(store: store)   // a restart: two of the month's three are used
        guard case .allowed = keys.check(key) else { return XCTFail("the third request of the month was refused") }
        guard case .limited(_, let message) = keys.check(key) else { return XCTFail("past the monthly quota") }
        XCTAssertTrue(message.contains("monthly"))
    }
}
