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
        for p in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "2001:4860:4860::8888",
                  "2003::1", "2001:1::1", "64:ff9c::1", "100:0:0:1::1"] {
            XCTAssertFalse(priv(p), p)
        }
        XCTAssertNil(AddressPolicy.literal("2130706433"), "numeric forms are names: checked once resolved")
    }

    /// IPv6 forms that carry an IPv4 address to a gateway (NAT64, SIIT, 6to4, Teredo) or that the
    /// kernel treats as IPv4 reach the internal network behind such a gateway: none is public.
    func testTransitionPrefixesAreNotPublic() {
        func priv(_ s: String) -> Bool { AddressPolicy.isPrivate(AddressPolicy.literal(s)!) }
        for p in ["::127.0.0.1", "::8.8.8.8", "::a:b", "::ffff:0:7f00:1", "::ffff:0:808:808", "2002:7f00:1::1",
                  "2002:808:808::1", "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "64:ff9b:1::7f00:1",
                  "64:ff9b:1:ffff::1", "100::1"] {
            XCTAssertTrue(priv(p), p)
        }
    }

    /// What logs may show of a receiver's URL: not its path or query.
    func testOrigins() {
        XCTAssertEqual(WebhookURL.origin(of: "https://hooks.example.com/t/SECRET?token=abc"), "https://hooks.example.com")
        XCTAssertEqual(WebhookURL.origin(of: "http://[::1]:8080/x?k=v"), "http://[::1]:8080")
        XCTAssertEqual(WebhookURL.origin(of: "nope://x/SECRET"), "(invalid URL)")
    }

    func testReceiverAnswers() {
        let r = WebhookResponse.parse(Array("HTTP/1.1 503 Busy\r\nRetry-After: 120\r\nX: y".utf8))
        XCTAssertEqual(r, WebhookResponse(status: 503, retryAfter: 120))
        XCTAssertEqual(WebhookResponse.httpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784_111_777)
        for bad in ["Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT", "W \u{35F}\u{FFFD}fteT",
                    "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", ""] {
            XCTAssertNil(WebhookResponse.httpDate(bad), bad)
        }
        let odd = WebhookResponse.parse(Array("HTTP/1.1 429 x\r\nRetry-After: W \u{35F}\u{FFFD}fteT".utf8))
        XCTAssertEqual(odd, WebhookResponse(status: 429), "an unreadable Retry-After is ignored")
        XCTAssertNil(WebhookResponse.parse(Array("HTTP/2 200".utf8)))
        XCTAssertNil(WebhookResponse.parse(Array("HTTP/1.1 42 x".utf8)))
    }
}
