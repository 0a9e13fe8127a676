import XCTest
@testable import Hub
import WebSocket

/// The resume window's one buffer per window: frames come back byte for byte through evictions, the
/// buffer's compaction, redactions and a deflated (packed) spell.
final class ResumeWindowTests: XCTestCase {
    private func frame(_ seq: Int, pad: Int = 0) -> Chunk {
        Chunk.text(Array("{\"seq\":\(seq),\"pad\":\"\(String(repeating: "x", count: pad))\"}".utf8))
    }

    private func payloads(_ chunks: [Chunk]) -> [String] {
        chunks.map { c in
            guard let (_, p) = c.framePayload else { return "?" }
            return String(decoding: p, as: UTF8.self)
        }
    }

    func testFramesSurviveEvictionsAndCompaction() {
        var w = ResumeWindow(maxCount: 50, maxBytes: 1 << 20)
        for s in 1...2000 { w.append((s, frame(s, pad: s % 300))) }
        XCTAssertEqual(w.count, 50)
        XCTAssertEqual(w.firstSeq, 1951)
        XCTAssertEqual(w.lastSeq, 2000)
        let missed = w.missing(after: 1990, through: 2000)!
        XCTAssertEqual(payloads(missed), payloads((1991...2000).map { frame($0, pad: $0 % 300) }))
        XCTAssertEqual(w.bytes, (1951...2000).reduce(0) { $0 + frame($1, pad: $1 % 300).count })
        XCTAssertNil(w.missing(after: 1949, through: 2000))
    }

    func testRedactionReplacesOneFrameInPlace() {
        var w = ResumeWindow(maxCount: 10, maxBytes: 1 << 20)
        for s in 1...10 { w.append((s, frame(s, pad: 20))) }
        w.replace(seq: 4, with: frame(4))
        w.replace(seq: 7, with: frame(7, pad: 200))
        let all = w.missing(after: 0, through: 10)!
        var expected = (1...10).map { frame($0, pad: 20) }
        expected[3] = frame(4)
        expected[6] = frame(7, pad: 200)
        XCTAssertEqual(payloads(all), payloads(expected))
        // Later appends and evictions keep the offsets right.
        for s in 11...15 { w.append((s, frame(s))) }
        XCTAssertEqual(payloads(w.missing(after: 5, through: 15)!), payloads(Array(expected[5...]) + (11...15).map { frame($0) }))
    }

    func testAPackedWindowReadsAndGrowsAsBefore() {
        var w = ResumeWindow(maxCount: 100, maxBytes: 1 << 20)
        for s in 1...30 { w.append((s, frame(s, pad: 40))) }
        let deflater = Deflater(windowBits: 15, noContextTakeover: true, memLevel: 2)!
        // Packed only after `looks` quiet looks.
        for _ in 0..<5 { XCTAssertEqual(w.packIfIdle(deflater, looks: 5), 0) }
        XCTAssertGreaterThan(w.packIfIdle(deflater, looks: 5), 0)
        XCTAssertGreaterThan(w.packedBytes, 0)
        XCTAssertLessThan(w.packedBytes, w.bytes / 2)
        // Read while packed: the same frames, and it stays packed.
        XCTAssertEqual(payloads(w.missing(after: 10, through: 30)!), payloads((11...30).map { frame($0, pad: 40) }))
        XCTAssertEqual(w.first?.seq, 1)
        XCTAssertGreaterThan(w.packedBytes, 0)
        // The next event unpacks it.
        w.append((31, frame(31)))
        XCTAssertEqual(w.packedBytes, 0)
        XCTAssertEqual(payloads(w.missing(after: 28, through: 31)!), payloads([frame(29, pad: 40), frame(30, pad: 40), frame(31)]))
        // A window past the size limit is not packed.
        var big = ResumeWindow(maxCount: 1000, maxBytes: 1 << 22)
        for s in 1...200 { big.append((s, frame(s, pad: 1000))) }
        for _ in 0..<10 { XCTAssertEqual(big.packIfIdle(deflater, looks: 1, limit: 64 * 1024), 0) }
        XCTAssertEqual(big.packedBytes, 0)
    }

    func testDroppingEverythingGivesTheBufferBack() {
        var w = ResumeWindow(maxCount: 10, maxBytes: 1 << 20)
        for s in 1...5 { w.append((s, frame(s))) }
        w.dropThrough(5)
        XCTAssertEqual(w.count, 0)
        XCTAssertEqual(w.bytes, 0)
        XCTAssertNil(w.firstSeq)
        w.append((6, frame(6)))
        XCTAssertEqual(payloads(w.missing(after: 5, through: 6)!), payloads([frame(6)]))
    }
}
