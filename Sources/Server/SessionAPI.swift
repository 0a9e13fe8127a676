import EventLoop
import Foundation
import Hub
import WebSocket

/// The JSON API under `/api/` (Protocol/PROTOCOL.md, "HTTP API"). Reads of the store run on a worker
/// thread and answer through `Connection.respondLater`; creating a session answers once its row is
/// committed.
final class SessionAPI {
    unowned let server: Server
    let directory: SessionDirectory
    let store: Storage
    let worker = Worker(name: "api-reads")
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
        guard parts.count >= 2 else { return .error(.notFound, "not_found", "no API route \(head.method) \(head.path)") }
        let code = parts[1] == "sessions" && parts.count >= 3 ? SessionCode.normalize(parts[2]) : nil
        let bodyHostKey = parts.count == 4 && parts[3] == "end" ? (try? JSONReader.readObject(body))?["host_key"]?.string : nil
        let access = server.access(head, session: code, hostKey: bodyHostKey)
        if access.unknownKeyId && !refreshed {
            // A key made by `collabhub keys` since the table was last read: read it again (off the loop),
            // then decide. Never a read on the loop; requests in the meantime share one read.
            let loop = connection.loop
            keys.refreshNow(on: server.wakeups) {
                loop.post { [self] in
                    guard !connection.isClosed else { return }
                    if let r = handle(head, body: body, connection: connection, refreshed: true) { connection.respondLater(r) }
                }
            }
            return nil
        }
        let client = server.clientAddress(head, peer: connection.peer)
        func authorized(_ surface: Surface, _ route: () -> Response?) -> Response? {
            if let refusal = access.check(surface) {
                // Failures (401) and refusals by scope (403) are logged once per address and minute each,
                // the rest of the minute's summed up: a flood cannot fill the log.
                if refusal.status.code == 401 && access.presented {
                    server.authFailures.record(client, what: "\(head.method) \(head.path): \(surface.describe)", store: store)
                } else if access.presented && access.failure == nil {
                    server.accessRefusals.record(client, what: "\(access.keyId.map { "key \($0): " } ?? "")\(head.method) \(head.path): \(surface.describe)", store: store)
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
        case ("GET", 2, "keys"): return authorized(.manageKeys) { listKeys(connection) }
        case ("DELETE", 3, "keys"): return authorized(.manageKeys) { revokeKey(parts[2], connection, access) }
        case ("GET", 4, "keys") where parts[3] == "usage":
            // A key may read its own usage; keys:admin reads any.
            if access.keyId == parts[2] { return keyUsage(parts[2]) }
            return authorized(.manageKeys) { keyUsage(parts[2]) }
        case (_, _, "keys"): return .error(.notFound, "not_found", "no API route \(head.method) \(head.path)")
        case (_, 2, "activity"): return .error(.methodNotAllowed, "method_not_allowed", "\(head.method) is not allowed on \(head.path)")
        case ("POST", 2, "sessions"): return authorized(.createSession) { create(body, connection) }
        case ("GET", 2, "sessions"): return authorized(.listSessions) { list(connection) }
        case (_, 3...4, "sessions") where code == nil: return .error(.notFound, "unknown_session", "no session with code \(parts[2])")
        case ("GET", 3, "sessions"): return authorized(.describeSession(code!)) { describe(parts[2]) }
        case ("PATCH", 3, "sessions"): return authorized(.changeSession(code!)) { patch(parts[2], head, body, connection) }
        case ("GET", 4, "sessions") where parts[3] == "transcript":
            return authorized(.readTranscript(code!)) {
                store.record(ActivityEntry(actor: access.keyId.map { "key \($0)" } ?? "api", action: "transcript_read", target: code!,
                                           session: code!, address: client, details: head.query["format"]))
                return transcript(parts[2], head, connection)
            }
        case ("POST", 4, "sessions") where parts[3] == "end": return authorized(.endSession(code!)) { end(parts[2], head, body, connection) }
        case (_, 2...4, "sessions"):
            return .error(.methodNotAllowed, "method_not_allowed", "\(head.method) is not allowed on \(head.path)")
        default:
            return .error(.notFound, "not_found", "no API route \(head.method) \(head.path)")
        }
    }

    private func create(_ body: [UInt8], _ connection: Connection) -> Response? {
        var title = "Untitled session", maxParticipants = server.config.maxParticipants, guestPolicy = server.config.defaultGuestPolicy
        var eventPolicy: [String: [String]] = [:]
        if !body.isEmpty {
            let obj: JSONObject
            do { obj = try JSONReader.readObject(body, maxDepth: 8) } catch {
                return .error(.badRequest, "bad_json", "request body must be a JSON object: \(error)")
            }
            if let t = obj["title"], t.kind != .null {
                guard let s = t.string, s.fits(200) else { return .error(.badRequest, "invalid_field", "\"title\" must be a string of at most 200 characters") }
                title = s
            }
            if let m = obj["max_participants"], m.kind != .null {
                guard let n = m.int, n >= 1, n <= 10_000 else { return .error(.badRequest, "invalid_field", "\"max_participants\" must be an integer from 1 to 10000") }
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
                    return .error(.badRequest, "invalid_field", "\"events\" must map roles (host, editor, viewer) to arrays of event names (a trailing * matches a prefix)")
                }
                eventPolicy = policy
            }
        }
        var info = directory.create(title: title, maxParticipants: maxParticipants, guestPolicy: guestPolicy,
                                    now: Int64(Date().timeIntervalSince1970 * 1000))
        if !eventPolicy.isEmpty { info.eventPolicy = eventPolicy; directory.update(info) }
        store.record(ActivityEntry(actor: "api", action: "session_created", target: info.code, session: info.code,
                                   address: connection.peer, details: info.title))
        let loop = connection.loop, directory = directory
        // 201 only once the session's row is committed; a failed commit forgets the session (503).
        store.save(info) { stored in
            guard stored else {
                directory.forget(info.code)
                let response = Response.error(.serviceUnavailable, "storage_unavailable", "the session could not be stored; retry")
                return loop.post { connection.respondLater(response) }
            }
            var w = JSONWriter()
            w.beginObject()
            w.field("code", info.code); w.field("title", info.title); w.field("max_participants", info.maxParticipants)
            w.field("guest_policy", info.guestPolicy.rawValue); w.field("host_key", info.hostKey)
            w.field("url", "/ws?session=\(info.code)")
            w.endObject()
            let response = Response(status: .created, body: w.bytes, headers: [("Location", "/api/sessions/\(info.code)")])
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

    private func list(_ connection: Connection) -> Response? {
        let loop = connection.loop
        worker.submit { [self] in
            let response: Response
            do {
                let rows = try store.sessions()
                var out: [UInt8] = Array("{\"sessions\":[".utf8)
                for (i, row) in rows.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    out += sessionJSON(directory.info(row.0.code) ?? row.0, events: row.events)
                }
                out += Array("]}".utf8)
                response = Response(status: .ok, body: out)
            } catch {
                response = .error(.serviceUnavailable, "storage_unavailable", "cannot read sessions: \(error)")
            }
            loop.post { connection.respondLater(response) }
        }
        return nil
    }

    /// `?after=SEQ&limit=N` pages (default 100, at most 1000), or `?format=ndjson` for everything.
    private func transcript(_ raw: String, _ head: HTTPRequestHead, _ connection: Connection) -> Response? {
        guard let code = SessionCode.normalize(raw), directory.info(code) != nil else {
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        }
        let q = head.query
        guard let after = Int(q["after"] ?? "0"), after >= 0 else { return .error(.badRequest, "invalid_field", "\"after\" must be a non-negative integer") }
        guard let limit = Int(q["limit"] ?? "100"), limit >= 1, limit <= 1000 else {
            return .error(.badRequest, "invalid_field", "\"limit\" must be an integer from 1 to 1000")
        }
        let ndjson = q["format"] == "ndjson"
        if let f = q["format"], f != "ndjson" && f != "json" { return .error(.badRequest, "invalid_field", "\"format\" must be json or ndjson") }
        let loop = connection.loop
        worker.submit { [self] in
            var response: Response
            do {
                if ndjson {
                    var out: [UInt8] = []
                    var cursor = after
                    while true {
                        let page = try store.events(session: code, after: cursor, limit: 1000)
                        for e in page { out += e.json; out.append(0x0A) }
                        guard let last = page.last, page.count == 1000 else { break }
                        cursor = last.seq
                    }
                    response = Response(status: .ok, body: out, contentType: "application/x-ndjson")
                    response.headers = [("Content-Disposition", "attachment; filename=\"\(code).ndjson\"")]
                } else {
                    let page = try store.events(session: code, after: after, limit: limit + 1)
                    let more = page.count > limit
                    let events = page.prefix(limit)
                    var out: [UInt8] = Array("{\"session\":\"\(code)\",\"events\":[".utf8)
                    for (i, e) in events.enumerated() { if i > 0 { out.append(UInt8(ascii: ",")) }; out += e.json }
                    out += Array("],\"next_after\":\(events.last?.seq ?? after),\"has_more\":\(more)}".utf8)
                    response = Response(status: .ok, body: out)
                }
            } catch {
                response = .error(.serviceUnavailable, "storage_unavailable", "cannot read the transcript: \(error)")
            }
            loop.post { connection.respondLater(response) }
        }
        return nil
    }

    // MARK: API keys (`keys:admin`)

    /// `POST /api/keys {name, scopes: [...], runs?: [...], per_minute?, per_hour?, per_month?}` → 201 with the
    /// key, shown this once (stored as its SHA-256).
    private func createKey(_ body: [UInt8], _ connection: Connection, _ access: Access) -> Response? {
        guard let obj = try? JSONReader.readObject(body, maxDepth: 4) else { return .error(.badRequest, "bad_json", "request body must be a JSON object") }
        guard let name = obj["name"]?.string, !name.isEmpty, name.fits(200) else {
            return .error(.badRequest, "invalid_field", "\"name\" must be a string of 1-200 characters")
        }
        guard let list = obj["scopes"]?.array, !list.isEmpty, list.count <= Scope.allCases.count else {
            return .error(.badRequest, "invalid_field", "\"scopes\" must be a non-empty array of: \(Scope.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var scopes: Set<Scope> = []
        for item in list {
            guard let raw = item.string, let scope = Scope(rawValue: raw) else {
                return .error(.badRequest, "invalid_field", "unknown scope \(item.string ?? "?") (scopes: \(Scope.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            scopes.insert(scope)
        }
        var runs: [String]?
        if let r = obj["runs"], r.kind != .null {
            guard let items = r.array, items.count <= 100 else { return .error(.badRequest, "invalid_field", "\"runs\" must be an array of at most 100 run ids") }
            let ids = items.compactMap(\.string)
            guard ids.count == items.count, ids.allSatisfy({ RunHub.isValidId($0.hasSuffix("*") ? String($0.dropLast()) : $0) }) else {
                return .error(.badRequest, "invalid_field", "\"runs\" must hold run ids (a trailing * is a prefix)")
            }
            runs = ids
        }
        func limit(_ key: String, _ fallback: Int) -> Int? {
            guard let v = obj[key], v.kind != .null else { return fallback }
            guard let n = v.int, n >= 1, n <= 100_000_000 else { return nil }
            return n
        }
        guard let perMinute = limit("per_minute", 60), let perHour = limit("per_hour", 1000), let perMonth = limit("per_month", 10_000) else {
            return .error(.badRequest, "invalid_field", "per_minute, per_hour and per_month must be integers from 1 to 100000000")
        }
        let store = store, keys = keys
        let actor = access.keyId.map { "key \($0)" } ?? "admin (api)"
        let spec = APIKeySpec(name: name, perMinute: perMinute, perHour: perHour, perMonth: perMonth,
                              scopes: Scope.allCases.filter(scopes.contains).map(\.rawValue), runs: runs)
        return offLoop(connection) {
            let (record, key) = try store.createKey(spec, actor: actor)
            keys.reload()   // usable at once
            var w = JSONWriter()
            w.beginObject(); w.field("id", record.id); w.field("key", key)
            Self.keyFields(&w, record)
            w.endObject()
            return Response(status: .created, body: w.bytes)
        }
    }

    /// Runs `work` (the key table, opened directly) on the API worker and answers with what it returns,
    /// or 503 naming the store's error.
    private func offLoop(_ connection: Connection, _ work: @escaping () throws -> Response) -> Response? {
        let loop = connection.loop
        worker.submit {
            let response: Response
            do { response = try work() } catch {
                response = .error(.serviceUnavailable, "storage_unavailable", "\(error)")
            }
            loop.post { connection.respondLater(response) }
        }
        return nil
    }

    private func listKeys(_ connection: Connection) -> Response? {
        let store = store
        return offLoop(connection) {
            var w = JSONWriter()
            w.beginObject(); w.beginArray("keys")
            for k in try store.allKeys() {
                w.beginObject(); w.field("id", k.id); Self.keyFields(&w, k); w.endObject()
            }
            w.endArray(); w.endObject()
            return Response(status: .ok, body: w.bytes)
        }
    }

    private func revokeKey(_ id: String, _ connection: Connection, _ access: Access) -> Response? {
        let store = store, keys = keys
        let actor = access.keyId.map { "key \($0)" } ?? "admin (api)"
        return offLoop(connection) {
            let revoked = try store.revokeKey(id: id, actor: actor)
            keys.reload()   // refused from now on, not after the next refresh
            return revoked ? .json(.ok, "{\"id\":\(jsonString(id)),\"revoked\":true}") : .error(.notFound, "unknown_key", "no active key \(id)")
        }
    }

    /// `GET /api/keys/{id}/usage`: requests counted in the current minute, hour and month, and the limits.
    private func keyUsage(_ id: String) -> Response {
        guard let u = keys.usage(of: id) else { return .json(.ok, "{\"id\":\(jsonString(id)),\"minute\":0,\"hour\":0,\"month\":0}") }
        return .json(.ok, "{\"id\":\(jsonString(id)),\"minute\":\(u.minuteCount),\"hour\":\(u.hourCount),\"month\":\(u.monthCount)}")
    }

    private static func keyFields(_ w: inout JSONWriter, _ k: APIKeyRecord) {
        w.field("name", k.name)
        w.beginArray("scopes"); for s in k.scopes { w.element(s) }; w.endArray()
        if let runs = k.runs { w.beginArray("runs"); for r in runs { w.element(r) }; w.endArray() }
        w.field("per_minute", k.perMinute); w.field("per_hour", k.perHour); w.field("per_month", k.perMonth)
        w.field("created_at", Int(k.createdAt))
        if let r = k.revokedAt { w.field("revoked_at", Int(r)) }
        w.field("active", k.revokedAt == nil)
    }

    // MARK: Runs (owned by loop 0)

    private func runs(_ head: HTTPRequestHead, _ parts: [String], _ body: [UInt8], _ connection: Connection, _ access: Access = Access()) -> Response? {
        let loop0 = server.contexts[0]
        switch (head.method, parts.count) {
        case ("POST", 4) where parts[3] == "events":
            let runId = parts[2]
            guard RunHub.isValidId(runId) else { return .error(.badRequest, "invalid_field", "run ids are 1-128 characters of A-Za-z0-9._-") }
            // Authorized in `handle`: the admin key, or a key with runs:publish for this run.
            let limitHeaders = access.headers
            let obj: JSONObject
            do { obj = try JSONReader.readObject(body, maxDepth: 8) } catch {
                return .error(.badRequest, "bad_json", "request body must be a JSON object: \(error)")
            }
            var events: [RunEvent]
            do { events = try RunAPI.events(from: obj) } catch let e as MessageError {
                return .error(.badRequest, e.code, e.message + (e.field.map { " (field \($0))" } ?? ""))
            } catch { return .error(.badRequest, "bad_request", "\(error)") }
            // A `started` event that attaches the run to a session needs a credential that may change
            // that session too (else any publisher could write into any session's transcript).
            for e in events {
                if let code = e.session.flatMap(SessionCode.normalize), !access.allows(.changeSession(code)),
                   !server.isHostKey(head.header("X-Host-Key"), of: code) {
                    return .error(.forbidden, "forbidden", "attaching run \(runId) to session \(code) needs its host key or scope sessions:write")
                }
            }
            if events.count == 1, events[0].id == nil, let key = head.header("Idempotency-Key") { events[0].id = String(key.prefix(128)) }
            let loop = connection.loop
            loop0.loop.post {
                guard let runs = loop0.runs else { return }
                runs.publish(runId, events) { result in
                    let response: Response
                    switch result {
                    case .success(let seqs):
                        let list = seqs.map { "{\"seq\":\($0.seq)\($0.duplicate ? ",\"duplicate\":true" : "")}" }.joined(separator: ",")
                        let single = seqs.count == 1 ? "\"seq\":\(seqs[0].seq)," : ""
                        response = .json(.accepted, "{\"run\":\(jsonString(runId)),\(single)\"events\":[\(list)]}", headers: limitHeaders)
                    case .failure(let r):
                        response = .error(r.status, r.code, r.message, headers: limitHeaders)
                    }
                    loop.post { connection.respondLater(response) }
                }
            }
            return nil
        case ("GET", 3):
            let runId = parts[2]
            let loop = connection.loop
            let store = self.store
            loop0.loop.post {
                let run = loop0.runs?.committed[runId]
                self.worker.submit {
                    let response: Response
                    if let run {
                        var out = Array("{\"run\":".utf8) + run.stateJSON + Array(",\"events\":[".utf8)
                        let events = (try? store.events(session: "run:" + runId, after: 0, limit: 10_000)) ?? []
                        for (i, e) in events.enumerated() { if i > 0 { out.append(UInt8(ascii: ",")) }; out += e.json }
                        out += Array("]}".utf8)
                        response = Response(status: .ok, body: out)
                    } else {
                        response = .error(.notFound, "unknown_run", "no run \(runId)")
                    }
                    loop.post { connection.respondLater(response) }
                }
            }
            return nil
        case ("GET", 2):
            let q = head.query
            let limit = Int(q["limit"] ?? "50") ?? 50
            let offset = Int(q["offset"] ?? "0") ?? 0
            guard limit >= 1, limit <= 500, offset >= 0 else { return .error(.badRequest, "invalid_field", "limit must be 1-500 and offset non-negative") }
            let status = q["status"].flatMap(RunStatus.init(rawValue:))
            if q["status"] != nil && status == nil {
                return .error(.badRequest, "invalid_field", "status must be pending, running, paused, succeeded, failed or cancelled")
            }
            let loop = connection.loop
            loop0.loop.post {
                let all = loop0.runs?.list(owner: q["owner"], status: status) ?? []
                let page = all.dropFirst(offset).prefix(limit)
                var out = Array("{\"runs\":[".utf8)
                for (i, r) in page.enumerated() { if i > 0 { out.append(UInt8(ascii: ",")) }; out += r.summaryJSON }
                out += Array("],\"total\":\(all.count),\"next_offset\":\(offset + page.count < all.count ? String(offset + page.count) : "null")}".utf8)
                let response = Response(status: .ok, body: out)
                loop.post { connection.respondLater(response) }
            }
            return nil
        default:
            return .error(.notFound, "not_found", "no API route \(head.method) \(head.path)")
        }
    }

    private func end(_ raw: String, _ head: HTTPRequestHead, _ body: [UInt8], _ connection: Connection) -> Response {
        guard let code = SessionCode.normalize(raw), let info = directory.info(code) else {
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        }
        guard info.endedAt == nil else { return .error(.conflict, "session_ended", "session \(code) has already ended") }
        let reason = (try? JSONReader.readObject(body))?["reason"]?.string ?? "ended by host"
        let owner = server.contexts[SessionCode.owner(of: code, loops: server.contexts.count)]
        store.record(ActivityEntry(actor: "host (api)", action: "session_ended", target: code, session: code, address: connection.peer, details: reason))
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

    /// `PATCH /api/sessions/{code}` with the host key: title, guest_policy, events (role -> names).
    private func patch(_ raw: String, _ head: HTTPRequestHead, _ body: [UInt8], _ connection: Connection) -> Response? {
        guard let code = SessionCode.normalize(raw), var info = directory.info(code) else {
            return .error(.notFound, "unknown_session", "no session with code \(raw)")
        }
        guard info.endedAt == nil else { return .error(.conflict, "session_ended", "session \(code) has ended") }
        guard let obj = try? JSONReader.readObject(body, maxDepth: 8) else { return .error(.badRequest, "bad_json", "request body must be a JSON object") }
        var changes: [String] = []
        if let t = obj["title"], t.kind != .null {
            guard let s = t.string, s.fits(200) else { return .error(.badRequest, "invalid_field", "\"title\" must be a string of at most 200 characters") }
            info.title = s; changes.append("title")
        }
        if let g = obj["guest_policy"], g.kind != .null {
            guard let p = g.string.flatMap(GuestPolicy.init(rawValue:)) else {
                return .error(.badRequest, "invalid_field", "\"guest_policy\" must be \"allow\" or \"deny\"")
            }
            if p != info.guestPolicy {
                store.record(ActivityEntry(actor: "host (api)", action: "guest_policy_changed", target: code, session: code,
                                           address: connection.peer, details: "\(info.guestPolicy.rawValue) -> \(p.rawValue)"))
            }
            info.guestPolicy = p; changes.append("guest_policy")
        }
        if let e = obj["events"], e.kind != .null {
            guard let policy = Self.eventPolicy(e) else { return .error(.badRequest, "invalid_field", "\"events\" must map roles to arrays of event names") }
            info.eventPolicy = policy; changes.append("events")
            store.record(ActivityEntry(actor: "host (api)", action: "event_policy_changed", target: code, session: code, address: connection.peer))
        }
        // Only a live session changes (it may have ended since it was read above), and the answer
        // waits for the commit.
        guard directory.updateIfLive(info) else { return .error(.conflict, "session_ended", "session \(code) has ended") }
        let owner = server.contexts[SessionCode.owner(of: code, loops: server.contexts.count)]
        let updated = info, loop = connection.loop
        owner.loop.post { owner.hub?.updateInfo(updated) }
        let body = sessionJSON(info)
        let directory = directory, store = store
        store.save(info) { stored in
            // Not stored: the change holds in memory and its row (the latest, which may say ended by
            // now) is queued again until it is.
            if !stored, let latest = directory.info(code) { store.save(latest) }
            let response = stored ? Response(status: .ok, body: body)
                : Response.error(.serviceUnavailable, "storage_unavailable", "the change is in effect but not stored yet; it is being retried")
            loop.post { connection.respondLater(response) }
        }
        return nil
    }

    /// `GET /api/activity?session=&actor=&since=&before=&limit=`: newest first, paged by `before` (an id).
    private func activity(_ head: HTTPRequestHead, _ connection: Connection) -> Response? {
        let q = head.query
        guard let limit = Int(q["limit"] ?? "100"), limit >= 1, limit <= 1000 else { return .error(.badRequest, "invalid_field", "limit must be 1-1000") }
        let since = q["since"].flatMap { Int64($0) }, before = q["before"].flatMap { Int($0) }
        if q["since"] != nil && since == nil { return .error(.badRequest, "invalid_field", "since must be a time in milliseconds") }
        let session = q["session"].flatMap(SessionCode.normalize) ?? q["session"]
        let loop = connection.loop
        worker.submit { [self] in
            let response: Response
            do {
                let rows = try store.activity(ActivityQuery(session: session, actor: q["actor"], since: since,
                                                            before: before, limit: limit))
                var w = JSONWriter()
                w.beginObject()
                w.beginArray("activity")
                for r in rows {
                    w.beginObject()
                    w.field("id", r.id ?? 0); w.field("ts", Int(r.ts)); w.field("actor", r.actor); w.field("action", r.action)
                    if let t = r.target { w.field("target", t) }
                    if let s = r.session { w.field("session", s) }
                    if let a = r.address { w.field("address", a) }
                    if let d = r.details { w.field("details", d) }
                    w.endObject()
                }
                w.endArray()
                if rows.count == limit, let last = rows.last?.id { w.field("next_before", last) }
                w.endObject()
                response = Response(status: .ok, body: w.bytes)
            } catch {
                response = .error(.serviceUnavailable, "storage_unavailable", "cannot read the activity log: \(error)")
            }
            loop.post { connection.respondLater(response) }
        }
        return nil
    }
}
