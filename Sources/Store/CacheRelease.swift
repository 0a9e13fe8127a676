import CSQLite
import Foundation

/// The writer's page cache, given back when the writer has nothing to do (issue 30: memory per member).
///
/// Every commit leaves the B-tree pages it wrote in the writer's cache (up to 64 MiB: `Schema`), so a
/// hub whose members joined and went quiet kept ~225 bytes of cached pages per join. Those pages are
/// clean once committed (the WAL has them), so after `idleRelease` seconds without work the writer
/// drops them (`sqlite3_db_release_memory`) and hands the freed heap pages back to the system
/// (`malloc_trim`: they live in the writer thread's own malloc arena). Busy writers never pay for it;
/// the first commit after a quiet spell re-reads its few pages from the kernel's page cache. The request
/// queue's storage, grown by a burst (2,000 joins at once left 360 KB of it), goes at the same time.
/// The pages the writer read through its map of the file go too: a mapped page stays in the process's
/// RSS (as file-backed memory) until the map is dropped, ~110 B per join after 19,500 joins. Setting the
/// map's limit to 0 unmaps the file; setting it back maps it again with nothing resident.
/// Durability is untouched: nothing unwritten is ever dropped.
extension SQLiteStore {
    /// Seconds of writer idleness after which the cache is released.
    static let idleRelease = 0.5

    /// Releases the writer's cached pages (writer thread, outside a transaction).
    func releaseCache() {
        cacheHeld = false
        let freed = sqlite3_db_release_memory(writer.db)
        try? writer.exec("PRAGMA mmap_size=0")
        try? writer.exec("PRAGMA mmap_size=\(Self.mmapLimit)")
        if freed == SQLITE_OK { _ = chub_malloc_trim() }
    }
}
