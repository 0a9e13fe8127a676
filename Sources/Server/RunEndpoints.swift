import EventLoop
import Foundation
import Hub
import WebSocket

/// `/watch`: `subscribe {channel: "run:ID" | "dashboard:OWNER", resume_from?}` and `unsubscribe {channel}`.
final class WatchEndpoint: Endpoint {
    let handshakeOptions: Handshake.Options
    unowned let runs: RunHub
    /// Sockets watching with tokens: looked at every second, and cut from what their expired tokens
    /// allowed (N6), as members of a session are.
    private var tokened: [ObjectIdentifier: Connection] = [:]
    private var expiryCheck: Loop.Timer?

    init(runs: RunHub, allowedOrigins: [String]?) {
        self.runs = runs
        handshakeOptions = Handshake.Options(subprotocols: ["collabhub.v1"], allowedOrigins: allowedOrigins)
        expiryCheck = Loop.Timer(loop: runs.context.loop, after: 1, repeat: 1) { [unowned self] in checkExpiry() }
        expiryCheck?.unref()
    }
    func opened(_ connection: Connection) {
        if !connection.tokenExpiries.isEmpty { tokened[ObjectIdentifier(connection)] = connection }
    }
    func closed(_ connection: Connection) {
        runs.board.closed(connection)
        tokened[ObjectIdentifier(connection)] = nil
    }

    private var now: Int64 { Int64(Date().timeIntervalSince1970) }
    private var skew: Int64 { runs.context.config.sessionPolicy.tokens.skew }

    /// What the socket may use now: revoked keys and expired tokens left out.
    private func effective(_ c: Connection) -> [Principal] {
        let limit = now - skew
        let expired = c.tokenExpiries.filter { $0.exp < limit }.map(\.principal)
        guard !expired.isEmpty else { return runs.context.server.current(c.principals) }
        let live = c.tokenExpiries.filter { $0.exp >= limit }.map(\.principal)
        return runs.context.server.current(c.principals).filter { !expired.contains($0) || live.contains($0) }
    }

    /// Past a token's expiry (and the skew), each channel nothing else allows is dropped with
    /// `token_expired` (a `refresh` or a subscribe with a fresh token in time keeps it); a socket left
    /// with no credential at all is closed with 4001, as a member's is.
    private func checkExpiry() {
        guard !tokened.isEmpty, !runs.context.server.openMode else { return }
        let limit = now - skew
        for (id, c) in tokened where c.tokenExpiries.contains(where: { $0.exp < limit }) {
            let principals = effective(c)
            let live = c.tokenExpiries.filter { $0.exp >= limit }
            c.principals.removeAll { p in !principals.contains(p) }
            c.tokenExpiries = live
            if live.isEmpty { tokened[id] = nil }
            for channel in runs.board.channels(of: c).sorted()
            where !principals.contains(where: { Authorization.allows($0, .watch(channel)) }) {
                runs.board.unsubscribe(c, channel: channel)
                c.sendError(
                    MessageError(
                        "token_expired", "the token for \(channel) expired; subscribe again with a fresh one",
                        field: "channel"))
            }
            if principals.isEmpty {
                c.fail(.unauthorized, "token expired")
            }
        }
    }

    /// Adds a verified token to what the socket presented (bounded: the newest 16 are kept).
    private func adopt(_ c: Connection, _ claims: TokenClaims) {
        let p = claims.principal
        c.tokenExpiries.removeAll { $0.principal == p }
        c.tokenExpiries.append((p, claims.exp))
        if !c.principals.contains(p) {
            if c.principals.count >= 16 {
                let dropped = c.principals.removeFirst()
                c.tokenExpiries.removeAll { $0.principal == dropped }
            }
            c.principals.append(p)
        }
        tokened[ObjectIdentifier(c)] = c
    }

    /// A credential sent in a message: an API key (kept out of the URL, N15) joins what the socket holds;
    /// a token is verified and returned, to be adopted with its expiry.
    private func present(_ c: Connection, _ token: String) -> TokenClaims? {
        // A JWT has two dots; anything else is a key (an API key, or the admin key).
        guard token.utf8.filter({ $0 == UInt8(ascii: ".") }).count != 2 else { return verify(c, token) }
        var a = Access()
        guard let p = runs.context.server.principal(bearer: token, access: &a) else {
            invalid(c, MessageError("unauthorized", "unknown, revoked or rate-limited key", field: "token"))
            return nil
        }
        if !c.principals.contains(p) {
            if c.principals.count >= 16 { c.principals.removeFirst() }
            c.principals.append(p)
        }
        return nil
    }

