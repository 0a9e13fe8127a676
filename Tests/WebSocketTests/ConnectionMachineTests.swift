import WebSocket
import XCTest

/// An in-memory connection: the machine plus what an adapter does with its actions (no socket). The
/// app echoes every message back, like `/echo`.
final class Wire {
    let machine: ConnectionMachine
    var now = 100.0
    /// Bytes "written" to the client.
    var out: [UInt8] = []
    var messages: [(Opcode, [UInt8])] = []
    var requests: [HTTPRequestHead] = []
    var failedWith: [CloseCode] = []
    var lingering: Double?
    var armed: Double?
    var closed = false
    var echo = true
    private var pending: [UInt8] = []

    init(_ settings: ConnectionMachine.Settings = ConnectionMachine.Settings()) {
        machine = ConnectionMachine(settings: settings, now: now)
    }

    func carry(_ a: ConnectionMachine.Action) -> Bool {
        switch a {
        case .message(let op, let p):
            messages.append((op, Array(p)))
            if echo { out += FrameEncoder.frame(op, Array(p)) }
        case .pong(let p): out += FrameEncoder.frame(.pong, Array(p))
        case .send(let bytes): out += bytes
        case .closeAfterFlush(let linger): lingering = linger
        case .closeNow: closed = true
        case .failed(let code): failedWith.append(code)
        case .arm(let seconds): armed = seconds
        }
        return !closed && lingering == nil
    }

    /// Feeds bytes as a socket would (what is not used is offered again with the next bytes).
    func feed(_ bytes: [UInt8]) {
        pending += bytes
        while !closed && lingering == nil && !pending.isEmpty {
            let used: Int = pending.withUnsafeMutableBytes { buf in
                switch machine.phase {
                case .http:
                    let (n, event) = machine.readHTTP(UnsafeRawBufferPointer(buf), now: now) { $0 == "/echo" }
                    switch event {
                    case .request(let head, _): requests.append(head); out += Array("HTTP/1.1 200 OK\r\n\r\n".utf8)
                    case .upgrade(let head, _):
                        switch Handshake.negotiate(head, options: Handshake.Options()) {
                        case .success(let accepted):
                            let deflate = DeflateNegotiation.negotiate(accepted.extensionOffers, mode: .shared)
                            out += Handshake.response(accepted, extensionResponse: deflate?.responseHeader)
                            machine.accept(deflate: deflate, now: now)
                        case .failure(let r):
                            out += Array("HTTP/1.1 \(r.status.code) \(r.message)\r\n\r\n".utf8); closed = true
                        }
                    case .fail(let status, _): out += Array("HTTP/1.1 \(status.code)\r\n\r\n".utf8); closed = true
                    case nil: break
                    }
                    return n
                case .websocket:
                    return machine.readWebSocket(buf, now: now) { carry($0) }
                }
            }
            if used == 0 { break }
            pending.removeFirst(min(used, pending.count))
        }
    }

    func tick(lastActivity: Double? = nil, queued: Int = 0, lastWrite: Double = 0) -> ConnectionMachine.TickResult {
        machine.tick(now: now, lastActivity: lastActivity ?? now, queued: queued, lastWrite: lastWrite)
    }

    func close(_ code: CloseCode, _ reason: String = "") { for a in machine.close(code, reason: reason, now: now) { _ = carry(a) } }

    /// What the client reads back: the frames after the HTTP response head.
    func serverFrames() -> [(Opcode, [UInt8])] {
        var bytes = out
        if let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) { bytes.removeFirst(end.upperBound) }
        var reader = MessageReader(role: .client, maxMessageSize: 1 << 24)
        var frames: [(Opcode, [UInt8])] = []
        _ = bytes.withUnsafeMutableBytes { buf in
            reader.read(buf) { e in
                switch e {
                case .message(let op, let p, _): frames.append((op, Array(p)))
                case .ping(let p): frames.append((.ping, Array(p)))
                case .pong(let p): frames.append((.pong, Array(p)))
                case .close(let code, let reason):
                    frames.append((.close, code.map { [UInt8($0.rawValue >> 8), UInt8($0.rawValue & 0xFF)] + Array(reason) } ?? []))
                }
                return true
            }
        }
        return frames
    }
}

