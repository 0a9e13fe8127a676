/// A parsed HTTP/1.1 request line and header block.
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    /// The request target as sent (origin-form: path plus optional query).
    public var target: String
    public var versionMinor: Int
    public var headers: [(name: String, value: String)]

    public static func == (a: HTTPRequestHead, b: HTTPRequestHead) -> Bool {
        a.method == b.method && a.target == b.target && a.versionMinor == b.versionMinor
            && a.headers.elementsEqual(b.headers, by: { $0.name == $1.name && $0.value == $1.value })
    }

    /// First value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        headers.first(where: { $0.name.caseInsensitiveEquals(name) })?.value
    }

    /// Every value of a header, comma lists split and trimmed (e.g. `Connection: keep-alive, Upgrade`).
    /// (Split and trimmed as bytes: splitting and trimming by `Character` walked grapheme clusters, ~6,000
    /// instructions a header, five headers a WebSocket handshake.)
    public func tokens(_ name: String) -> [String] {
        var out: [String] = []
        for h in headers where h.name.caseInsensitiveEquals(name) {
            var value = h.value
            value.withUTF8 { v in
                var i = 0
                while i <= v.count {
                    var j = i
                    while j < v.count && v[j] != UInt8(ascii: ",") { j += 1 }
                    let r = httpTrimmed(v, i..<j)
                    if !r.isEmpty { out.append(String(decoding: UnsafeBufferPointer(rebasing: v[r]), as: UTF8.self)) }
                    i = j + 1
                }
            }
        }
        return out
    }

    public var path: String {
        // Byte search: `firstIndex(of: Character)` walks grapheme clusters, ~250 instructions a byte.
        if let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) { return String(target[..<q]) }
        return target
    }

    /// Query parameters, percent-decoded; later duplicates win.
    public var query: [String: String] {
        guard let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return [:] }
        var out: [String: String] = [:]
        for pair in target[target.index(after: q)...].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = percentDecode(String(kv[0]))
            out[key] = kv.count > 1 ? percentDecode(String(kv[1])) : ""
        }
        return out
    }

    /// Whether the connection stays open after the response (HTTP/1.1 default, HTTP/1.0 opt-in).
    public var keepAlive: Bool {
        let connection = tokens("Connection").map { $0.lowercased() }
        if connection.contains("close") { return false }
        return versionMinor >= 1 || connection.contains("keep-alive")
    }
}

func percentDecode(_ s: String) -> String {
    // (A byte test: `contains(Character)` walks grapheme clusters.)
    guard s.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return s }
    var bytes: [UInt8] = []
    var it = Array(s.utf8)[...]
    while let c = it.popFirst() {
        if c == UInt8(ascii: "+") { bytes.append(0x20); continue }
        if c == UInt8(ascii: "%"), it.count >= 2,
            let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16)
        {
            bytes.append(v); it = it.dropFirst(2); continue
        }
        bytes.append(c)
    }
    return String(decoding: bytes, as: UTF8.self)
}

extension StringProtocol {
    func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = self.utf8, b = other.utf8
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { x, y in (x | 0x20) == (y | 0x20) || x == y }
    }

    /// Without HTTP's optional whitespace (SP and HTAB bytes, RFC 9110 5.6.3) at either end.
    public func trimmingHTTPWhitespace() -> String {
        var s = String(self)
        return s.withUTF8 { v in
            let r = httpTrimmed(v, 0..<v.count)
            return r.count == v.count ? nil : String(decoding: UnsafeBufferPointer(rebasing: v[r]), as: UTF8.self)
        } ?? s
    }
}

