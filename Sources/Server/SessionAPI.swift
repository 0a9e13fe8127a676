import EventLoop
import Foundation
import Hub
import Logging
import WebSocket

/// The handlers of the JSON API under `/api/` (Protocol/PROTOCOL.md, "HTTP API"), served from the route
/// table (`SessionAPI.table`, dispatched and authorized by `Router`). Reads of the store run on a worker
/// thread and answer later (`Reply.later`); creating a session answers once its row is committed.
/// Everything a handler uses is given here: no handler reaches through the `Server`.
final class SessionAPI {
    let config: Config
    let directory: SessionDirectory
    let store: Storage
    /// The log other nodes append to too (a cluster): member counts are the session's, from Redis.
    let shared: SharedLog?
    /// The loops; a session's own is `loops[SessionCode.owner(of:loops:)]`, and runs live on loop 0.
    let loops: [LoopContext]
    /// Delivers the webhook outbox (loop 0); nil where it could not start.
    let webhooks: WebhookEngine?
    /// Transcript exports streaming per client address, across loops.
    let exports: AddressCounts
    /// Set once the hub runs closed (`Server.openMode`).
    let closed: Latch
    let log: Logger
    /// Admin and API reads (sessions, keys, webhooks, activity, runs): a thread of their own, so a
    /// flood of replays and exports cannot delay them.
    let worker = Worker(name: "api-reads", capacity: 1024)
    /// Transcript exports and replay pages and seeks: one lane per client address, taking turns.
    let transcriptReads = Worker(name: "transcript-reads", capacity: 1024)
    let keys: APIKeys

    init(
        config: Config, directory: SessionDirectory, store: Storage, shared: SharedLog?, loops: [LoopContext],
        webhooks: WebhookEngine?, exports: AddressCounts, closed: Latch, log: Logger
    ) {
        self.config = config
        self.directory = directory
        self.store = store
        self.shared = shared
        self.loops = loops
        self.webhooks = webhooks
        self.exports = exports
        self.closed = closed
        self.log = log
        keys = APIKeys(store: store, refreshInterval: config.keyRefreshInterval)
    }

    /// `GET /api/mode`, for the pages' banner: whether anyone who reaches the port can do everything.
    func mode() -> Reply {
        .json(.ok, !closed.isSet ? "{\"open\":true,\"notice\":\"\(Server.openModeNotice)\"}" : "{\"open\":false}")
    }

    /// `GET|HEAD /api/sessions/{code}/transcript`: a read (not a HEAD) is written to the activity log.
    func readTranscript(_ r: RouteRequest) -> Reply {
        if r.head.method == "GET" {
            store.record(
                ActivityEntry(
                    actor: r.access.keyId.map { "key \($0)" } ?? "api", action: "transcript_read",
                    target: r.code, session: r.code, address: r.client, details: r.head.query["format"]))
        }
        return transcript(r["code"], r.head, r, client: r.client)
    }

