import Bytes
import WebSocket

/// The I/O-free rules every API route shares (Protocol/openapi.json), here rather than in Server so
/// that `FuzzHTTP` reaches them: the nearest known name for "did you mean" hints, the unknown-field
/// check of request bodies, the one paging scheme of list routes and the `Idempotency-Key` check.
/// Server turns what they find into responses (Sources/Server/APIContract.swift).

/// Names close to a given one (edit distance), for hints: the configuration file and API bodies alike.
public enum Names {
    /// The known name nearest to `name`, if one is within 3 edits of it.
    public static func nearest(_ name: String, in known: some Sequence<String>) -> String? {
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
    public static func distance(_ a: String, _ b: String) -> Int {
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
public enum BodyFields {
    /// A member of a body that the route does not read.
    public struct Unknown: Equatable, Sendable {
        /// Its name, cut to 64 Unicode scalars (a name from the wire: bounded before it is compared or echoed).
        public let name: String
        /// The known name nearest to it, if one is close.
        public let nearest: String?
    }

    /// The longest name that is shown or compared, in Unicode scalars.
    public static let maxShown = 64

    /// The first member of `obj` not in `known`, or nil when every member is known.
    public static func firstUnknown(_ obj: JSONObject, known: [String]) -> Unknown? {
        for (name, _) in obj.members where !known.contains(name) {
            let shown =
                name.unicodeScalars.count > maxShown
                ? String(String.UnicodeScalarView(name.unicodeScalars.prefix(maxShown))) : name
            return Unknown(name: shown, nearest: Names.nearest(shown, in: known))
        }
        return nil
    }
}

/// The paging of every list route: `limit` (1...1000, a default per route) and `cursor` (opaque: the
/// `next` of a previous page) in; `next` (a cursor, or null on the last page) out. A cursor carries
/// the route it came from and a position there (an id, a seq, an offset), base64url-encoded; a cursor
/// that does not decode, or came from another route, is refused naming `cursor`.
public struct Paging: Sendable {
    public let limit: Int
    /// The position the cursor carries (nil: from the start).
    public let position: String?

    public init(limit: Int, position: String?) {
        self.limit = limit
        self.position = position
    }

    /// Why a query's paging is refused: the field it names.
    public enum Refusal: Error, Equatable {
        /// `limit` is not an integer from 1 to `max`.
        case limit(max: Int)
        /// `cursor` is not a cursor of this list.
        case cursor
    }

    /// Reads `limit` and `cursor` from the query of a request to `route` (a short tag: "sessions", ...).
    public static func read(
        _ query: [String: String], route: String, defaultLimit: Int, maxLimit: Int = 1000
    ) -> Result<Paging, Refusal> {
        var limit = defaultLimit
        if let raw = query["limit"] {
            guard raw.utf8.count <= 8, let n = Int(raw), n >= 1, n <= maxLimit else {
                return .failure(.limit(max: maxLimit))
            }
            limit = n
        }
        guard let raw = query["cursor"], !raw.isEmpty else { return .success(Paging(limit: limit, position: nil)) }
        guard let position = decode(raw, route: route) else { return .failure(.cursor) }
        return .success(Paging(limit: limit, position: position))
    }

    /// The opaque cursor for `position` in `route`.
    public static func cursor(route: String, _ position: String) -> String {
        Base64.encode(Array("\(route)|\(position)".utf8), urlSafe: true)
    }

    /// The position in a cursor of `route`, or nil when it is not one.
    public static func decode(_ cursor: String, route: String) -> String? {
        guard cursor.utf8.count <= 512, let bytes = Base64.decode(cursor, urlSafe: true),
            let text = String(validating: bytes, as: UTF8.self), let bar = text.firstIndex(of: "|"),
            text[..<bar] == route
        else { return nil }
        return String(text[text.index(after: bar)...])
    }

    /// The position as a non-negative integer (a seq, an id, an offset), or nil.
    public var integer: Int? {
        guard let position, position.utf8.count <= 19, let n = Int(position), n >= 0 else { return nil }
        return n
    }

    /// A page of a list held whole in memory (keys, webhooks, runs, members), by offset: the page, and
    /// the next cursor (nil on the last page). nil when the cursor's position is not an offset.
    public func slice<T>(_ all: [T], route: String, from offset: Int = 0) -> (page: ArraySlice<T>, next: String?)? {
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
    public static func next(route: String, _ position: String?) -> String? {
        position.map { cursor(route: route, $0) }
    }
}

/// The `Idempotency-Key` request header (runs' events, backend messages): 1-128 printable ASCII characters
/// without spaces.
public enum IdempotencyKey {
    /// Whether `key` (the header's value) is one.
    public static func isValid(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= 128 && key.utf8.allSatisfy { $0 > 32 && $0 < 127 }
    }
}
