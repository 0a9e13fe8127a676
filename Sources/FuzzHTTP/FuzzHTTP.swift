import Hub
import WebSocket

/// libFuzzer entry point for the HTTP head parser and the handshake negotiation on top of it, and for
/// what the API reads from a parsed request: the route match of its target (split into path and query)
/// against a small fixed table, the paging of its query, its `Idempotency-Key` and the unknown-field
/// check of a JSON body after the head. Nothing may crash; a cursor the hub makes decodes back to its
/// position; a match's parameters are segments of the path.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var parser = HTTPHeadParser(maxHeadSize: 1024)
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    // Feed it growing prefixes, as a socket would, then the whole.
    for cut in [size / 3, size / 2, size] {
        switch parser.parse(UnsafeRawBufferPointer(rebasing: bytes[..<cut])) {
        case .needMore: continue
        case .failure(let status, _): precondition(status.code >= 400); return 0
        case .complete(let head, let length):
            precondition(length <= cut)
            if case .success(let accepted) = Handshake.negotiate(
                head, options: .init(subprotocols: ["collabhub.v1"], allowedOrigins: ["http://a"]))
            {
                // The extension offers of an accepted handshake go through negotiation, as in the hub.
                _ = DeflateNegotiation.negotiate(accepted.extensionOffers, mode: .shared)
                _ = DeflateNegotiation.negotiate(accepted.extensionOffers, mode: .context)
            }
            // The cross-site gate's parsers, on whatever Host and Origin the head carries.
            if let host = head.header("Host"), let name = Authority.hostName(host) {
                precondition(!name.isEmpty && !name.contains("/"))
                _ = Authority.isLoopbackIPv4(name)
            }
            if let origin = head.header("Origin"), let o = Authority.origin(of: origin) {
                precondition(o.hasPrefix("http://") || o.hasPrefix("https://"))
            }
            checkAPI(head, body: Array(bytes[length...]))
            return 0
        }
    }
    return 0
}

/// A small table of the API's shapes: literals, `{code}` (a session code) and other parameters.
private let routes = RouteMatcher<Int>(
    [
        "GET /api/mode", "GET /api/sessions", "POST /api/sessions", "GET /api/sessions/{code}",
        "DELETE /api/sessions/{code}", "GET /api/sessions/{code}/members/{id}",
        "DELETE /api/sessions/{code}/members/{id}", "POST /api/runs/{id}/events", "GET /api/runs/{id}",
        "GET /api/keys/{id}/usage", "PATCH /api/keys/{id}",
    ].enumerated().map { i, line in
        let parts = line.split(separator: " ")
        return (method: String(parts[0]), pattern: RoutePattern(String(parts[1])), entry: i)
    })

private let knownFields = ["title", "max_participants", "guest_policy", "events", "host_key", "ttl"]

private func checkAPI(_ head: HTTPRequestHead, body: [UInt8]) {
    let path = head.path, query = head.query
    let segments = path.split(separator: "/").map(String.init)
    switch routes.match(method: head.method, path: path) {
    case .found(_, let params):
        precondition(params.names.count == params.values.count)
        for v in params.values { precondition(segments.contains(v), "a parameter that is no segment of the path") }
        if let code = params.code { precondition(SessionCode.normalize(code) == code) }
    case .unknownSession(let raw):
        precondition(segments.contains(raw) && SessionCode.normalize(raw) == nil)
    case .methodNotAllowed(let allow):
        let methods = allow.split(separator: ",").map { $0.drop(while: { $0 == " " }) }
        precondition(!methods.isEmpty && !methods.contains { $0 == head.method }, "Allow names the method")
    case .notFound: break
    }

    switch Paging.read(query, route: "sessions", defaultLimit: 50, maxLimit: 200) {
    case .success(let paging):
        precondition(paging.limit >= 1 && paging.limit <= 200)
        precondition((paging.position == nil) == (query["cursor"] ?? "").isEmpty)
        _ = paging.integer
        _ = paging.slice(Array(0..<7), route: "sessions")
    case .failure(.limit(let max)): precondition(max == 200 && query["limit"] != nil)
    case .failure(.cursor): precondition(!(query["cursor"] ?? "").isEmpty)
    }
    // Any position (the raw cursor, the path) round-trips through a cursor the hub makes, of its route only.
    for position in [query["cursor"] ?? "", path] where position.utf8.count <= 300 {
        let cursor = Paging.cursor(route: "runs", position)
        precondition(Paging.decode(cursor, route: "runs") == position, "a cursor lost its position")
        precondition(Paging.decode(cursor, route: "keys") == nil, "a cursor of another route decoded")
    }

    if let key = head.header("Idempotency-Key"), IdempotencyKey.isValid(key) {
        precondition(!key.isEmpty && key.utf8.count <= 128 && !key.contains(" "))
    }

    if let obj = try? JSONReader.readObject(body), let u = BodyFields.firstUnknown(obj, known: knownFields) {
        precondition(!knownFields.contains(u.name) && u.name.unicodeScalars.count <= BodyFields.maxShown)
        if let near = u.nearest { precondition(knownFields.contains(near) && Names.distance(near, u.name) <= 3) }
    }
}
