import Bytes
import Hub
import WebSocket

/// The responses of the rules every API route shares (Protocol/openapi.json). The rules themselves
/// (`Names`, `BodyFields`, `Paging`, `IdempotencyKey`) are I/O-free and live in Hub, where `FuzzHTTP`
/// reaches them (Sources/Hub/APIContract.swift).

extension BodyFields {
    /// 400 `unknown_field` for the first member of `obj` not in `known` (its name in `field`, the nearest
    /// known one in the message), or nil when every member is known. `prefix` names where `obj` sits
    /// (`events[2].`), for objects inside a body.
    static func unknown(_ obj: JSONObject, known: [String], prefix: String = "") -> Response? {
        guard let u = firstUnknown(obj, known: known) else { return nil }
        let hint = u.nearest.map { " (did you mean \($0)?)" } ?? ""
        return .error(
            .badRequest, "unknown_field",
            "unknown field \(jsonString(u.name))\(hint); known fields: \(known.joined(separator: ", "))",
            field: prefix + u.name)
    }
}

extension Paging {
    /// What `parse` found: the paging, or the refusal to answer with.
    enum Parsed { case success(Paging), failure(Response) }

    /// Reads `limit` and `cursor` from the query of a request to `route` (a short tag: "sessions", ...):
    /// `Paging.read`, with its refusal as the 400 that names the field.
    static func parse(
        _ query: [String: String], route: String, defaultLimit: Int, maxLimit: Int = 1000
    ) -> Parsed {
        switch read(query, route: route, defaultLimit: defaultLimit, maxLimit: maxLimit) {
        case .success(let paging): return .success(paging)
        case .failure(.limit(let max)):
            return .failure(
                .error(.badRequest, "invalid_field", "\"limit\" must be an integer from 1 to \(max)", field: "limit"))
        case .failure(.cursor): return .failure(badCursor)
        }
    }

    /// 400 naming `cursor`, for a cursor that did not decode, or whose position this route cannot use.
    static var badCursor: Response {
        .error(
            .badRequest, "invalid_field", "\"cursor\" is not a cursor of this list: pass a page's \"next\" as it came",
            field: "cursor")
    }

    /// `"next":...` for a list body: the cursor string, or null.
    static func nextField(route: String, _ position: String?) -> String {
        "\"next\":" + (position.map { jsonString(cursor(route: route, $0)) } ?? "null")
    }
}

extension IdempotencyKey {
    struct Refusal: Error { let response: Response }

    /// The header's value, nil when it is absent, or the 400 that names it.
    static func of(_ head: HTTPRequestHead) -> Result<String?, Refusal> {
        guard let key = head.header("Idempotency-Key") else { return .success(nil) }
        guard isValid(key) else {
            return .failure(
                Refusal(
                    response: .error(
                        .badRequest, "invalid_field", "Idempotency-Key must be 1-128 printable characters",
                        field: "Idempotency-Key")))
        }
        return .success(key)
    }
}
