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

/// Routes plain HTTP requests (health, metrics, the JSON API). WebSocket paths are `Endpoint`s.
final class Router {
    unowned(unsafe) let server: Server
    let files = StaticFiles()
    init(server: Server) { self.server = server }

    /// The response, or nil when it will come later through `connection.respondLater`.
    func handle(_ head: HTTPRequestHead, body: [UInt8], connection: Connection) -> Response? {
        if let refusal = server.siteGate.check(head, body: body) { return refusal }
        let path = head.path
        if head.method == "OPTIONS" && path.hasPrefix("/api/") && head.header("Access-Control-Request-Method") != nil {
            return server.siteGate.preflight(head)
        }
        switch (head.method, path) {
        case ("GET", "/healthz"), ("HEAD", "/healthz"):
            return .text(
                .ok, (server.openMode ? "ok (\(Server.openModeNotice))\n" : "ok\n") + "collabhub \(Build.description)\n"
            )
        case ("GET", "/api/mode"):
            // For the pages' banner: whether anyone who reaches the port can do everything.
            return .json(
                .ok, server.openMode ? "{\"open\":true,\"notice\":\"\(Server.openModeNotice)\"}" : "{\"open\":false}")
        case ("GET", "/metrics"):
            // Operational data is data too: a closed hub shows it to metrics:read (a scraper's key).
            if let refusal = server.access(head).check(.readMetrics) {
                server.authFailures.refused(SessionAPI.reason(refusal.status.code))
                return refusal
            }
            var r = Response.text(.ok, server.renderMetrics())
            r.contentType = "text/plain; version=0.0.4; charset=utf-8"
            return r
        default:
            if path.hasPrefix("/api/"), let api = server.api {
                return api.handle(head, body: body, connection: connection)
            }
            if head.method == "GET" || head.method == "HEAD", let file = files.lookup(path) {
                return Response(
                    status: .ok, body: file.body, contentType: file.contentType,
                    headers: file.headers)
            }
            if Self.fixedPaths.contains(path) {
                return .error(.methodNotAllowed, "method_not_allowed", "\(head.method) is not allowed on \(path)")
            }
            return .error(.notFound, "not_found", "no route for \(head.method) \(path)")
        }
    }

    /// Paths that exist, for telling 405 (wrong method) from 404.
    private static let fixedPaths: Set<String> = ["/healthz", "/metrics"]
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
