import Hub
@testable import Server
import XCTest

final class SessionDirectoryTests: XCTestCase {
    func testCreatedCodesAreUniqueAndWellFormed() {
        let d = SessionDirectory(codeLength: 6, existing: [])
        var codes = Set<String>()
        for _ in 0..<500 {
            let (info, key) = d.create(title: "t", maxParticipants: 10, guestPolicy: .allow, now: 1)
            XCTAssertEqual(info.code.count, 6)
            XCTAssertEqual(SessionCode.normalize(info.code), info.code)
            // The row holds the host key's hash; the key itself is only returned.
            XCTAssertEqual(info.hostKey, HostKey.stored(key))
            XCTAssertFalse(info.hostKey.contains(key))
            XCTAssertTrue(HostKey.matches(key, stored: info.hostKey))
            codes.insert(info.code)
        }
        XCTAssertEqual(codes.count, 500)
        XCTAssertEqual(d.all().count, 500)
    }

    func testFailedJoinsAreThrottledPerAddressAndForgottenAfterAMinute() {
        let d = SessionDirectory(codeLength: 6, maxFailedJoinsPerMinute: 3, existing: [])
        XCTAssertTrue(d.failedJoin(from: "10.0.0.1", now: 100))
        XCTAssertTrue(d.failedJoin(from: "10.0.0.1", now: 101))
        XCTAssertTrue(d.failedJoin(from: "10.0.0.1", now: 102))
        XCTAssertFalse(d.failedJoin(from: "10.0.0.1", now: 103))
        XCTAssertTrue(d.isThrottled("10.0.0.1", now: 103))
        XCTAssertFalse(d.isThrottled("10.0.0.2", now: 103), "another address has its own budget")
        XCTAssertFalse(d.isThrottled("10.0.0.1", now: 161), "the window is a minute")
        XCTAssertTrue(d.failedJoin(from: "10.0.0.1", now: 161))
    }

    /// A full table forgets its oldest address: a flood of fresh addresses neither grows it nor locks
    /// out the next new address (it used to refuse the first failure of every new one).
    func testAFullFailureTableForgetsItsOldestAddressInsteadOfRefusingNewOnes() {
        let d = SessionDirectory(codeLength: 6, maxFailedJoinsPerMinute: 3, maxFailureEntries: 4, existing: [])
        for _ in 0..<4 { _ = d.failedJoin(from: "10.0.0.1", now: 100) }
        XCTAssertTrue(d.isThrottled("10.0.0.1", now: 100))
        for i in 2...4 { XCTAssertTrue(d.failedJoin(from: "10.0.0.\(i)", now: 101 + Double(i))) }
        XCTAssertEqual(d.failedJoinAddresses, 4)
        XCTAssertTrue(d.failedJoin(from: "10.0.0.5", now: 110), "a new address's first failure is allowed")
        XCTAssertEqual(d.failedJoinAddresses, 4, "bounded")
        XCTAssertFalse(d.isThrottled("10.0.0.1", now: 110), "the oldest went")
        XCTAssertTrue(d.failedJoin(from: "10.0.0.3", now: 111), "the others are still counted")
        XCTAssertEqual(d.failedJoinAddresses, 4)
        // Expired minutes go as they are passed, without a sweep of the table.
        XCTAssertTrue(d.failedJoin(from: "10.0.0.9", now: 200))
        XCTAssertEqual(d.failedJoinAddresses, 1)
        // Many more addresses than the table holds: still bounded, every first failure allowed.
        for i in 0..<5000 { XCTAssertTrue(d.failedJoin(from: "a\(i)", now: 300 + Double(i) / 1000)) }
        XCTAssertEqual(d.failedJoinAddresses, 4)
    }

    /// Loops' clocks differ a little, so minutes may be recorded out of order: an address whose new minute
    /// began after its old one's record is not forgotten when that old record expires.
    func testAnOutOfOrderMinuteDoesNotForgetALiveAddress() {
        let d = SessionDirectory(codeLength: 6, maxFailedJoinsPerMinute: 3, existing: [])
        XCTAssertTrue(d.failedJoin(from: "b", now: 10))
        XCTAssertTrue(d.failedJoin(from: "a", now: 5))
        for t in [66.0, 67, 68] { _ = d.failedJoin(from: "a", now: t) }
        XCTAssertTrue(d.isThrottled("a", now: 68))
        XCTAssertTrue(d.failedJoin(from: "c", now: 71))
        XCTAssertTrue(d.isThrottled("a", now: 71), "a's current minute is still counted")
        XCTAssertFalse(d.isThrottled("b", now: 71))
        XCTAssertEqual(d.failedJoinAddresses, 2)
    }

    func testAnEndedSessionIsNotRevivedByALateChange() {
        var info = SessionInfo(code: "ABCDEF", title: "t", maxParticipants: 5, guestPolicy: .allow, hostKey: "k", createdAt: 1)
        let d = SessionDirectory(codeLength: 6, existing: [info])
        info.title = "renamed"
        XCTAssertTrue(d.updateIfLive(info))
        XCTAssertEqual(d.info("ABCDEF")?.title, "renamed")
        info.endedAt = 5
        d.update(info)
        info.title = "too late"
        XCTAssertFalse(d.updateIfLive(info))
        XCTAssertEqual(d.info("ABCDEF")?.title, "renamed")
    }
}
