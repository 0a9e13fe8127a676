import EventLoop
import WebSocket
#if canImport(Glibc)
    import Glibc
#endif

/// A WebSocket client connection for the load generator, on the project's own loop and codec in client
/// mode: it sends the opening handshake, checks the 101 and the accept key, then hands each message to
/// `onMessage`. Outgoing frames are masked (RFC 6455 §5.3) with keys from a fast PRNG seeded by OpenSSL.
class WSClient: Socket {
    enum State { case handshaking, open, closed }
    private(set) var state = State.handshaking
    private var reader = MessageReader(role: .client, maxMessageSize: 64 << 20)
    private var expectedAccept = ""
    var onOpen: ((WSClient) -> Void)?
    var onMessage: ((WSClient, Opcode, UnsafeRawBufferPointer) -> Void)?
    var onClose: ((WSClient, UInt16?) -> Void)?
    var closeCode: UInt16?
    static var rng = Xorshift(seed: Crypto.randomBytes(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } | 1)

    func handshake(host: String, path: String, subprotocol: String? = nil) {
        let key = Base64.encode(Crypto.randomBytes(16))
        expectedAccept = Handshake.acceptKey(for: key)
        var request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        if let subprotocol { request += "Sec-WebSocket-Protocol: \(subprotocol)\r\n" }
        request += "\r\n"
        send(Array(request.utf8))
    }

    override func received(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        var used = 0
        if state == .handshaking {
            let parser = ResponseHeadScanner()
            guard let end = parser.headEnd(UnsafeRawBufferPointer(bytes)) else { return 0 }
            let head = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<end]), as: UTF8.self)
            guard head.hasPrefix("HTTP/1.1 101"), head.contains(expectedAccept) else {
                state = .closed
                closeCode = nil
                close()
                return bytes.count
            }
            state = .open
            used = end
            onOpen?(self)
        }
        let outcome = reader.read(UnsafeMutableRawBufferPointer(rebasing: bytes[used...])) { event in
            switch event {
            case .message(let op, let payload, _): onMessage?(self, op, payload)
            case .ping(let payload): sendFrame(.pong, payload)
            case .pong: break
            case .close(let code, _):
                closeCode = code?.rawValue ?? 1005
                if !closeSent { sendFrame(.close, UnsafeRawBufferPointer(start: nil, count: 0)) }
                closeAfterFlush()
            }
            return !isClosed
        }
        switch outcome {
        case .consumed(let n): return used + n
        case .failed:
            close()
            return bytes.count
        }
    }

    /// Frames, masks and queues one message.
    @inline(__always)
    func sendFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        let key = UInt32(truncatingIfNeeded: WSClient.rng.next())
        let h = FrameEncoder.headerLength(payload: payload.count, masked: true)
        let p = reserve(h + payload.count)
        _ = FrameEncoder.writeHeader(p, opcode: opcode, length: payload.count, maskKey: key)
        if payload.count > 0 {
            (p + h).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
            applyMask(p + h, count: payload.count, key: key, offset: 0)
        }
    }

    func sendText(_ s: String) {
        var s = s
        s.withUTF8 { sendFrame(.text, UnsafeRawBufferPointer($0)) }
    }

    private var closeSent = false

    /// Starts the closing handshake (code 1000); `onClose` runs when the peer has answered and closed.
    func closeHandshake() {
        guard state == .open, !closeSent else { return }
        closeSent = true
        withUnsafeBytes(of: UInt16(1000).bigEndian) { sendFrame(.close, $0) }
    }

    override func didClose() {
        state = .closed
        onClose?(self, closeCode)
    }
}

/// Finds the end of an HTTP response head.
struct ResponseHeadScanner {
    func headEnd(_ b: UnsafeRawBufferPointer) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 3..<b.count where b[i] == 0x0A && b[i - 1] == 0x0D && b[i - 2] == 0x0A && b[i - 3] == 0x0D {
            return i + 1
        }
        return nil
    }
}

/// xorshift64*: mask keys and jitter for the load generator (not for anything secret).
struct Xorshift {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E3779B97F4A7C15 : seed }
    @inline(__always) mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 2685821657736338717
    }
}
