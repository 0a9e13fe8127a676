import COpenSSL

/// The few cryptographic primitives the hub needs, all from OpenSSL's libcrypto.
public enum Crypto {
    /// SHA-1, used only for `Sec-WebSocket-Accept` (RFC 6455 §4.2.2) where the RFC mandates it.
    public static func sha1(_ bytes: [UInt8]) -> [UInt8] { digest(bytes, sha1MD, length: Int(SHA_DIGEST_LENGTH)) }

    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        digest(bytes, sha256MD, length: Int(SHA256_DIGEST_LENGTH))
    }

    /// The digests, fetched from OpenSSL's default provider once per process. OpenSSL 3's one-shot `SHA1` and
    /// `SHA256` fetch the algorithm on every call (a provider and name lookup under locks): ~66,000
    /// instructions per digest, two per WebSocket handshake and join, where the digest itself is ~1,000.
    private static let sha1MD: OpaquePointer = fetch("SHA1")
    private static let sha256MD: OpaquePointer = fetch("SHA256")

    private static func fetch(_ name: String) -> OpaquePointer {
        guard let md = EVP_MD_fetch(nil, name, nil) else { fatalError("OpenSSL offers no \(name)") }
        return md
    }

    private static func digest(_ bytes: [UInt8], _ md: OpaquePointer, length: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        var written: UInt32 = 0
        let ok = bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                EVP_Digest(src.baseAddress, src.count, dst.baseAddress, &written, md, nil)
            }
        }
        precondition(ok == 1 && Int(written) == length, "OpenSSL EVP_Digest failed")
        return out
    }

    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    _ = HMAC(
                        sha256MD, k.baseAddress, Int32(k.count), m.baseAddress, m.count, o.baseAddress, &length)
                }
            }
        }
        return Array(out[0..<Int(length)])
    }

    /// Constant-time comparison, for MACs and secrets.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 }
        }
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
