import COpenSSL

/// The few cryptographic primitives the hub needs, all from OpenSSL's libcrypto.
public enum Crypto {
    /// SHA-1, used only for `Sec-WebSocket-Accept` (RFC 6455 §4.2.2) where the RFC mandates it.
    public static func sha1(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(SHA_DIGEST_LENGTH))
        bytes.withUnsafeBufferPointer { src in
            digest.withUnsafeMutableBufferPointer { dst in
                _ = SHA1(src.baseAddress, src.count, dst.baseAddress)
            }
        }
        return digest
    }

    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        bytes.withUnsafeBufferPointer { src in
            digest.withUnsafeMutableBufferPointer { dst in _ = SHA256(src.baseAddress, src.count, dst.baseAddress) }
        }
        return digest
    }

    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    _ = HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress, m.count, o.baseAddress, &length)
                }
            }
        }
        return Array(out[0..<Int(length)])
    }

    /// Constant-time comparison, for MACs and secrets.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }

    /// Bytes from OpenSSL's CSPRNG. Traps if the generator is not seeded: nothing safe can be done then.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "OpenSSL RAND_bytes failed")
        return out
    }

    /// A uniformly random integer in 0..<bound, without modulo bias.
    public static func randomInt(below bound: Int) -> Int {
        precondition(bound > 0)
        let limit = UInt32.max - UInt32.max % UInt32(bound)
        while true {
            let bytes = randomBytes(4)
            let v = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
            if v < limit { return Int(v % UInt32(bound)) }
        }
    }
}

/// Standard base64 (RFC 4648 §4) with padding.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8], urlSafe: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        func ch(_ v: UInt32) -> UInt8 {
            let c = alphabet[Int(v & 63)]
            if urlSafe { return c == UInt8(ascii: "+") ? UInt8(ascii: "-") : c == UInt8(ascii: "/") ? UInt8(ascii: "_") : c }
            return c
        }
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [ch(v >> 18), ch(v >> 12), ch(v >> 6), ch(v)]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out += [ch(v >> 18), ch(v >> 12)]
            if !urlSafe { out += [61, 61] }
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [ch(v >> 18), ch(v >> 12), ch(v >> 6)]
            if !urlSafe { out += [61] }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strict decoding: standard alphabet (or the URL-safe one when asked), correct padding
    /// (optional for URL-safe), no whitespace. Returns nil for anything else.
    public static func decode(_ string: String, urlSafe: Bool = false) -> [UInt8]? {
        var chars = Array(string.utf8)
        if urlSafe {
            while chars.count % 4 != 0 { chars.append(61) }
        }
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        func value(_ c: UInt8) -> UInt32? {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(c - 65)
            case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(c - 97 + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - 48 + 52)
            case UInt8(ascii: "+") where !urlSafe, UInt8(ascii: "-") where urlSafe: return 62
            case UInt8(ascii: "/") where !urlSafe, UInt8(ascii: "_") where urlSafe: return 63
            default: return nil
            }
        }
        var i = 0
        while i < chars.count {
            let last = i + 4 == chars.count
            let pad = last ? (chars[i + 3] == 61 ? (chars[i + 2] == 61 ? 2 : 1) : 0) : 0
            var v: UInt32 = 0
            for j in 0..<(4 - pad) {
                guard let d = value(chars[i + j]) else { return nil }
                v = v << 6 | d
            }
            v <<= UInt32(6 * pad)
            out.append(UInt8(v >> 16 & 0xFF))
            if pad < 2 { out.append(UInt8(v >> 8 & 0xFF)) }
            if pad < 1 { out.append(UInt8(v & 0xFF)) }
            // Non-canonical encodings (leftover bits set) are refused.
            if pad == 2 && v & 0xFFFF != 0 { return nil }
            if pad == 1 && v & 0xFF != 0 { return nil }
            i += 4
        }
        return out
    }
}
