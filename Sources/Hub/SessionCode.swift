import WebSocket

/// Session codes: short, case-insensitive, from an alphabet without look-alikes (no 0/O, 1/I/L), drawn
/// with OpenSSL's CSPRNG. 8 characters of 31 symbols give 8.5e11 codes: with failed joins rate-limited
/// per address, enumerating live sessions is hopeless.
public enum SessionCode {
    public static let alphabet = Array("ABCDEFGHJKMNPQRSTUVWXYZ23456789")

    public static func generate(length: Int = 8) -> String {
        precondition(length >= 6, "session codes are at least 6 characters")
        return String((0..<length).map { _ in alphabet[Crypto.randomInt(below: alphabet.count)] })
    }

    /// Upper-cases and drops separators people type ("abcd-efgh" -> "ABCDEFGH"); nil if it cannot be a code.
    public static func normalize(_ input: String) -> String? {
        let s = input.uppercased().filter { $0 != "-" && $0 != " " }
        guard s.count >= 6, s.count <= 32, s.allSatisfy({ alphabet.contains($0) }) else { return nil }
        return s
    }

    /// Which of `loops` owns a session: a stable hash (FNV-1a) of its code.
    public static func owner(of code: String, loops: Int) -> Int {
        var h: UInt64 = 0xcbf29ce484222325
        for b in code.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return Int(h % UInt64(max(loops, 1)))
    }
}
