import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A webhook target: `http(s)://host[:port]/path?query`.
public struct WebhookURL: Equatable, Sendable {
    public var tls: Bool
    public var host: String
    public var port: Int
    /// Path and query, as sent in the request line.
    public var target: String

    public init?(_ s: String) {
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

    public var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == (tls ? 443 : 80) ? h : "\(h):\(port)"
    }
}

/// Where a webhook may be delivered: public addresses only, unless the operator allows private ones
/// (`--webhook-allow-private`): otherwise anyone who may add a webhook could make the hub call its own
/// loopback services or the private network (SSRF).
public enum AddressPolicy {
    /// Whether an address is loopback, private, link-local, carrier-grade NAT, unspecified, multicast
    /// or reserved (IPv4, IPv6, and IPv4-mapped IPv6).
    public static func isPrivate(_ addr: [UInt8]) -> Bool {
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
    public static func literal(_ host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}

/// What a webhook receiver answered: its status and `Retry-After`.
public struct WebhookResponse: Equatable, Sendable {
    public var status: Int
    public var retryAfter: Double?
    public init(status: Int, retryAfter: Double? = nil) { self.status = status; self.retryAfter = retryAfter }

    /// The status code and `Retry-After` (seconds, or an HTTP date) of a response head.
    public static func parse(_ head: [UInt8]) -> WebhookResponse? {
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines.first?.split(separator: " ", maxSplits: 2) ?? []
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), status >= 100, status <= 999
        else { return nil }
        var answer = WebhookResponse(status: status)
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
