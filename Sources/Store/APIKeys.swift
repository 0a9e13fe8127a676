import CSQLite
import Foundation
import Hub
import WebSocket

/// API keys: only a SHA-256 of each secret is stored. Creating and revoking go through a connection of
/// their own (the `collabhub keys` command does the same beside a live hub: SQLite's locking
/// serialises it with the writer), each with its activity entry in the same transaction.
extension SQLiteStore: APIKeyStore {
    public func allKeys() throws -> [APIKeyRecord] {
        try read { db in try Self.listKeys(db) }
    }

    public func createKey(_ spec: APIKeySpec, actor: String) throws -> (APIKeyRecord, String) {
        try Self.createKey(try Self.openDirect(directory), spec, actor: actor)
    }

    public func revokeKey(id: String, actor: String) throws -> Bool {
        try Self.revokeKey(try Self.openDirect(directory), id: id, actor: actor)
    }

    public func usage(window: String) throws -> [String: Int] {
        try read { db in
            let s = try db.prepare("SELECT key_id, count FROM api_key_usage WHERE window=?")
            s.bind(1, window)
            var out: [String: Int] = [:]
            while try s.step() { out[s.string(0) ?? ""] = Int(s.int(1)) }
            return out
        }
    }

    /// Counts one request of an API key in two usage windows (e.g. "h493817", "m24323"); committed with
    /// the next batch.
    public func recordUse(id: String, windows: (String, String)) {
        enqueue(.keyUsage(id, windows.0, windows.1))
    }

    /// The data directory this store lives in.
    public var directory: String { String(path.dropLast("/collabhub.sqlite".count)) }

    // MARK: - The `collabhub keys` command (no running store needed)

    /// Opens the database directly, creating and migrating it if needed.
    static func openDirect(_ directory: String) throws -> Database {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let db = try Database(path: directory + "/collabhub.sqlite")
        try configure(db, durability: .full)
        try migrate(db)
        return db
    }

    public static func createKey(
        directory: String, _ spec: APIKeySpec,
        actor: String = "admin (cli)"
    ) throws -> (APIKeyRecord, String) {
        try createKey(try openDirect(directory), spec, actor: actor)
    }

    public static func revokeKey(directory: String, id: String, actor: String = "admin (cli)") throws -> Bool {
        try revokeKey(try openDirect(directory), id: id, actor: actor)
    }

    public static func listKeys(directory: String) throws -> [APIKeyRecord] {
        try listKeys(try openDirect(directory))
    }

    static func createKey(_ db: Database, _ spec: APIKeySpec, actor: String) throws -> (APIKeyRecord, String) {
        let id = Base64.encodeID(Crypto.randomBytes(6))
        let secret = Base64.encodeID(Crypto.randomBytes(24))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let record = APIKeyRecord(
            id: id, name: spec.name, secretSHA256: Crypto.sha256(Array(secret.utf8)),
            createdAt: now, revokedAt: nil, perMinute: spec.perMinute, perHour: spec.perHour,
            perMonth: spec.perMonth, scopes: spec.scopes, runs: spec.runs, owners: spec.owners)
        try db.exec("BEGIN IMMEDIATE")
        do {
            let s = try db.prepare(
                """
                INSERT INTO api_keys(id, name, secret_sha256, created_at, per_minute, per_hour, per_month, scopes, runs,
                  owners)
                VALUES(?,?,?,?,?,?,?,?,?,?)
                """)
            s.bind(1, id); s.bind(2, spec.name); s.bind(3, blob: record.secretSHA256); s.bind(4, now)
            s.bind(5, spec.perMinute); s.bind(6, spec.perHour); s.bind(7, spec.perMonth)
            s.bind(8, spec.scopes.joined(separator: ",")); s.bind(9, spec.runs?.joined(separator: ","))
            s.bind(10, spec.owners.map(Self.ownersJSON))
            _ = try s.step()
            try logActivity(db, ActivityEntry(actor: actor, action: "api_key_created", target: id, details: spec.name))
            try db.exec("COMMIT")
        } catch {
            try? db.exec("ROLLBACK")
            throw error
        }
        return (record, "chk_\(id)_\(secret)")
    }

    static func revokeKey(_ db: Database, id: String, actor: String) throws -> Bool {
        try db.exec("BEGIN IMMEDIATE")
        do {
            let s = try db.prepare("UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL")
            s.bind(1, Int64(Date().timeIntervalSince1970 * 1000)); s.bind(2, id)
            _ = try s.step()
            let changed = db.changes > 0
            if changed { try logActivity(db, ActivityEntry(actor: actor, action: "api_key_revoked", target: id)) }
            try db.exec("COMMIT")
            return changed
        } catch {
            try? db.exec("ROLLBACK")
            throw error
        }
    }

    static func listKeys(_ db: Database) throws -> [APIKeyRecord] {
        let s = try db.prepare(
            """
            SELECT id, name, secret_sha256, created_at, revoked_at, per_minute, per_hour, per_month, scopes, runs,
              owners
            FROM api_keys ORDER BY created_at
            """)
        var out: [APIKeyRecord] = []
        while try s.step() {
            out.append(
                APIKeyRecord(
                    id: s.string(0) ?? "", name: s.string(1) ?? "", secretSHA256: s.blob(2), createdAt: s.int(3),
                    revokedAt: s.isNull(4) ? nil : s.int(4), perMinute: Int(s.int(5)), perHour: Int(s.int(6)),
                    perMonth: Int(s.int(7)), scopes: (s.string(8) ?? "").split(separator: ",").map(String.init),
                    runs: s.isNull(9) ? nil : (s.string(9) ?? "").split(separator: ",").map(String.init),
                    owners: s.isNull(10) ? nil : ownersList(s.string(10) ?? "")))
        }
        return out
    }

    /// Owners are free text (a comma is allowed in one), so they are stored as a JSON array.
    static func ownersJSON(_ owners: [String]) -> String {
        var w = JSONWriter()
        w.beginArray(); for o in owners { w.element(o) }; w.endArray()
        return String(decoding: w.bytes, as: UTF8.self)
    }

    /// The stored list; a value that does not read as one allows no owner (fails closed).
    static func ownersList(_ json: String) -> [String] {
        ((try? JSONReader.readArray(Array(json.utf8), maxDepth: 2)) ?? []).compactMap(\.string)
    }
}
