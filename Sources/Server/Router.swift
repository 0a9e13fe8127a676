import Hub
import WebSocket

/// A plain HTTP response produced by a route.
struct Response {
    var status: HTTPStatus
    var body: [UInt8]
    var contentType: String = "application/json"
    var headers: [(String, String)] = []
    /// The body comes from here a piece at a time as the client reads (`body` is not sent).
    var stream: BodySource?

    static func json(_ status: HTTPStatus, _ json: String, headers: [(String, String)] = []) -> Response {
        Response(status: status, body: Array(json.utf8), headers: headers)
    }
    static func text(_ status: HTTPStatus, _ text: String) -> Response {
        Response(status: status, body: Array(text.utf8), contentType: "text/plain; charset=utf-8")
    }
    /// 503 for a read refused because its worker's queue is full (`Worker.capacity`): try again shortly.
    static func busy(_ what: String) -> Response {
        error(
            .serviceUnavailable, "busy", "too many \(what) are waiting to be read; try again shortly",
            headers: [("Retry-After", "1")])
    }
    /// The JSON error body every answer that is not a success uses (Protocol/openapi.json, `Error`):
    /// `{"error": {"code": ..., "message": ..., "field"?: ..., "retry_after"?: ...}}`; `retry_after`
    /// (seconds) repeats a `Retry-After` header given in `headers`.
    static func error(
        _ status: HTTPStatus, _ code: String, _ message: String, field: String? = nil,
        headers: [(String, String)] = []
    ) -> Response {
        let named = field.map { ",\"field\":\(jsonString($0))" } ?? ""
        let retry =
            headers.first { $0.0.lowercased() == "retry-after" }.flatMap { Int($0.1) }.map { ",\"retry_after\":\($0)" }
            ?? ""
        return json(
            status,
            "{\"error\":{\"code\":\(jsonString(code)),\"message\":\(jsonString(message))\(named)\(retry)}}",
            headers: headers)
    }

    /// The error code of a refusal made below the routes (the request's framing, its size, its time,
    /// a WebSocket handshake), by status.
    static func transportCode(_ status: HTTPStatus) -> String {
        switch status.code {
        case 400: return "bad_request"
        case 401: return "unauthorized"
        case 403: return "forbidden"
        case 404: return "not_found"
        case 408: return "request_timeout"
        case 411: return "length_required"
        case 413: return "too_large"
        case 426: return "upgrade_required"
        case 429: return "too_many_connections"
        case 431: return "headers_too_large"
        case 501: return "not_implemented"
        case 505: return "version_not_supported"
        default: return "status_\(status.code)"
        }
    }
}

/// Routes plain HTTP requests: health, metrics, the pages, and the JSON API from its route table
/// (`SessionAPI.table`), where every route is authorized against its surface before it runs. WebSocket
/// paths are `Endpoint`s.
final class Router {
    unowned(unsafe) let server: Server
    let files = StaticFiles()
    let table = SessionAPI.table
    init(server: Server) { self.server = server }

    func handle(_ head: HTTPRequestHead, body: [UInt8], connection: Connection) -> Reply {
        if let refusal = server.siteGate.check(head, body: body) { return .now(refusal) }
        let path = head.path
        if head.method == "OPTIONS" && path.hasPrefix("/api/") && head.header("Access-Control-Request-Method") != nil {
            return .now(server.siteGate.preflight(head))
        }
        switch (head.method, path) {
        case ("GET", "/healthz"), ("HEAD", "/healthz"):
            return .now(
                .text(
                    .ok,
                    (server.openMode ? "ok (\(Server.openModeNotice))\n" : "ok\n") + "collabhub \(Build.description)\n"
                ))
        case ("GET", "/metrics"):
            // Operational data is data too: a closed hub shows it to metrics:read (a scraper's key).
            if let refusal = server.access(head).check(.readMetrics) {
                server.authFailures.refused(SessionAPI.reason(refusal.status.code))
                return .now(refusal)
            }
            var r = Response.text(.ok, server.renderMetrics())
            r.contentType = "text/plain; version=0.0.4; charset=utf-8"
            return .now(r)
        default:
            if path.hasPrefix("/api/"), let api = server.api {
                return route(head, body: body, connection: connection, api: api)
            }
            if head.method == "GET" || head.method == "HEAD", let file = files.lookup(path) {
                return .now(
                    Response(
                        status: .ok, body: file.body, contentType: file.contentType,
                        headers: file.headers))
            }
            if Self.fixedPaths.contains(path) {
                return .error(.methodNotAllowed, "method_not_allowed", "\(head.method) is not allowed on \(path)")
            }
            return .error(.notFound, "not_found", "no route for \(head.method) \(path)")
        }
    }

    /// Paths that exist, for telling 405 (wrong method) from 404.
    private static let fixedPaths: Set<String> = ["/healthz", "/metrics"]

