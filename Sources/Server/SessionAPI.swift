import EventLoop
import Foundation
import Hub
import Logging
import WebSocket

/// The JSON API under `/api/` (Protocol/PROTOCOL.md, "HTTP API"). Reads of the store run on a worker
/// thread and answer through `Connection.respondLater`; creating a session answers once its row is
/// committed.
final class SessionAPI {
    unowned let server: Server
    let directory: SessionDirectory
    let store: Storage
    /// Admin and API reads (sessions, keys, webhooks, activity, runs): a thread of their own, so a
    /// flood of replays and exports cannot delay them.
    let worker = Worker(name: "api-reads", capacity: 1024)
    /// Transcript exports and replay pages and seeks: one lane per client address, taking turns.
    let transcriptReads = Worker(name: "transcript-reads", capacity: 1024)
    let keys: APIKeys

    init(server: Server, directory: SessionDirectory, store: Storage) {
        self.server = server
        self.directory = directory
        self.store = store
        keys = APIKeys(store: store, refreshInterval: server.config.keyRefreshInterval)
    }

    /// Every route names the surface it touches and is authorized here, before it runs
    /// (`Authorization.allows`, the table in Protocol/PROTOCOL.md).
    /// `refreshed`: asked again after the key table was read again for an unknown key id.
    func handle(_ head: HTTPRequestHead, body: [UInt8], connection: Connection, refreshed: Bool = false) -> Response? {
        let parts = head.path.split(separator: "/").map(String.init)  // ["api", "sessions", CODE, ...]
        guard parts.count >= 2 else {
            return .error(.notFound, "not_found", "no API route \(head.method) \(head.path)")
        }
        let code = parts[1] == "sessions" && parts.count >= 3 ? SessionCode.normalize(parts[2]) : nil
        let bodyHostKey =
            parts.count == 4 && parts[3] == "end" ? (try? JSONReader.readObject(body))?["host_key"]?.string : nil
        let access = server.access(head, session: code, hostKey: bodyHostKey)
        if let unknown = access.unknownKeyId, !refreshed {
            // A key made by `collabhub keys` since the table was last read: read it again (off the loop),
            // then decide. Never a read on the loop; requests in the meantime share one read.
            let loop = connection.loop
            keys.refreshNow(for: unknown) {
                loop.post { [self] in
                    guard !connection.isClosed else { return }
                    if let r = handle(head, body: body, connection: connection, refreshed: true) {
                        connection.respondLater(r)
                    }
                }
            }
            return nil
        }
        let client = server.clientAddress(head, peer: connection.peer)
        func authorized(_ surface: Surface, _ route: () -> Response?) -> Response? {
            if let refusal = access.check(surface) {
                server.log.debug(
                    "refused",
                    metadata: [
                        "route": .string("\(head.method) \(head.path)"),
                        "status": .stringConvertible(refusal.status.code),
                        "reason": .string(surface.describe), "peer": .string(client),
                    ])
                // A key over its quota (429) is not refused for who it is.
                if refusal.status.code == 401 || refusal.status.code == 403 {
                    server.authFailures.refused(Self.reason(refusal.status.code))
                }
                // Failures (401) and refusals by scope (403) are logged once per address and minute each,
                // the rest of the minute's summed up: a flood cannot fill the log.
                if refusal.status.code == 401 && access.presented {
                    server.authFailures.record(
                        client, what: "\(head.method) \(head.path): \(surface.describe)", store: store)
                } else if access.presented && access.failure == nil {
                    server.accessRefusals.record(
                        client,
                        what:
                            "\(access.keyId.map { "key \($0): " } ?? "")\(head.method) \(head.path): "
                            + "\(surface.describe)",
                        store: store)
                }
                return refusal
            }
            return route()
        }
        let runId = parts[1] == "runs" && parts.count >= 3 ? parts[2] : ""
        switch (head.method, parts.count, parts[1]) {
        case ("POST", 4, "runs") where parts[3] == "events":
            return authorized(.publishRun(runId)) { runs(head, parts, body, connection, access) }
        case ("GET", 3, "runs"): return authorized(.readRun(runId)) { runs(head, parts, body, connection) }
        case ("GET", 2, "runs"): return authorized(.readRuns) { runs(head, parts, body, connection) }
        case (_, _, "runs"): return .error(.notFound, "not_found", "no API route \(head.method) \(head.path)")
        case ("GET", 2, "activity"): return authorized(.readActivity) { activity(head, connection) }
        case ("POST", 2, "keys"): return authorized(.manageKeys) { createKey(body, connection, access) }
        case ("GET", 2, "keys"): return authorized(.manageKeys) { listKeys(head, connection) }
        case ("DELETE", 3, "keys"): return authorized(.manageKeys) { revokeKey(parts[2], connection, access) }
        case ("GET", 4, "keys") where parts[3] == "usage":
            // A key may read its own usage; keys:admin reads any.
            if access.keyId == parts[2] { return keyUsage(parts[2], connection) }
            return authorized(.manageKeys) { keyUsage(parts[2], connection) }
        case (_, _, "keys"): return .error(.notFound, "not_found", "no API route \(head.method) \(head.path)")
        case (_, _, "webhooks"):
            return authorized(.manageWebhooks) { webhookRoute(head, parts, body, connection, access) }
        case (_, 2, "activity"):
            return .error(.methodNotAllowed, "method_not_allowed", "\(head.method) is not allowed on \(head.path)")
        case ("POST", 2, "sessions"): return authorized(.createSession) { create(body, connection) }
        case ("GET", 2, "sessions"): return authorized(.listSessions) { list(head, connection) }
        case (_, 3...5, "sessions") where code == nil:
            return .error(.notFound, "unknown_session", "no session with code \(parts[2])")
        case ("GET", 3, "sessions"): return authorized(.describeSession(code!)) { describe(parts[2]) }
        case ("POST", 4, "sessions") where parts[3] == "messages":
            return authorized(.changeSession(code!)) { postMessage(code!, head, body, connection, actor: client) }
        case ("GET", 4, "sessions") where parts[3] == "members":
            return authorized(.describeSession(code!)) { members(code!, head, connection) }
        case ("DELETE", 5, "sessions") where parts[3] == "members":
            return authorized(.changeSession(code!)) { removeMember(code!, parts[4], connection, actor: client) }
        case ("PATCH", 3, "sessions"):
            return authorized(.changeSession(code!)) { patch(parts[2], head, body, connection) }
        case (let m, 4, "sessions") where parts[3] == "transcript" && (m == "GET" || m == "HEAD"):
            return authorized(.readTranscript(code!)) {
                if m == "GET" {
                    store.record(
                        ActivityEntry(
                            actor: access.keyId.map { "key \($0)" } ?? "api", action: "transcript_read",
                            target: code!, session: code!, address: client, details: head.query["format"]))
                }
                return transcript(parts[2], head, connection, client: client)
            }
        case ("DELETE", 5, "sessions") where parts[3] == "share":
            return authorized(.shareSession(code!)) {
                revokeShare(code!, parts[4], connection, actor: access.keyId.map { "key \($0)" } ?? "api", client)
            }
        case ("POST", 4, "sessions") where parts[3] == "share":
            return authorized(.shareSession(code!)) {
                share(code!, body, actor: access.keyId.map { "key \($0)" } ?? "api", client)
            }
        case ("POST", 4, "sessions") where parts[3] == "end":
            return authorized(.endSession(code!)) { end(parts[2], head, body, connection) }
        case (_, 2...4, "sessions"):
            return .error(.methodNotAllowed, "method_not_allowed", "\(head.method) is not allowed on \(head.path)")
        default:
            return .error(.notFound, "not_found", "no API route \(head.method) \(head.path)")
        }
    }

