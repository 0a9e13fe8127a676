import EventLoop
import Hub
import WebSocket

// `RoutePattern`, `RouteParams` and the matching itself (`RouteMatcher`) live in Hub (Sources/Hub/RoutePattern.swift).

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
    typealias Match = RouteMatcher<Route>.Match

    let routes: [Route]
    private let matcher: RouteMatcher<Route>

    init(routes: [Route]) {
        self.routes = routes
        matcher = RouteMatcher(routes.map { (method: $0.method, pattern: $0.pattern, entry: $0) })
    }

    func match(method: String, path: String) -> Match { matcher.match(method: method, path: path) }

    /// `METHOD PATH SURFACE`, one line per route, in table order (`collabhub routes`).
    var lines: [String] {
        routes.map { r in
            "\(r.method) \(r.pattern.text) \(r.guarded.describe(.placeholders(r.pattern)))"
        }
    }
}