    func create(_ body: [UInt8], _ request: RouteRequest) -> Reply {
        var title = "Untitled session", maxParticipants = config.maxParticipants,
            guestPolicy = config.defaultGuestPolicy
        var eventPolicy: [String: [String]] = [:]
        if !body.isEmpty {
            let obj: JSONObject
            do { obj = try JSONReader.readObject(body, maxDepth: 8) } catch {
                return .error(.badRequest, "bad_json", "request body must be a JSON object: \(error)")
            }
            if let unknown = BodyFields.unknown(obj, known: ["title", "max_participants", "guest_policy", "events"]) {
                return .now(unknown)
            }
            if let t = obj["title"], t.kind != .null {
                guard let s = t.string, s.fits(200) else {
                    return .error(.badRequest, "invalid_field", "\"title\" must be a string of at most 200 characters")
                }
                title = s
            }
            if let m = obj["max_participants"], m.kind != .null {
                guard let n = m.int, n >= 1, n <= 10_000 else {
                    return .error(
                        .badRequest, "invalid_field", "\"max_participants\" must be an integer from 1 to 10000")
                }
                maxParticipants = n
            }
            if let g = obj["guest_policy"], g.kind != .null {
                guard let p = g.string.flatMap(GuestPolicy.init(rawValue:)) else {
                    return .error(.badRequest, "invalid_field", "\"guest_policy\" must be \"allow\" or \"deny\"")
                }
                guestPolicy = p
            }
            if let e = obj["events"], e.kind != .null {
                guard let policy = Self.eventPolicy(e) else {
                    return .error(
                        .badRequest, "invalid_field",
                        "\"events\" must map roles (host, editor, viewer) to arrays of event names (a trailing * "
                            + "matches a prefix)"
                    )
                }
                eventPolicy = policy
            }
        }
        let created = directory.create(
            title: title, maxParticipants: maxParticipants, guestPolicy: guestPolicy,
            now: Int64(Date().timeIntervalSince1970 * 1000))
        var info = created.info
        let hostKey = created.hostKey
        if !eventPolicy.isEmpty { info.eventPolicy = eventPolicy; directory.update(info) }
        store.record(
            ActivityEntry(
                actor: "api", action: "session_created", target: info.code, session: info.code,
                address: request.peer, details: info.title))
        let later = request.later(), directory = directory, peer = request.peer
        // 201 only once the session's row is committed; a failed commit forgets the session (503).
        let log = log
        store.save(info, created: true) { stored in
            guard stored else {
                directory.forget(info.code)
                let response = Response.error(
                    .serviceUnavailable, "storage_unavailable", "the session could not be stored; retry")
                return later.answer(response)
            }
            var w = JSONWriter()
            w.beginObject()
            w.field("code", info.code); w.field("title", info.title); w.field("max_participants", info.maxParticipants)
            w.field("guest_policy", info.guestPolicy.rawValue); w.field("host_key", hostKey)  // shown this once
            w.field("url", "/ws?session=\(info.code)")
            w.endObject()
            let response = Response(
                status: .created, body: w.bytes, headers: [("Location", "/api/sessions/\(info.code)")])
            log.info(
                "session created",
                metadata: [
                    "session": .string(info.code), "guest_policy": .string(info.guestPolicy.rawValue),
                    "peer": .string(peer),
                ])
            later.answer(response)
        }
        return .later(later)
    }

    /// `counts`: the session's members and connections on every node (a cluster); else this node's.
    private func sessionJSON(
        _ info: SessionInfo, events: Int? = nil, counts given: (members: Int, connections: Int)? = nil
    ) -> [UInt8] {
        let counts = given ?? directory.counts(info.code)
        var w = JSONWriter()
        w.beginObject()
        w.field("code", info.code); w.field("title", info.title); w.field("max_participants", info.maxParticipants)
        w.field("guest_policy", info.guestPolicy.rawValue); w.field("created_at", Int(info.createdAt))
        w.field("status", info.endedAt == nil ? "live" : "ended")
        if let e = info.endedAt { w.field("ended_at", Int(e)); w.field("end_reason", info.endReason) }
        if !info.eventPolicy.isEmpty {
            w.beginObject("events")
            for (role, names) in info.eventPolicy.sorted(by: { $0.key < $1.key }) {
                w.beginArray(role); for n in names { w.element(n) }; w.endArray()
            }
            w.endObject()
        }
        w.field("members", counts.members); w.field("connections", counts.connections)
        if let events { w.field("events", events) }
        w.endObject()
        return w.bytes
    }

    func describe(_ raw: String, _ request: RouteRequest) -> Reply {
        guard let code = SessionCode.normalize(raw), let info = directory.info(code) else {
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        }
        guard let shared else { return .now(Response(status: .ok, body: sessionJSON(info))) }
        // In a cluster the members are the session's on every node: counted in Redis, off the loop (this
        // node's count while Redis cannot be read: the description is still worth having).
        return request.offLoop(worker) { [self] in
            let counts = (try? shared.memberCounts(sessions: [code]))?[code]
            return Response(status: .ok, body: sessionJSON(directory.info(code) ?? info, counts: counts))
        }
    }

