import EventLoop
import Foundation
import Hub
import WebSocket

#if canImport(Glibc)
    import Glibc
#endif

/// A webhook target: `http(s)://host[:port]/path?query`.
struct WebhookURL: Equatable {
    var tls: Bool
    var host: String
    var port: Int
    /// Path and query, as sent in the request line.
    var target: String

    init?(_ s: String) {
        // No control bytes, spaces or DEL anywhere (a CR LF would split the request it goes into).
        guard s.utf8.count <= 2048, s.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return nil }
        let rest: Substring
        if s.lowercased().hasPrefix("https://") {
            tls = true; rest = s.dropFirst(8)
        } else if s.lowercased().hasPrefix("http://") {
            tls = false; rest = s.dropFirst(7)
        } else {
            return nil
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var path = String(rest.dropFirst(authority.count).prefix { $0 != "#" })
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }  // no credentials in URLs
        var hostPart = Substring(authority), portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portPart = after.dropFirst() } else if !after.isEmpty { return nil }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty, hostPart.utf8.count <= 253 else { return nil }
        host = String(hostPart).lowercased()
        if let portPart {
            guard let p = Int(portPart), p >= 1, p <= 65535 else { return nil }
            port = p
        } else {
            port = tls ? 443 : 80
        }
        target = path
    }

    var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == (tls ? 443 : 80) ? h : "\(h):\(port)"
    }
}

/// Where a webhook may be delivered: public addresses only, unless the operator allows private ones
/// (`--webhook-allow-private`): otherwise anyone who may add a webhook could make the hub call its own
/// loopback services or the private network (SSRF).
enum AddressPolicy {
    /// Whether an address is loopback, private, link-local, carrier-grade NAT, unspecified, multicast
    /// or reserved (IPv4, IPv6, and IPv4-mapped IPv6).
    static func isPrivate(_ addr: [UInt8]) -> Bool {
        if addr.count == 4 {
            let (a, b) = (addr[0], addr[1])
            return a == 0 || a == 10 || a == 127 || (a == 169 && b == 254) || (a == 172 && b >= 16 && b <= 31)
                || (a == 192 && b == 168) || (a == 100 && b >= 64 && b <= 127) || a >= 224
                || (a == 192 && b == 0 && addr[2] == 0) || (a == 198 && (b == 18 || b == 19))
        }
        guard addr.count == 16 else { return true }
        if addr[0..<10].allSatisfy({ $0 == 0 }) && addr[10] == 0xFF && addr[11] == 0xFF {
            return isPrivate(Array(addr[12..<16]))  // IPv4-mapped
        }
        if addr.allSatisfy({ $0 == 0 }) { return true }  // ::
        if addr[0..<15].allSatisfy({ $0 == 0 }) && addr[15] == 1 { return true }  // ::1
        return (addr[0] & 0xFE) == 0xFC || (addr[0] == 0xFE && (addr[1] & 0xC0) == 0x80) || addr[0] == 0xFF
            || (addr[0] == 0x20 && addr[1] == 0x01 && addr[2] == 0x0D && addr[3] == 0xB8)  // documentation
            || (addr[0] == 0xFE && (addr[1] & 0xC0) == 0xC0)  // site-local fec0::/10
            || (addr[0] == 0x00 && addr[1] == 0x64 && addr[2] == 0xFF && addr[3] == 0x9B)  // NAT64 64:ff9b::/96
    }

    /// A literal IPv4 or IPv6 address's bytes (nil for a name).
    static func literal(_ host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}

/// A resolved address to connect to.
struct ResolvedAddress: @unchecked Sendable {
    var storage = sockaddr_storage()
    var length: socklen_t = 0
    var family: Int32 = AF_INET
    var bytes: [UInt8] = []
    var text: String = ""

