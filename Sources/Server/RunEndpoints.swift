import EventLoop
import Foundation
import Hub
import WebSocket

/// `/watch`: `subscribe {channel: "run:ID" | "dashboard:OWNER", resume_from?}` and `unsubscribe {channel}`.
final class WatchEndpoint: Endpoint {
    let handshakeOptions: Handshake.Options
    unowned let runs: RunHub
    init(runs: RunHub, allowedOrigins: [String]?) {
        self.runs = runs
        handshakeOptions = Handshake.Options(subprotocols: ["collabhub.v1"], allowedOrigins: allowedOrigins)
    }
    func opened(_ connection: Connection) {}
    func closed(_ connection: Connection) { runs.board.closed(connection) }

    func received(_ c: Connection, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        // Rate-limited like other control messages (each subscribe answers with a snapshot); a client
        // that keeps sending what cannot be parsed is closed like on /ws.
        let now = c.loop.now
        if c.limiter == nil { c.limiter = ConnectionLimiter(runs.context.config.messageRates, now: now) }
        guard c.limiter!.allow(.other, now: now) else {
            runs.context.metrics.rateLimited.add()
            if c.limiter!.refused == 1 || c.limiter!.refused % 100 == 0 {
                c.sendError(MessageError("rate_limited", "too many messages; slow down"))
            }
            if c.limiter!.refused > HubEndpoint.maxRefusedMessages {
                c.fail(.rateLimited, "message rate limit exceeded")
            }
            return
        }
        do {
            switch try WatchMessage.parse(Array(payload)) {
            case .subscribe(let channel, let resume, let token):
                if let token {
                    // A token sent with a subscribe joins what the socket presented (a browser cannot
                    // set headers on the upgrade).
                    switch runs.context.config.sessionPolicy.tokens.verify(
                        token, now: Int64(Date().timeIntervalSince1970))
                    {
                    case .success(let claims):
                        // Bounded: a socket keeps the last 16 credentials it presented.
                        if !c.principals.contains(claims.principal) {
                            if c.principals.count >= 16 { c.principals.removeFirst() }
                            c.principals.append(claims.principal)
                        }
                    case .failure(let e):
                        runs.context.server.authFailures.refused(
                            e.closeCode == .unauthorized ? "token_expired" : "unauthorized")
                        runs.context.server.authFailures.record(
                            c.peer, what: "/watch token: \(e.message)", store: runs.store)
                        return invalid(
                            c,
                            MessageError(
                                e.closeCode == .unauthorized ? "token_expired" : "unauthorized", e.message,
                                field: "token"))
                    }
                }
                guard
                    runs.context.server.current(c.principals).contains(where: {
                        Authorization.allows($0, .watch(channel.name))
                    })
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
                if let e = runs.board.subscribe(c, channel, resumeFrom: resume) { invalid(c, e) }
            case .unsubscribe(let channel):
                runs.board.unsubscribe(c, channel: channel.name)
            }
        } catch let e as MessageError {
            invalid(c, e)
        } catch {}
    }

    private func invalid(_ c: Connection, _ e: MessageError) {
        c.invalidMessages += 1
        c.sendError(e)
        if c.invalidMessages > HubEndpoint.maxInvalidMessages { c.fail(.badRequest, "too many invalid messages") }
    }
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
    func closed(_ connection: Connection) { runs.board.publisherClosed(connection) }

    func received(_ c: Connection, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        guard let obj = try? JSONReader.readObject(Array(payload), maxDepth: 8) else {
            return c.sendError(MessageError("bad_json", "messages are JSON objects"))
        }
        guard let run = obj["run"]?.string, RunBoard.isValidId(run) else {
            return c.sendError(
                MessageError("invalid_field", "\"run\" must be an id of 1-128 characters [A-Za-z0-9._-]", field: "run"))
        }
        let ref = obj["id"]?.string
        let events: [RunEvent]
        do { events = try RunAPI.events(from: obj) } catch let e as MessageError { return c.sendError(e) } catch {
            return
        }
        let principals = runs.context.server.current(c.principals)
        guard principals.contains(where: { Authorization.allows($0, .publishRun(run)) }) else {
            return c.sendError(
                MessageError("forbidden", "this key may not publish to run \(run)", field: "run", ref: ref))
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
                c.send(.runAck(run: run, id: ref, seqs: seqs.map(\.seq)))
            case .failure(let r):
                c.sendError(MessageError(r.code, r.message, ref: ref))
            }
        }
    }
}

/// The run publishing and query API: `POST /api/runs/{id}/events`, `GET /api/runs/{id}`, `GET /api/runs`.
enum RunAPI {
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
