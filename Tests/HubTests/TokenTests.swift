@testable import Hub
import WebSocket
import XCTest

final class TokenTests: XCTestCase {
    let verifier = TokenVerifier(keys: ["default": Array("k".utf8), "old": Array("o".utf8)], skew: 10)

    func sign(_ claims: [String: Any], key: String = "k", kid: String? = nil) -> String {
        TokenVerifier.sign(claims, key: Array(key.utf8), kid: kid)
    }

    func testValidTokenAndClaims() throws {
        let t = sign(["sub": "u", "name": "Ann", "session": "abcd-efgh", "role": "viewer", "exp": 1000])
        let c = try verifier.verify(t, now: 900).get()
        XCTAssertEqual(c.sub, "u"); XCTAssertEqual(c.role, .viewer); XCTAssertEqual(c.session, "ABCDEFGH")
        XCTAssertNoThrow(try verifier.verify(sign(["sub": "u", "session": "*", "exp": 1000], key: "o", kid: "old"), now: 900).get())
    }

    func testAudienceIssuerAndTheLeastPrivilegedRole() {
        // N8: a token for another application or issuer is not valid here; no role is a viewer.
        var v = verifier
        func ok(_ claims: [String: Any]) -> Bool {
            if case .success = v.verify(sign(["sub": "u", "session": "*", "exp": 1000].merging(claims) { $1 }), now: 900) {
                return true
            }
            return false
        }
        XCTAssertEqual(try v.verify(sign(["sub": "u", "session": "*", "exp": 1000]), now: 900).get().role, .viewer)
        XCTAssertFalse(ok(["aud": "other-app"]), "an audience the hub does not claim")
        XCTAssertTrue(ok([:]))
        v.audience = "hub"; v.issuer = "idp"
        XCTAssertFalse(ok([:]), "no aud once one is required")
        XCTAssertFalse(ok(["aud": "other-app", "iss": "idp"]))
        XCTAssertFalse(ok(["aud": "hub", "iss": "someone"]))
        XCTAssertFalse(ok(["aud": "hub"]))
        XCTAssertTrue(ok(["aud": "hub", "iss": "idp"]))
        XCTAssertTrue(ok(["aud": ["other", "hub"], "iss": "idp"]), "aud may be a list")
    }

    func testRejections() {
        func kind(_ t: String, now: Int64 = 900) -> TokenError.Kind? {
            if case .failure(let e) = verifier.verify(t, now: now) { return e.kind }
            return nil
        }
        let good = sign(["sub": "u", "session": "*", "exp": 1000])
        XCTAssertNil(kind(good))
        XCTAssertEqual(kind(good, now: 1011), .expired)
        XCTAssertNil(kind(good, now: 1009), "within the skew")
        XCTAssertEqual(kind(sign(["sub": "u", "session": "*", "exp": 1000, "nbf": 950])), .notYetValid)
        XCTAssertEqual(kind(sign(["sub": "u", "session": "*", "exp": 1000], key: "x")), .signature)
        XCTAssertEqual(kind(sign(["sub": "u", "session": "*", "exp": 1000], kid: "nope")), .unknownKey)
        XCTAssertEqual(kind(sign(["exp": 1000])), .claims)
        XCTAssertEqual(kind(sign(["sub": "u"])), .claims)
        XCTAssertEqual(kind(sign(["sub": "u", "exp": 1000])), .claims, "a token naming no session (nor channels) grants nothing")
        XCTAssertEqual(kind(sign(["sub": "u", "session": "*", "exp": 1000, "role": "root"])), .claims)
        let parts = good.split(separator: ".")
        let none = Base64.encode(Array(#"{"alg":"none"}"#.utf8), urlSafe: true) + "." + parts[1] + "."
        XCTAssertEqual(kind(none), .algorithm)
        XCTAssertEqual(kind("a.b"), .malformed)
        XCTAssertEqual(kind(String(parts[0]) + ".@@@." + String(parts[2])), .signature)
        // Extreme times in a validly signed token must not trap.
        XCTAssertNil(kind(sign(["sub": "u", "session": "*", "exp": Int.max])))
        XCTAssertEqual(kind(sign(["sub": "u", "session": "*", "exp": Int.min])), .expired)
        XCTAssertEqual(kind(sign(["sub": "u", "session": "*", "exp": 1000, "nbf": Int.max])), .notYetValid)
        XCTAssertNil(kind(sign(["sub": "u", "session": "*", "exp": 1000, "nbf": Int.min])))
    }

    func testTokenBucket() {
        var b = TokenBucket(rate: 10, burst: 20, now: 0)
        XCTAssertEqual((0..<25).filter { _ in b.take(now: 0) }.count, 20, "the burst, then nothing")
        XCTAssertFalse(b.take(now: 0.05))
        XCTAssertTrue(b.take(now: 0.2))
        var limiter = ConnectionLimiter(MessageRates(), now: 0)
        let cursor = try! ClientMessage.parse(Array(#"{"type":"cursor","x":1,"y":1}"#.utf8))
        let chat = try! ClientMessage.parse(Array(#"{"type":"chat","id":"1","text":"t"}"#.utf8))
        XCTAssertEqual((0..<200).filter { _ in limiter.allow(cursor, now: 0) }.count, 120)
        XCTAssertTrue(limiter.allow(chat, now: 0), "kinds have their own buckets")
        XCTAssertEqual(limiter.refused, 80)
        // The buckets refill from one clock: using one kind costs another nothing, and none passes its cap.
        var l = ConnectionLimiter(MessageRates(), now: 0)
        XCTAssertEqual((0..<20).filter { _ in l.allow(.chat, now: 0) }.count, 10)
        XCTAssertTrue(l.allow(.cursor, now: 1))
        XCTAssertEqual((0..<20).filter { _ in l.allow(.chat, now: 1) }.count, 5, "five a second")
        XCTAssertEqual((0..<20).filter { _ in l.allow(.chat, now: 100) }.count, 10, "at most twice the rate saved")
        XCTAssertEqual(l.refused, 35)
    }
}