/// `range` of `v` without the optional whitespace (SP, HTAB) at either end: bytes, not `Character`s, which
/// walk grapheme clusters (~6,000 instructions a header) and would not see a space before a combining mark.
@inline(__always)
func httpTrimmed(_ v: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Range<Int> {
    var s = range.lowerBound, e = range.upperBound
    while s < e && (v[s] == 0x20 || v[s] == 0x09) { s += 1 }
    while e > s && (v[e - 1] == 0x20 || v[e - 1] == 0x09) { e -= 1 }
    return s..<e
}

/// An HTTP status with the text of its reason phrase.
public struct HTTPStatus: Equatable, Sendable {
    public let code: Int
    public let reason: String
    public init(_ code: Int, _ reason: String) { self.code = code; self.reason = reason }

    public static let ok = HTTPStatus(200, "OK")
    public static let created = HTTPStatus(201, "Created")
    public static let accepted = HTTPStatus(202, "Accepted")
    public static let switchingProtocols = HTTPStatus(101, "Switching Protocols")
    public static let badRequest = HTTPStatus(400, "Bad Request")
    public static let unauthorized = HTTPStatus(401, "Unauthorized")
    public static let forbidden = HTTPStatus(403, "Forbidden")
    public static let notFound = HTTPStatus(404, "Not Found")
    public static let methodNotAllowed = HTTPStatus(405, "Method Not Allowed")
    public static let requestTimeout = HTTPStatus(408, "Request Timeout")
    public static let conflict = HTTPStatus(409, "Conflict")
    public static let gone = HTTPStatus(410, "Gone")
    public static let lengthRequired = HTTPStatus(411, "Length Required")
    public static let payloadTooLarge = HTTPStatus(413, "Content Too Large")
    public static let unsupportedMediaType = HTTPStatus(415, "Unsupported Media Type")
    public static let misdirected = HTTPStatus(421, "Misdirected Request")
    public static let upgradeRequired = HTTPStatus(426, "Upgrade Required")
    public static let tooManyRequests = HTTPStatus(429, "Too Many Requests")
    public static let headersTooLarge = HTTPStatus(431, "Request Header Fields Too Large")
    public static let internalError = HTTPStatus(500, "Internal Server Error")
    public static let notImplemented = HTTPStatus(501, "Not Implemented")
    public static let serviceUnavailable = HTTPStatus(503, "Service Unavailable")
    public static let versionNotSupported = HTTPStatus(505, "HTTP Version Not Supported")
}

/// Builds an HTTP/1.1 response.
public enum HTTPResponse {
    public static func bytes(
        _ status: HTTPStatus, headers: [(String, String)] = [], body: [UInt8] = [],
        contentType: String? = "text/plain; charset=utf-8", keepAlive: Bool = true,
        headOnly: Bool = false
    ) -> [UInt8] {
        var head = "HTTP/1.1 \(status.code) \(status.reason)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if status.code >= 200 {
            if let contentType, !body.isEmpty || status.code >= 400 { head += "Content-Type: \(contentType)\r\n" }
            head += "Content-Length: \(body.count)\r\n"
            if !keepAlive { head += "Connection: close\r\n" }
        }
        head += "\r\n"
        // A response to HEAD carries the headers GET would, and no body (RFC 9110 §9.3.2).
        return headOnly ? Array(head.utf8) : Array(head.utf8) + body
    }

    /// The head of a response whose body follows in pieces: chunked (RFC 9112 §7.1), or for an HTTP/1.0
    /// client, which knows no chunked coding, ended by closing the connection (then `keepAlive` is false).
    public static func streamedHead(
        _ status: HTTPStatus, headers: [(String, String)] = [], contentType: String?, chunked: Bool,
        keepAlive: Bool
    ) -> [UInt8] {
        var head = "HTTP/1.1 \(status.code) \(status.reason)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let contentType { head += "Content-Type: \(contentType)\r\n" }
        if chunked { head += "Transfer-Encoding: chunked\r\n" }
        if !keepAlive { head += "Connection: close\r\n" }
        return Array((head + "\r\n").utf8)
    }

    /// A chunk's size line (hex); the chunk's bytes and a CRLF follow it.
    public static func chunkSize(_ n: Int) -> [UInt8] { Array((String(n, radix: 16) + "\r\n").utf8) }

    /// The last chunk, with no trailers: the end of a chunked body.
    public static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    public static func text(
        _ status: HTTPStatus, _ text: String, headers: [(String, String)] = [],
        keepAlive: Bool = true
    ) -> [UInt8] {
        bytes(status, headers: headers, body: Array(text.utf8), keepAlive: keepAlive)
    }
}