    private func verify(_ c: Connection, _ token: String) -> TokenClaims? {
        switch runs.context.config.sessionPolicy.tokens.verify(token, now: now) {
        case .success(let claims): return claims
        case .failure(let e):
            runs.context.server.authFailures.refused(e.closeCode == .unauthorized ? "token_expired" : "unauthorized")
            runs.context.server.authFailures.record(c.peer, what: "/watch token: \(e.message)", store: runs.store)
            invalid(
                c,
                MessageError(e.closeCode == .unauthorized ? "token_expired" : "unauthorized", e.message, field: "token")
            )
            return nil
        }
    }

    func received(_ c: Connection, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        // Rate-limited like other control messages (each subscribe answers with a snapshot); a client
        // that keeps sending what cannot be parsed is closed like on /ws.
        guard c.allowMessage(.other) else { return }
        do {
            switch try WatchMessage.parse(Array(payload)) {
            case .subscribe(let channel, let resume, let token):
                // A token sent with a subscribe joins what the socket presented (a browser cannot set
                // headers on the upgrade).
                if let token, let claims = present(c, token) { adopt(c, claims) }
                guard
                    effective(c).contains(where: { Authorization.allows($0, .watch(channel.name)) })
                        || runs.context.server.openMode
                else {
                    return invalid(
                        c,
                        MessageError(
                            "forbidden",
                            "watching \(channel.name) needs a watcher token whose channels cover it, or an API key "
                                + "with scope runs:read",
                            field: "channel"))
                }
                // In a cluster a run's snapshot or resume starts from what the shared log has (this
                // node's copy may not have heard the newest events yet).
                if case .run(let id) = channel, runs.board.shared != nil {
                    return runs.catchUp(id) { [runs] in
                        guard !c.isDisconnecting else { return }
                        if let e = runs.board.subscribe(c, channel, resumeFrom: resume) { self.invalid(c, e) }
                    }
                }
                if let e = runs.board.subscribe(c, channel, resumeFrom: resume) { invalid(c, e) }
            case .unsubscribe(let channel):
                runs.board.unsubscribe(c, channel: channel.name)
            case .refresh(let token):
                guard let claims = verify(c, token) else { return }
                adopt(c, claims)
                c.send(.tokenRefreshed(exp: claims.exp))
            }
        } catch let e as MessageError {
            invalid(c, e)
        } catch {}
    }

    private func invalid(_ c: Connection, _ e: MessageError) { c.invalidMessage(e) }
}

/// `/publish?key=KEY`: a backend holds a socket with the publisher role and sends
/// `{"type": "run_event", "run": ID, ...event}` (or `{"type": "run_events", "run": ID, "events": [...]}`);
/// each is answered with `ack {id?, run, seqs}` once stored, or an `error`.
final class PublishEndpoint: Endpoint {
    let handshakeOptions: Handshake.Options
    unowned let runs: RunHub
    init(runs: RunHub) {
        self.runs = runs
        handshakeOptions = Handshake.Options(subprotocols: ["collabhub.v1"], allowedOrigins: nil)
    }
    func opened(_ connection: Connection) {}
    func closed(_ connection: Connection) {
        let gone = runs.board.publisherClosed(connection)
        if !gone.isEmpty { runs.context.control?.publishersGone(gone) }
    }

    func received(_ c: Connection, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        // Metered like HTTP publishing (N5): the socket's message rate (the event limit), then each message
        // is one request against the key's quota; what cannot be parsed counts towards the invalid close.
        guard c.allowMessage(.event) else { return }
        guard let obj = try? JSONReader.readObject(Array(payload), maxDepth: 8) else {
            return invalid(c, MessageError("bad_json", "messages are JSON objects"))
        }
        guard let run = obj["run"]?.string, RunBoard.isValidId(run) else {
            return invalid(
                c,
                MessageError("invalid_field", "\"run\" must be an id of 1-128 characters [A-Za-z0-9._-]", field: "run"))
        }
        let ref = obj["id"]?.string
        let events: [RunEvent]
        do { events = try RunAPI.events(from: obj) } catch let e as MessageError { return invalid(c, e) } catch {
            return
        }
        let principals = runs.context.server.current(c.principals)
        guard principals.contains(where: { Authorization.allows($0, .publishRun(run)) }) else {
            return c.sendError(
                MessageError("forbidden", "this key may not publish to run \(run)", field: "run", ref: ref))
        }
        // The key that allows it pays for it (the admin key and tokens have no quota).
        if !principals.contains(where: { $0 == .admin }),
            case .apiKey(let id, _, _, _)? = principals.first(where: {
                if case .apiKey = $0 { return Authorization.allows($0, .publishRun(run)) }
                return false
            }), let keys = runs.context.server.api?.keys
        {
            switch keys.charge(id: id) {
            case .allowed: break
            case .limited(_, let message):
                runs.context.metrics.rateLimited.add()
                return c.sendError(MessageError("rate_limited", message, ref: ref))
            case .unknown, .unknownId:
                return c.sendError(MessageError("unauthorized", "the key was revoked", ref: ref))
            }
        }
        for e in events {
            if let owner = e.owner, e.kind == .started,
                !principals.contains(where: { Authorization.allows($0, .startRun(owner: owner)) })
            {
                return c.sendError(
                    MessageError(
                        "forbidden", "this key may not start runs for owner \(owner)", field: "owner", ref: ref))
            }
            if let code = e.session.flatMap(SessionCode.normalize),
                !principals.contains(where: { Authorization.allows($0, .changeSession(code)) })
            {
                return c.sendError(
                    MessageError(
                        "forbidden", "attaching run \(run) to session \(code) needs scope sessions:write",
                        field: "session", ref: ref))
            }
        }
        runs.board.publish(run, events) { [runs] result in
            switch result {
            case .success(let seqs):
                // Only a publisher whose events were accepted speaks for the run (run_control goes here).
                runs.board.publisherSeen(c, run: run)
                runs.context.control?.publisherSeen(run: run)
                c.send(.runAck(run: run, id: ref, seqs: seqs.map(\.seq)))
            case .failure(let r):
                c.sendError(MessageError(r.code, r.message, ref: ref))
            }
        }
    }

