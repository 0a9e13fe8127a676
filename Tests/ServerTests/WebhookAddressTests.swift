@testable import Server
import Hub
import XCTest

/// Where webhooks may go: URLs that cannot smuggle a request, and the private address ranges (SSRF).
final class WebhookAddressTests: XCTestCase {
    func testURLs() {
        XCTAssertEqual(WebhookURL("https://example.com/hook?a=1"),
                       WebhookURL("https://EXAMPLE.com:443/hook?a=1"), "default port, case-insensitive host")
        let u = WebhookURL("http://[::1]:8080")!
        XCTAssertEqual([u.host, String(u.port), u.target, u.hostHeader], ["::1", "8080", "/", "[::1]:8080"])
        for bad in ["ftp://x/", "https://", "https://user:pw@x/", "https://x:0/", "https://x:70000/",
                    "https://x/a\r\nEvil: 1", "https://x/a b", "https://x/\u{7F}", "https://x/\t"] {
            XCTAssertNil(WebhookURL(bad), bad)
        }
    }

    func testPrivateAddresses() {
        func priv(_ s: String) -> Bool { AddressPolicy.isPrivate(AddressPolicy.literal(s)!) }
        for p in ["127.0.0.1", "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "169.254.169.254",
                  "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "::", "fe80::1", "fc00::1", "fd12::1", "fec0::1",
                  "::ffff:127.0.0.1", "64:ff9b::7f00:1", "ff02::1"] {
            XCTAssertTrue(priv(p), p)
        }
        for p in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] { XCTAssertFalse(priv(p), p) }
        XCTAssertNil(AddressPolicy.literal("2130706433"), "numeric forms are names: checked once resolved")
    }
}
