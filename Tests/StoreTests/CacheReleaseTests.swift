@testable import Hub
@testable import Store
import TestSupport
import XCTest

/// The writer's idle release (`CacheRelease.swift`) gives back the pages it read through its map of the
/// database file, not only its page cache.
final class CacheReleaseTests: XCTestCase {
    /// Resident kilobytes of this process's mappings of `path` (`/proc/self/smaps`).
    func mappedKiB(_ path: String) throws -> Int {
        // Read to the end (a /proc file's size is 0, so a read by size gets nothing).
        guard let f = fopen("/proc/self/smaps", "r") else { throw POSIXError(.ENOENT) }
        defer { fclose(f) }
        var bytes: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let smaps = String(decoding: bytes, as: UTF8.self)
        var inFile = false, total = 0
        for line in smaps.split(separator: "\n") {
            if let first = line.first, first.isHexDigit, line.contains("-") {
                inFile = line.hasSuffix(" " + path)
            } else if inFile, line.hasPrefix("Rss:") {
                total += Int(line.split(separator: " ")[1]) ?? 0
            }
        }
        return total
    }

    /// A store of 10,000 events over 2,000 sessions, closed and opened again (the writer then maps the whole
    /// file), and 10,000 more appends to the same sessions: each session's first append after the start
    /// looks up its last seq and recent ids (read-only cursors, which SQLite serves through the map), so
    /// hundreds of KB of the file are resident while the writer works, and (nearly) none once it has been
    /// idle past `idleRelease`. Every event is still there.
    func testAnIdleWriterUnmapsTheFilesPages() throws {
        let dir = NSTemporaryDirectory() + "chub-\(UUID().uuidString)"
        let file = dir + "/collabhub.sqlite"
        let sessions = 2_000, perBurst = 10_000
        var store: SQLiteStore?
        for burst in 0..<2 {
            store?.close()
            let s = try SQLiteStore(directory: dir, checkpointPages: 16)
            store = s
            let ex = ManualExecutor()
            var done = 0
            for i in 0..<perBurst {
                let body = Array(#""text":"message \#(i) of a burst""#.utf8)
                s.append(
                    DurableEvent(
                        session: "S\(i % sessions)", type: "chat", member: "m", clientId: "c\(burst)-\(i)", body: body),
                    executor: ex
                ) { if case .success = $0 { done += 1 } }
                if i % 500 == 499 { ex.runAll() }
            }
            let deadline = Date().addingTimeInterval(60)
            while done < perBurst && Date() < deadline { ex.runAll(); usleep(1000) }
            XCTAssertEqual(done, perBurst)
        }
        let busy = try mappedKiB(file)
        usleep(UInt32((SQLiteStore.idleRelease + 1.0) * 1_000_000))
        let idle = try mappedKiB(file)
        print("mapped pages of the database file: \(busy) KiB after the burst, \(idle) KiB once idle")
        XCTAssertGreaterThan(busy, 512, "the burst read its pages through the map (else this test shows nothing)")
        XCTAssertLessThanOrEqual(idle, 128, "the idle writer still holds \(idle) KiB of the file mapped")
        XCTAssertEqual(try store?.events(session: "S7", after: 0, limit: 20).count, 2 * perBurst / sessions)
        store?.close()
    }
}
