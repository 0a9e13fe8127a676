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

    /// Scheme, host and port: what logs may show of a receiver's URL, whose path or query may carry
    /// the receiver's own credential.
    public var origin: String { (tls ? "https://" : "http://") + hostHeader }

    /// `origin` of a stored URL (one that does not parse is not shown at all).
    public static func origin(of url: String) -> String { WebhookURL(url)?.origin ?? "(invalid URL)" }
}

/// Where a webhook may be delivered: public addresses only, unless the operator allows private ones
/// (`--webhook-allow-private`): otherwise anyone who may add a webhook could make the hub call its own
/// loopback services or the private network (SSRF).
public enum AddressPolicy {
    /// Whether an address is loopback, private, link-local, carrier-grade NAT, unspecified, multicast
    /// or reserved (IPv4, IPv6, and IPv4-mapped IPv6), or an IPv6 transition form that carries an IPv4
    /// address to a gateway (IPv4-compatible, SIIT, 6to4, Teredo, NAT64): behind such a gateway it
    /// reaches whatever IPv4 address it embeds, so it is not taken as public.
    public static func isPrivate(_ addr: [UInt8]) -> Bool {
        if addr.count == 4 {
            let (a, b) = (addr[0], addr[1])
            return a == 0 || a == 10 || a == 127 || (a == 169 && b == 254) || (a == 172 && b >= 16 && b <= 31)
                || (a == 192 && b == 168) || (a == 100 && b >= 64 && b <= 127) || a >= 224
                || (a == 192 && b == 0 && addr[2] == 0) || (a == 198 && (b == 18 || b == 19))
        }
        guard addr.count == 16 else { return true }
        if addr[0..<10].allSatisfy({ $0 == 0 }) && addr[10] == 0xFF && addr[11] == 0xFF {
            return isPrivate(Array(addr[12..<16]))  // IPv4-mapped: the kernel connects over IPv4
        }
        // ::/96 (IPv4-compatible, deprecated; also :: and ::1) and ::ffff:0:0/96 (SIIT).
        if addr[0..<12].allSatisfy({ $0 == 0 }) { return true }
        if addr[0..<8].allSatisfy({ $0 == 0 }) && addr[8..<12].elementsEqual([0xFF, 0xFF, 0, 0]) { return true }
        return (addr[0] & 0xFE) == 0xFC || (addr[0] == 0xFE && (addr[1] & 0xC0) == 0x80) || addr[0] == 0xFF
            || (addr[0] == 0x20 && addr[1] == 0x01 && addr[2] == 0x0D && addr[3] == 0xB8)  // documentation
            || (addr[0] == 0xFE && (addr[1] & 0xC0) == 0xC0)  // site-local fec0::/10
            // NAT64: 64:ff9b::/96 and the local-use 64:ff9b:1::/48 (both within 64:ff9b::/32).
            || (addr[0] == 0x00 && addr[1] == 0x64 && addr[2] == 0xFF && addr[3] == 0x9B)
            || (addr[0] == 0x20 && addr[1] == 0x02)  // 6to4 2002::/16 (deprecated: RFC 7526), any relay
            || (addr[0] == 0x20 && addr[1] == 0x01 && addr[2] == 0 && addr[3] == 0)  // Teredo 2001::/32
            || (addr[0] == 0x01 && addr[1..<8].allSatisfy { $0 == 0 })  // discard-only 100::/64
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
    /// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) as Unix seconds; nil for
    /// anything else. Parsed by hand from ASCII: the receiver's bytes are not trusted (Foundation's
    /// date formatter trapped on some of them).
    public static func httpDate(_ s: String) -> Int? {
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let parts = s.split(separator: " ")
        guard s.utf8.count == 29, s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), parts.count == 6,
            parts[0].count == 4, parts[0].hasSuffix(","), parts[5] == "GMT",
            let day = Int(parts[1]), parts[1].count == 2, (1...31).contains(day),
            let month = months.firstIndex(of: String(parts[2])),
            let year = Int(parts[3]), parts[3].count == 4, (1970...9999).contains(year)
        else { return nil }
        let hms = parts[4].split(separator: ":")
        guard hms.count == 3, hms.allSatisfy({ $0.count == 2 }), let h = Int(hms[0]), let m = Int(hms[1]),
            let sec = Int(hms[2]), h < 24, m < 60, sec < 61
        else { return nil }
        var t = tm()
        t.tm_year = Int32(year - 1900); t.tm_mon = Int32(month); t.tm_mday = Int32(day)
        t.tm_hour = Int32(h); t.tm_min = Int32(m); t.tm_sec = Int32(sec)
        return Int(timegm(&t))
    }

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
            // delay-seconds (digits only), or an HTTP date.
            if !value.isEmpty, value.utf8.count <= 10, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
                answer.retryAfter = Double(value)
            } else if let at = httpDate(value) {
                answer.retryAfter = max(0, Double(at) - Date().timeIntervalSince1970)
            }
        }
        return answer
    }
}
