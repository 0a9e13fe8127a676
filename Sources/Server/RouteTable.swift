import EventLoop
import Hub
import WebSocket

/// A path pattern such as `/api/sessions/{code}/members/{id}`: literal segments and `{name}` parameters,
/// each exactly one segment. Paths are split at `/` with empty segments dropped (so `/api/sessions/`
/// is `/api/sessions`). A parameter named `code` is a session code: a path whose code cannot be one
/// is answered 404 `unknown_session` before anything else.
struct RoutePattern {
    enum Segment: Equatable {
        case literal(Substring)
        case parameter(String)
    }
    let text: String
    let segments: [Segment]
    /// Where the `{code}` parameter is, if the pattern has one.
    let codeIndex: Int?
    /// The parameters' names, in order.
    let parameterNames: [String]

    init(_ text: String) {
        self.text = text
        segments = text.split(separator: "/").map { s in
            s.first == "{" && s.last == "}" ? .parameter(String(s.dropFirst().dropLast())) : .literal(s)
        }
        codeIndex = segments.firstIndex(of: .parameter("code"))
        parameterNames = segments.compactMap { if case .parameter(let n) = $0 { return n } else { return nil } }
    }

    /// Whether `parts` (a path split at `/`) has this pattern's shape.
    func fits(_ parts: [Substring]) -> Bool {
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
struct RouteParams {
    let names: [String]
    let values: [String]
    let code: String?

    subscript(_ name: String) -> String {
        guard let i = names.firstIndex(of: name) else { preconditionFailure("no parameter {\(name)}") }
        return values[i]
    }

    /// The pattern's own names as values (`{code}` for `code`): for printing the table.
    static func placeholders(_ pattern: RoutePattern) -> RouteParams {
        let names = pattern.parameterNames
        return RouteParams(names: names, values: names.map { "{\($0)}" }, code: "{code}")
    }
}

/// Who may use a route: the `Surface` it is authorized against (`Authorization.allows`, the table in
/// Protocol/PROTOCOL.md), built from the path's parameters.
enum Guard {
    /// Anyone: the route holds no data (`/api/mode`).
    case anyone
    case surface((RouteParams) -> Surface)
    /// The surface, or the API key that the parameter names presenting itself (a key reads its own usage).
    case surfaceOrOwnKey(parameter: String, (RouteParams) -> Surface)

    /// As printed by `collabhub routes`.
    func describe(_ params: RouteParams) -> String {
        switch self {
        case .anyone: return "anyone"
        case .surface(let s): return Self.name(s(params))
        case .surfaceOrOwnKey(let p, let s): return Self.name(s(params)) + "|ownKey({\(p)})"
        }
    }

    /// `describeSession({code})`: the case and its values, as Swift writes them, without quotes.
    private static func name(_ s: Surface) -> String {
        String(describing: s).filter { $0 != "\"" }
    }
}

/// One matched request, as a handler sees it: the request, its path parameters, what it presented
/// (already authorized for the route's surface) and how to answer later.
struct RouteRequest {
    let head: HTTPRequestHead
    let body: [UInt8]
    let params: RouteParams
    let access: Access
    /// The client's address (a trusted proxy's `X-Forwarded-For`, else the peer).
    let client: String
    private let connection: Connection

    init(
        head: HTTPRequestHead, body: [UInt8], params: RouteParams, access: Access, client: String,
        connection: Connection
    ) {
        self.head = head
        self.body = body
        self.params = params
        self.access = access
        self.client = client
        self.connection = connection
    }

    /// The socket's peer address.
    var peer: String { connection.peer }
    /// The loop of the connection (a streamed body reads on its behalf).
    var loop: Loop { connection.loop }
    /// The `{code}` parameter, normalized (only on routes that have one).
    var code: String { params.code! }
    subscript(_ name: String) -> String { params[name] }

    /// The means to answer later: return `.later(it)` and call `answer` once.
    func later() -> Later { Later(connection) }

    /// Runs `work` on `worker` and answers with its response (see `Later.offLoop`); 503 `busy` when the
    /// worker's queue is full.
    func offLoop(_ worker: Worker, _ work: @escaping () throws -> Response) -> Reply {
        let later = later()
        return later.offLoop(worker, work) ? .later(later) : .busy("API requests")
    }
}

/// One entry of the route table.
struct Route {
    let method: String
    let pattern: RoutePattern
    let guarded: Guard
    /// The body may carry the session's host key (`{"host_key": ...}`), which then counts as presented.
    let hostKeyInBody: Bool
    let handler: (SessionAPI, RouteRequest) -> Reply

    init(
        _ method: String, _ pattern: String, _ guarded: Guard, hostKeyInBody: Bool = false,
        _ handler: @escaping (SessionAPI, RouteRequest) -> Reply
    ) {
        self.method = method
        self.pattern = RoutePattern(pattern)
        self.guarded = guarded
        self.hostKeyInBody = hostKeyInBody
        self.handler = handler
    }
}

/// The routes, matched in order: a request's path picks the routes of its shape, and its method one of
/// them. A path no route has is 404; one that routes have for other methods is 405 with `Allow`.
struct RouteTable {
    enum Match {
        case found(Route, RouteParams)
        /// The path's shape exists, but its `{code}` cannot be a session code.
        case unknownSession(String)
        case methodNotAllowed(allow: String)
        case notFound
    }

    let routes: [Route]
    /// The routes by their number of segments (in table order): a request looks only at its own length.
    private let byLength: [[Route]]

    init(routes: [Route]) {
        self.routes = routes
        var byLength: [[Route]] = []
        for route in routes {
            let n = route.pattern.segments.count
            while byLength.count <= n { byLength.append([]) }
            byLength[n].append(route)
        }
        self.byLength = byLength
    }

    func match(method: String, path: String) -> Match {
        let parts = path.split(separator: "/")
        guard parts.count < byLength.count else { return .notFound }
        var allowed: [String] = []
        var badCode: Substring?
        for route in byLength[parts.count] where route.pattern.fits(parts) {
            var code: String?
            if let i = route.pattern.codeIndex {
                code = SessionCode.normalize(String(parts[i]))
                if code == nil {
                    badCode = parts[i]
                    continue
                }
            }
            if route.method == method {
                var values: [String] = []
                for i in parts.indices {
                    if case .parameter = route.pattern.segments[i] { values.append(String(parts[i])) }
                }
                return .found(route, RouteParams(names: route.pattern.parameterNames, values: values, code: code))
            }
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        if let badCode { return .unknownSession(String(badCode)) }
        if !allowed.isEmpty { return .methodNotAllowed(allow: allowed.joined(separator: ", ")) }
        return .notFound
    }

    /// `METHOD PATH SURFACE`, one line per route, in table order (`collabhub routes`).
    var lines: [String] {
        routes.map { r in
            "\(r.method) \(r.pattern.text) \(r.guarded.describe(.placeholders(r.pattern)))"
        }
    }
}
