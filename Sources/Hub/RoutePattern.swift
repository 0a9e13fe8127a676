/// The HTTP API's path matching, I/O-free and apart from the handlers (Sources/Server/RouteTable.swift
/// pairs each pattern with its method, guard and handler), so that `FuzzHTTP` reaches it.

/// A path pattern such as `/api/sessions/{code}/members/{id}`: literal segments and `{name}` parameters,
/// each exactly one segment. Paths are split at `/` with empty segments dropped (so `/api/sessions/`
/// is `/api/sessions`). A parameter named `code` is a session code: a path whose code cannot be one
/// is answered 404 `unknown_session` before anything else.
public struct RoutePattern: Sendable {
    public enum Segment: Equatable, Sendable {
        case literal(Substring)
        case parameter(String)
    }
    public let text: String
    public let segments: [Segment]
    /// Where the `{code}` parameter is, if the pattern has one.
    public let codeIndex: Int?
    /// The parameters' names, in order.
    public let parameterNames: [String]

    public init(_ text: String) {
        self.text = text
        segments = text.split(separator: "/").map { s in
            s.first == "{" && s.last == "}" ? .parameter(String(s.dropFirst().dropLast())) : .literal(s)
        }
        codeIndex = segments.firstIndex(of: .parameter("code"))
        parameterNames = segments.compactMap { if case .parameter(let n) = $0 { return n } else { return nil } }
    }

    /// Whether `parts` (a path split at `/`) has this pattern's shape.
    public func fits(_ parts: [Substring]) -> Bool {
        guard parts.count == segments.count else { return false }
        // Indices, not `zip`: unspecialized (debug) code reads through `zip`'s generic iterator with a
        // heap-allocated coroutine frame per element, which every request would pay for every route.
        for i in parts.indices {
            if case .literal(let l) = segments[i], l != parts[i] { return false }
        }
        return true
    }
}

/// The path parameters of a matched request, by the pattern's names, as the client sent them; `code`
/// is the `{code}` parameter normalized (`SessionCode.normalize`), for routes that have one.
public struct RouteParams: Sendable {
    public let names: [String]
    public let values: [String]
    public let code: String?

    public init(names: [String], values: [String], code: String?) {
        self.names = names
        self.values = values
        self.code = code
    }

    public subscript(_ name: String) -> String {
        guard let i = names.firstIndex(of: name) else { preconditionFailure("no parameter {\(name)}") }
        return values[i]
    }

    /// The pattern's own names as values (`{code}` for `code`): for printing the table.
    public static func placeholders(_ pattern: RoutePattern) -> RouteParams {
        let names = pattern.parameterNames
        return RouteParams(names: names, values: names.map { "{\($0)}" }, code: "{code}")
    }
}

/// Patterns with their methods, matched in order: a request's path picks the entries of its shape, and
/// its method one of them. A path no entry has is `notFound`; one that entries have for other methods
/// is `methodNotAllowed` with the methods for `Allow`. `Entry` is what a match hands back (a route).
public struct RouteMatcher<Entry> {
    public enum Match {
        case found(Entry, RouteParams)
        /// The path's shape exists, but its `{code}` cannot be a session code.
        case unknownSession(String)
        case methodNotAllowed(allow: String)
        case notFound
    }

    private let entries: [Entry]
    private let shapes: RouteShapes

    public init(_ entries: [(method: String, pattern: RoutePattern, entry: Entry)]) {
        self.entries = entries.map(\.entry)
        shapes = RouteShapes(entries.map { (method: $0.method, pattern: $0.pattern) })
    }

    public func match(method: String, path: String) -> Match {
        switch shapes.match(method: method, path: path) {
        case .found(let i, let params): return .found(entries[i], params)
        case .unknownSession(let code): return .unknownSession(code)
        case .methodNotAllowed(let allow): return .methodNotAllowed(allow: allow)
        case .notFound: return .notFound
        }
    }
}

/// The matching itself, on entry numbers: not generic. (A generic matcher is called from Server, another
/// module, so it ran unspecialized: every entry it looked at was copied through value witnesses and its
/// tuples' metadata looked up at run time, ~10,000 instructions per HTTP request.)
struct RouteShapes {
    enum Match {
        case found(Int, RouteParams)
        case unknownSession(String)
        case methodNotAllowed(allow: String)
        case notFound
    }

    /// The entries by their number of segments (in table order): a request looks only at its own length.
    private let byLength: [[(method: String, pattern: RoutePattern, index: Int)]]

    init(_ entries: [(method: String, pattern: RoutePattern)]) {
        var byLength: [[(method: String, pattern: RoutePattern, index: Int)]] = []
        for (i, e) in entries.enumerated() {
            let n = e.pattern.segments.count
            while byLength.count <= n { byLength.append([]) }
            byLength[n].append((e.method, e.pattern, i))
        }
        self.byLength = byLength
    }

    func match(method: String, path: String) -> Match {
        let parts = path.split(separator: "/")
        guard parts.count < byLength.count else { return .notFound }
        var allowed: [String] = []
        var badCode: Substring?
        for e in byLength[parts.count] where e.pattern.fits(parts) {
            var code: String?
            if let i = e.pattern.codeIndex {
                code = SessionCode.normalize(String(parts[i]))
                if code == nil {
                    badCode = parts[i]
                    continue
                }
            }
            if e.method == method {
                var values: [String] = []
                for i in parts.indices {
                    if case .parameter = e.pattern.segments[i] { values.append(String(parts[i])) }
                }
                return .found(e.index, RouteParams(names: e.pattern.parameterNames, values: values, code: code))
            }
            if !allowed.contains(e.method) { allowed.append(e.method) }
        }
        if let badCode { return .unknownSession(String(badCode)) }
        if !allowed.isEmpty { return .methodNotAllowed(allow: allowed.joined(separator: ", ")) }
        return .notFound
    }
}
