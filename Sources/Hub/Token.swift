import WebSocket
#if canImport(Glibc)
    import Glibc
#endif

/// A key that verifies tokens, and the one algorithm it verifies: HS256 for a shared secret, RS256 or
/// ES256 for a public key. A token's `alg` must match its key's (no `none`, no HS/RS confusion).
public enum TokenKey: Sendable {
    case hmac([UInt8])
    case publicKey(PublicKey)

    public var algorithm: String {
        switch self {
        case .hmac: return "HS256"
        case .publicKey(let k): return k.algorithm.rawValue
        }
    }
}

/// The keys tokens are checked with, shared by every session and endpoint, and replaced whole when the
/// JWKS file is reloaded (SIGHUP).
public final class TokenKeyring: @unchecked Sendable {
    /// On the heap: a mutex must not move, and a stored property passed as `&` may.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var keys: [String: TokenKey]
    public init(_ keys: [String: TokenKey] = [:]) {
        self.keys = keys
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }
    deinit { pthread_mutex_destroy(mutex); mutex.deallocate() }
    public func key(_ kid: String) -> TokenKey? {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }; return keys[kid]
    }
    public var isEmpty: Bool { pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }; return keys.isEmpty }
    public var kids: [String] {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }; return keys.keys.sorted()
    }
    public func replace(_ new: [String: TokenKey]) {
        pthread_mutex_lock(mutex); keys = new; pthread_mutex_unlock(mutex)
    }
}

/// Claims of a CollabHub access token (an HS256 JWT).
public struct TokenClaims: Sendable, Equatable {
    public var sub: String
    public var name: String?
    /// A session code, or `*` for any session.
    public var session: String
    public var role: MemberRole
    public var exp: Int64
    public var nbf: Int64?
    public var iat: Int64?
    /// A watcher token's channels (`run:ID`, `dashboard:OWNER`, a trailing `*` a prefix); nil for a member token.
    public var channels: [String]? = nil
    /// `replay`: a share link's token, for that session's playback only (no live join). Other values
    /// (an identity provider's OAuth scopes) mean nothing to the hub.
    public var scope: String? = nil

    /// A share link's id (its token's subject is `share:<id>`), for revocation; nil for other tokens.
    public var shareId: String? { scope == "replay" && sub.hasPrefix("share:") ? String(sub.dropFirst(6)) : nil }

    /// Whether this is a share link that `info` lists as revoked.
    public func isRevokedShare(in info: SessionInfo?) -> Bool {
        guard let id = shareId, let info else { return false }
        return info.revokedShares.contains(id)
    }

    /// What the token lets its holder do outside a session's own admission.
    public var principal: Principal {
        if let channels { return .watcher(channels: channels) }
        // A publisher token names a backend, not a person: it reads no session.
        if role == .publisher { return .member(session: "", role: role) }
        // A share link's token plays that session back, whatever role it names.
        if scope == "replay" { return .replay(session: session) }
        return .member(session: session, role: role)
    }
}

public struct TokenError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable { case malformed, algorithm, unknownKey, signature, expired, notYetValid, claims }
    public let kind: Kind
    public let message: String
    public var description: String { message }
    /// Expired tokens close with 4001 (refresh and retry); anything forged or malformed with 4003.
    public var closeCode: CloseCode { kind == .expired || kind == .notYetValid ? .unauthorized : .forbidden }
}

/// Verifies JSON Web Tokens (RFC 7519/7515): HS256 with OpenSSL's HMAC compared in constant time, RS256
/// and ES256 with OpenSSL's public-key verification. Each key verifies its own algorithm only (`none`
/// and every mismatch are refused, so a token cannot choose a weaker check); keys rotate by `kid` (a
/// token without `kid` uses the key named `default`); times allow `skew` seconds of clock difference.
public struct TokenVerifier: Sendable {
    public let keyring: TokenKeyring
    public var skew: Int64
    /// `--jwt-audience`: a token must name it in `aud`. Unset, a token naming any audience is refused
    /// (RFC 7519 §4.1.3: one that is not ours is not for us).
    public var audience: String?
    /// `--jwt-issuer`: a token's `iss` must be it.
    public var issuer: String?
    public init(keys: [String: [UInt8]], skew: Int64 = 60) {
        keyring = TokenKeyring(keys.mapValues { .hmac($0) }); self.skew = skew
    }
    public init(keyring: TokenKeyring, skew: Int64 = 60) { self.keyring = keyring; self.skew = skew }

    public var isEnabled: Bool { !keyring.isEmpty }

    public static let roles = MemberRole.allCases.map(\.rawValue)

