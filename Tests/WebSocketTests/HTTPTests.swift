@testable import WebSocket
import XCTest

final class HTTPTests: XCTestCase {
    let upgrade = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + "Sec-WebSocket-Protocol: chat, collabhub.v1\r\n\r\n"

    func parse(_ s: String, max: Int = 8192) -> HTTPHeadParser.Result {
        var p = HTTPHeadParser(maxHeadSize: max)
        return p.parse(Array(s.utf8))
    }

    func head(_ s: String) -> HTTPRequestHead {
        guard case .complete(let h, _) = parse(s) else { fatalError("did not parse: \(s)") }
        return h
    }

    func testParsesByteByByte() {
        var p = HTTPHeadParser()
        let bytes = Array(upgrade.utf8)
        for i in 1..<bytes.count {
            XCTAssertEqual(p.parse(Array(bytes[..<i])), .needMore, "prefix \(i)")
        }
        guard case .complete(let h, let n) = p.parse(bytes) else { return XCTFail() }
        XCTAssertEqual(n, bytes.count)
        XCTAssertEqual(h.method, "GET")
        XCTAssertEqual(h.path, "/echo")
        XCTAssertEqual(h.header("upgrade"), "websocket")
        XCTAssertEqual(h.tokens("connection"), ["keep-alive", "Upgrade"])
    }

    func testTokensSplitTrimAndSkipEmptiesAcrossHeaders() {
        let h = head(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: ,  keep-alive ,\t, Upgrade\t\r\nX: a\r\n"
                + "CONNECTION: close,x y\r\nconnection:\r\n\r\n")
        XCTAssertEqual(h.tokens("Connection"), ["keep-alive", "Upgrade", "close", "x y"])
        XCTAssertEqual(h.tokens("x"), ["a"])
        XCTAssertEqual(h.tokens("missing"), [])
        XCTAssertFalse(h.keepAlive)
    }

    func testTrimsOnlyHTTPWhitespaceBytes() {
        XCTAssertEqual(" \t a b \t".trimmingHTTPWhitespace(), "a b")
        XCTAssertEqual("ab".trimmingHTTPWhitespace(), "ab")
        XCTAssertEqual(" \t ".trimmingHTTPWhitespace(), "")
        XCTAssertEqual("".trimmingHTTPWhitespace(), "")
        XCTAssertEqual("\r\na\u{0B}".trimmingHTTPWhitespace(), "\r\na\u{0B}")  // only SP and HTAB are OWS
        // A space before a combining mark is one Character but two code points: the byte is still OWS.
        XCTAssertEqual(" \u{301}x ".trimmingHTTPWhitespace(), "\u{301}x")
        XCTAssertEqual("é ".trimmingHTTPWhitespace()[...].trimmingHTTPWhitespace(), "é")
    }

