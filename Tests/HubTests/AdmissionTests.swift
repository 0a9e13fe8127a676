import Bytes
@testable import Hub
import TestSupport
import WebSocket
import XCTest

/// Who may join, as whom: the pure rules, without a session.
final class AdmissionTests: XCTestCase {
    let secret = Array("0123456789abcdef0123456789abcdef".utf8)
    var tokens: TokenVerifier { TokenVerifier(keys: ["k1": secret]) }
    func info(_ policy: GuestPolicy = .allow) -> SessionInfo {
        SessionInfo(code: "ABCDEFGH", title: "t", maxParticipants: 5, guestPolicy: policy, hostKey: "the-host-key", createdAt: 0)
    }
    func join(token: String? = nil, hostKey: String? = nil, clientId: String? = nil, secret: String? = nil)
        -> ClientMessage.Join {
        var j = ClientMessage.Join(session: nil, name: "Ann", clientId: clientId, resumeFrom: nil, hostKey: hostKey)
        j.token = token
        j.resumeSecret = secret
        return j
    }
    static let fresh = "fresh-secret-0123456789"
    func decide(_ j: ClientMessage.Join, _ info: SessionInfo) -> Admission.Verdict {
        Admission.decide(j, info: info, tokens: tokens, now: 100, newSecret: { Self.fresh })
    }
    func token(_ claims: [String: Any]) -> String { TokenVerifier.sign(claims, key: secret, kid: "k1") }

    func testGuestsHostKeysAndPolicies() {
        XCTAssertEqual(decide(join(clientId: "c1", secret: "s-0123456789abcdef"), info()),
                       .admit(role: .editor, key: Admission.guestKey(clientId: "c1", secret: "s-0123456789abcdef"),
                              name: "Ann", tokenExpiry: nil, viaHostKey: false))
        XCTAssertEqual(Admission.decide(join(), info: info(), tokens: tokens, now: 100),
                       .admit(role: .editor, key: nil, name: "Ann", tokenExpiry: nil, viaHostKey: false))
        XCTAssertEqual(Admission.decide(join(hostKey: "the-host-key"), info: info(.deny), tokens: tokens, now: 100),
                       .admit(role: .host, key: nil, name: "Ann", tokenExpiry: nil, viaHostKey: true))
        guard case .reject(let code, _, _, let close) = Admission.decide(join(), info: info(.deny), tokens: tokens, now: 100)
        else { return XCTFail("a guest got into a session that admits none") }
        XCTAssertEqual(code, "guests_not_allowed")
        XCTAssertEqual(close, .unauthorized)
        guard case .reject = Admission.decide(join(hostKey: "wrong"), info: info(.deny), tokens: tokens, now: 100)
        else { return XCTFail("a wrong host key admitted") }
    }

    /// Host keys are stored as their hash: the key opens the session, the stored hash does not, and an
    /// older row's plaintext key still works.
    func testHashedAndLegacyHostKeys() {
        var hashed = info(.deny)
        hashed.hostKey = HostKey.stored("the-host-key")
        XCTAssertTrue(hashed.hostKey.hasPrefix("sha256:"))
        XCTAssertFalse(hashed.hostKey.contains("the-host-key"))
        XCTAssertEqual(Admission.decide(join(hostKey: "the-host-key"), info: hashed, tokens: tokens, now: 100),
                       .admit(role: .host, key: nil, name: "Ann", tokenExpiry: nil, viaHostKey: true))
        for wrong in [hashed.hostKey, "the-host-ke", "", "sha256:"] {
            guard case .reject = Admission.decide(join(hostKey: wrong), info: hashed, tokens: tokens, now: 100)
            else { return XCTFail("\(wrong) admitted as host") }
        }
        XCTAssertTrue(HostKey.matches("the-host-key", stored: "the-host-key"), "an older row's plaintext key")
        XCTAssertFalse(HostKey.matches("", stored: ""), "an empty key is no key")
        XCTAssertFalse(HostKey.matches("x", stored: "the-host-key"))
        let fresh = HostKey.generate()
        XCTAssertTrue(HostKey.matches(fresh.key, stored: fresh.stored))
        XCTAssertNotEqual(HostKey.generate().key, fresh.key)
    }

