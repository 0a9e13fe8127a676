import Foundation
import Hub
import XCTest

@testable import Server

/// The API's shared contract helpers without a server: paging cursors and the unknown-field check.
final class APIContractTests: XCTestCase {
    func parse(_ query: [String: String], route: String = "keys") -> Paging.Parsed {
        Paging.parse(query, route: route, defaultLimit: 100)
    }

    func refusal(_ p: Paging.Parsed) -> (status: Int, body: String)? {
        guard case .failure(let r) = p else { return nil }
        return (r.status.code, String(decoding: r.body, as: UTF8.self))
    }

    func testCursorsRoundTripAndAreTiedToTheirRoute() {
        let c = Paging.cursor(route: "sessions", "1796550646925:K7QX3M9A")
        XCTAssertFalse(c.contains("K7QX3M9A"), "a cursor is opaque")
        XCTAssertEqual(Paging.decode(c, route: "sessions"), "1796550646925:K7QX3M9A")
        XCTAssertNil(Paging.decode(c, route: "keys"), "a cursor of one list is no cursor of another")
        guard case .success(let p) = parse(["cursor": c, "limit": "7"], route: "sessions") else {
            return XCTFail("a cursor the route gave was refused")
        }
        XCTAssertEqual(p.limit, 7)
        XCTAssertEqual(p.position, "1796550646925:K7QX3M9A")
        XCTAssertNil(p.integer)
        guard case .success(let n) = parse(["cursor": Paging.cursor(route: "keys", "40")]) else { return XCTFail() }
        XCTAssertEqual(n.integer, 40)
    }

    func testDefaultsWithoutParameters() {
        guard case .success(let p) = parse([:]) else { return XCTFail() }
        XCTAssertEqual(p.limit, 100)
        XCTAssertNil(p.position)
        guard case .success(let e) = parse(["cursor": ""]) else { return XCTFail() }
        XCTAssertNil(e.position, "an empty cursor is the first page")
    }

    func testBadLimitsAndCursorsAreRefusedNamingTheField() {
        for limit in ["0", "1001", "-1", "ten", "1e3", "99999999999999999999", ""] {
            let r = refusal(parse(["limit": limit]))
            XCTAssertEqual(r?.status, 400, limit)
            XCTAssertTrue(r?.body.contains("\"field\":\"limit\"") ?? false, limit)
        }
        let hostile = [
            "%%%", "not base64!", String(repeating: "A", count: 10_000), Base64Check.plain("keys"),
            Base64Check.plain("sessions|1"), Base64Check.bytes([0xFF, 0xFE, 0x7C]),
        ]
        for cursor in hostile {
            let r = refusal(parse(["cursor": cursor]))
            XCTAssertEqual(r?.status, 400, cursor)
            XCTAssertTrue(r?.body.contains("\"field\":\"cursor\"") ?? false, cursor)
        }
    }

    func testOffsetPagesOfAListInMemory() {
        let all = Array(1...5)
        guard case .success(let first) = parse(["limit": "2"]), let (a, next) = first.slice(all, route: "keys") else {
            return XCTFail()
        }
        XCTAssertEqual(Array(a), [1, 2])
        guard let next, case .success(let second) = parse(["limit": "2", "cursor": next]),
            let (b, next2) = second.slice(all, route: "keys")
        else { return XCTFail() }
        XCTAssertEqual(Array(b), [3, 4])
        guard let next2, case .success(let third) = parse(["limit": "2", "cursor": next2]),
            let (c, last) = third.slice(all, route: "keys")
        else { return XCTFail() }
        XCTAssertEqual(Array(c), [5])
        XCTAssertNil(last, "the last page says next: null")
        // A position past the end (the list shrank) is an empty last page, never a trap.
        guard case .success(let past) = parse(["cursor": Paging.cursor(route: "keys", "99")]),
            let (d, none) = past.slice(all, route: "keys")
        else { return XCTFail() }
        XCTAssertTrue(d.isEmpty)
        XCTAssertNil(none)
        // A position that is not an offset is refused by the caller.
        guard case .success(let word) = parse(["cursor": Paging.cursor(route: "keys", "x")]) else { return XCTFail() }
        XCTAssertNil(word.slice(all, route: "keys"))
        guard case .success(let huge) = parse(["cursor": Paging.cursor(route: "keys", "99999999999999999999999")])
        else { return XCTFail() }
        XCTAssertNil(huge.integer)
    }

    func body(_ json: String) throws -> JSONObject { try JSONReader.readObject(Array(json.utf8)) }

    func testUnknownFieldsAreRefusedNamingTheFieldAndTheNearestKnownOne() throws {
        let known = ["title", "max_participants", "guest_policy", "events"]
        XCTAssertNil(BodyFields.unknown(try body(#"{"title":"x","events":null}"#), known: known))
        XCTAssertNil(BodyFields.unknown(try body("{}"), known: known))
        let r = try XCTUnwrap(BodyFields.unknown(try body(#"{"titel":"x"}"#), known: known))
        XCTAssertEqual(r.status.code, 400)
        let text = String(decoding: r.body, as: UTF8.self)
        XCTAssertTrue(text.contains("\"code\":\"unknown_field\""), text)
        XCTAssertTrue(text.contains("\"field\":\"titel\""), text)
        XCTAssertTrue(text.contains("did you mean title?"), text)
        // Far from every known name: no guess.
        let far = String(decoding: BodyFields.unknown(try body(#"{"zzzzzzzzzz":1}"#), known: known)!.body, as: UTF8.self)
        XCTAssertFalse(far.contains("did you mean"), far)
        // Inside a body: the path is named.
        let nested = BodyFields.unknown(try body(#"{"nam":"x"}"#), known: ["name"], prefix: "events[3].")!
        XCTAssertTrue(String(decoding: nested.body, as: UTF8.self).contains("\"field\":\"events[3].nam\""))
        // A hostile name is cut to 64 characters before it is compared or echoed, and escaped.
        let long = "{\"" + String(repeating: "\u{0301}", count: 5000) + "\\\"\":1}"
        let cut = String(decoding: BodyFields.unknown(try body(long), known: known)!.body, as: UTF8.self)
        XCTAssertLessThan(cut.utf8.count, 1000)
    }

    func testNearestNameIsTheConfigurationFilesToo() {
        XCTAssertEqual(Names.nearest("max-mesage-size", in: ["max-message-size", "port"]), "max-message-size")
        XCTAssertNil(Names.nearest("completely-different", in: ["port"]))
        XCTAssertEqual(Names.distance("titel", "title"), 2)
    }

    func testErrorsWithRetryAfterSayItInTheBody() {
        let r = Response.error(.tooManyRequests, "rate_limited", "slow down", headers: [("Retry-After", "7")])
        XCTAssertTrue(String(decoding: r.body, as: UTF8.self).hasSuffix(",\"retry_after\":7}}"))
        let busy = String(decoding: Response.busy("reads").body, as: UTF8.self)
        XCTAssertTrue(busy.contains("\"retry_after\":1"), busy)
        XCTAssertFalse(String(decoding: Response.error(.badRequest, "x", "y").body, as: UTF8.self).contains("retry"))
    }
}

/// Cursors made by hand, the way a client that forges one would.
enum Base64Check {
    static func plain(_ s: String) -> String { bytes(Array(s.utf8)) }
    static func bytes(_ b: [UInt8]) -> String { Data(b).base64EncodedString() }
}
