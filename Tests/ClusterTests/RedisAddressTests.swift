import Foundation
import XCTest

@testable import Cluster

#if canImport(Glibc)
    import Glibc
#endif

final class RedisAddressTests: XCTestCase {
    func testANumericHostIsUsedAsItIs() throws {
        XCTAssertEqual(try RedisAddress.resolve("10.0.0.5"), ["10.0.0.5"])
        XCTAssertEqual(try RedisAddress.resolve("::1"), ["::1"])
    }

    func testANameResolvesToNumericAddresses() throws {
        let found = try RedisAddress.resolve("localhost")
        XCTAssertFalse(found.isEmpty)
        for a in found { XCTAssertTrue(RedisAddress.isNumeric(a), a) }
        XCTAssertTrue(found.contains("127.0.0.1") || found.contains("::1"), "\(found)")
    }

    func testAnUnknownNameIsAClearError() {
        XCTAssertThrowsError(try RedisAddress.resolve("no-such-host.invalid")) { error in
            XCTAssertTrue("\(error)".contains("cannot resolve the Redis host no-such-host.invalid"), "\(error)")
        }
    }

    /// A reconnect's lookup runs on a worker thread, never the caller's (a loop's).
    func testRefreshResolvesOffTheCallingThread() throws {
        let address = try RedisAddress(host: "localhost")
        let caller = pthread_self()
        let done = expectation(description: "resolved")
        final class Seen: @unchecked Sendable {
            var onCaller = true
            var host = ""
        }
        let seen = Seen()
        address.refresh(forbidden: caller) { host in
            seen.onCaller = pthread_equal(pthread_self(), caller) != 0
            seen.host = host
            done.fulfill()
        }
        wait(for: [done], timeout: 5)
        XCTAssertFalse(seen.onCaller)
        XCTAssertEqual(seen.host, address.current)
    }

    /// An address that failed before Redis answered is passed over for the next one.
    func testAFailedAddressMovesToTheNext() throws {
        let address = try RedisAddress(host: "127.0.0.1")
        address.failed("127.0.0.1")
        XCTAssertEqual(address.current, "127.0.0.1", "a single address is tried again")
        address.failed("10.9.9.9")
        XCTAssertEqual(address.current, "127.0.0.1", "a failure of another address changes nothing")
    }
}
