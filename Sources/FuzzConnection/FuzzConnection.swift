import WebSocket

/// libFuzzer entry point for the connection state machine: the input is a script of steps, each
/// either some bytes from the peer, a timer tick some time later, or an application close. Whatever
/// the script, the machine must never crash, never deliver a message after our close or after the
/// connection failed, never act after it asked to close TCP, and hand out only text that is UTF-8.
///
/// Script: a byte `b` starts a step; `b % 4` picks it (0-1: the next `b >> 2` bytes as input, 2: a
/// tick `b >> 2` tenths of a second later, 3: the application closes with 1000/1001/4000).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConnection(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var s = ConnectionMachine.Settings()
    s.maxMessageSize = 4096; s.maxHeadSize = 1024; s.maxBodySize = 1024
    s.handshakeTimeout = 1; s.httpIdleTimeout = 2; s.pingInterval = 1; s.closeTimeout = 1
    var now = 1.0, lastActivity = 1.0
    let machine = ConnectionMachine(settings: s, now: now)
    var pending: [UInt8] = []
    var closed = false, lingering = false
    // The upgrade, so most scripts reach the WebSocket phase (a script may also stay in HTTP).
    let upgrade = Array(
        ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
            + "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: "
            + "permessage-deflate\r\n\r\n").utf8)
    if size > 0 && data[0] & 0x80 != 0 { pending = upgrade }

    func carry(_ a: ConnectionMachine.Action) -> Bool {
        precondition(!closed, "an action after closeNow")
        switch a {
        case .message(let op, let p):
            precondition(!machine.sentClose, "a message delivered after our close")
            if op == .text { precondition(UTF8Validator.isValid(p), "invalid UTF-8 delivered") }
        case .closeNow: closed = true
        case .closeAfterFlush: lingering = true
        case .pong, .send, .failed, .arm: break
        }
        return !closed && !lingering
    }

    func read() {
        while !closed && !lingering && !pending.isEmpty {
            let used: Int = pending.withUnsafeMutableBytes { buf in
                switch machine.phase {
                case .http:
                    let (n, event) = machine.readHTTP(UnsafeRawBufferPointer(buf), now: now) { $0 == "/ws" }
                    switch event {
                    case .upgrade(let head, _):
                        if case .success(let accepted) = Handshake.negotiate(head, options: Handshake.Options()) {
                            machine.accept(
                                deflate: DeflateNegotiation.negotiate(accepted.extensionOffers, mode: .shared), now: now
                            )
                        } else {
                            closed = true
                        }
                    case .fail: closed = true
                    case .request, nil: break
                    }
                    precondition(n <= buf.count)
                    return n
                case .websocket:
                    let n = machine.readWebSocket(buf, now: now) { carry($0) }
                    precondition(n <= buf.count)
                    return n
                }
            }
            if used == 0 { break }
            pending.removeFirst(used)
            lastActivity = now
        }
    }

    var i = 1
    while i < size && !closed {
        let b = data[i]; i += 1
        switch b % 4 {
        case 0, 1:
            let n = min(Int(b >> 2), size - i)
            pending += UnsafeBufferPointer(start: data + i, count: n)
            i += n
            read()
        case 2:
            now += Double(b >> 2) / 10
            switch machine.tick(now: now, lastActivity: lastActivity, queued: 0, lastWrite: lastActivity) {
            case .wait(let t), .ping(let t): precondition(t > 0 && t.isFinite, "a timer that never fires")
            case .close: closed = true
            case .requestTimeout: closed = true
            case .pingTimeout(let actions): for a in actions where !closed { _ = carry(a) }
            }
        default:
            let code: CloseCode = [.normal, .goingAway, .slowConsumer][Int(b >> 2) % 3]
            for a in machine.close(code, reason: "app", now: now) where !closed { _ = carry(a) }
        }
    }
    return 0
}