    private func create(_ body: [UInt8], _ connection: Connection) -> Response? {
        var title = "Untitled session", maxParticipants = server.config.maxParticipants,
            guestPolicy = server.config.defaultGuestPolicy
        var eventPolicy: [String: [String]] = [:]
        if !body.isEmpty {
            let obj: JSONObject
            do { obj = try JSONReader.readObject(body, maxDepth: 8) } catch {
                return .error(.badRequest, "bad_json", "request body must be a JSON object: \(error)")
            }
            if let unknown = BodyFields.unknown(obj, known: ["title", "max_participants", "guest_policy", "events"]) {
                return unknown
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
                address: connection.peer, details: info.title))
        let loop = connection.loop, directory = directory
        // 201 only once the session's row is committed; a failed commit forgets the session (503).
        let log = server.log
        store.save(info, created: true) { stored in
            guard stored else {
                directory.forget(info.code)
                let response = Response.error(
                    .serviceUnavailable, "storage_unavailable", "the session could not be stored; retry")
                return loop.post { connection.respondLater(response) }
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
                    "peer": .string(connection.peer),
                ])
            loop.post { connection.respondLater(response) }
        }
        return nil
    }

    private func sessionJSON(_ info: SessionInfo, events: Int? = nil) -> [UInt8] {
        let counts = directory.counts(info.code)
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

    private func describe(_ raw: String) -> Response {
        guard let code = SessionCode.normalize(raw), let info = directory.info(code) else {
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        }
        return Response(status: .ok, body: sessionJSON(info))
    }

    /// `GET /api/sessions?limit=&cursor=`: oldest first, paged by (created_at, code) (default 1000 a page).
    private func list(_ head: HTTPRequestHead, _ connection: Connection) -> Response? {
        let paging: Paging
        switch Paging.parse(head.query, route: "sessions", defaultLimit: 1000) {
        case .failure(let r): return r
        case .success(let p): paging = p
        }
        var from: (createdAt: Int64, code: String)?
        if let position = paging.position {
            let parts = position.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let t = Int64(parts[0]) else { return Paging.badCursor }
            from = (t, String(parts[1]))
        }
        let loop = connection.loop
        let queued = worker.submit { [self] in
            let response: Response
            do {
                let all = try store.sessions().sorted {
                    ($0.0.createdAt, $0.0.code) < ($1.0.createdAt, $1.0.code)
                }
                let rest = from.map { f in all.filter { ($0.0.createdAt, $0.0.code) > (f.createdAt, f.code) } } ?? all
                let rows = rest.prefix(paging.limit)
                var out: [UInt8] = Array("{\"sessions\":[".utf8)
                for (i, row) in rows.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    out += sessionJSON(directory.info(row.0.code) ?? row.0, events: row.events)
                }
                let last = rest.count > rows.count ? rows.last.map { "\($0.0.createdAt):\($0.0.code)" } : nil
                out += Array("],\(Paging.nextField(route: "sessions", last))}".utf8)
                response = Response(status: .ok, body: out)
            } catch {
                response = .error(.serviceUnavailable, "storage_unavailable", "cannot read sessions: \(error)")
            }
            loop.post { connection.respondLater(response) }
        }
        return queued ? nil : .busy("API requests")
    }

    /// `?after=SEQ&limit=N` or `?cursor=NEXT&limit=N` pages (default 100, at most 1000; `next` names the
    /// following page), or `?format=ndjson` for everything after
    /// `after`: streamed as the client reads (`TranscriptExport`), at most 4 at once per client address.
    private func transcript(
        _ raw: String, _ head: HTTPRequestHead, _ connection: Connection, client: String
    ) -> Response? {
        guard let code = SessionCode.normalize(raw), directory.info(code) != nil else {
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        }
        let q = head.query
        guard var after = Int(q["after"] ?? "0"), after >= 0 else {
            return .error(.badRequest, "invalid_field", "\"after\" must be a non-negative integer", field: "after")
        }
        let paging: Paging
        switch Paging.parse(q, route: "transcript", defaultLimit: 100) {
        case .failure(let r): return r
        case .success(let p): paging = p
        }
        if paging.position != nil {
            guard let seq = paging.integer else { return Paging.badCursor }
            after = seq
        }
        let limit = paging.limit
        let ndjson = q["format"] == "ndjson"
        if let f = q["format"], f != "ndjson" && f != "json" {
            return .error(.badRequest, "invalid_field", "\"format\" must be json or ndjson", field: "format")
        }
        // Counted by network for IPv6 (`--ipv6-prefix`), as every per-address limit is.
        let exports = server.exports, limitPerAddress = TranscriptExport.maxPerAddress
        let client = AddressKey.of(client, ipv6Prefix: server.config.ipv6Prefix)
        guard exports.open(client, limit: limitPerAddress) else {
            return .error(
                .tooManyRequests, "too_many_exports",
                "\(limitPerAddress) transcript exports are running from your address; try again when one ends",
                headers: [("Retry-After", "1")])
        }
        let export = TranscriptExport(
            store: store, worker: transcriptReads, lane: client, code: code,
            format: ndjson ? .ndjson : .page(limit: limit), after: after, loop: connection.loop
        ) { exports.close(client) }
        return export.response
    }

    private func end(_ raw: String, _ head: HTTPRequestHead, _ body: [UInt8], _ connection: Connection) -> Response {
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
            if let unknown = BodyFields.unknown(obj, known: ["reason", "host_key"]) { return unknown }
            if let r = obj["reason"], r.kind != .null {
                guard let s = r.string, s.fits(200) else {
                    return .error(
                        .badRequest, "invalid_field", "\"reason\" must be a string of at most 200 characters",
                        field: "reason")
                }
                reason = s
            }
        }
        let owner = server.contexts[SessionCode.owner(of: code, loops: server.contexts.count)]
        store.record(
            ActivityEntry(
                actor: "host (api)", action: "session_ended", target: code, session: code, address: connection.peer,
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
    private func revokeShare(
        _ code: String, _ id: String, _ connection: Connection, actor: String, _ client: String
    ) -> Response? {
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
        let loop = connection.loop, directory = directory, store = store
        store.save(info) { stored in
            if !stored, let latest = directory.info(code) { store.save(latest) }
            let response =
                stored
                ? Response.json(.ok, "{\"id\":\(jsonString(id)),\"revoked\":true}")
                : Response.error(
                    .serviceUnavailable, "storage_unavailable", "revoked here, not stored yet; it is being retried")
            loop.post { connection.respondLater(response) }
        }
        return nil
    }

    /// `PATCH /api/sessions/{code}` with the host key: title, guest_policy, events (role -> names).
    private func patch(_ raw: String, _ head: HTTPRequestHead, _ body: [UInt8], _ connection: Connection) -> Response? {
        guard let code = SessionCode.normalize(raw), var info = directory.info(code) else {
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        }
        guard info.endedAt == nil else { return .error(.conflict, "session_ended", "session \(code) has ended") }
        guard let obj = try? JSONReader.readObject(body, maxDepth: 8) else {
            return .error(.badRequest, "bad_json", "request body must be a JSON object")
        }
        if let unknown = BodyFields.unknown(obj, known: ["title", "guest_policy", "events"]) { return unknown }
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
                        address: connection.peer, details: "\(info.guestPolicy.rawValue) -> \(p.rawValue)"))
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
                    address: connection.peer))
        }
        // Only a live session changes (it may have ended since it was read above), and the answer
        // waits for the commit.
        guard directory.updateIfLive(info) else {
            return .error(.conflict, "session_ended", "session \(code) has ended")
        }
        let owner = server.contexts[SessionCode.owner(of: code, loops: server.contexts.count)]
        let updated = info, loop = connection.loop
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
            loop.post { connection.respondLater(response) }
        }
        return nil
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
    func share(_ code: String, _ body: [UInt8], actor: String, _ client: String) -> Response {
        let obj = body.isEmpty ? nil : try? JSONReader.readObject(body)
        if !body.isEmpty && obj == nil { return .error(.badRequest, "bad_json", "the body must be a JSON object") }
        if let obj, let unknown = BodyFields.unknown(obj, known: ["ttl_s"]) { return unknown }
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
        let secrets = server.config.tokenKeySources.secrets
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
        let verifier = server.config.sessionPolicy.tokens
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
        return Response(status: .created, body: w.bytes)
    }
}