    /// `GET /api/sessions?limit=&cursor=`: oldest first, paged by (created_at, code) (default 1000 a page).
    func list(_ request: RouteRequest) -> Reply {
        let paging: Paging
        switch Paging.parse(request.head.query, route: "sessions", defaultLimit: 1000) {
        case .failure(let r): return .now(r)
        case .success(let p): paging = p
        }
        var from: (createdAt: Int64, code: String)?
        if let position = paging.position {
            let parts = position.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let t = Int64(parts[0]) else { return .now(Paging.badCursor) }
            from = (t, String(parts[1]))
        }
        return request.offLoop(worker) { [self] in
            let response: Response
            do {
                let all = try store.sessions().sorted {
                    ($0.0.createdAt, $0.0.code) < ($1.0.createdAt, $1.0.code)
                }
                let rest = from.map { f in all.filter { ($0.0.createdAt, $0.0.code) > (f.createdAt, f.code) } } ?? all
                let rows = rest.prefix(paging.limit)
                // In a cluster the members are the session's on every node (one round trip for the page;
                // this node's counts while Redis cannot be read).
                let counts = try? shared?.memberCounts(sessions: rows.map(\.0.code))
                var out: [UInt8] = Array("{\"sessions\":[".utf8)
                for (i, row) in rows.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    out += sessionJSON(
                        directory.info(row.0.code) ?? row.0, events: row.events, counts: counts?[row.0.code])
                }
                let last = rest.count > rows.count ? rows.last.map { "\($0.0.createdAt):\($0.0.code)" } : nil
                out += Array("],\(Paging.nextField(route: "sessions", last))}".utf8)
                response = Response(status: .ok, body: out)
            } catch {
                response = .error(.serviceUnavailable, "storage_unavailable", "cannot read sessions: \(error)")
            }
            return response
        }
    }

    /// `?after=SEQ&limit=N` or `?cursor=NEXT&limit=N` pages (default 100, at most 1000; `next` names the
    /// following page), or `?format=ndjson` for everything after
    /// `after`: streamed as the client reads (`TranscriptExport`), at most 4 at once per client address.
    private func transcript(
        _ raw: String, _ head: HTTPRequestHead, _ request: RouteRequest, client: String
    ) -> Reply {
        guard let code = SessionCode.normalize(raw), directory.info(code) != nil else {
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        }
        let q = head.query
        guard var after = Int(q["after"] ?? "0"), after >= 0 else {
            return .error(.badRequest, "invalid_field", "\"after\" must be a non-negative integer", field: "after")
        }
        let paging: Paging
        switch Paging.parse(q, route: "transcript", defaultLimit: 100) {
        case .failure(let r): return .now(r)
        case .success(let p): paging = p
        }
        if paging.position != nil {
            guard let seq = paging.integer else { return .now(Paging.badCursor) }
            after = seq
        }
        let limit = paging.limit
        let ndjson = q["format"] == "ndjson"
        if let f = q["format"], f != "ndjson" && f != "json" {
            return .error(.badRequest, "invalid_field", "\"format\" must be json or ndjson", field: "format")
        }
        // Counted by network for IPv6 (`--ipv6-prefix`), as every per-address limit is.
        let exports = exports, limitPerAddress = TranscriptExport.maxPerAddress
        let client = AddressKey.of(client, ipv6Prefix: config.ipv6Prefix)
        guard exports.open(client, limit: limitPerAddress) else {
            return .error(
                .tooManyRequests, "too_many_exports",
                "\(limitPerAddress) transcript exports are running from your address; try again when one ends",
                headers: [("Retry-After", "1")])
        }
        let export = TranscriptExport(
            store: store, worker: transcriptReads, lane: client, code: code,
            format: ndjson ? .ndjson : .page(limit: limit), after: after, loop: request.loop
        ) { exports.close(client) }
        return .now(export.response)
    }

    func end(_ raw: String, _ head: HTTPRequestHead, _ body: [UInt8], _ request: RouteRequest) -> Reply {
        guard let code = SessionCode.normalize(raw), let info = directory.info(code) else {
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        }
        guard info.endedAt == nil else {
            return .error(.conflict, "session_ended", "session \(code) has already ended")
        }
        var reason = "ended by host"
        if !body.isEmpty {
            guard let obj = try? JSONReader.readObject(body, maxDepth: 4) else {
                return .error(.badRequest, "bad_json", "request body must be a JSON object")
            }
            if let unknown = BodyFields.unknown(obj, known: ["reason", "host_key"]) { return .now(unknown) }
            if let r = obj["reason"], r.kind != .null {
                guard let s = r.string, s.fits(200) else {
                    return .error(
                        .badRequest, "invalid_field", "\"reason\" must be a string of at most 200 characters",
                        field: "reason")
                }
                reason = s
            }
        }
        let owner = loops[SessionCode.owner(of: code, loops: loops.count)]
        store.record(
            ActivityEntry(
                actor: "host (api)", action: "session_ended", target: code, session: code, address: request.peer,
                details: reason))
        owner.loop.post { owner.hub?.end(code, reason: reason) }
        return .json(.accepted, "{\"code\":\"\(code)\",\"status\":\"ending\"}")
    }

    static func eventPolicy(_ value: JSONValue) -> [String: [String]]? {
        guard let obj = value.object else { return nil }
        var out: [String: [String]] = [:]
        for (role, list) in obj.members {
            guard ["host", "editor", "viewer"].contains(role), let elements = list.array else { return nil }
            let names = elements.compactMap(\.string)
            guard names.count == elements.count, names.allSatisfy({ !$0.isEmpty && $0.fits(65) }) else { return nil }
            out[role] = names
        }
        return out
    }

    /// `DELETE /api/sessions/{code}/share/{id}`: the link stops working at once, on every node (the
    /// session's row carries the revoked ids; share tokens are checked against it).
    func revokeShare(
        _ code: String, _ id: String, _ request: RouteRequest, actor: String, _ client: String
    ) -> Reply {
        guard APIKeys.isToken(Substring(id)) else {
            return .error(.badRequest, "invalid_field", "\"id\" must be a share link's id (as POST .../share answered)")
        }
        guard directory.info(code) != nil else {
            return .error(.notFound, "unknown_session", "no session with code \(code)")
        }
        guard let info = directory.revokeShare(code, id: id) else {
            return .error(
                .conflict, "too_many_revoked",
                "\(SessionInfo.maxRevokedShares) share links of this session are revoked already; rotate --jwt-secret "
                    + "to end them all")
        }
        store.record(
            ActivityEntry(
                actor: actor, action: "share_link_revoked", target: code, session: code, address: client,
                details: "share:\(id)"))
        let later = request.later(), directory = directory, store = store
        store.save(info) { stored in
            if !stored, let latest = directory.info(code) { store.save(latest) }
            let response =
                stored
                ? Response.json(.ok, "{\"id\":\(jsonString(id)),\"revoked\":true}")
                : Response.error(
                    .serviceUnavailable, "storage_unavailable", "revoked here, not stored yet; it is being retried")
            later.answer(response)
        }
        return .later(later)
    }

    /// `PATCH /api/sessions/{code}` with the host key: title, guest_policy, events (role -> names).
    func patch(_ raw: String, _ head: HTTPRequestHead, _ body: [UInt8], _ request: RouteRequest) -> Reply {
        guard let code = SessionCode.normalize(raw), var info = directory.info(code) else {
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        }
        guard info.endedAt == nil else { return .error(.conflict, "session_ended", "session \(code) has ended") }
        guard let obj = try? JSONReader.readObject(body, maxDepth: 8) else {
            return .error(.badRequest, "bad_json", "request body must be a JSON object")
        }
        if let unknown = BodyFields.unknown(obj, known: ["title", "guest_policy", "events"]) { return .now(unknown) }
        var changes: [String] = []
        if let t = obj["title"], t.kind != .null {
            guard let s = t.string, s.fits(200) else {
                return .error(.badRequest, "invalid_field", "\"title\" must be a string of at most 200 characters")
            }
            info.title = s; changes.append("title")
        }
        if let g = obj["guest_policy"], g.kind != .null {
            guard let p = g.string.flatMap(GuestPolicy.init(rawValue:)) else {
                return .error(.badRequest, "invalid_field", "\"guest_policy\" must be \"allow\" or \"deny\"")
            }
            if p != info.guestPolicy {
                store.record(
                    ActivityEntry(
                        actor: "host (api)", action: "guest_policy_changed", target: code, session: code,
                        address: request.peer, details: "\(info.guestPolicy.rawValue) -> \(p.rawValue)"))
            }
            info.guestPolicy = p; changes.append("guest_policy")
        }
        if let e = obj["events"], e.kind != .null {
            guard let policy = Self.eventPolicy(e) else {
                return .error(.badRequest, "invalid_field", "\"events\" must map roles to arrays of event names")
            }
            info.eventPolicy = policy; changes.append("events")
            store.record(
                ActivityEntry(
                    actor: "host (api)", action: "event_policy_changed", target: code, session: code,
                    address: request.peer))
        }
        // Only a live session changes (it may have ended since it was read above), and the answer
        // waits for the commit.
        guard directory.updateIfLive(info) else {
            return .error(.conflict, "session_ended", "session \(code) has ended")
        }
        let owner = loops[SessionCode.owner(of: code, loops: loops.count)]
        let updated = info, later = request.later()
        owner.loop.post { owner.hub?.updateInfo(updated) }
        let body = sessionJSON(info)
        let directory = directory, store = store
        // The row as the directory keeps it (with share links revoked since it was read above).
        store.save(directory.info(code) ?? info) { stored in
            // Not stored: the change holds in memory and its row (the latest, which may say ended by
            // now) is queued again until it is.
            if !stored, let latest = directory.info(code) { store.save(latest) }
            let response =
                stored
                ? Response(status: .ok, body: body)
                : Response.error(
                    .serviceUnavailable, "storage_unavailable",
                    "the change is in effect but not stored yet; it is being retried")
            later.answer(response)
        }
        return .later(later)
    }

}

