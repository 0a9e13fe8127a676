import Bytes
import WebSocket

/// Who may join a session, and as whom: a pure function of what the client presents (a token, the
/// host key, a client id and its resume secret) and the session's settings. No state, no I/O (the one
/// random value, a new resume secret, comes from `newSecret`): every rule is unit-testable.
public enum Admission {
    public enum Verdict: Equatable {
        /// `key` is the member's stable identity, never sent to anyone: `sub:<subject>` for a token,
        /// `c:<client_id>:<hash of the resume secret>` for a guest with a client id; nil for an anonymous
        /// guest (the session makes one up). `issuedSecret`: the resume secret made up for this join
        /// (a client id without one), returned to this connection only in `joined`.
        case admit(
            role: MemberRole, key: String?, name: String, tokenExpiry: Int64?, viaHostKey: Bool,
            issuedSecret: String? = nil)
        /// Refused: the error to send and the close code to close with (nil: stay connected).
        case reject(code: String, message: String, field: String?, close: CloseCode?)
    }

    /// A resume secret's length in characters (of A-Z, a-z, 0-9, `_` and `-`).
    public static let resumeSecretLength = 16...128

    public static func isValidResumeSecret(_ s: String) -> Bool {
        resumeSecretLength.contains(s.utf8.count)
            && s.utf8.allSatisfy {
                ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45
            }
    }

    /// 128 random bits, base64url: what a guest's first join with a client id is given.
    public static func newResumeSecret() -> String { Base64.encode(Crypto.randomBytes(16), urlSafe: true) }

    /// A guest's stable identity: its client id and the first 128 bits of SHA-256 of its resume secret.
    /// Knowing the client id alone (it may show in a URL, a log, a shared machine's storage) gives
    /// another key, so another member: no one resumes as a guest without its secret.
    public static func guestKey(clientId: String, secret: String) -> String {
        "c:" + clientId + ":" + Base64.encode(Array(Crypto.sha256(Array(secret.utf8)).prefix(16)), urlSafe: true)
    }

    public static func decide(
        _ request: ClientMessage.Join, info: SessionInfo, tokens: TokenVerifier,
        now: Int64, newSecret: () -> String = Admission.newResumeSecret
    ) -> Verdict {
        let isHost = request.hostKey.map { HostKey.matches($0, stored: info.hostKey) } == true
        var role = MemberRole.editor, name = request.name, key: String?, expiry: Int64?, issued: String?
        if let token = request.token {
            switch tokens.verify(token, now: now) {
            case .failure(let e):
                return .reject(
                    code: e.closeCode == .unauthorized ? "token_expired" : "unauthorized", message: e.message,
                    field: "token", close: e.closeCode)
            case .success(let claims):
                guard claims.session == "*" || claims.session == info.code else {
                    return .reject(
                        code: "forbidden", message: "this token is for session \(claims.session), not \(info.code)",
                        field: "token", close: .forbidden)
                }
                guard claims.scope != "replay" else {
                    return .reject(
                        code: "forbidden", message: "this token is for the session's playback only", field: "token",
                        close: .forbidden)
                }
                guard claims.role != .publisher else {
                    return .reject(
                        code: "forbidden", message: "publisher tokens cannot join sessions", field: "token",
                        close: .forbidden)
                }
                role = claims.role
                name = claims.name ?? request.name
                key = "sub:" + claims.sub
                expiry = claims.exp
            }
        } else if !isHost && info.guestPolicy != .allow {
            return .reject(
                code: "guests_not_allowed", message: "session \(info.code) admits only people with a token",
                field: nil, close: .unauthorized)
        } else if let clientId = request.clientId {
            // Without its secret a client id is a new member, with a new secret (the parser checked a given one).
            let secret = request.resumeSecret ?? newSecret()
            if request.resumeSecret == nil { issued = secret }
            key = guestKey(clientId: clientId, secret: secret)
        }
        if isHost { role = .host }
        return .admit(
            role: role, key: key, name: name, tokenExpiry: expiry, viaHostKey: isHost, issuedSecret: issued)
    }
}
