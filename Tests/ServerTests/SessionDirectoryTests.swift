import Hub
@testable import Server
import XCTest

final class SessionDirectoryTests: XCTestCase {
    func testCreatedCodesAreUniqueAndWellFormed() {
        let d = SessionDirectory(codeLength: 6, existing: [])
        var codes = Set<String>()
        for _ in 0..<500 {
            let info = d.create(title: "t", maxParticipants: 10, guestPolicy: .allow, now: 1)
            XCTAssertEqual(info.code.count, 6)
            XCTAssertEqual(SessionCode.normalize(info.code), info.code)
            XCTAssertFalse(info.hostKey.isEmpty)
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
