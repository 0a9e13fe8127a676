@testable import Hub
import XCTest

/// The webhook rules: signatures (the Standard Webhooks vector), which events become which webhooks,
/// and when to try again.
final class WebhookTests: XCTestCase {
    func testSignatureMatchesTheStandardWebhooksVector() {
        // From the Standard Webhooks specification's reference libraries.
        let sig = Webhook.signature(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330,
                                    body: Array(#"{"test": 2432232314}"#.utf8),
                                    secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        XCTAssertEqual(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        let two = Webhook.signature(id: "m", timestamp: 1, body: [], secrets: [Webhook.newSecret(), Webhook.newSecret()])
        XCTAssertEqual(two.split(separator: " ").count, 2, "during a rotation both secrets sign")
        XCTAssertEqual(Webhook.key(of: Webhook.newSecret())?.count, 24)
        XCTAssertNil(Webhook.key(of: "nope"))
    }

    func testCommittedEventsBecomeTheirWebhooks() throws {
        func types(_ type: String, _ body: String, stream: String = "ABCDEFGH", member: String? = "m") -> [String] {
            let e = DurableEvent(session: stream, type: type, member: member, clientId: nil, body: Array(body.utf8))
            return Webhook.messages(for: e, committed: Committed(seq: 7, ts: 1_700_000_000_123, duplicate: false))
                .map(\.type.rawValue)
        }
        XCTAssertEqual(types("chat", #""id":"c","kind":"text","text":"hi""#), ["chat.created"])
        XCTAssertEqual(types("chat", #""kind":"system","text":"Session ended: x","event":"session_ended""#, member: nil),
                       ["session.ended"])
        XCTAssertEqual(types("presence", #""joins":[{"id":"m1"}],"leaves":[]"#), ["member.joined"])
        XCTAssertEqual(types("presence", #""joins":[],"leaves":[{"id":"m1","reason":"left"}]"#), ["member.left"])
        XCTAssertEqual(types("event", #""name":"x","from":"m1","data":{}"#), ["event.created"])
        XCTAssertEqual(types("run", #""event":"started","run":{}"#), [], "a run's echo in a session is not reported twice")
        XCTAssertEqual(types("run_event", #""run":"r1","event":"step_failed","step":"a""#, stream: "run:r1"),
                       ["run.step_failed"])
        XCTAssertEqual(types("run_event", #""run":"r1","event":"log","line":"x""#, stream: "run:r1"), [])

        let e = DurableEvent(session: "ABCDEFGH", type: "chat", member: "m", clientId: "c",
                             body: Array(#""id":"c","kind":"text","text":"hi""#.utf8))
        let m = try XCTUnwrap(Webhook.messages(for: e, committed: Committed(seq: 7, ts: 1_700_000_000_123, duplicate: false)).first)
        XCTAssertEqual(m.id, "ABCDEFGH:7", "stable across retries: receivers deduplicate on it")
        let body = try JSONReader.readObject(m.body)
        XCTAssertEqual(body["type"]?.string, "chat.created")
        XCTAssertEqual(body["timestamp"]?.string, "2023-11-14T22:13:20.123Z")
        let data = try XCTUnwrap(body["data"]?.object)
        XCTAssertEqual(data["session"]?.string, "ABCDEFGH")
        XCTAssertEqual(data["seq"]?.int, 7)
        XCTAssertEqual(data["text"]?.string, "hi", "the event as clients saw it")
        let run = DurableEvent(session: "run:r1", type: "run_event", member: nil, clientId: nil,
                               body: Array(#""run":"r1","event":"completed","outcome":"failed""#.utf8))
        XCTAssertEqual(Webhook.messages(for: run, committed: Committed(seq: 3, ts: 0, duplicate: false)).first?.id, "run:r1:3")
    }

    func testRetriesBackOffAndOnlySomeAnswersAreRetried() {
        XCTAssertTrue(Webhook.isRetryable(status: nil), "timeouts and connection errors")
        XCTAssertTrue(Webhook.isRetryable(status: 500))
        XCTAssertTrue(Webhook.isRetryable(status: 503))
        XCTAssertTrue(Webhook.isRetryable(status: 408))
        XCTAssertTrue(Webhook.isRetryable(status: 429))
        XCTAssertFalse(Webhook.isRetryable(status: 400))
        XCTAssertFalse(Webhook.isRetryable(status: 410))
        XCTAssertEqual(Webhook.backoff(attempt: 1, retryAfter: nil, jitter: 0.5), 1, accuracy: 1e-9)
        XCTAssertEqual(Webhook.backoff(attempt: 4, retryAfter: nil, jitter: 0.5), 8, accuracy: 1e-9)
        XCTAssertEqual(Webhook.backoff(attempt: 4, retryAfter: nil, jitter: 0), 6.4, accuracy: 1e-9, "jitter -20%")
        XCTAssertEqual(Webhook.backoff(attempt: 40, retryAfter: nil, jitter: 0.5), 3600, "at most an hour")
        XCTAssertEqual(Webhook.backoff(attempt: 1, retryAfter: 30, jitter: 0.5), 30, "Retry-After wins when longer")
        XCTAssertEqual(Webhook.backoff(attempt: 1, retryAfter: 1e12, jitter: 0.5), 86_400, "but at most a day")
    }

    func testEndpointsChooseTheirEventsAndRotationSignsWithBoth() {
        var e = WebhookEndpoint(id: "w", url: "https://x", events: ["chat.created"], secret: "whsec_AA==", createdAt: 0)
        XCTAssertTrue(e.wants(.chatCreated))
        XCTAssertFalse(e.wants(.memberJoined))
        XCTAssertTrue(e.wants(.test))
        e.events = ["*"]
        XCTAssertTrue(e.wants(.runCompleted))
        e.previousSecret = "whsec_BB=="
        e.previousUntil = 1000
        XCTAssertEqual(e.signingSecrets(now: 999), ["whsec_AA==", "whsec_BB=="])
        XCTAssertEqual(e.signingSecrets(now: 1000), ["whsec_AA=="])
    }
}