    func testTokensNameThePersonTheRoleAndTheSession() {
        let viewer = token(["sub": "u1", "role": "viewer", "session": "ABCDEFGH", "name": "Bo", "exp": 1000])
        XCTAssertEqual(Admission.decide(join(token: viewer), info: info(.deny), tokens: tokens, now: 100),
                       .admit(role: .viewer, key: "sub:u1", name: "Bo", tokenExpiry: 1000, viaHostKey: false))
        // The host key outranks the token's role, and the person stays the token's.
        XCTAssertEqual(Admission.decide(join(token: viewer, hostKey: "the-host-key"), info: info(), tokens: tokens, now: 100),
                       .admit(role: .host, key: "sub:u1", name: "Bo", tokenExpiry: 1000, viaHostKey: true))
        let other = token(["sub": "u1", "role": "editor", "session": "ZZZZZZZZ", "exp": 1000])
        guard case .reject(let code, _, let field, let close) = Admission.decide(join(token: other), info: info(),
                                                                                 tokens: tokens, now: 100)
        else { return XCTFail("a token for another session admitted") }
        XCTAssertEqual([code, field ?? ""], ["forbidden", "token"])
        XCTAssertEqual(close, .forbidden)
        let publisher = token(["sub": "svc", "role": "publisher", "exp": 1000])
        guard case .reject = Admission.decide(join(token: publisher), info: info(), tokens: tokens, now: 100)
        else { return XCTFail("a publisher token joined a session") }
        guard case .reject(let expired, _, _, let expiredClose) = Admission.decide(join(token: viewer), info: info(),
                                                                                  tokens: tokens, now: 5000)
        else { return XCTFail("an expired token admitted") }
        XCTAssertEqual(expired, "token_expired")
        XCTAssertEqual(expiredClose, .unauthorized)
    }

    /// L5: a guest's key is its client id and a hash of its resume secret, so a client id alone (without
    /// the secret) is another member; a join without a secret is given a new one.
    func testAGuestsKeyIsItsClientIdAndItsResumeSecret() {
        let secret = "Zm9vYmFyYmF6cXV4MTIz"
        let hash = Base64.encode(Array(Crypto.sha256(Array(secret.utf8))[0..<16]), urlSafe: true)
        XCTAssertEqual(hash.count, 22)
        XCTAssertEqual(Admission.guestKey(clientId: "c1", secret: secret), "c:c1:" + hash)
        XCTAssertFalse(Admission.guestKey(clientId: "c1", secret: secret).contains(secret), "only a hash is kept")
        // The secret derives the key, and nothing is issued: the client has it.
        XCTAssertEqual(decide(join(clientId: "c1", secret: secret), info()),
                       .admit(role: .editor, key: "c:c1:" + hash, name: "Ann", tokenExpiry: nil, viaHostKey: false))
        // No secret: a new identity, its secret issued (to be returned in joined).
        XCTAssertEqual(decide(join(clientId: "c1"), info()),
                       .admit(role: .editor, key: Admission.guestKey(clientId: "c1", secret: Self.fresh), name: "Ann",
                              tokenExpiry: nil, viaHostKey: false, issuedSecret: Self.fresh))
        // A wrong secret: another key, so another member.
        guard case .admit(_, let wrong?, _, _, _, nil) = decide(join(clientId: "c1", secret: secret + "x"), info())
        else { return XCTFail("a wrong secret was refused or issued a new one") }
        XCTAssertNotEqual(wrong, "c:c1:" + hash)
        // The client id stays in the key: one secret, two client ids, two members.
        XCTAssertNotEqual(Admission.guestKey(clientId: "c2", secret: secret), "c:c1:" + hash)
        // The host key with a client id: the same rule, role host.
        XCTAssertEqual(decide(join(hostKey: "the-host-key", clientId: "h1"), info(.deny)),
                       .admit(role: .host, key: Admission.guestKey(clientId: "h1", secret: Self.fresh), name: "Ann",
                              tokenExpiry: nil, viaHostKey: true, issuedSecret: Self.fresh))
        // A token names the person: client id and secret play no part, nothing is issued.
        let t = token(["sub": "u1", "role": "editor", "session": "ABCDEFGH", "exp": 1000])
        XCTAssertEqual(decide(join(token: t, clientId: "c1"), info()),
                       .admit(role: .editor, key: "sub:u1", name: "Ann", tokenExpiry: 1000, viaHostKey: false))
        XCTAssertEqual(decide(join(token: t, clientId: "c1", secret: secret), info()),
                       .admit(role: .editor, key: "sub:u1", name: "Ann", tokenExpiry: 1000, viaHostKey: false))
        // No client id: an anonymous guest (a secret alone names nobody).
        XCTAssertEqual(decide(join(secret: secret), info()),
                       .admit(role: .editor, key: nil, name: "Ann", tokenExpiry: nil, viaHostKey: false))
        // A refused guest is issued nothing.
        guard case .reject = decide(join(clientId: "c1"), info(.deny)) else { return XCTFail("a guest got in") }
        // The generated secrets: 128 random bits, base64url (22 characters the parser accepts), never twice.
        let a = Admission.newResumeSecret(), b = Admission.newResumeSecret()
        XCTAssertEqual(a.count, 22)
        XCTAssertTrue(Admission.isValidResumeSecret(a))
        XCTAssertNotEqual(a, b)
    }

