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
        let a = authority.lowercased()
        guard !a.isEmpty, a.utf8.count <= 255, !a.contains(where: { $0 == "/" || $0 == "@" || $0 == " " }) else {
            return nil
        }
        if a.hasPrefix("[") {
            guard let close = a.firstIndex(of: "]") else { return nil }
            let rest = a[a.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isASCIIDigitChar)) else {
                return nil
            }
            let inside = a[a.index(after: a.startIndex)..<close]
            return inside.isEmpty ? nil : String(inside)
        }
        let parts = a.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, !parts[0].isEmpty else { return nil }
        if parts.count == 2 && (parts[1].isEmpty || !parts[1].allSatisfy(\.isASCIIDigitChar)) { return nil }
        return String(parts[0])
    }

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
