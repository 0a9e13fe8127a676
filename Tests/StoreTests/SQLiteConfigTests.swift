import CSQLite
@testable import Hub
@testable import Store
import TestSupport
import XCTest

/// Process-wide SQLite settings (`SQLiteConfig`).
final class SQLiteConfigTests: XCTestCase {
    /// Allocation statistics are off once a connection is open: SQLite counts no memory in use while the
    /// writer stores an event (with them on, every allocation updated the counter under a global mutex).
    func testAllocationStatisticsAreOff() throws {
        let store = try SQLiteStore(directory: NSTemporaryDirectory() + "chub-\(UUID().uuidString)")
        let ex = ManualExecutor()
        var done = false
        store.append(
            DurableEvent(session: "S", type: "chat", member: "m", clientId: "a", body: Array(#""text":"x""#.utf8)),
            executor: ex
        ) { _ in done = true }
        let deadline = Date().addingTimeInterval(10)
        while !done && Date() < deadline { ex.runAll(); usleep(1000) }
        XCTAssertTrue(done)
        XCTAssertEqual(sqlite3_memory_used(), 0, "SQLite keeps no allocation statistics")
        store.close()
    }
}
