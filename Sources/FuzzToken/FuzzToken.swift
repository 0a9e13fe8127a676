import Hub
import WebSocket

/// A fixed P-256 public key (RFC 7515's example key A.3; the fuzzer cannot sign with it): tokens claiming
/// ES256 under kid "es" are checked against it.
private let ecKey = try! PublicKey(jwk: [
    "kty": "EC", "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
])
private let verifier = TokenVerifier(
    keyring: TokenKeyring([
        "default": .hmac(Array("fuzz-secret-not-in-corpus".utf8)),
        "es": .publicKey(ecKey),
    ]))

/// libFuzzer entry point for token verification and the keys it rests on: arbitrary tokens (HS256 and
/// ES256 keys, every `alg` and `kid`) must be refused cleanly, since the fuzzer knows no key; and any
/// bytes read as a JWK (the JWKS path) must give a key or an error, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzToken(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    if case .success = verifier.verify(text, now: 1_000) {
        fatalError("forged token accepted: \(text)")
    }
    if let obj = try? JSONReader.readObject(bytes, maxDepth: 4) {
        var jwk: [String: String] = [:]
        for (k, v) in obj.members { if let s = v.string { jwk[k] = s } }
        if let key = try? PublicKey(jwk: jwk) {
            _ = key.verify(bytes, signature: Array(bytes.prefix(64)))
        }
    }
    _ = try? PublicKey(pem: bytes)
    _ = try? PublicKey(der: bytes)
    return 0
}
