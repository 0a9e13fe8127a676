@testable import Server
import XCTest

/// Per-address state is keyed by IPv4 address, and by IPv6 network (`--ipv6-prefix`).
final class AddressKeyTests: XCTestCase {
    func testIPv6IsKeyedByItsNetworkAndIPv4ByAddress() {
        let a = AddressKey.of("2001:db8:1:2:3:4:5:6", ipv6Prefix: 64)
        XCTAssertEqual(a, "2001:db8:1:2::/64")
        XCTAssertEqual(AddressKey.of("2001:db8:1:2:ffff:ffff:ffff:ffff", ipv6Prefix: 64), a, "one /64, one key")
        XCTAssertNotEqual(AddressKey.of("2001:db8:1:3::1", ipv6Prefix: 64), a, "the next /64 is another")
        XCTAssertEqual(AddressKey.of("2001:db8:1:2ff::1", ipv6Prefix: 56), "2001:db8:1:200::/56")
        XCTAssertEqual(AddressKey.of("2001:db8:1:2::1", ipv6Prefix: 48), "2001:db8:1::/48")
        XCTAssertEqual(AddressKey.of("2001:db8:1:2::1", ipv6Prefix: 61), "2001:db8:1::/61")
        XCTAssertEqual(AddressKey.of("2001:db8:1:2::1", ipv6Prefix: 128), "2001:db8:1:2::1")
        XCTAssertEqual(AddressKey.of("::1", ipv6Prefix: 64), "::/64")
        // IPv4, and IPv4-mapped IPv6 (a dual-stack listener's IPv4 clients), stay per address.
        XCTAssertEqual(AddressKey.of("10.0.0.1", ipv6Prefix: 64), "10.0.0.1")
        XCTAssertEqual(AddressKey.of("::ffff:10.0.0.1", ipv6Prefix: 64), "::ffff:10.0.0.1")
        XCTAssertNotEqual(AddressKey.of("::ffff:10.0.0.2", ipv6Prefix: 64), AddressKey.of("::ffff:10.0.0.1", ipv6Prefix: 64))
        // Whatever else (a forwarded header's value) is its own key.
        for odd in ["", "fe80::1%eth0", "not:an:address", "::::", "1.2.3.4.5"] {
            XCTAssertEqual(AddressKey.of(odd, ipv6Prefix: 64), odd)
        }
    }
}