let upgradeRequest = Array("""
    GET /echo HTTP/1.1\r
    Host: x\r
    Upgrade: websocket\r
    Connection: Upgrade\r
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r
    Sec-WebSocket-Version: 13\r
    \r

    """.utf8)

final class ConnectionMachineTests: XCTestCase {
    func upgraded(_ settings: ConnectionMachine.Settings = ConnectionMachine.Settings()) -> Wire {
        let w = Wire(settings)
        w.feed(upgradeRequest)
        XCTAssertEqual(w.machine.phase, .websocket)
        XCTAssertTrue(String(decoding: w.out, as: UTF8.self).hasPrefix("HTTP/1.1 101"))
        return w
    }

    /// The NIO `EmbeddedChannel` equivalent: upgrade, messages both ways, the close handshake, no socket.
    func testEndToEndInMemory() {
        let w = upgraded()
        w.feed(clientFrame(0x1, Array("hello".utf8)) + clientFrame(0x2, [1, 2, 3]))
        // Byte by byte, as a slow network would deliver it.
        for b in clientFrame(0x1, Array("slow".utf8)) { w.feed([b]) }
        w.feed(clientFrame(0x8, [0x03, 0xE8] + Array("bye".utf8)))
        let frames = w.serverFrames()
        XCTAssertEqual(frames.map(\.0), [.text, .binary, .text, .close])
        XCTAssertEqual(frames[0].1, Array("hello".utf8))
        XCTAssertEqual(frames[3].1, [0x03, 0xE8] + Array("bye".utf8), "the peer's code and reason echoed (§5.5.1)")
        XCTAssertNotNil(w.lingering, "TCP closes once the echo is written")
    }

    func testACloseWithoutACodeIsAnsweredWith1000() {
        let w = upgraded()
        w.feed(clientFrame(0x8, []))
        XCTAssertEqual(w.serverFrames().last?.1, [0x03, 0xE8])
    }

    func testOurCloseThenTheirsClosesAtOnceAndDataAfterOurCloseIsDiscarded() {
        let w = upgraded()
        w.close(.goingAway, "shutting down")
        XCTAssertTrue(w.machine.sentClose)
        w.feed(clientFrame(0x1, Array("late".utf8)) + clientFrame(0x9, [7]))
        XCTAssertTrue(w.messages.isEmpty, "data after our close is discarded (§1.4)")
        XCTAssertEqual(w.serverFrames().map(\.0), [.close], "no pong after our close either")
        w.feed(clientFrame(0x8, [0x03, 0xE9]))
        XCTAssertTrue(w.closed)
    }

    func testAnUnansweredCloseTimesOut() {
        var s = ConnectionMachine.Settings(); s.closeTimeout = 5
        let w = upgraded(s)
        w.close(.normal)
        XCTAssertEqual(w.armed, 5, "the close timeout starts with our close")
        w.now += 4
        XCTAssertEqual(w.tick(lastActivity: 100), .wait(1))
        w.now += 1
        XCTAssertEqual(w.tick(lastActivity: 100), .close)
    }

    func testEveryPingIsAnswered() {
        let w = upgraded()
        w.feed(clientFrame(0x9, [1, 2]))
        XCTAssertEqual(w.serverFrames().last.map { [$0.0.rawValue] + $0.1 }, [Opcode.pong.rawValue, 1, 2])
        // RFC 6455 5.5.2: a ping MUST be answered, however many come (the held-out case 2.12 sends 126):
        // the machine never refuses one; the adapter keeps at most the latest pong for a peer not reading.
        let flood = (0..<1200).flatMap { i in clientFrame(0x9, [UInt8(i & 0xff)]) }
        w.feed(flood)
        XCTAssertEqual(w.failedWith, [])
        XCTAssertEqual(w.serverFrames().filter { $0.0 == .pong }.count, 1201)
    }