    func testQueryWithoutEscapesIsKeptAsIs() {
        let h = head("GET /a?session=ABC-DEF&b HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(h.query, ["session": "ABC-DEF", "b": ""])
    }

    func testBareLFAcceptedAndQueryDecoded() {
        let h = head("GET /a?x=1&y=h%C3%A9+llo HTTP/1.1\nHost: h\n\n")
        XCTAssertEqual(h.query, ["x": "1", "y": "hé llo"])
        XCTAssertEqual(h.path, "/a")
    }

    func testMalformedRequestsAre400() {
        for bad in ["GARBAGE\r\n\r\n", "GET /\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\nHost x\r\n\r\n",
                    "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", "GET / HTTP/1.1\r\nBad Name: x\r\nHost: x\r\n\r\n",
                    "GET / HTTP/1.1\r\n\r\n", "GET nopath HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"] {
            guard case .failure(let status, _) = parse(bad) else { XCTFail("accepted: \(bad)"); continue }
            XCTAssertEqual(status.code, 400, bad)
        }
        guard case .failure(let status, _) = parse("GET / HTTP/2.0\r\nHost: x\r\n\r\n") else { return XCTFail() }
        XCTAssertEqual(status.code, 505)
    }

    func testOversizedHeadIs431EvenBeforeItEnds() {
        let big = "GET / HTTP/1.1\r\nHost: x\r\nX: " + String(repeating: "a", count: 9000)
        guard case .failure(let status, _) = parse(big) else { return XCTFail() }
        XCTAssertEqual(status.code, 431)
        guard case .failure(let s2, _) = parse("GET / HTTP/1.1\r\nHost: x\r\nX: " + String(repeating: "a", count: 600) + "\r\n\r\n", max: 512) else { return XCTFail() }
        XCTAssertEqual(s2.code, 431)
    }

    func testHandshakeAcceptKeyFromRFCExample() {
        // RFC 6455 §1.3's example key and accept value.
        XCTAssertEqual(Handshake.acceptKey(for: "dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        guard case .success(let a) = Handshake.negotiate(head(upgrade), options: .init(subprotocols: ["collabhub.v1"])) else { return XCTFail() }
        XCTAssertEqual(a.subprotocol, "collabhub.v1")
        let response = String(decoding: Handshake.response(a), as: UTF8.self)
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        XCTAssertTrue(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        XCTAssertTrue(response.contains("Sec-WebSocket-Protocol: collabhub.v1\r\n"))
    }

    func rejection(_ request: String, _ options: Handshake.Options = .init()) -> Handshake.Rejection? {
        if case .failure(let r) = Handshake.negotiate(head(request), options: options) { return r }
        return nil
    }

    func testHandshakeRules() {
        XCTAssertEqual(rejection(upgrade.replacingOccurrences(of: "GET", with: "POST"))?.status.code, 405)
        XCTAssertEqual(rejection(upgrade.replacingOccurrences(of: "Upgrade: websocket\r\n", with: ""))?.status.code, 426)
        XCTAssertEqual(rejection(upgrade.replacingOccurrences(of: "keep-alive, Upgrade", with: "keep-alive"))?.status.code, 400)
        let v8 = rejection(upgrade.replacingOccurrences(of: "Version: 13", with: "Version: 8"))
        XCTAssertEqual(v8?.status.code, 426)
        XCTAssertTrue(v8?.headers.contains(where: { $0.0 == "Sec-WebSocket-Version" && $0.1 == "13" }) ?? false)
        XCTAssertEqual(rejection(upgrade.replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "c2hvcnQ="))?.status.code, 400)
        XCTAssertEqual(rejection(upgrade.replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "!!!"))?.status.code, 400)
        // Case-insensitive tokens.
        XCTAssertNil(rejection(upgrade.replacingOccurrences(of: "Upgrade: websocket", with: "UPGRADE: WebSocket")
            .replacingOccurrences(of: "keep-alive, Upgrade", with: "UPGRADE")))
        // Origin allow-list.
        let withOrigin = upgrade.replacingOccurrences(of: "Host: x\r\n", with: "Host: x\r\nOrigin: https://evil.example\r\n")
        XCTAssertEqual(rejection(withOrigin, .init(allowedOrigins: ["https://app.example"]))?.status.code, 403)
        XCTAssertNil(rejection(withOrigin, .init(allowedOrigins: ["https://evil.example"])))
        // Required subprotocol.
        let other = upgrade.replacingOccurrences(of: "chat, collabhub.v1", with: "chat")
        XCTAssertEqual(rejection(other, .init(subprotocols: ["collabhub.v1"], subprotocolRequired: true))?.status.code, 400)
    }

    func testKeepAliveSemantics() {
        XCTAssertTrue(head("GET / HTTP/1.1\r\nHost: x\r\n\r\n").keepAlive)
        XCTAssertFalse(head("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keepAlive)
        XCTAssertFalse(head("GET / HTTP/1.0\r\n\r\n").keepAlive)
        XCTAssertTrue(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keepAlive)
    }
}
