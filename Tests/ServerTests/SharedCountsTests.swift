import Foundation
import Hub
@testable import Server
import XCTest

/// What a node does with the cluster's counts (Redis's answers): the failed-join throttle takes the
/// cluster's count, and a quota refused by the cluster gets the single node's 429 headers.
final class SharedCountsTests: XCTestCase {
    func testTheClustersCountOfFailedJoinsThrottlesThisNode() {
        let d = SessionDirectory(codeLength: 6, maxFailedJoinsPerMinute: 3, existing: [])
        XCTAssertTrue(d.failedJoin(from: "10.0.0.1", now: 100))
        // The other nodes counted two more: within the budget, but the next join here is refused first.
        XCTAssertTrue(d.learnFailedJoins("10.0.0.1", count: 3, now: 100.5))
        XCTAssertTrue(d.isThrottled("10.0.0.1", now: 101))
        XCTAssertFalse(d.learnFailedJoins("10.0.0.1", count: 4, now: 101))
        // A lower count (an answer overtaken by a newer one) never lowers this node's.
        XCTAssertTrue(d.learnFailedJoins("10.0.0.1", count: 1, now: 101))
        XCTAssertTrue(d.isThrottled("10.0.0.1", now: 101))
        // The window is still the first failure's: a minute later the address starts again.
        XCTAssertFalse(d.isThrottled("10.0.0.1", now: 161))
        XCTAssertFalse(d.isThrottled("10.0.0.2", now: 101), "another address has its own budget")
    }

    func testARefusalByTheClusterCarriesTheHeadersOfOneNodes() {
        let record = APIKeyRecord(
            id: "k1", name: "k", secretSHA256: [], createdAt: 0, revokedAt: nil, perMinute: 6, perHour: 60,
            perMonth: 600)
        let now = Date(timeIntervalSince1970: 1_798_761_570)  // 30 s before the end of a minute, hour, month
        for (window, says) in [(QuotaWindow.minute, "6 requests per minute"), (.hour, "hourly"), (.month, "monthly")] {
            guard case .limited(let headers, let message) = APIKeys.refusal(record, window, now: now) else {
                return XCTFail("not a refusal")
            }
            XCTAssertTrue(message.contains(says), message)
            let h = Dictionary(headers, uniquingKeysWith: { $1 })
            XCTAssertEqual(h["Retry-After"], "30")
            XCTAssertEqual(h["X-RateLimit-Remaining"], "0")
            XCTAssertEqual(h["X-RateLimit-Limit"], "6")
        }
    }
}
