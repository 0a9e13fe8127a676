import Bytes
import Hub
import WebSocket

/// Small helpers every API route shares (Protocol/openapi.json): the nearest known name for "did you
/// mean" hints, the unknown-field check of request bodies, and the one paging scheme of list routes.

/// Names close to a given one (edit distance), for hints: the configuration file and API bodies alike.
enum Names {
    /// The known name nearest to `name`, if one is within 3 edits of it.
    static func nearest(_ name: String, in known: some Sequence<String>) -> String? {
        var best: (name: String, distance: Int)?
        for k in known {
            let d = distance(k, name)
            if d <= 3 && (best == nil || d < best!.distance || (d == best!.distance && k < best!.name)) {
                best = (k, d)
            }
        }
        return best?.name
    }

    /// Levenshtein distance in characters. Names from the wire are bounded before they get here.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var prev = row[0]
            row[0] = i
            for j in 1...b.count {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }
}

/// Request bodies name only fields the route reads: a typo (`{"titel": "x"}`) is refused, never
/// silently left at its default.
enum BodyFields {
    /// 400 `unknown_field` for the first member of `obj` not in `known` (its name in `field`, the nearest
    /// known one in the message), or nil when every member is known. `prefix` names where `obj` sits
    /// (`events[2].`), for objects inside a body.
    static func unknown(_ obj: JSONObject, known: [String], prefix: String = "") -> Response? {
        for (name, _) in obj.members where !known.contains(name) {
            // A name from the wire: bounded before it is compared or echoed.
            let shown =
                name.unicodeScalars.count > 64 ? String(String.UnicodeScalarView(name.unicodeScalars.prefix(64))) : name
            let hint = Names.nearest(shown, in: known).map { " (did you mean \($0)?)" } ?? ""
            return .error(
                .badRequest, "unknown_field",
                "unknown field \(jsonString(shown))\(hint); known fields: \(known.joined(separator: ", "))",
                field: prefix + shown)
        }
        return nil
    }
}

/// The paging of every list route: `limit` (1...1000, a default per route) and `cursor` (opaque: the
/// `next` of a previous page) in; `next` (a cursor, or null on the last page) out. A cursor carries
/// the route it came from and a position there (an id, a seq, an offset), base64url-encoded; a cursor
/// that does not decode, or came from another route, is refused naming `cursor`.
struct Paging {
    let limit: Int
    /// The position the cursor carries (nil: from the start).
    let position: String?

    /// What `parse` found: the paging, or the refusal to answer with.
    enum Parsed { case success(Paging), failure(Response) }

    /// Reads `limit` and `cursor` from the query of a request to `route` (a short tag: "sessions", ...).
    static func parse(
        _ query: [String: String], route: String, defaultLimit: Int, maxLimit: Int = 1000
    ) -> Parsed {
        var limit = defaultLimit
        if let raw = query["limit"] {
            guard raw.utf8.count <= 8, let n = Int(raw), n >= 1, n <= maxLimit else {
                return .failure(
                    .error(
                        .badRequest, "invalid_field", "\"limit\" must be an integer from 1 to \(maxLimit)",
                        field: "limit"))
            }
            limit = n
        }
        guard let raw = query["cursor"], !raw.isEmpty else { return .success(Paging(limit: limit, position: nil)) }
        guard let position = decode(raw, route: route) else {
            return .failure(
                .error(
                    .badRequest, "invalid_field",
                    "\"cursor\" is not a cursor of this list: pass a page's \"next\" as it came", field: "cursor"))
        }
        return .success(Paging(limit: limit, position: position))
    }

    /// The opaque cursor for `position` in `route`.
    static func cursor(route: String, _ position: String) -> String {
        Base64.encode(Array("\(route)|\(position)".utf8), urlSafe: true)
    }

    /// The position in a cursor of `route`, or nil when it is not one.
    static func decode(_ cursor: String, route: String) -> String? {
        guard cursor.utf8.count <= 512, let bytes = Base64.decode(cursor, urlSafe: true),
            let text = String(validating: bytes, as: UTF8.self), let bar = text.firstIndex(of: "|"),
            text[..<bar] == route
        else { return nil }
        return String(text[text.index(after: bar)...])
    }

    /// The position as a non-negative integer (a seq, an id, an offset), or nil.
    var integer: Int? {
        guard let position, position.utf8.count <= 19, let n = Int(position), n >= 0 else { return nil }
        return n
    }

    /// 400 naming `cursor`, for a cursor that decoded but whose position this route cannot use.
    static var badCursor: Response {
        .error(
            .badRequest, "invalid_field", "\"cursor\" is not a cursor of this list: pass a page's \"next\" as it came",
            field: "cursor")
    }

    /// A page of a list held whole in memory (keys, webhooks, runs, members), by offset: the page, and
    /// the next cursor (nil on the last page). nil when the cursor's position is not an offset.
    func slice<T>(_ all: [T], route: String, from offset: Int = 0) -> (page: ArraySlice<T>, next: String?)? {
        var start = offset
        if position != nil {
            guard let n = integer else { return nil }
            start = n
        }
        let page = all.dropFirst(start).prefix(limit)
        let end = min(start, all.count) + page.count
        return (page, end < all.count ? Self.cursor(route: route, String(end)) : nil)
    }

    /// The `next` of a page whose last item sits at `position` (nil: the last page).
    static func next(route: String, _ position: String?) -> String? { position.map { cursor(route: route, $0) } }

    /// `"next":...` for a list body: the cursor string, or null.
    static func nextField(route: String, _ position: String?) -> String {
        "\"next\":" + (position.map { jsonString(cursor(route: route, $0)) } ?? "null")
    }
}

/// The `Idempotency-Key` request header (runs' events, backend messages): 1-128 printable ASCII characters
/// without spaces.
enum IdempotencyKey {
    struct Refusal: Error { let response: Response }

    /// The header's value, nil when it is absent, or the 400 that names it.
    static func of(_ head: HTTPRequestHead) -> Result<String?, Refusal> {
        guard let key = head.header("Idempotency-Key") else { return .success(nil) }
        guard !key.isEmpty, key.utf8.count <= 128, key.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            return .failure(
                Refusal(
                    response: .error(
                        .badRequest, "invalid_field", "Idempotency-Key must be 1-128 printable characters",
                        field: "Idempotency-Key")))
        }
        return .success(key)
    }
}