    func testAWebSocketPeerThatWritesButNeverReadsIsCutAfterTheHandshakeTimeout() {
        var s = ConnectionMachine.Settings(); s.handshakeTimeout = 3; s.pingInterval = 30
        let w = upgraded(s)
        // Its pings keep it active; output queued since 100 with no byte written: cut at 103, not at 130.
        XCTAssertEqual(w.tick(lastActivity: w.now, queued: 70_000, lastWrite: 100), .wait(3))
        w.now += 2.5
        XCTAssertEqual(w.tick(lastActivity: w.now, queued: 70_000, lastWrite: 100), .wait(0.5))
        w.now += 0.5
        XCTAssertEqual(w.tick(lastActivity: w.now, queued: 70_000, lastWrite: 100), .close)
        // Progress resets it; nothing queued is no stall at all.
        XCTAssertEqual(w.tick(lastActivity: w.now, queued: 70_000, lastWrite: w.now - 1), .wait(2))
        XCTAssertEqual(w.tick(lastActivity: w.now, queued: 0, lastWrite: 0), .wait(30))
    }

    func testKeepAlivePingsAndTheirDeadline() {
        var s = ConnectionMachine.Settings(); s.pingInterval = 30
        let w = upgraded(s)
        XCTAssertEqual(w.tick(lastActivity: 100), .wait(30))
        w.now = 130
        XCTAssertEqual(w.tick(lastActivity: 100), .ping(next: 30))
        w.now = 150
        XCTAssertEqual(w.tick(lastActivity: 100), .wait(10), "the pong is awaited")
        w.now = 160
        guard case .pingTimeout(let actions) = w.tick(lastActivity: 100) else { return XCTFail("no timeout") }
        for a in actions { _ = w.carry(a) }
        XCTAssertEqual(w.failedWith, [.goingAway])
        XCTAssertTrue(w.machine.timedOut)
        // A pong (any activity) in time clears the deadline.
        let v = upgraded(s)
        v.now = 130
        XCTAssertEqual(v.tick(lastActivity: 100), .ping(next: 30))
        v.feed(clientFrame(0xA, []))
        v.now = 140
        XCTAssertEqual(v.tick(lastActivity: 135), .wait(25))
    }

    /// The ping clock and the close clock share a word: a close sent while a ping is unanswered is timed
    /// from the close, and a pong that comes after our close does not clear it.
    func testAClosedWhilePingingIsTimedFromTheClose() {
        var s = ConnectionMachine.Settings(); s.pingInterval = 30; s.closeTimeout = 5
        let w = upgraded(s)
        w.now = 130
        XCTAssertEqual(w.tick(lastActivity: 100), .ping(next: 30))
        w.now = 140
        w.close(.normal)
        XCTAssertEqual(w.armed, 5)
        w.now = 141
        w.feed(clientFrame(0xA, []))
        w.now = 144
        XCTAssertEqual(w.tick(lastActivity: 141), .wait(1))
        w.now = 146
        XCTAssertEqual(w.tick(lastActivity: 141), .close)
        XCTAssertFalse(w.machine.timedOut)
    }

    func testCompressedMessagesAreInflatedAndChecked() {
        let w = Wire()
        var req = upgradeRequest
        req.removeLast(2)
        req += Array("Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n".utf8)
        w.feed(req)
        XCTAssertEqual(w.machine.phase, .websocket)
        let deflater = Deflater(windowBits: 15, noContextTakeover: true)!
        let compressed = Array("compressed hello".utf8).withUnsafeBytes { deflater.deflate($0) }
        w.feed(clientFrame(0x1, compressed, rsv: 4))
        XCTAssertEqual(w.messages.first.map { String(decoding: $0.1, as: UTF8.self) }, "compressed hello")
        let bad = [UInt8]([0xC3, 0x28]).withUnsafeBytes { deflater.deflate($0) }
        w.feed(clientFrame(0x1, bad, rsv: 4))
        XCTAssertEqual(w.failedWith, [.invalidPayload], "invalid UTF-8 once inflated")
    }

