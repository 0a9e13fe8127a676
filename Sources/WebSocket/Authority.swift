/// `Host` and `Origin` values, parsed without trusting them: what the hub's cross-site gate compares.
/// Pure, and fuzzed with the head parser (FuzzHTTP).
public enum Authority {
    /// 127.0.0.0/8 written as a dotted quad (not a name that merely starts with `127.`).
    public static func isLoopbackIPv4(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127"
            && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCIIDigitChar) }
    }

    /// `host[:port]` → host, lowercased (an IPv6 literal without its brackets); nil if malformed.
    public static func hostName(_ authority: String) -> String? {
        // On UTF-8 bytes, not Characters: this runs for every HTTP request and WebSocket upgrade, and
        // walking grapheme clusters cost ~7,000 instructions per Host header. The bytes looked for are
        // ASCII, so every index found is a character boundary.
        let a = authority.lowercased()
        let u = a.utf8
        guard !u.isEmpty, u.count <= 255, !u.contains(where: { $0 == 0x2F || $0 == 0x40 || $0 == 0x20 }) else {
            return nil
        }
        if u.first == UInt8(ascii: "[") {
            guard let close = u.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            let rest = u[u.index(after: close)...]
            guard rest.isEmpty || (rest.first == UInt8(ascii: ":") && rest.dropFirst().allSatisfy(isDigit)) else {
                return nil
            }
            let inside = u[u.index(after: u.startIndex)..<close]
            return inside.isEmpty ? nil : String(Substring(inside))
        }
        guard let colon = u.firstIndex(of: UInt8(ascii: ":")) else { return a }
        let host = u[..<colon], port = u[u.index(after: colon)...]
        guard !host.isEmpty, !port.isEmpty, port.allSatisfy(isDigit) else { return nil }
        return String(Substring(host))
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// `scheme://host[:port]` of an http(s) URL with nothing after the authority but `/`, lowercased;
    /// nil otherwise (`app.example.com` without a scheme is no origin: browsers always send one).
    public static func origin(of url: String) -> String? {
        let u = url.lowercased()
        let scheme: String
        if u.hasPrefix("http://") {
            scheme = "http"
        } else if u.hasPrefix("https://") {
            scheme = "https"
        } else {
            return nil
        }
        var authority = String(u.dropFirst(scheme.count + 3))
        if authority.hasSuffix("/") { authority.removeLast() }
        guard hostName(authority) != nil else { return nil }
        return "\(scheme)://\(authority)"
    }
}

extension Character {
    fileprivate var isASCIIDigitChar: Bool { isASCII && isNumber }
}
