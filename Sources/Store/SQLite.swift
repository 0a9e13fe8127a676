import CSQLite

/// A thin wrapper over one SQLite connection: prepared statements, typed binds, clear errors.
/// A connection is used by one thread at a time.
public final class Database {
    let db: OpaquePointer
    public let path: String

    public struct Error: Swift.Error, CustomStringConvertible {
        public let code: Int32
        public let message: String
        public var description: String { "SQLite error \(code): \(message)" }
    }

    public init(path: String, readOnly: Bool = false) throws {
        SQLiteConfig.applied
        var handle: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let handle { sqlite3_close(handle) }
            throw Error(code: rc, message: "cannot open \(path): \(message)")
        }
        db = handle
        self.path = path
        sqlite3_busy_timeout(db, 5000)
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        sqlite3_close_v2(db)
    }

    public func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(err)
            throw Error(code: rc, message: message)
        }
    }

    /// `persistent`: a statement kept for the connection's life (the writer's); one-shot reads say no.
    public func prepare(_ sql: String, persistent: Bool = false) throws -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw Error(code: rc, message: String(cString: sqlite3_errmsg(db))) }
        return Statement(stmt, db: db)
    }

    /// Rows changed by the last statement.
    public var changes: Int { Int(sqlite3_changes(db)) }

    func error(_ rc: Int32) -> Error { Error(code: rc, message: String(cString: sqlite3_errmsg(db))) }

    /// The integer value of a one-row, one-column query (PRAGMAs, COUNT).
    public func scalar(_ sql: String) throws -> Int64 {
        let s = try prepare(sql)
        guard try s.step() else { return 0 }
        return s.int(0)
    }
}

/// A prepared statement: bind, step, read columns, reset.
public final class Statement {
    let stmt: OpaquePointer
    let db: OpaquePointer
    init(_ stmt: OpaquePointer, db: OpaquePointer) { self.stmt = stmt; self.db = db }
    deinit { sqlite3_finalize(stmt) }

    public func bind(_ i: Int32, _ v: Int64) { sqlite3_bind_int64(stmt, i, v) }
    public func bind(_ i: Int32, _ v: Int) { sqlite3_bind_int64(stmt, i, Int64(v)) }
    public func bind(_ i: Int32, _ v: String?) {
        guard let v else { sqlite3_bind_null(stmt, i); return }
        sqlite3_bind_text(stmt, i, v, -1, chub_sqlite_transient())
    }
    public func bind(_ i: Int32, blob: [UInt8]) {
        _ = blob.withUnsafeBytes {
            sqlite3_bind_blob(stmt, i, $0.baseAddress, Int32($0.count), chub_sqlite_transient())
        }
    }

    /// Binds bytes that stay valid until the statement is reset (SQLite does not copy them): for use
    /// inside the scope that keeps them alive, with `reset()` before that scope ends.
    public func bindUnowned(_ i: Int32, text p: UnsafeBufferPointer<UInt8>) {
        guard let base = p.baseAddress, p.count > 0 else {
            sqlite3_bind_text(stmt, i, "", 0, chub_sqlite_transient()); return
        }
        _ = base.withMemoryRebound(to: CChar.self, capacity: p.count) {
            sqlite3_bind_text(stmt, i, $0, Int32(p.count), nil)
        }
    }
    public func bindUnowned(_ i: Int32, blob p: UnsafeRawBufferPointer) {
        guard let base = p.baseAddress, p.count > 0 else { sqlite3_bind_zeroblob(stmt, i, 0); return }
        sqlite3_bind_blob(stmt, i, base, Int32(p.count), nil)
    }

    /// Steps once: true when a row is available, false when done.
    public func step() throws -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw Database.Error(code: rc, message: String(cString: sqlite3_errmsg(db)))
    }

    public func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    public func int(_ col: Int32) -> Int64 { sqlite3_column_int64(stmt, col) }
    public func isNull(_ col: Int32) -> Bool { sqlite3_column_type(stmt, col) == SQLITE_NULL }
    public func string(_ col: Int32) -> String? {
        guard let p = sqlite3_column_text(stmt, col) else { return nil }
        return String(cString: p)
    }
    public func blob(_ col: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, col))
        guard n > 0, let p = sqlite3_column_blob(stmt, col) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}
