import CSQLite

/// Process-wide SQLite settings, applied once before the first connection opens (a Swift global is
/// initialised once, on first use, whatever thread gets there first).
enum SQLiteConfig {
    /// Allocation statistics off (`chub_sqlite_memstatus_off`): the writer allocates and frees for every
    /// statement step, and each call took a global mutex for counters nobody reads.
    static let applied: Void = { _ = chub_sqlite_memstatus_off() }()
}
