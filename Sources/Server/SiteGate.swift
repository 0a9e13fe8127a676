import Foundation
import WebSocket

/// Cross-site safety (security review N2, L10), asked before any route or upgrade:
/// - `Host` must name this hub (an allow-list), so a page on another site cannot reach it through DNS
///   rebinding;
/// - a browser's `Origin` on an upgrade or a state-changing API request must be the hub's own (or one
///   `--allowed-origins` names), in open mode too;
/// - an API write with a body must say `Content-Type: application/json`, so no CORS "simple" request
///   (a form post, a `no-cors` fetch of `text/plain`) can make one.
/// Pure: the configuration in, a refusal (or nil) out.
public struct SiteGate {
    /// Host names requests may name, lowercased, without port; nil: any.
    let hosts: Set<String>?
    /// Origins allowed besides the hub's own (`scheme://host[:port]`, lowercased); `*` in it: any.
    let origins: Set<String>
    /// `--public-url`'s origin: the hub's own when it sits behind a proxy that rewrites `Host`.
    let publicOrigin: String?
    /// `--cors-origins`: browser apps elsewhere that may call the API (and read its answers).
    let corsOrigins: Set<String>

    static let loopbackNames: Set<String> = ["localhost", "127.0.0.1", "::1"]

    init(config: Config) {
        publicOrigin = config.publicURL.flatMap(Self.origin(of:))
        origins = Set((config.allowedOrigins ?? []).map { $0.lowercased() })
        corsOrigins = Set(config.corsOrigins.map { $0.lowercased() })
        var names = Set(config.allowedHosts.compactMap { Self.hostName(authority: $0) })
        if let p = publicOrigin, let name = Self.hostName(authority: String(p.split(separator: "/").last ?? "")) {
            names.insert(name)
        }
        if !names.isEmpty {
            hosts = names.union(Self.loopbackNames)
        } else if Server.isLoopback(config.host) {
            hosts = Self.loopbackNames
        } else {
            hosts = nil  // bound to a public address with no list: said on start-up
        }
    }

    /// The refusal for `head`, or nil. `origin`: whether the `Origin` rule applies (upgrades of the
    /// hub's endpoints and state-changing API requests; not `/echo`, the conformance endpoint).
    func check(_ head: HTTPRequestHead, body: [UInt8] = [], upgrade: Bool = false) -> Response? {
        let path = head.path
        // No Host at all is HTTP/1.0 (HTTP/1.1 requires one: the parser refuses it): no browser, no rebinding.
        if let hosts, path != "/healthz", let given = head.header("Host") {
            guard let name = Self.hostName(authority: given), hosts.contains(name) || Self.isLoopbackIPv4(name) else {
                return .error(
                    .misdirected, "unknown_host",
                    "Host \(String(given.prefix(100))) is not a name this hub serves "
                        + "(set --allowed-hosts or --public-url to add one)")
            }
        }
        let writes = !["GET", "HEAD", "OPTIONS"].contains(head.method)
        let api = path.hasPrefix("/api/")
        if (upgrade && path != "/echo") || (api && writes), let origin = head.header("Origin") {
            guard allows(origin: origin, host: head.header("Host")) || (api && isCORS(origin)) else {
                return .error(
                    .forbidden, "origin_not_allowed",
                    "origin \(String(origin.prefix(200))) is not allowed (the hub's own is; add others with "
                        + "--allowed-origins)")
            }
        }
        if api && writes && !body.isEmpty {
            let type = head.header("Content-Type") ?? ""
            let media = type.split(separator: ";", maxSplits: 1).first.map(Self.trimmingOWS) ?? ""
            guard media.lowercased() == "application/json" else {
                return .error(
                    .unsupportedMediaType, "unsupported_media_type",
                    "a request body must be JSON, sent with Content-Type: application/json"
                        + (type.isEmpty ? "" : " (got \(String(type.prefix(100))))"))
            }
        }
        return nil
    }

    /// `s` without the spaces and tabs around it (HTTP's optional white space, RFC 9110 §5.6.3). Foundation's
    /// `trimmingCharacters(in: .whitespaces)` cost ~13,000 instructions per API write.
    static func trimmingOWS(_ s: Substring) -> Substring {
        let ows: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        let u = s.utf8
        guard let first = u.firstIndex(where: { !ows($0) }) else { return "" }
        let last = u.lastIndex(where: { !ows($0) })!
        return Substring(u[first...last])
    }

    /// Whether `origin` is a CORS origin (`--cors-origins`).
    func isCORS(_ origin: String) -> Bool { corsOrigins.contains(origin.lowercased()) || corsOrigins.contains("*") }

    /// The CORS headers for an API answer to `origin` (none for other origins: the browser then keeps
    /// the answer from the page, as it should).
    func corsHeaders(_ origin: String?) -> [(String, String)] {
        guard let origin, isCORS(origin) else { return [] }
        return [
            ("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
            (
                "Access-Control-Expose-Headers",
                "Location, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
            ),
        ]
    }

    /// The answer to a CORS preflight (`OPTIONS /api/...` with `Access-Control-Request-Method`).
    func preflight(_ head: HTTPRequestHead) -> Response {
        guard let origin = head.header("Origin"), isCORS(origin) else {
            return .error(
                .forbidden, "origin_not_allowed",
                "cross-origin calls to this API need the origin in --cors-origins")
        }
        var r = Response(status: .ok, body: [], headers: corsHeaders(origin))  // 200: a 204 may carry no Content-Length
        r.headers += [
            ("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE"),
            (
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type, X-API-Key, X-Host-Key, Idempotency-Key"
            ),
            ("Access-Control-Max-Age", "600"),
        ]
        return r
    }

    /// The hub's own origin (the request's `Host` under http or https, or `--public-url`'s), or one
    /// the operator allowed. `null` (a sandboxed frame, a file) is never the hub's own.
    func allows(origin: String, host: String?) -> Bool {
        let o = origin.lowercased()
        if origins.contains("*") || origins.contains(o) { return true }
        if o == publicOrigin { return true }
        guard let host, !host.isEmpty else { return false }
        let h = host.lowercased()
        return o == "http://" + h || o == "https://" + h
    }

    public static func isLoopbackIPv4(_ name: String) -> Bool { Authority.isLoopbackIPv4(name) }
    public static func hostName(authority: String) -> String? { Authority.hostName(authority) }
    public static func origin(of url: String) -> String? { Authority.origin(of: url) }
}
