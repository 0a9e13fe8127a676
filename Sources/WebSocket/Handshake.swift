/// The server side of the WebSocket opening handshake (RFC 6455 §4.2), as a pure function from a
/// request head to either the 101 response or the HTTP error to send instead.
public enum Handshake {
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    public struct Options: Sendable {
        /// Subprotocols the server speaks, in order of preference.
        public var subprotocols: [String]
        /// Browser origins allowed to connect; nil allows any (non-browser clients send none).
        public var allowedOrigins: [String]?
        /// Whether a client that offers no subprotocol may still connect (true for /echo).
        public var subprotocolRequired: Bool
        public init(subprotocols: [String] = [], allowedOrigins: [String]? = nil, subprotocolRequired: Bool = false) {
            self.subprotocols = subprotocols
            self.allowedOrigins = allowedOrigins
            self.subprotocolRequired = subprotocolRequired
        }
    }

    public struct Accepted: Equatable, Sendable {
        public var subprotocol: String?
        /// Extension offers the server will look at (permessage-deflate), raw.
        public var extensionOffers: [String]
        public var acceptKey: String
    }

    public struct Rejection: Error, Equatable, Sendable {
        public var status: HTTPStatus
        public var message: String
        public var headers: [(String, String)]
        public static func == (a: Rejection, b: Rejection) -> Bool {
            a.status == b.status && a.message == b.message
        }
        init(_ status: HTTPStatus, _ message: String, headers: [(String, String)] = []) {
            self.status = status; self.message = message; self.headers = headers
        }
    }

    /// Whether the request asks to upgrade at all (otherwise it is plain HTTP).
    public static func isUpgradeRequest(_ head: HTTPRequestHead) -> Bool {
        head.tokens("Upgrade").contains { $0.caseInsensitiveEquals("websocket") }
    }

    public static func acceptKey(for key: String) -> String {
        Base64.encode(Crypto.sha1(Array((key + guid).utf8)))
    }

    public static func negotiate(_ head: HTTPRequestHead, options: Options) -> Result<Accepted, Rejection> {
        guard head.method == "GET" else {
            return .failure(Rejection(.methodNotAllowed, "WebSocket upgrade requires GET", headers: [("Allow", "GET")]))
        }
        guard head.versionMinor >= 1 else {
            return .failure(Rejection(.badRequest, "WebSocket upgrade requires HTTP/1.1"))
        }
        guard head.header("Host") != nil else { return .failure(Rejection(.badRequest, "missing Host header")) }
        guard isUpgradeRequest(head) else {
            return .failure(
                Rejection(
                    .upgradeRequired, "this endpoint speaks WebSocket: send Upgrade: websocket",
                    headers: [
                        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                        ("Sec-WebSocket-Version", "13"),
                    ]))
        }
        guard head.tokens("Connection").contains(where: { $0.caseInsensitiveEquals("upgrade") }) else {
            return .failure(Rejection(.badRequest, "Connection header must contain the upgrade token"))
        }
        let versions = head.tokens("Sec-WebSocket-Version")
        guard versions == ["13"] else {
            return .failure(
                Rejection(
                    .upgradeRequired, "unsupported WebSocket version; this server speaks 13",
                    headers: [("Sec-WebSocket-Version", "13")]))
        }
        let keys = head.headers.filter { $0.name.caseInsensitiveEquals("Sec-WebSocket-Key") }
        guard keys.count == 1, let decoded = Base64.decode(keys[0].value), decoded.count == 16 else {
            return .failure(Rejection(.badRequest, "Sec-WebSocket-Key must be the base64 encoding of 16 bytes"))
        }
        if let allowed = options.allowedOrigins, let origin = head.header("Origin") {
            guard allowed.contains(where: { $0.caseInsensitiveEquals(origin) }) || allowed.contains("*") else {
                return .failure(Rejection(.forbidden, "origin \(origin) is not allowed"))
            }
        }
        let offered = head.tokens("Sec-WebSocket-Protocol")
        let chosen = options.subprotocols.first(where: { offered.contains($0) })
        if chosen == nil && options.subprotocolRequired && !offered.isEmpty {
            return .failure(
                Rejection(
                    .badRequest,
                    "no supported subprotocol offered (this server speaks "
                        + "\(options.subprotocols.joined(separator: ", ")))"
                ))
        }
        return .success(
            Accepted(
                subprotocol: chosen, extensionOffers: head.tokens("Sec-WebSocket-Extensions"),
                acceptKey: acceptKey(for: keys[0].value)))
    }

    /// The 101 response for an accepted handshake.
    public static func response(_ accepted: Accepted, extensionResponse: String? = nil) -> [UInt8] {
        var s = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        s += "Sec-WebSocket-Accept: \(accepted.acceptKey)\r\n"
        if let p = accepted.subprotocol { s += "Sec-WebSocket-Protocol: \(p)\r\n" }
        if let e = extensionResponse { s += "Sec-WebSocket-Extensions: \(e)\r\n" }
        s += "\r\n"
        return Array(s.utf8)
    }
}
