/// Standard base64 (RFC 4648 §4) with padding.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8], urlSafe: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        func ch(_ v: UInt32) -> UInt8 {
            let c = alphabet[Int(v & 63)]
            if urlSafe {
                return c == UInt8(ascii: "+") ? UInt8(ascii: "-") : c == UInt8(ascii: "/") ? UInt8(ascii: "_") : c
            }
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

extension Base64 {
    /// URL-safe base64 without padding, letters and digits only: no `_` (keys split on it) and no `-`
    /// (an id starting with one reads as an option on the command line: `collabhub keys revoke -jW5...`).
    public static func encodeID(_ bytes: [UInt8]) -> String {
        String(encode(bytes, urlSafe: true).map { $0 == "_" ? "x" : $0 == "-" ? "y" : $0 })
    }
}
