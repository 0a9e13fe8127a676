import WebSocket

/// Who may join a session, and as whom: a pure function of what the client presents (a token, the
/// host key, a client id) and the session's settings. No state, no I/O: every rule is unit-testable.
public enum Admission {
    public enum Verdict: Equatable {
        /// `key` is the member's stable identity (`sub:<subject>` for a token, `c:<client_id>`); nil
        /// for an anonymous guest (the session makes one up).
        case admit(role: MemberRole, key: String?, name: String, tokenExpiry: Int64?, viaHostKey: Bool)
        /// Refused: the error to send and the close code to close with (nil: stay connected).
        case reject(code: String, message: String, field: String?, close: CloseCode?)
    }

    public static func decide(
        _ request: ClientMessage.Join, info: SessionInfo, tokens: TokenVerifier,
        now: Int64
    ) -> Verdict {
        let isHost = request.hostKey.map { HostKey.matches($0, stored: info.hostKey) } == true
        var role = MemberRole.editor, name = request.name, key = request.clientId.map { "c:" + $0 }, expiry: Int64?
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
        }
        if isHost { role = .host }
        return .admit(role: role, key: key, name: name, tokenExpiry: expiry, viaHostKey: isHost)
    }
}
