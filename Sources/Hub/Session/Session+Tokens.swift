import WebSocket

/// Access tokens on live connections: refreshed in place, warned about, expired.
extension Session {
    /// A fresh token for a connection: same person and session; the role follows it.
    func refresh(_ client: HubClient, _ membership: Membership, _ token: String) {
        let member = membership.member
        switch policy.tokens.verify(token, now: wallClockMillis() / 1000) {
        case .failure(let e):
            send(client, .error(code: "unauthorized", message: e.message, field: "token"))
        case .success(let claims):
            guard "sub:" + claims.sub == member.key, claims.session == "*" || claims.session == code else {
                return send(
                    client,
                    .error(
                        code: "forbidden", message: "the new token is for another person or session",
                        field: "token"))
            }
            guard claims.role != .publisher else {
                return send(
                    client, .error(code: "forbidden", message: "publisher tokens cannot join sessions", field: "token"))
            }
            client.membership?.tokenExpiry = claims.exp
            client.membership?.warnedExpiry = false
            // A host key keeps its holder the host.
            if member.role != claims.role && !(member.role == .host && membership.viaHostKey) {
                member.role = claims.role
                broadcastPresenceUpdate(member)
            }
            send(client, .tokenRefreshed(exp: claims.exp))
        }
    }

    /// Tokens: a connection is warned before its token expires; past it (and the clock skew), it goes
    /// with 4001 and joins again with a fresh one.
    func checkTokens() {
        let wallNow = wallClockMillis() / 1000
        for m in members {
            for c in m.connections {
                guard let ms = c.membership, let exp = ms.tokenExpiry else { continue }
                if wallNow - policy.tokens.skew > exp {
                    send(c, .error(code: "token_expired", message: "your token expired; join again with a fresh one"))
                    c.disconnect(.unauthorized, "token expired")
                } else if !ms.warnedExpiry && wallNow + policy.tokenWarning >= exp {
                    c.membership?.warnedExpiry = true
                    send(c, .tokenExpiring(exp: exp))
                }
            }
        }
    }
}