    /// Resolves `host` (blocking: call on a worker) to its first address.
    static func resolve(_ host: String, port: Int) -> Result<ResolvedAddress, DeliveryError> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            return .failure(DeliveryError("cannot resolve \(host): \(String(cString: gai_strerror(rc)))"))
        }
        defer { freeaddrinfo(list) }
        var out = ResolvedAddress()
        out.family = first.pointee.ai_family
        out.length = first.pointee.ai_addrlen
        withUnsafeMutableBytes(of: &out.storage) {
            $0.copyMemory(
                from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        var text = [CChar](repeating: 0, count: 64)
        if out.family == AF_INET {
            var a = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            out.bytes = withUnsafeBytes(of: &a) { Array($0) }
            inet_ntop(AF_INET, &a, &text, 64)
        } else {
            var a = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            out.bytes = withUnsafeBytes(of: &a) { Array($0) }
            inet_ntop(AF_INET6, &a, &text, 64)
        }
        out.text = String(cString: text)
        return .success(out)
    }

    /// Starts a non-blocking connect; the socket becomes writable once connected (or failed).
    func connectNonBlocking() -> Result<Int32, DeliveryError> {
        let fd = socket(
            family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(DeliveryError("socket(): \(String(cString: strerror(errno)))")) }
        var s = storage
        let rc = withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        if rc != 0 && errno != EINPROGRESS {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            return .failure(DeliveryError("connect \(text): \(reason)"))
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return .success(fd)
    }
}

/// One HTTP/1.1 request on the loop (`Connection: close`): written once connected, the response's
/// status line and headers read, then the socket closes. The whole exchange has one deadline.
final class OutboundHTTP: Socket {
    struct Answer { var status: Int; var retryAfter: Double? }
    private var head: [UInt8] = []
    private var finished = false
    private var onDone: ((Result<Answer, DeliveryError>) -> Void)?
    static let maxHead = 16 * 1024

    init(loop: Loop, fd: Int32, peer: String, done: @escaping (Result<Answer, DeliveryError>) -> Void) {
        onDone = done
        super.init(loop: loop, fd: fd, peer: peer)
    }

    func begin(request: [UInt8], timeout: Double) {
        start()
        send(request)
        setTimer(timeout)
    }

    private func finish(_ r: Result<Answer, DeliveryError>) {
        guard !finished else { return }
        finished = true
        let done = onDone
        onDone = nil
        close()
        done?(r)
    }

    override func received(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        head += bytes
        // Interim (1xx) responses come before the real one: skip them.
        while let end = head.firstRange(of: Array("\r\n\r\n".utf8)),
            let answer = Self.parse(Array(head[..<end.lowerBound])), answer.status < 200
        {
            head.removeSubrange(..<end.upperBound)
        }
        if let end = head.firstRange(of: Array("\r\n\r\n".utf8)) {
            finish(
                Self.parse(Array(head[..<end.lowerBound])).map { .success($0) }
                    ?? .failure(DeliveryError("malformed HTTP response")))
        } else if head.count > Self.maxHead {
            finish(.failure(DeliveryError("response head over \(Self.maxHead) bytes")))
        }
        return bytes.count
    }

    override func peerClosed() {
        finish(
            .failure(
                DeliveryError(
                    head.isEmpty
                        ? "connection closed without a response (refused, reset or TLS failed)"
                        : "connection closed mid-response")))
    }

    override func timerFired(now: Double) -> Double? {
        finish(.failure(DeliveryError("timed out")))
        return nil
    }

    override func didClose() {
        if !finished { finished = true; let d = onDone; onDone = nil; d?(.failure(DeliveryError("closed"))) }
    }

    /// The status code and `Retry-After` (seconds, or an HTTP date) of a response head.
    static func parse(_ head: [UInt8]) -> Answer? {
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines.first?.split(separator: " ", maxSplits: 2) ?? []
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), status >= 100, status <= 999
        else { return nil }
        var answer = Answer(status: status)
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            guard line[..<colon].lowercased() == "retry-after" else { continue }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if let seconds = Double(value), seconds >= 0 {
                answer.retryAfter = seconds
            } else {
                let f = DateFormatter()
                f.locale = Locale(identifier: "en_US_POSIX")
                f.timeZone = TimeZone(identifier: "GMT")
                f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
                if let date = f.date(from: value) { answer.retryAfter = max(0, date.timeIntervalSinceNow) }
            }
        }
        return answer
    }
}

/// Why a delivery attempt failed before an HTTP status came back.
struct DeliveryError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