    public func verify(_ token: String, now: Int64) -> Result<TokenClaims, TokenError> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, token.utf8.count <= 8192 else {
            return .failure(TokenError(kind: .malformed, message: "token is not a JWT (three base64url parts)"))
        }
        guard let headerBytes = Base64.decode(String(parts[0]), urlSafe: true),
            let header = try? JSONReader.readObject(headerBytes, maxDepth: 2)
        else {
            return .failure(TokenError(kind: .malformed, message: "token header is not base64url JSON"))
        }
        let alg = header["alg"]?.string ?? "missing"
        guard ["HS256", "RS256", "ES256"].contains(alg) else {
            return .failure(
                TokenError(kind: .algorithm, message: "token algorithm \(alg) is not accepted (HS256, RS256, ES256)"))
        }
        let kid = header["kid"]?.string ?? "default"
        guard let key = keyring.key(kid) else {
            return .failure(TokenError(kind: .unknownKey, message: "unknown token key id \(kid)"))
        }
        // The key decides the algorithm: an HS256 token checked against a public key (or the reverse) is refused.
        guard key.algorithm == alg else {
            return .failure(
                TokenError(kind: .algorithm, message: "key \(kid) verifies \(key.algorithm) tokens, not \(alg)"))
        }
        guard let signature = Base64.decode(String(parts[2]), urlSafe: true) else {
            return .failure(TokenError(kind: .malformed, message: "token signature is not base64url"))
        }
        let signed = Array("\(parts[0]).\(parts[1])".utf8)
        let valid: Bool
        switch key {
        case .hmac(let secret):
            valid = Crypto.constantTimeEquals(Crypto.hmacSHA256(key: secret, message: signed), signature)
        case .publicKey(let pk): valid = pk.verify(signed, signature: signature)
        }
        guard valid else {
            return .failure(TokenError(kind: .signature, message: "token signature does not match"))
        }
        guard let payloadBytes = Base64.decode(String(parts[1]), urlSafe: true),
            let payload = try? JSONReader.readObject(payloadBytes, maxDepth: 4)
        else {
            return .failure(TokenError(kind: .malformed, message: "token payload is not base64url JSON"))
        }
        guard let sub = payload["sub"]?.string, !sub.isEmpty, sub.fits(128) else {
            return .failure(TokenError(kind: .claims, message: "token needs a sub claim"))
        }
        guard let exp = payload["exp"]?.int.map(Int64.init) else {
            return .failure(TokenError(kind: .claims, message: "token needs an exp claim"))
        }
        // Compared without arithmetic on the token's numbers, which may be anything (no overflow traps).
        guard exp >= now - skew else { return .failure(TokenError(kind: .expired, message: "token expired")) }
        let nbf = payload["nbf"]?.int.map(Int64.init)
        if let nbf, nbf > now + skew {
            return .failure(TokenError(kind: .notYetValid, message: "token not valid yet (nbf)"))
        }
        // RFC 8725 §3.8-3.9: a token minted for another application, or by another issuer sharing the key
        // (one JWKS, one secret for staging and production), is not valid here.
        if let aud = payload["aud"] {
            let names = aud.string.map { [$0] } ?? aud.array?.compactMap(\.string) ?? []
            guard let audience, names.contains(audience) else {
                return .failure(
                    TokenError(
                        kind: .claims,
                        message: audience == nil
                            ? "token names an audience (aud), and this hub has none configured (--jwt-audience)"
                            : "token audience (aud) is not this hub's"))
            }
        } else if audience != nil {
            return .failure(TokenError(kind: .claims, message: "token needs an aud claim naming this hub"))
        }
        if let issuer, payload["iss"]?.string != issuer {
            return .failure(TokenError(kind: .claims, message: "token issuer (iss) is not the one this hub trusts"))
        }
        // No role is the least privilege: a viewer (it reads, it does not write).
        let roleName = payload["role"]?.string ?? "viewer"
        guard let role = MemberRole(rawValue: roleName) else {
            return .failure(
                TokenError(
                    kind: .claims, message: "token role \(roleName) is not one of \(Self.roles.joined(separator: ", "))"
                ))
        }
        // A watcher token names its channels; a member token must name its session (`*` for any):
        // a token that names neither grants nothing (no fail-open default).
        var channels: [String]?
        if let list = payload["channels"] {
            guard let items = list.array, items.count <= 100 else {
                return .failure(TokenError(kind: .claims, message: "channels must be an array of at most 100 strings"))
            }
            let names = items.compactMap(\.string)
            guard names.count == items.count, names.allSatisfy({ !$0.isEmpty && $0.fits(256) }) else {
                return .failure(TokenError(kind: .claims, message: "channels must be an array of at most 100 strings"))
            }
            channels = names
        }
        guard let session = payload["session"]?.string ?? (channels != nil ? "" : nil) else {
            return .failure(
                TokenError(kind: .claims, message: "token needs a session claim (a code, or * for any session)"))
        }
        var claims = TokenClaims(
            sub: sub, name: payload["name"]?.string,
            session: session == "*" ? "*" : (SessionCode.normalize(session) ?? session),
            role: role, exp: exp, nbf: nbf, iat: payload["iat"]?.int.map(Int64.init))
        claims.channels = channels
        claims.scope = payload["scope"]?.string
        return .success(claims)
    }

    /// Issues a token (tests, tools and the `collabhub token` command).
    public static func sign(_ claims: [String: Any], key: [UInt8], kid: String? = nil) -> String {
        var header = JSONWriter(); header.beginObject(); header.field("alg", "HS256"); header.field("typ", "JWT");
        if let kid { header.field("kid", kid) }; header.endObject()
        var body = JSONWriter(); body.beginObject()
        for (k, v) in claims.sorted(by: { $0.key < $1.key }) {
            if let s = v as? String {
                body.field(k, s)
            } else if let i = v as? Int {
                body.field(k, i)
            } else if let i = v as? Int64 {
                body.field(k, Int(i))
            } else if let list = v as? [String] {
                body.beginArray(k); for item in list { body.element(item) }; body.endArray()
            }
        }
        body.endObject()
        let signingInput = Base64.encode(header.bytes, urlSafe: true) + "." + Base64.encode(body.bytes, urlSafe: true)
        return signingInput + "."
            + Base64.encode(Crypto.hmacSHA256(key: key, message: Array(signingInput.utf8)), urlSafe: true)
    }
}
