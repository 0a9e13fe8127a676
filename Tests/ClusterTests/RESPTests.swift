import XCTest

@testable import Cluster

/// The RESP parser and encoder (`RESP.swift`): every reply type, replies split at every byte, hostile
/// input refused with an error (never a trap), the limits.
final class RESPTests: XCTestCase {
    private func parseAll(_ text: String) throws -> [RESPParser.Parsed] {
        try parseAll(Array(text.utf8))
    }

    private func parseAll(_ bytes: [UInt8]) throws -> [RESPParser.Parsed] {
        var p = RESPParser()
        p.append(bytes)
        var out: [RESPParser.Parsed] = []
        while let r = try p.next() { out.append(r) }
        return out
    }

    private func one(_ text: String) throws -> RedisReply {
        let all = try parseAll(text)
        XCTAssertEqual(all.count, 1)
        return all[0].reply
    }

    private func fails(_ text: String, _ says: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parseAll(text), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(says), "\(error)", file: file, line: line)
        }
    }

    func testRESP2Types() throws {
        XCTAssertEqual(try one("+OK\r\n"), .status("OK"))
        XCTAssertEqual(try one("-ERR wrong\r\n"), .error("ERR wrong"))
        XCTAssertEqual(try one(":-42\r\n"), .integer(-42))
        XCTAssertEqual(try one(":9223372036854775807\r\n"), .integer(Int.max))
        XCTAssertEqual(try one("$5\r\nhe\r\no\r\n"), .string(Array("he\r\no".utf8)))
        XCTAssertEqual(try one("$0\r\n\r\n"), .string([]))
        XCTAssertEqual(try one("$-1\r\n"), .null)
        XCTAssertEqual(try one("*-1\r\n"), .null)
        XCTAssertEqual(try one("*0\r\n"), .array([]))
        XCTAssertEqual(
            try one("*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n"),
            .array([.integer(1), .array([.string([97]), .null]), .status("x")]))
    }

    func testRESP3TypesAndPushes() throws {
        XCTAssertEqual(try one("_\r\n"), .null)
        XCTAssertEqual(try one("#t\r\n"), .integer(1))
        XCTAssertEqual(try one(",3.25\r\n"), .string(Array("3.25".utf8)))
        XCTAssertEqual(try one("(12345678901234567890\r\n"), .string(Array("12345678901234567890".utf8)))
        XCTAssertEqual(try one("=7\r\ntxt:abc\r\n"), .string(Array("abc".utf8)))
        XCTAssertEqual(try one("!5\r\nERR x\r\n"), .error("ERR x"))
        XCTAssertEqual(try one("%1\r\n+k\r\n:1\r\n"), .array([.status("k"), .integer(1)]))
        XCTAssertEqual(try one("~2\r\n:1\r\n:2\r\n"), .array([.integer(1), .integer(2)]))
        let push = try parseAll(">3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n:7\r\n")
        XCTAssertEqual(push.count, 2)
        XCTAssertTrue(push[0].push)
        XCTAssertEqual(push[0].reply, .array([.string(Array("smessage".utf8)), .string([99, 104]), .string([104, 105])]))
        XCTAssertFalse(push[1].push)
    }

    /// Whatever way the bytes arrive, the same replies come out, once each.
    func testRepliesSplitAtEveryByte() throws {
        let stream = Array("+OK\r\n*2\r\n$3\r\nabc\r\n*1\r\n:5\r\n$-1\r\n-ERR x\r\n>2\r\n+a\r\n+b\r\n".utf8)
        let whole = try parseAll(stream)
        XCTAssertEqual(whole.count, 5)
        for cut in 0...stream.count {
            for cut2 in cut...stream.count {
                var p = RESPParser()
                var got: [RESPParser.Parsed] = []
                for piece in [stream[0..<cut], stream[cut..<cut2], stream[cut2...]] {
                    p.append(Array(piece))
                    while let r = try p.next() { got.append(r) }
                }
                XCTAssertEqual(got, whole, "cut at \(cut), \(cut2)")
                XCTAssertEqual(p.buffered, 0)
            }
        }
    }

    func testABigBulkArrivingInPiecesIsScannedOnce() throws {
        var p = RESPParser()
        let body = [UInt8](repeating: 120, count: 3 << 20)
        p.append(Array("$\(body.count)\r\n".utf8))
        var at = 0
        while at < body.count {
            XCTAssertNil(try p.next())
            p.append(Array(body[at..<min(at + 65536, body.count)]))
            at += 65536
        }
        XCTAssertNil(try p.next())
        p.append([13, 10])
        XCTAssertEqual(try p.next()?.reply, .string(body))
    }

    func testHostileInputIsAnErrorNeverATrap() {
        fails("?\r\n", "not a RESP reply")
        fails(":12a\r\n", "non-digit")
        fails(":\r\n", "out of range")
        fails(":99999999999999999999\r\n", "out of range")
        fails(":-9223372036854775809\r\n", "out of range")
        fails("$-2\r\n", "bulk length out of range")
        fails("$536870913\r\n", "at most 512 MiB")
        fails("*16777217\r\n", "at most 16 Mi")
        fails(">-1\r\n", "out of range")
        fails("$3\r\nabcd\r\n", "not ended by CRLF")
        fails("+a\rb\r\n", "lone CR")
        fails("#x\r\n", "boolean")
        fails("_x\r\n", "null with a body")
        fails("=2\r\nab\r\n", "verbatim")
        fails(String(repeating: "*1\r\n", count: 40) + ":1\r\n", "nesting deeper than 32")
        fails("+" + String(repeating: "a", count: RESPParser.maxLine + 8), "longer than 1 MiB")
        // A header claiming many items costs nothing until they come.
        var p = RESPParser()
        p.append(Array("*16777216\r\n:1\r\n".utf8))
        XCTAssertNil(try p.next())
        // After a failure the stream stays failed.
        var q = RESPParser()
        q.append(Array("?\r\n+OK\r\n".utf8))
        XCTAssertThrowsError(try q.next())
        XCTAssertThrowsError(try q.next())
    }

    func testTheLimitsThemselvesAreAccepted() throws {
        XCTAssertEqual(try one(String(repeating: "*1\r\n", count: 31) + ":1\r\n").items.count, 1)
        var p = RESPParser()
        p.append(Array("$\(RESPParser.maxBulk)\r\n".utf8))
        XCTAssertNil(try p.next())
    }

    func testCommandsAreEncodedAsBulkArrays() throws {
        let args: [[UInt8]] = [Array("SET".utf8), [0, 13, 10, 255], [], Array(repeating: 97, count: 1234)]
        let encoded = RESPCommand.encode(args)
        XCTAssertEqual(encoded.count, RESPCommand.size(args))
        XCTAssertEqual(Array(encoded.prefix(13)), Array("*4\r\n$3\r\nSET\r\n".utf8))
        XCTAssertEqual(try parseAll(encoded).map(\.reply), [.array(args.map { .string($0) })])
        XCTAssertEqual(RESPCommand.encode([]), Array("*0\r\n".utf8))
        for n in [0, 9, 10, 99, 100, 12345] { XCTAssertEqual(RESPCommand.digits(n), String(n).count) }
    }

    func testRedissURLs() throws {
        let u = try RedisURL("rediss://:pw@redis.internal:6380/1")
        XCTAssertTrue(u.tls)
        XCTAssertEqual(u.description, "rediss://:***@redis.internal:6380/1")
        XCTAssertFalse(try RedisURL("redis://h").tls)
        XCTAssertNil(RedisTLS().problem(with: u))
        XCTAssertNotNil(RedisTLS(caFile: "ca.pem").problem(with: try RedisURL("redis://h")))
        XCTAssertNotNil(RedisTLS(certificate: "c.pem").problem(with: u))
    }
}