    /// A resume secret is checked like every wire value: 16-128 characters of A-Z a-z 0-9 _ -, and an
    /// error names the field.
    func testABadResumeSecretIsRefusedNamingTheField() throws {
        func parse(_ value: String) throws -> ClientMessage {
            try ClientMessage.parse(Array(#"{"type":"join","name":"Ann","client_id":"c1","resume_secret":\#(value)}"#.utf8))
        }
        for (value, code) in [
            (#""short""#, "invalid_field"), (#""0123456789abcde""#, "invalid_field"),
            (#""0123456789abcdef/""#, "invalid_field"), (#""0123456789 abcdef""#, "invalid_field"),
            (#""0123456789abcdef=""#, "invalid_field"), (#""0123456789abcdef\u00e9""#, "invalid_field"),
            (#""\#(String(repeating: "a", count: 129))""#, "too_large"), ("12345678901234567", "invalid_field"),
            ("[]", "invalid_field"), (#""a\#(String(repeating: "\u{0301}", count: 200))""#, "too_large"),
        ] {
            XCTAssertThrowsError(try parse(value), value) { e in
                XCTAssertEqual((e as? MessageError)?.code, code, value)
                XCTAssertEqual((e as? MessageError)?.field, "resume_secret", value)
            }
        }
        for value in ["0123456789abcdef", "A-_z" + String(repeating: "9", count: 124), "Zm9vYmFyYmF6cXV4MTIz"] {
            guard case .join(let j) = try parse("\"\(value)\"") else { return XCTFail("not a join") }
            XCTAssertEqual(j.resumeSecret, value)
        }
        guard case .join(let none) = try parse("null") else { return XCTFail("not a join") }
        XCTAssertNil(none.resumeSecret)
    }
}

/// The one delivery policy, for sessions and run channels alike.
final class FanoutTests: XCTestCase {
    final class Client: HubClient {
        var queuedBytes = 0
        var isDisconnecting = false
        var membership: Membership?
        var address: String { "test" }
        var delivered = 0, closedWith: CloseCode?
        var held: [String: Chunk] = [:]
        func deliver(_ frame: Chunk) { delivered += 1 }
        func disconnect(_ code: CloseCode, _ reason: String) { closedWith = code; isDisconnecting = true }
        func coalesce(_ frame: Chunk, key: String) { held[key] = frame }
        func uncoalesce(key: String) { held[key] = nil }
    }
    typealias Counts = CountingMetrics

    func testDurableAlwaysGoesUntilTheHardLimitThenTheClientIsCutOff() {
        let f = Fanout(softLimit: 100, hardLimit: 1000), c = Client(), m = Counts(), frame = Chunk([1])
        c.queuedBytes = 999
        f.deliver(frame, to: c, .durable, metrics: m)
        XCTAssertEqual(c.delivered, 1)
        c.queuedBytes = 1001
        f.deliver(frame, to: c, .durable, metrics: m)
        XCTAssertEqual(c.closedWith, .slowConsumer)
        XCTAssertEqual(m.slow, 1)
        f.deliver(frame, to: c, .durable, metrics: m)
        XCTAssertEqual(c.delivered, 1, "nothing more to a client being cut off")
    }

    func testEphemeralIsCoalescedOrDroppedPastTheSoftLimit() {
        let f = Fanout(softLimit: 100, hardLimit: 1000), c = Client(), m = Counts()
        c.queuedBytes = 101
        f.deliver(Chunk([1]), to: c, .ephemeral(.event, key: "run:r1"), metrics: m)
        f.deliver(Chunk([2]), to: c, .ephemeral(.event, key: "run:r1"), metrics: m)
        f.deliver(Chunk([3]), to: c, .ephemeral(.event, key: nil), metrics: m)
        XCTAssertEqual(c.delivered, 0)
        XCTAssertEqual(c.held["run:r1"].map { Array($0.bytes) }, [2], "the latest per key")
        XCTAssertEqual(m.dropped, 3)
        // A status change (durable) overtakes the held progress.
        f.deliver(Chunk([4]), to: c, .durable, supersedes: "run:r1", metrics: m)
        XCTAssertNil(c.held["run:r1"])
        XCTAssertEqual(c.delivered, 1)
    }
}
