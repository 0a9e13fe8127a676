import COpenSSL

/// A public key for verifying asymmetric token signatures: RSA (RS256) or EC P-256 (ES256), from a PEM
/// file or a JWK. Each key verifies one algorithm only, so a token cannot choose how it is checked.
public final class PublicKey: @unchecked Sendable {
    public enum Algorithm: String, Sendable { case rs256 = "RS256", es256 = "ES256" }
    public let algorithm: Algorithm
    private let key: OpaquePointer  // EVP_PKEY*

    private init(key: OpaquePointer) throws {
        self.key = key
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_RSA:
            guard EVP_PKEY_get_bits(key) >= 2048 else {
                EVP_PKEY_free(key); throw KeyError("RSA keys must have at least 2048 bits")
            }
            algorithm = .rs256
        case EVP_PKEY_EC:
            // P-256 only: ES256 is defined on it (RFC 7518 §3.4).
            var name = [CChar](repeating: 0, count: 64)
            var len = 0
            guard EVP_PKEY_get_group_name(key, &name, name.count, &len) == 1,
                String(decoding: name.prefix(len).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "prime256v1"
            else {
                EVP_PKEY_free(key); throw KeyError("EC keys must be on P-256 (ES256)")
            }
            algorithm = .es256
        default:
            EVP_PKEY_free(key); throw KeyError("only RSA (RS256) and EC P-256 (ES256) public keys are supported")
        }
    }

    deinit { EVP_PKEY_free(key) }

    public struct KeyError: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    public convenience init(pem: [UInt8]) throws {
        guard let bio = pem.withUnsafeBytes({ BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }) else {
            throw KeyError("out of memory")
        }
        defer { BIO_free(bio) }
        guard let k = PEM_read_bio_PUBKEY(bio, nil, nil, nil) else {
            throw KeyError("not a PEM public key (-----BEGIN PUBLIC KEY-----)")
        }
        try self.init(key: k)
    }

    /// DER SubjectPublicKeyInfo.
    public convenience init(der: [UInt8]) throws {
        var k: OpaquePointer?
        der.withUnsafeBufferPointer { buf in
            var p: UnsafePointer<UInt8>? = buf.baseAddress
            k = d2i_PUBKEY(nil, &p, buf.count)
        }
        guard let k else { throw KeyError("not a DER public key") }
        try self.init(key: k)
    }

    /// A JWK: `{"kty":"RSA","n","e"}` or `{"kty":"EC","crv":"P-256","x","y"}` (base64url, RFC 7518 §6).
    public convenience init(jwk: [String: String]) throws {
        func b64(_ name: String) throws -> [UInt8] {
            guard let v = jwk[name], let bytes = Base64.decode(v, urlSafe: true), !bytes.isEmpty else {
                throw KeyError("JWK needs \(name)")
            }
            return bytes
        }
        switch jwk["kty"] {
        case "RSA":
            let n = try b64("n"), e = try b64("e")
            guard n.count <= 2048, e.count <= 8 else { throw KeyError("JWK RSA key too large") }
            let rsaKey = DER.sequence(DER.integer(n) + DER.integer(e))
            let algorithm = DER.sequence(
                DER.oid([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]) + [0x05, 0x00])
            try self.init(der: DER.sequence(algorithm + DER.bitString(rsaKey)))
        case "EC":
            guard jwk["crv"] == "P-256" else { throw KeyError("JWK EC keys must be on P-256") }
            let x = try b64("x"), y = try b64("y")
            guard x.count == 32, y.count == 32 else { throw KeyError("JWK P-256 coordinates are 32 bytes") }
            let algorithm = DER.sequence(
                DER.oid([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01])
                    + DER.oid([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]))
            try self.init(der: DER.sequence(algorithm + DER.bitString([0x04] + x + y)))
        default:
            throw KeyError("JWK kty must be RSA or EC")
        }
    }

    /// Verifies a JWS signature over `message` (RS256: PKCS#1 v1.5; ES256: the raw 64-byte r||s of RFC 7518 §3.4).
    public func verify(_ message: [UInt8], signature: [UInt8]) -> Bool {
        var sig = signature
        if algorithm == .es256 {
            guard signature.count == 64 else { return false }
            sig = DER.sequence(DER.integer(Array(signature[0..<32])) + DER.integer(Array(signature[32..<64])))
        }
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, EVP_sha256(), nil, key) == 1 else { return false }
        let rc = message.withUnsafeBufferPointer { m in
            sig.withUnsafeBufferPointer { s in EVP_DigestVerify(ctx, s.baseAddress, s.count, m.baseAddress, m.count) }
        }
        ERR_clear_error()
        return rc == 1
    }
}

/// Just enough DER to write a SubjectPublicKeyInfo and an ECDSA signature.
enum DER {
    static func length(_ n: Int) -> [UInt8] {
        if n < 0x80 { return [UInt8(n)] }
        var bytes: [UInt8] = []
        var v = n
        while v > 0 { bytes.insert(UInt8(v & 0xFF), at: 0); v >>= 8 }
        return [0x80 | UInt8(bytes.count)] + bytes
    }
    static func tlv(_ tag: UInt8, _ body: [UInt8]) -> [UInt8] { [tag] + length(body.count) + body }
    static func sequence(_ body: [UInt8]) -> [UInt8] { tlv(0x30, body) }
    static func oid(_ body: [UInt8]) -> [UInt8] { tlv(0x06, body) }
    static func bitString(_ body: [UInt8]) -> [UInt8] { tlv(0x03, [0x00] + body) }
    /// A non-negative INTEGER from big-endian bytes (leading zeros dropped, a zero added if the top bit is set).
    static func integer(_ bytes: [UInt8]) -> [UInt8] {
        var b = Array(bytes.drop(while: { $0 == 0 }))
        if b.isEmpty { b = [0] }
        if b[0] & 0x80 != 0 { b.insert(0, at: 0) }
        return tlv(0x02, b)
    }
}
