/// Incremental parser for an HTTP/1.1 request head (RFC 9112 §2-5). Sans-I/O: offer it the bytes
/// received so far; it answers `.needMore`, the parsed head with its length, or the status to fail with.
///
/// It remembers how far it has scanned for the blank line, so a head arriving one byte at a time costs
/// linear work, and it refuses a head past `maxHeadSize` (431) as soon as that many bytes are seen
/// without an end, so a client cannot make the server buffer without bound.
public struct HTTPHeadParser: Sendable {
    public enum Result: Equatable {
        case needMore
        case complete(HTTPRequestHead, headLength: Int)
        case failure(HTTPStatus, String)
    }

    public var maxHeadSize: Int
    public var maxHeaders: Int
    private var scanned = 0

    /// 8 KiB is what nginx and Node allow by default and far above any real WebSocket handshake.
    public init(maxHeadSize: Int = 8 * 1024, maxHeaders: Int = 100) {
        self.maxHeadSize = maxHeadSize
        self.maxHeaders = maxHeaders
    }

    public mutating func reset() { scanned = 0 }

    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> Result {
        // Find the end of the head: an empty line (CRLF CRLF, or bare LF LF which RFC 9112 §2.2 lets us accept).
        var end = -1
        var i = max(scanned, 0)
        let limit = min(bytes.count, maxHeadSize + 4)
        while i < limit {
            if bytes[i] == 0x0A {
                if i >= 1 && bytes[i - 1] == 0x0A { end = i + 1; break }
                if i >= 2 && bytes[i - 1] == 0x0D && bytes[i - 2] == 0x0A { end = i + 1; break }
            }
            i += 1
        }
        if end < 0 {
            scanned = max(0, i - 3)
            if bytes.count > maxHeadSize {
                return .failure(.headersTooLarge, "request head larger than \(maxHeadSize) bytes")
            }
            return .needMore
        }
        if end > maxHeadSize + 4 { return .failure(.headersTooLarge, "request head larger than \(maxHeadSize) bytes") }
        scanned = 0
        return Self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[..<end]), maxHeaders: maxHeaders)
    }

    private static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default: return "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }

    private static func parseHead(_ head: UnsafeRawBufferPointer, maxHeaders: Int) -> Result {
        // Split into lines, tolerating bare LF; a CR anywhere else is malformed.
        var lines: [UnsafeRawBufferPointer.SubSequence] = []
        var start = 0
        for i in 0..<head.count where head[i] == 0x0A {
            var stop = i
            if stop > start && head[stop - 1] == 0x0D { stop -= 1 }
            lines.append(head[start..<stop])
            start = i + 1
        }
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line.
        while let first = lines.first, first.isEmpty, lines.count > 1 { lines.removeFirst() }
        guard lines.count >= 2, lines.last!.isEmpty else { return .failure(.badRequest, "malformed request head") }
        lines.removeLast()

        for line in lines where line.contains(0x0D) || line.contains(0) {
            return .failure(.badRequest, "stray CR or NUL in request head")
        }
        let requestLine = lines.removeFirst().split(separator: 0x20, omittingEmptySubsequences: false)
        guard requestLine.count == 3, !requestLine[0].isEmpty, requestLine[0].allSatisfy(isTokenChar),
            !requestLine[1].isEmpty
        else {
            return .failure(.badRequest, "malformed request line")
        }
        let version = String(decoding: requestLine[2], as: UTF8.self)
        guard version.hasPrefix("HTTP/1.") || version.hasPrefix("HTTP/") else {
            return .failure(.badRequest, "malformed HTTP version")
        }
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            return .failure(.versionNotSupported, "only HTTP/1.0 and HTTP/1.1 are supported")
        }
        let target = String(decoding: requestLine[1], as: UTF8.self)
        guard target.hasPrefix("/") || target == "*", target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(.badRequest, "request target must be an absolute path")
        }
        guard lines.count <= maxHeaders else {
            return .failure(.headersTooLarge, "more than \(maxHeaders) header fields")
        }

        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(lines.count)
        for line in lines {
            if line.first == 0x20 || line.first == 0x09 {
                return .failure(.badRequest, "obsolete header line folding is not accepted")
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex else {
                return .failure(.badRequest, "header line without a field name")
            }
            let name = line[line.startIndex..<colon]
            guard name.allSatisfy(isTokenChar) else {
                return .failure(.badRequest, "invalid character in header field name")
            }
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingHTTPWhitespace()
            headers.append((String(decoding: name, as: UTF8.self), value))
        }
        let request = HTTPRequestHead(
            method: String(decoding: requestLine[0], as: UTF8.self), target: target,
            versionMinor: version == "HTTP/1.1" ? 1 : 0, headers: headers)
        if request.versionMinor == 1 && request.header("Host") == nil {
            return .failure(.badRequest, "HTTP/1.1 request without a Host header")
        }
        return .complete(request, headLength: head.count)
    }

    /// Convenience for tests and tools.
    public mutating func parse(_ bytes: [UInt8]) -> Result {
        bytes.withUnsafeBytes { parse($0) }
    }
}