extension SessionAPI {
    /// The refusal reason for `/metrics` and the log, from an API refusal's status.
    static func reason(_ status: Int) -> String {
        switch status {
        case 401: return "unauthorized"
        case 403: return "forbidden"
        case 429: return "rate_limited"
        default: return "status_\(status)"
        }
    }
}

extension SessionAPI {
    /// `POST /api/sessions/{code}/share {ttl_s?}`: a link to the session's playback carrying a read-only
    /// token for it (an HS256 token signed with the hub's `--jwt-secret`, `scope: replay`: it replays
    /// and reads that session, and joins nothing). Default 7 days, at most 30.
    func share(_ code: String, _ body: [UInt8], actor: String, _ client: String) -> Reply {
        let obj = body.isEmpty ? nil : try? JSONReader.readObject(body)
        if !body.isEmpty && obj == nil { return .error(.badRequest, "bad_json", "the body must be a JSON object") }
        if let obj, let unknown = BodyFields.unknown(obj, known: ["ttl_s"]) { return .now(unknown) }
        // No link to a session that does not exist (it would replay nothing, and name a code never made).
        guard directory.info(code) != nil else {
            return .error(.notFound, "unknown_session", "no session with code \(code)")
        }
        var ttl = 7 * 86_400
        if let t = obj?["ttl_s"], t.kind != .null {
            guard let v = t.int, v >= 60, v <= 30 * 86_400 else {
                return .error(.badRequest, "invalid_field", "\"ttl_s\" must be an integer from 60 to 2592000")
            }
            ttl = v
        }
        let secrets = config.tokenKeySources.secrets
        guard let kid = secrets.keys.sorted().first, let key = secrets[kid] else {
            return .error(
                .conflict, "share_unavailable", "share links are signed with the hub's --jwt-secret; none is configured"
            )
        }
        let now = Int(Date().timeIntervalSince1970)
        let id = Base64.encodeID(Crypto.randomBytes(9))
        var claims: [String: Any] = [
            "sub": "share:" + id, "session": code, "role": "viewer", "scope": "replay", "iat": now, "exp": now + ttl,
        ]
        // Verified by this hub's own rules: its audience and issuer, when it requires them.
        let verifier = config.sessionPolicy.tokens
        if let aud = verifier.audience { claims["aud"] = aud }
        if let iss = verifier.issuer { claims["iss"] = iss }
        let token = TokenVerifier.sign(claims, key: key, kid: kid == "default" ? nil : kid)
        store.record(
            ActivityEntry(
                actor: actor, action: "share_link_created", target: code, session: code, address: client,
                details: "share:\(id), \(ttl) s"))
        var w = JSONWriter()
        w.beginObject()
        w.field("id", id)
        w.field("url", "/replay/\(code)#token=\(token)"); w.field("token", token); w.field("expires_at", now + ttl)
        w.endObject()
        return .now(Response(status: .created, body: w.bytes))
    }
}
