import Foundation
import Hub
import WebSocket

/// Where token keys come from: HS256 secrets, PEM public keys (`--jwt-public-key [KID=]FILE`) and a JWKS
/// document (`--jwks FILE`). Files are read again on SIGHUP, so keys rotate without a restart.
public struct TokenKeySources: Sendable {
    public var secrets: [String: [UInt8]] = [:]
    public var publicKeyFiles: [(kid: String, path: String)] = []
    public var jwksFile: String?
    public init() {}

    public var isEmpty: Bool { secrets.isEmpty && publicKeyFiles.isEmpty && jwksFile == nil }

    public struct LoadError: Error, CustomStringConvertible { public let description: String }

    /// Every key, by kid; throws naming the file and the reason when one cannot be used.
    public func load() throws -> [String: TokenKey] {
        var keys = secrets.mapValues { TokenKey.hmac($0) }
        for (kid, path) in publicKeyFiles {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw LoadError(description: "cannot read \(path)")
            }
            do { keys[kid] = .publicKey(try PublicKey(pem: Array(data))) } catch {
                throw LoadError(description: "\(path): \(error)")
            }
        }
        if let path = jwksFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw LoadError(description: "cannot read \(path)")
            }
            do {
                for (kid, key) in try Self.jwks(Array(data)) { keys[kid] = .publicKey(key) }
            } catch {
                throw LoadError(description: "\(path): \(error)")
            }
        }
        return keys
    }

    /// A JWKS document (`{"keys": [{"kid", "kty", "alg"?, "use"?, ...}]}`): every RSA (2048 bits or more)
    /// or P-256 signing key with a `kid`. Keys of other kinds, and a key whose `alg` disagrees with its
    /// type, are skipped (providers publish mixed sets); a document with no usable key is refused.
    static func jwks(_ bytes: [UInt8]) throws -> [(String, PublicKey)] {
        guard let doc = try? JSONReader.readObject(bytes, maxDepth: 8), let list = doc["keys"]?.array else {
            throw LoadError(description: "not a JWKS document ({\"keys\": [...]})")
        }
        var out: [(String, PublicKey)] = []
        for item in list {
            guard let obj = item.object else { continue }
            var jwk: [String: String] = [:]
            for (k, v) in obj.members { if let s = v.string { jwk[k] = s } }
            guard let kid = jwk["kid"], !kid.isEmpty else { continue }
            if let use = jwk["use"], use != "sig" { continue }
            guard let key = try? PublicKey(jwk: jwk) else { continue }
            if let alg = jwk["alg"], alg != key.algorithm.rawValue { continue }
            out.append((kid, key))
        }
        guard !out.isEmpty else {
            throw LoadError(
                description: "no usable signing key (RS256 with 2048+ bits, or ES256 on P-256, each with a kid)")
        }
        return out
    }
}
