@testable import Server
import WebSocket
import XCTest

/// Cross-site safety without a server (N2, L10): which Host, Origin and Content-Type pass.
final class SiteGateTests: XCTestCase {
    func head(_ method: String, _ target: String, _ headers: [(String, String)]) -> HTTPRequestHead {
        var text = "\(method) \(target) HTTP/1.1\r\n"
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        var parser = HTTPHeadParser(maxHeadSize: 8192)
        guard case .complete(let h, _) = parser.parse(Array((text + "\r\n").utf8)) else {
            fatalError("test head did not parse")
        }
        return h
    }

    func status(_ gate: SiteGate, _ method: String, _ target: String, _ headers: [(String, String)],
                body: String = "", upgrade: Bool = false) -> Int? {
        gate.check(head(method, target, headers), body: Array(body.utf8), upgrade: upgrade)?.status.code
    }

    func testLoopbackHubsAnswerOnlyLoopbackNames() {
        let gate = SiteGate(config: Config())  // 127.0.0.1
        XCTAssertNil(status(gate, "GET", "/api/sessions", [("Host", "127.0.0.1:8080")]))
        XCTAssertNil(status(gate, "GET", "/api/sessions", [("Host", "localhost")]))
        XCTAssertNil(status(gate, "GET", "/api/sessions", [("Host", "[::1]:8080")]))
        XCTAssertNil(status(gate, "GET", "/api/sessions", [("Host", "127.3.4.5")]))
        XCTAssertEqual(status(gate, "GET", "/api/sessions", [("Host", "evil.example:8080")]), 421, "DNS rebinding")
        XCTAssertEqual(status(gate, "GET", "/api/sessions", [("Host", "127.0.0.1.evil.example")]), 421)
        XCTAssertNil(status(gate, "GET", "/healthz", [("Host", "10.0.0.7")]), "health checks name any address")
    }

    func testPublicURLAndListsAddNames() {
        var c = Config(); c.host = "0.0.0.0"
        XCTAssertNil(SiteGate(config: c).hosts, "bound beyond loopback with no list: any Host")
        c.publicURL = "https://Chat.Example.com"
        let gate = SiteGate(config: c)
        XCTAssertNil(status(gate, "GET", "/", [("Host", "chat.example.com")]))
        XCTAssertEqual(status(gate, "GET", "/", [("Host", "other.example.com")]), 421)
        c.allowedHosts = ["hub.internal"]
        XCTAssertNil(status(SiteGate(config: c), "GET", "/", [("Host", "hub.internal:8080")]))
    }

    func testOriginsAreTheHubsOwnUnlessListed() {
        var c = Config()
        let gate = SiteGate(config: c)
        let host = ("Host", "127.0.0.1:8080")
        XCTAssertNil(status(gate, "GET", "/ws", [host, ("Origin", "http://127.0.0.1:8080")], upgrade: true))
        XCTAssertEqual(status(gate, "GET", "/ws", [host, ("Origin", "http://evil.example")], upgrade: true), 403)
        XCTAssertEqual(status(gate, "GET", "/watch", [host, ("Origin", "null")], upgrade: true), 403)
        XCTAssertEqual(status(gate, "GET", "/ws", [host, ("Origin", "http://127.0.0.1:9999")], upgrade: true), 403)
        XCTAssertNil(status(gate, "GET", "/ws", [host], upgrade: true), "no Origin: not a browser")
        XCTAssertNil(status(gate, "GET", "/echo", [host, ("Origin", "http://evil.example")], upgrade: true))
        // Reads are not gated by Origin (a browser keeps a cross-site answer from its page).
        XCTAssertNil(status(gate, "GET", "/api/sessions", [host, ("Origin", "http://evil.example")]))
        c.allowedOrigins = ["https://app.example.com"]
        XCTAssertNil(
            status(SiteGate(config: c), "GET", "/ws", [host, ("Origin", "https://APP.example.com")], upgrade: true))
        c.allowedOrigins = ["*"]
        XCTAssertNil(status(SiteGate(config: c), "GET", "/ws", [host, ("Origin", "null")], upgrade: true))
    }

    func testAPIWritesNeedJSONAndAnAllowedOrigin() {
        let gate = SiteGate(config: Config())
        let host = ("Host", "127.0.0.1:8080")
        XCTAssertEqual(status(gate, "POST", "/api/webhooks", [host, ("Content-Type", "text/plain")], body: "{}"), 415)
        XCTAssertEqual(status(gate, "POST", "/api/webhooks", [host], body: "{}"), 415, "no type is no JSON")
        XCTAssertNil(
            status(gate, "POST", "/api/webhooks", [host, ("Content-Type", "application/JSON; charset=utf-8")], body: "{}"))
        XCTAssertNil(status(gate, "POST", "/api/sessions/X/end", [host]), "no body, nothing to read as JSON")
        XCTAssertEqual(
            status(
                gate, "POST", "/api/webhooks",
                [host, ("Content-Type", "application/json"), ("Origin", "http://evil.example")], body: "{}"), 403)
        XCTAssertEqual(status(gate, "DELETE", "/api/keys/k", [host, ("Origin", "http://evil.example")]), 403)
    }

    func testOriginAndHostParsing() {
        XCTAssertEqual(SiteGate.origin(of: "https://chat.example.com/"), "https://chat.example.com")
        XCTAssertEqual(SiteGate.origin(of: "HTTP://A.b:8080"), "http://a.b:8080")
        XCTAssertNil(SiteGate.origin(of: "app.example.com"))
        XCTAssertNil(SiteGate.origin(of: "https://a.b/path"))
        XCTAssertNil(SiteGate.origin(of: "ftp://a.b"))
        XCTAssertNil(SiteGate.origin(of: "https://user@a.b"))
        XCTAssertEqual(SiteGate.hostName(authority: "[::1]:80"), "::1")
        XCTAssertNil(SiteGate.hostName(authority: "a.b:8x"))
        XCTAssertNil(SiteGate.hostName(authority: "a:b:c"))
        XCTAssertNil(SiteGate.hostName(authority: ""))
        XCTAssertNil(SiteGate.hostName(authority: "[]"), "empty brackets are no host")
        XCTAssertNil(SiteGate.hostName(authority: "[]:80"))
        XCTAssertTrue(SiteGate.isLoopbackIPv4("127.0.0.1"))
        XCTAssertFalse(SiteGate.isLoopbackIPv4("127.evil.example.com"))
    }
}
