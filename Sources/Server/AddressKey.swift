#if canImport(Glibc)
    import Glibc
#endif

/// The key per-address state (the connection cap, the failed-join throttle, replay slots, the
/// aggregation of auth failures) is kept under. An IPv4 address, and an IPv4-mapped IPv6 one, stand
/// for themselves; an IPv6 address stands for its network of `--ipv6-prefix` bits (64 by default),
/// because one subscriber usually holds a whole /64: keyed by the full address, every per-address
/// limit could be had again by changing the interface id.
enum AddressKey {
    static func of(_ address: String, ipv6Prefix: Int) -> String {
        guard address.utf8.contains(UInt8(ascii: ":")), ipv6Prefix < 128 else { return address }
        var a = in6_addr()
        guard inet_pton(AF_INET6, address, &a) == 1 else { return address }
        var bytes = withUnsafeBytes(of: &a) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF { return address }
        let prefix = max(0, ipv6Prefix)
        for i in bytes.indices {
            let kept = prefix - i * 8  // bits of this byte inside the prefix
            if kept <= 0 { bytes[i] = 0 } else if kept < 8 { bytes[i] &= UInt8(truncatingIfNeeded: 0xFF << (8 - kept)) }
        }
        withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: bytes) }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        guard inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil else { return address }
        return String(cString: text) + "/\(prefix)"
    }
}