    private func invalid(_ c: Connection, _ e: MessageError) { c.invalidMessage(e) }
}

/// The run publishing and query API: `POST /api/runs/{id}/events`, `GET /api/runs/{id}`, `GET /api/runs`.
enum RunAPI {
    /// The members a run event may have (`Protocol/schemas/http/run_event.json`).
    static let eventFields = [
        "type", "id", "owner", "session", "name", "step", "outcome", "error", "line", "percent", "message", "by",
    ]

    /// 400 `unknown_field` for a member of an HTTP run event body (one event or `{"events": [...]}`)
    /// that no event has; nil when all are known.
    static func unknownField(_ obj: JSONObject) -> Response? {
        if obj["type"]?.string == "run_event", let event = obj["event"]?.object {
            return BodyFields.unknown(obj, known: ["type", "event"])
                ?? BodyFields.unknown(event, known: eventFields, prefix: "event.")
        }
        guard let list = obj["events"] else { return BodyFields.unknown(obj, known: eventFields) }
        if let refusal = BodyFields.unknown(obj, known: ["events"]) { return refusal }
        for (i, item) in (list.array ?? []).enumerated() {
            if let o = item.object, let refusal = BodyFields.unknown(o, known: eventFields, prefix: "events[\(i)].") {
                return refusal
            }
        }
        return nil
    }

    /// One event (`{"type": "started", ...}`) or a batch (`{"events": [...]}`); `run_event`/`run_events`
    /// wrappers of the publisher socket are accepted too.
    static func events(from obj: JSONObject) throws -> [RunEvent] {
        if let list = obj["events"] {
            guard let elements = list.array else {
                throw MessageError("invalid_field", "\"events\" must be an array", field: "events")
            }
            let items = try elements.map { e -> JSONObject in
                guard let o = e.object else {
                    throw MessageError("invalid_field", "\"events\" must hold objects", field: "events")
                }
                return o
            }
            guard !items.isEmpty, items.count <= 1000 else {
                throw MessageError("invalid_field", "\"events\" must hold 1-1000 events", field: "events")
            }
            return try items.enumerated().map { i, item in
                do { return try RunEvent.parse(item) } catch let e as MessageError {
                    throw MessageError(
                        e.code, "events[\(i)]: \(e.message)", field: e.field.map { "events[\(i)].\($0)" })
                }
            }
        }
        if obj["type"]?.string == "run_event", let event = obj["event"]?.object { return [try RunEvent.parse(event)] }
        return [try RunEvent.parse(obj)]
    }
}

extension Connection {
    /// The connection's message rate for `kind` (`/watch`, `/publish`): false when over it; the client is
    /// told now and then, and closed with 4008 once it keeps flooding.
    func allowMessage(_ kind: ConnectionLimiter.Kind) -> Bool {
        let now = loop.now
        if limiter == nil { limiter = ConnectionLimiter(context.limiterRates, now: now) }
        guard limiter!.allow(kind, now: now) else {
            context.metrics.rateLimited.add()
            if limiter!.refused == 1 || limiter!.refused % 100 == 0 {
                sendError(MessageError("rate_limited", "too many messages; slow down"))
            }
            if limiter!.refused > HubEndpoint.maxRefusedMessages { fail(.rateLimited, "message rate limit exceeded") }
            return false
        }
        return true
    }

    /// A message that could not be used: its error, and a close with 4002 past `maxInvalidMessages`.
    func invalidMessage(_ e: MessageError) {
        invalidMessages += 1
        sendError(e)
        if invalidMessages > HubEndpoint.maxInvalidMessages { fail(.badRequest, "too many invalid messages") }
    }
}
