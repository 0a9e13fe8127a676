import Hub
@testable import Server
import XCTest

/// The API's route table without a server: how a method and path pick a route, 404 and 405.
final class RouteTableTests: XCTestCase {
    let table = SessionAPI.table

    func found(_ method: String, _ path: String) -> (String, RouteParams)? {
        guard case .found(let route, let params) = table.match(method: method, path: path) else { return nil }
        return (route.pattern.text, params)
    }

    func testPathsPickTheirRouteAndParameters() throws {
        let (pattern, params) = try XCTUnwrap(found("DELETE", "/api/sessions/abcd-efgh/members/m-1"))
        XCTAssertEqual(pattern, "/api/sessions/{code}/members/{id}")
        XCTAssertEqual(params["code"], "abcd-efgh", "as sent")
        XCTAssertEqual(params.code, "ABCDEFGH", "normalized")
        XCTAssertEqual(params["id"], "m-1")
        XCTAssertEqual(found("GET", "/api/sessions/")?.0, "/api/sessions", "empty segments are dropped")
        XCTAssertEqual(found("HEAD", "/api/sessions/ABCDEFGH/transcript")?.0, "/api/sessions/{code}/transcript")
        let (retry, ids) = try XCTUnwrap(found("POST", "/api/webhooks/wh_1/deliveries/42/retry"))
        XCTAssertEqual(retry, "/api/webhooks/{id}/deliveries/{delivery}/retry")
        XCTAssertEqual(ids["id"], "wh_1")
        XCTAssertEqual(ids["delivery"], "42")
        XCTAssertNil(ids.code)
    }

    func testWrongMethodIs405WithTheMethodsThePathHas() {
        guard case .methodNotAllowed(let allow) = table.match(method: "PUT", path: "/api/webhooks/wh_1") else {
            return XCTFail("expected 405")
        }
        XCTAssertEqual(allow, "GET, PATCH, DELETE")
        guard case .methodNotAllowed(let runs) = table.match(method: "POST", path: "/api/runs/r1") else {
            return XCTFail("expected 405")
        }
        XCTAssertEqual(runs, "GET")
    }

    func testUnknownPathsAndImpossibleCodes() {
        for path in ["/api", "/api/nothing", "/api/sessions/ABCDEFGH/nothing", "/api/keys/k/usage/x", "/healthz"] {
            guard case .notFound = table.match(method: "GET", path: path) else { return XCTFail(path) }
        }
        // A route's shape with a code that cannot be one: 404 unknown_session, whatever the method.
        for method in ["GET", "PUT"] {
            guard case .unknownSession(let raw) = table.match(method: method, path: "/api/sessions/no!such/members")
            else { return XCTFail(method) }
            XCTAssertEqual(raw, "no!such")
        }
    }

    func testEveryRouteIsGuardedAndPrinted() {
        XCTAssertEqual(Set(table.routes.map { "\($0.method) \($0.pattern.text)" }).count, table.routes.count)
        XCTAssertEqual(table.lines.count, table.routes.count)
        XCTAssertTrue(table.lines.contains("GET /api/sessions/{code}/members describeSession({code})"))
        XCTAssertTrue(table.lines.contains("GET /api/keys/{id}/usage manageKeys|ownKey({id})"))
        // Only the mode banner is for anyone.
        let open = table.routes.filter { if case .anyone = $0.guarded { return true } else { return false } }
        XCTAssertEqual(open.map(\.pattern.text), ["/api/mode"])
    }
}