    func testACompressedFrameWithoutNegotiationIsAProtocolError() {
        let w = upgraded()
        w.feed(clientFrame(0x1, [1, 2, 3], rsv: 4))
        XCTAssertEqual(w.failedWith, [.protocolError])
    }

    func testAMessageInflatingPastTheLimitIs1009() {
        var s = ConnectionMachine.Settings(); s.maxMessageSize = 1000
        let w = Wire(s)
        var req = upgradeRequest
        req.removeLast(2)
        req += Array("Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n".utf8)
        w.feed(req)
        let bomb = [UInt8](repeating: 0x61, count: 100_000).withUnsafeBytes {
            Deflater(windowBits: 15, noContextTakeover: true)!.deflate($0)
        }
        w.feed(clientFrame(0x1, bomb, rsv: 4))
        XCTAssertEqual(w.failedWith, [.messageTooBig])
    }

    // MARK: HTTP

    func testRequestsAreReadOneAtATimeWithTheirBodies() {
        let w = Wire()
        w.feed(Array("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        XCTAssertEqual(w.requests.map(\.path), ["/a", "/b"])
        XCTAssertEqual(w.machine.requestsServed, 2)
    }

    func testAnAwaitedResponseHoldsTheNextRequest() {
        let w = Wire()
        w.machine.awaitResponse()
        w.feed(Array("GET /a HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        XCTAssertTrue(w.requests.isEmpty)
        w.machine.responded()
        w.feed([])
        XCTAssertEqual(w.requests.map(\.path), ["/a"])
    }

    func testBadFramingIsRefused() {
        for (request, status) in [("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
                                  ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
                                  ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
                                  ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413)] {
            let w = Wire()
            w.feed(Array(request.utf8))
            XCTAssertTrue(String(decoding: w.out, as: UTF8.self).hasPrefix("HTTP/1.1 \(status)"), request)
            XCTAssertTrue(w.closed)
        }
    }

    func testAPlainGETOnAWebSocketPathGoesToTheHandshake() {
        let w = Wire()
        w.feed(Array("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        XCTAssertTrue(w.requests.isEmpty)
        XCTAssertTrue(String(decoding: w.out, as: UTF8.self).hasPrefix("HTTP/1.1 4"), "refused by the handshake")
    }

    func testSlowlorisIdleAndStalledClients() {
        var s = ConnectionMachine.Settings(); s.handshakeTimeout = 10; s.httpIdleTimeout = 30
        // A request that dribbles in: its deadline runs from its first byte.
        let w = Wire(s)
        w.feed(Array("GET / HT".utf8))
        w.now += 9
        XCTAssertEqual(w.tick(), .wait(1))
        w.now += 1
        XCTAssertEqual(w.tick(), .requestTimeout("request not completed within 10 s"))
        // Keep-alive: idle after a request for the idle timeout.
        let k = Wire(s)
        k.feed(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        k.now += 30
        XCTAssertEqual(k.tick(lastActivity: 100), .close)
        // Answers the client does not read: gone after the handshake timeout without progress.
        let p = Wire(s)
        p.feed(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        p.now += 10
        XCTAssertEqual(p.tick(lastActivity: 100, queued: 1 << 20), .close)
        // A response awaited from a worker is waited for.
        let a = Wire(s)
        a.feed(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        a.machine.awaitResponse()
        a.now += 25
        XCTAssertEqual(a.tick(lastActivity: 100), .wait(30))
        // A long answer read slowly (a streamed export): idle counts from its last write, so neither its
        // last bytes nor the next request are cut off at the idle timeout of the request.
        let e = Wire(s)
        e.feed(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        e.now += 60
        XCTAssertEqual(
            e.machine.tick(now: e.now, lastActivity: 100, queued: 4096, lastWrite: e.now - 1), .wait(9),
            "still writing: the stall rule applies, not the idle one")
        XCTAssertEqual(e.machine.tick(now: e.now, lastActivity: 100, queued: 0, lastWrite: e.now - 1), .wait(29))
        XCTAssertEqual(e.machine.tick(now: e.now, lastActivity: 100, queued: 0, lastWrite: e.now - 30), .close)
    }
}