    /// An `/api/` request: its route from the table (404 for a path no route has, 405 with `Allow` for
    /// one that routes have for other methods), then `serve`.
    private func route(_ head: HTTPRequestHead, body: [UInt8], connection: Connection, api: SessionAPI) -> Reply {
        switch table.match(method: head.method, path: head.path) {
        case .found(let route, let params):
            return serve(route, params, head, body: body, connection: connection, api: api)
        case .unknownSession(let raw):
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        case .methodNotAllowed(let allow):
            return .error(
                .methodNotAllowed, "method_not_allowed", "\(head.method) is not allowed on \(head.path)",
                headers: [("Allow", allow)])
        case .notFound:
            return .error(.notFound, "not_found", "no API route \(head.method) \(head.path)")
        }
    }

    /// Resolves what the request presented, checks it against the route's surface (refusals are logged
    /// and counted), and runs the handler.
    /// `refreshed`: asked again after the key table was read again for an unknown key id.
    private func serve(
        _ route: Route, _ params: RouteParams, _ head: HTTPRequestHead, body: [UInt8], connection: Connection,
        api: SessionAPI, refreshed: Bool = false, charged: Access? = nil
    ) -> Reply {
        let bodyHostKey = route.hostKeyInBody ? (try? JSONReader.readObject(body))?["host_key"]?.string : nil
        // In a cluster an API key's request is charged against Redis's counts, off the loop's way.
        let shared = api.keys.shared
        let access =
            charged ?? server.access(head, session: params.code, hostKey: bodyHostKey, chargeKeys: shared == nil)
        if charged == nil, let shared, let id = access.unchargedKey, let executor = connection.context.hub?.executor {
            let later = Later(connection)
            api.keys.chargeShared(id: id, accounting: shared, executor: executor) { [self] verdict in
                var a = access
                switch verdict {
                case .allowed(let h, _): a.headers = h
                case .limited(let h, let message):
                    a.failure = .error(.tooManyRequests, "rate_limited", message, headers: h)
                case .unknown, .unknownId:
                    a.failure = .error(
                        .unauthorized, "unauthorized", "unknown, revoked or expired credential",
                        headers: [("WWW-Authenticate", "Bearer")])
                }
                later.reply { [self] in
                    serve(
                        route, params, head, body: body, connection: connection, api: api, refreshed: true, charged: a)
                }
            }
            return .later(later)
        }
        if let unknown = access.unknownKeyId, !refreshed {
            // A key made by `collabhub keys` since the table was last read: read it again (off the loop),
            // then decide. Never a read on the loop; requests in the meantime share one read.
            let later = Later(connection)
            api.keys.refreshNow(for: unknown) { [self] in
                later.reply { [self] in
                    serve(route, params, head, body: body, connection: connection, api: api, refreshed: true)
                }
            }
            return .later(later)
        }
        let client = server.clientAddress(head, peer: connection.peer)
        switch route.guarded {
        case .anyone:
            break
        case .surfaceOrOwnKey(let parameter, _) where access.keyId != nil && access.keyId == params[parameter]:
            break
        case .surface(let surface), .surfaceOrOwnKey(_, let surface):
            if let refusal = refuse(surface(params), head, access, client) { return .now(refusal) }
        }
        let request = RouteRequest(
            head: head, body: body, params: params, access: access, client: client, connection: connection)
        return route.handler(api, request)
    }

    /// nil when `access` may touch `surface`; else the refusal, logged and counted.
    private func refuse(_ surface: Surface, _ head: HTTPRequestHead, _ access: Access, _ client: String) -> Response? {
        guard let refusal = access.check(surface) else { return nil }
        server.log.debug(
            "refused",
            metadata: [
                "route": .string("\(head.method) \(head.path)"),
                "status": .stringConvertible(refusal.status.code),
                "reason": .string(surface.describe), "peer": .string(client),
            ])
        // A key over its quota (429) is not refused for who it is.
        if refusal.status.code == 401 || refusal.status.code == 403 {
            server.authFailures.refused(SessionAPI.reason(refusal.status.code))
        }
        // Failures (401) and refusals by scope (403) are logged once per address and minute each,
        // the rest of the minute's summed up: a flood cannot fill the log.
        if refusal.status.code == 401 && access.presented {
            server.authFailures.record(
                client, what: "\(head.method) \(head.path): \(surface.describe)", store: server.store)
        } else if access.presented && access.failure == nil {
            server.accessRefusals.record(
                client,
                what:
                    "\(access.keyId.map { "key \($0): " } ?? "")\(head.method) \(head.path): "
                    + "\(surface.describe)",
                store: server.store)
        }
        return refusal
    }
}

/// Escapes a string as a JSON string literal.
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20:
            let hex = String(u.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}
