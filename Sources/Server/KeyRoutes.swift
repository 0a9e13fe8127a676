import EventLoop
import Foundation
import Hub
import WebSocket

/// `/api/keys`: API keys made, listed and revoked over HTTP (scope `keys:admin`), off the loop.
extension SessionAPI {
    // MARK: API keys (`keys:admin`)

    /// `POST /api/keys {name, scopes: [...], runs?: [...], owners?: [...], per_minute?, per_hour?, per_month?}`
    /// → 201 with the key, shown this once (stored as its SHA-256).
    func createKey(_ body: [UInt8], _ request: RouteRequest, _ access: Access) -> Reply {
        guard let obj = try? JSONReader.readObject(body, maxDepth: 4) else {
            return .error(.badRequest, "bad_json", "request body must be a JSON object")
        }
        let fields = ["name", "scopes", "runs", "owners", "per_minute", "per_hour", "per_month"]
        if let unknown = BodyFields.unknown(obj, known: fields) { return .now(unknown) }
        guard let name = obj["name"]?.string, !name.isEmpty, name.fits(200) else {
            return .error(.badRequest, "invalid_field", "\"name\" must be a string of 1-200 characters")
        }
        guard let list = obj["scopes"]?.array, !list.isEmpty, list.count <= Scope.allCases.count else {
            return .error(
                .badRequest, "invalid_field",
                "\"scopes\" must be a non-empty array of: \(Scope.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var scopes: Set<Scope> = []
        for item in list {
            guard let raw = item.string, let scope = Scope(rawValue: raw) else {
                return .error(
                    .badRequest, "invalid_field",
                    "unknown scope \(item.string ?? "?") (scopes: "
                        + "\(Scope.allCases.map(\.rawValue).joined(separator: ", ")))"
                )
            }
            scopes.insert(scope)
        }
        var runs: [String]?
        if let r = obj["runs"], r.kind != .null {
            guard let items = r.array, items.count <= 100 else {
                return .error(.badRequest, "invalid_field", "\"runs\" must be an array of at most 100 run ids")
            }
            let ids = items.compactMap(\.string)
            guard ids.count == items.count,
                ids.allSatisfy({ RunBoard.isValidId($0.hasSuffix("*") ? String($0.dropLast()) : $0) })
            else {
                return .error(.badRequest, "invalid_field", "\"runs\" must hold run ids (a trailing * is a prefix)")
            }
            runs = ids
        }
        var owners: [String]?
        if let o = obj["owners"], o.kind != .null {
            guard let items = o.array, items.count <= 100 else {
                return .error(.badRequest, "invalid_field", "\"owners\" must be an array of at most 100 owners")
            }
            let names = items.compactMap(\.string)
            guard names.count == items.count, names.allSatisfy({ !$0.isEmpty && $0.fits(128) }) else {
                return .error(
                    .badRequest, "invalid_field",
                    "\"owners\" must hold run owners of 1-128 characters (a trailing * is a prefix)")
            }
            owners = names
        }
        func limit(_ key: String, _ fallback: Int) -> Int? {
            guard let v = obj[key], v.kind != .null else { return fallback }
            guard let n = v.int, n >= 1, n <= 100_000_000 else { return nil }
            return n
        }
        guard let perMinute = limit("per_minute", APIKeySpec.defaultPerMinute),
            let perHour = limit("per_hour", APIKeySpec.defaultPerHour),
            let perMonth = limit("per_month", APIKeySpec.defaultPerMonth)
        else {
            return .error(
                .badRequest, "invalid_field", "per_minute, per_hour and per_month must be integers from 1 to 100000000")
        }
        // What the maker holds bounds what it grants (N7): the strongest credential presented decides.
        let quotas = [perMinute, perHour, perMonth]
        // Only a credential that may manage keys grants: a second key presented beside it lends nothing.
        let makers = access.principals.filter { Authorization.allows($0, .manageKeys) }
        let refusals = makers.map { p -> (field: String, message: String)? in
            var own: [Int]?
            if case .apiKey(let id, _, _, _) = p, let r = self.keys.record(id) {
                own = [r.perMinute, r.perHour, r.perMonth]
            }
            return Authorization.mayGrant(
                p, scopes: scopes, runs: runs, owners: owners, quotas: quotas, makerQuotas: own)
        }
        if !refusals.contains(where: { $0 == nil }), let first = refusals.compactMap({ $0 }).first {
            return .error(.forbidden, "forbidden", "\"\(first.field)\": \(first.message)")
        }
        let store = store, keys = keys
        let actor = access.keyId.map { "key \($0)" } ?? "admin (api)"
        let spec = APIKeySpec(
            name: name, perMinute: perMinute, perHour: perHour, perMonth: perMonth,
            scopes: Scope.allCases.filter(scopes.contains).map(\.rawValue), runs: runs, owners: owners)
        return request.offLoop(worker) {
            let (record, key) = try store.createKey(spec, actor: actor)
            keys.reloadAndWait()  // usable at once
            var w = JSONWriter()
            w.beginObject(); w.field("id", record.id); w.field("key", key)
            Self.keyFields(&w, record)
            w.endObject()
            return Response(status: .created, body: w.bytes)
        }
    }

    /// `GET /api/keys?limit=&cursor=` (default 1000 a page).
    func listKeys(_ request: RouteRequest) -> Reply {
        let paging: Paging
        switch Paging.parse(request.head.query, route: "keys", defaultLimit: 1000) {
        case .failure(let r): return .now(r)
        case .success(let p): paging = p
        }
        if paging.position != nil && paging.integer == nil { return .now(Paging.badCursor) }
        let store = store
        return request.offLoop(worker) {
            guard let (page, next) = paging.slice(try store.allKeys(), route: "keys") else { return Paging.badCursor }
            var w = JSONWriter()
            w.beginObject(); w.beginArray("keys")
            for k in page {
                w.beginObject(); w.field("id", k.id); Self.keyFields(&w, k); w.endObject()
            }
            w.endArray()
            w.field("next", next)
            w.endObject()
            return Response(status: .ok, body: w.bytes)
        }
    }

    func revokeKey(_ id: String, _ request: RouteRequest, _ access: Access) -> Reply {
        // A keys:admin key revokes only keys it could have made (no stronger key can be cut by a weaker);
        // a key this hub has not read yet (just made by `collabhub keys`) only the admin key revokes.
        let makers = access.principals.filter { Authorization.allows($0, .manageKeys) }
        guard let target = self.keys.record(id) else {
            if makers.contains(.admin) { return revoke(id, request, access) }
            return .error(.notFound, "unknown_key", "no key \(id) known here yet; try again in a few seconds")
        }
        let scopes = Set(target.scopes.compactMap(Scope.init(rawValue:)))
        let quotas = [target.perMinute, target.perHour, target.perMonth]
        let allowed = makers.contains { p in
            var own: [Int]?
            if case .apiKey(let me, _, _, _) = p, let r = self.keys.record(me) {
                own = [r.perMinute, r.perHour, r.perMonth]
            }
            return Authorization.mayGrant(
                p, scopes: scopes, runs: target.runs, owners: target.owners, quotas: quotas, makerQuotas: own)
                == nil
        }
        if !allowed {
            return .error(
                .forbidden, "forbidden",
                "key \(id) holds more than this key may grant: only a stronger key revokes it")
        }
        return revoke(id, request, access)
    }

    private func revoke(_ id: String, _ request: RouteRequest, _ access: Access) -> Reply {
        let store = store, keys = keys
        let actor = access.keyId.map { "key \($0)" } ?? "admin (api)"
        return request.offLoop(worker) {
            let revoked = try store.revokeKey(id: id, actor: actor)
            keys.reloadAndWait()  // refused from now on, not after the next refresh
            return revoked
                ? .json(.ok, "{\"id\":\(jsonString(id)),\"revoked\":true}")
                : .error(.notFound, "unknown_key", "no active key \(id)")
        }
    }

    /// `GET /api/keys/{id}/usage`: requests counted in the current minute, hour and month. An id no key has
    /// is 404 `unknown_key` (after one read of the key table: the key may have been made by `collabhub keys`
    /// since the last); a revoked key still answers its counts.
    func keyUsage(_ id: String, _ request: RouteRequest) -> Reply {
        let shared = keys.shared
        if keys.record(id) != nil {
            guard let shared else { return .now(Self.usage(of: id, keys)) }
            return request.offLoop(worker) { try Self.clusterUsage(of: id, shared) }
        }
        guard APIKeys.isToken(Substring(id)) else { return .now(Self.unknownKey(id)) }
        let later = request.later(), keys = keys
        keys.refreshNow(for: id) {
            guard keys.record(id) != nil else { return later.answer(Self.unknownKey(id)) }
            // On the keys' worker: a blocking read of the cluster's counts is allowed here.
            guard let shared else { return later.answer(Self.usage(of: id, keys)) }
            do { later.answer(try Self.clusterUsage(of: id, shared)) } catch {
                later.answer(.error(.serviceUnavailable, "storage_unavailable", "\(error)"))
            }
        }
        return .later(later)
    }

    /// In a cluster: the counts of every node, as Redis has them (blocking).
    private static func clusterUsage(of id: String, _ shared: SharedAccounting) throws -> Response {
        let c = try shared.keyCounts(id: id, windows: QuotaWindows(Date()))
        return .json(.ok, "{\"id\":\(jsonString(id)),\"minute\":\(c.minute),\"hour\":\(c.hour),\"month\":\(c.month)}")
    }

    private static func usage(of id: String, _ keys: APIKeys) -> Response {
        let u = keys.usage(of: id) ?? APIKeys.Usage()
        return .json(
            .ok,
            "{\"id\":\(jsonString(id)),\"minute\":\(u.minuteCount),\"hour\":\(u.hourCount),\"month\":\(u.monthCount)}")
    }

    private static func unknownKey(_ id: String) -> Response {
        // An id from the wire: shown only when it has the shape of one (bounded, no markup).
        .error(
            .notFound, "unknown_key", APIKeys.isToken(Substring(id)) ? "no key \(id)" : "no key with that id")
    }

    static func keyFields(_ w: inout JSONWriter, _ k: APIKeyRecord) {
        w.field("name", k.name)
        w.beginArray("scopes"); for s in k.scopes { w.element(s) }; w.endArray()
        if let runs = k.runs { w.beginArray("runs"); for r in runs { w.element(r) }; w.endArray() }
        if let owners = k.owners { w.beginArray("owners"); for o in owners { w.element(o) }; w.endArray() }
        w.field("per_minute", k.perMinute); w.field("per_hour", k.perHour); w.field("per_month", k.perMonth)
        w.field("created_at", Int(k.createdAt))
        if let r = k.revokedAt { w.field("revoked_at", Int(r)) }
        w.field("active", k.revokedAt == nil)
    }
}
