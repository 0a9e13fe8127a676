/// The protocol life of one server connection, without I/O: an HTTP/1.1 request loop (RFC 9112) that
/// may upgrade to WebSocket (RFC 6455), with permessage-deflate (RFC 7692). It is given bytes and the
/// time, and says what to do; the socket adapter (`Connection` in Server) only carries it out. Every
/// rule of the RFCs that depends on the connection's state lives here:
///
/// - requests: one head at a time, a body by `Content-Length` (one value, digits only; chunked bodies
///   refused), a slowloris deadline from a request's first byte, an idle deadline between requests;
/// - the close handshake: the peer's code is echoed (§5.5.1), our close is answered within
///   `closeTimeout` or the connection is dropped, data after our close is discarded (§1.4), and a
///   failed connection gets its close code and then TCP close (§7.1.7);
/// - pings: one after `pingInterval` of silence, the connection fails if its pong does not come
///   within another interval; the peer's pings are answered (pongs flow while the peer reads), at most
///   20 a second (burst 100), and a flood is closed with 1008;
/// - compressed messages are inflated under the size limit and their text checked for UTF-8.
///
/// Events come out through `emit` closures during `readHTTP`/`readWebSocket` (no allocation per
/// message); timer decisions come back from `tick`.
public final class ConnectionMachine {
    public struct Settings: Sendable {
        public var maxHeadSize = 16 * 1024
        public var maxBodySize = 1 << 20
        public var maxMessageSize = 1 << 20
        public var handshakeTimeout = 10.0
        public var httpIdleTimeout = 30.0
        public var pingInterval = 30.0
        public var closeTimeout = 5.0
        public init() {}
    }

    public enum Phase: Sendable { case http, websocket }

    /// What a read in the HTTP phase found.
    public enum HTTPEvent {
        /// A complete request with its body.
        case request(HTTPRequestHead, body: [UInt8])
        /// A request that asks for (or may be) an upgrade; `length` is its head's size. The adapter
        /// routes it: `accept` it, hand it elsewhere, or answer it with a refusal.
        case upgrade(HTTPRequestHead, length: Int)
        /// The request is bad: answer with this status and close.
        case fail(HTTPStatus, String)
    }

    /// What a read in the WebSocket phase asks of the adapter.
    public enum Action {
        /// A complete text or binary message (inflated, and for text UTF-8 checked). Valid during the call.
        case message(Opcode, UnsafeRawBufferPointer)
        /// Answer this ping with a pong carrying the payload (valid during the call).
        case pong(UnsafeRawBufferPointer)
        /// Queue this frame (a close frame) for the peer.
        case send([UInt8])
        /// Close TCP once everything queued is written, waiting at most `linger` seconds for the peer.
        case closeAfterFlush(linger: Double)
        /// Close TCP now.
        case closeNow
        /// The connection failed with this close code (counted by the adapter; the close frame and the
        /// TCP close come as the following actions).
        case failed(CloseCode)
        /// Look at the connection again in this many seconds (`tick`): our close awaits its answer.
        case arm(Double)
    }

    /// What the timer asks for.
    public enum TickResult: Equatable {
        /// Look again in this many seconds.
        case wait(Double)
        /// Send a ping now, look again in this many seconds.
        case ping(next: Double)
        /// Answer the HTTP request that did not arrive in time with 408, then close.
        case requestTimeout(String)
        /// Close TCP now (idle, stalled, or our close went unanswered).
        case close
        /// The peer stopped answering pings: fail with 1001 (these actions), no reconnect grace.
        case pingTimeout([Action])

        public static func == (a: TickResult, b: TickResult) -> Bool {
            switch (a, b) {
            case (.wait(let x), .wait(let y)), (.ping(let x), .ping(let y)): return x == y
            case (.requestTimeout(let x), .requestTimeout(let y)): return x == y
            case (.close, .close), (.pingTimeout, .pingTimeout): return true
            default: return false
            }
        }
    }

    /// Settings shared by every connection of a server: one object, not a copy in each connection.
    public final class SharedSettings: Sendable {
        public let value: Settings
        public init(_ value: Settings) { self.value = value }
    }

    private let shared: SharedSettings
    public var settings: Settings { shared.value }

    /// The HTTP phase's state, given up at the upgrade (a WebSocket connection does not carry it).
    private final class HTTPState {
        var headParser: HTTPHeadParser
        /// The request whose body is still arriving.
        var bodyHead: HTTPRequestHead?
        var bodyLength = 0
        /// Part of a request head has arrived (so the request deadline, not the idle one, applies).
        var partialRequest = false
        var requestStartedAt = 0.0
        let openedAt: Double
        init(maxHeadSize: Int, now: Double) {
            headParser = HTTPHeadParser(maxHeadSize: maxHeadSize)
            openedAt = now
        }
    }
    /// The HTTP phase's state before the upgrade, the decompressor after it: one slot (never both at once),
    /// so the machine is 104 bytes, a 112-byte block, in every connection.
    private enum PhaseState {
        case none
        case http(HTTPState)
        case inflater(Inflater)
    }
    private var state = PhaseState.none
    private var http: HTTPState? {
        if case .http(let h) = state { return h } else { return nil }
    }
    /// Requests read so far (32 bits: it shares a word with the one- to three-byte fields that follow).
    public var requestsServed: Int { Int(served) }
    private var served: UInt32 = 0
    public private(set) var phase = Phase.http
    /// A response is being prepared elsewhere: no further request is read until it is answered, and
    /// the connection waits for it however long (`responded` ends this).
    public private(set) var awaitingResponse = false

    // WebSocket phase
    /// Our close frame is queued (the closing handshake is under way).
    public private(set) var sentClose = false
    /// The peer's close frame arrived.
    public private(set) var receivedClose = false
    /// The connection failed because the peer stopped answering pings.
    public private(set) var timedOut = false
    /// The peer's permessage-deflate parameters (nil: not negotiated).
    private var clientWindow: (bits: UInt8, noContextTakeover: Bool)?
    /// The peer closed first, with this code (1005: its close frame had none).
    public private(set) var peerCloseCode: UInt16?
    private var reader: MessageReader
    /// The decompressor, made for the first compressed message (a client that never compresses costs none).
    private var inflater: Inflater? {
        if case .inflater(let i) = state { return i } else { return nil }
    }
    /// When our close frame was queued (once `sentClose`), else when the unanswered ping was sent (NaN:
    /// none): the two clocks are never needed at once, so they share a word (every member has one).
    private var sentAt = Double.nan
    private var closeSentAt: Double {
        get { sentAt }
        set { sentAt = newValue }
    }
    private var pingSentAt: Double? {
        get { sentClose || sentAt.isNaN ? nil : sentAt }
        set { if !sentClose { sentAt = newValue ?? .nan } }
    }

    public convenience init(settings: Settings, now: Double) {
        self.init(shared: SharedSettings(settings), now: now)
    }

    public init(shared: SharedSettings, now: Double) {
        self.shared = shared
        state = .http(HTTPState(maxHeadSize: shared.value.maxHeadSize, now: now))
        reader = MessageReader(role: .server, maxMessageSize: shared.value.maxMessageSize)
    }

    // MARK: - HTTP

    /// Reads at most one request from `bytes`. Returns the bytes used (0: more are needed, or a
    /// response is awaited) and what was found. `isUpgradePath` names paths whose every request goes
    /// to the upgrade (a plain GET there is refused by the handshake, not served as a page).
    public func readHTTP(
        _ bytes: UnsafeRawBufferPointer, now: Double,
        isUpgradePath: (String) -> Bool = { _ in false }
    ) -> (used: Int, event: HTTPEvent?) {
        guard !awaitingResponse, let http else { return (0, nil) }
        if !http.partialRequest && http.bodyHead == nil { http.requestStartedAt = now }
        if let head = http.bodyHead {
            let bodyLength = http.bodyLength
            guard bytes.count >= bodyLength else { return (0, nil) }
            http.bodyHead = nil
            return (bodyLength, .request(head, body: Array(UnsafeRawBufferPointer(rebasing: bytes[..<bodyLength]))))
        }
        switch http.headParser.parse(bytes) {
        case .needMore:
            http.partialRequest = true
            return (0, nil)
        case .failure(let status, let message):
            return (bytes.count, .fail(status, message))
        case .complete(let head, let length):
            http.headParser.reset()
            http.partialRequest = false
            if served < .max { served += 1 }
            if Handshake.isUpgradeRequest(head) || isUpgradePath(head.path) {
                return (length, .upgrade(head, length: length))
            }
            if head.header("Transfer-Encoding") != nil {
                return (
                    bytes.count, .fail(.lengthRequired, "chunked request bodies are not supported; send Content-Length")
                )
            }
            // Content-Length: digits only, and one value however often it is repeated (RFC 9110 §8.6):
            // two framings of one request are how requests are smuggled past a proxy.
            let lengths = Set(head.headers.filter { $0.name.lowercased() == "content-length" }.map(\.value))
            let value = lengths.first ?? "0"
            guard lengths.count <= 1, !value.isEmpty, value.utf8.count <= 18,
                value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(value)
            else {
                return (bytes.count, .fail(.badRequest, "invalid Content-Length"))
            }
            guard n <= settings.maxBodySize else {
                return (bytes.count, .fail(.payloadTooLarge, "request body over \(settings.maxBodySize) bytes"))
            }
            if n == 0 { return (length, .request(head, body: [])) }
            http.bodyHead = head
            http.bodyLength = n
            // The body may be here already.
            let rest = UnsafeRawBufferPointer(rebasing: bytes[length...])
            guard rest.count >= n else { return (length, nil) }
            http.bodyHead = nil
            return (length + n, .request(head, body: Array(UnsafeRawBufferPointer(rebasing: rest[..<n]))))
        }
    }

    /// A request is being answered later: stop reading requests until `responded`.
    public func awaitResponse() { awaitingResponse = true }
    public func responded() { awaitingResponse = false }

    /// The upgrade was accepted: from here on the connection speaks WebSocket.
    public func accept(deflate: DeflateParameters?, now: Double) {
        phase = .websocket
        state = .none  // the HTTP phase's state goes; no inflater exists before the upgrade
        if let deflate {
            clientWindow = (UInt8(deflate.clientMaxWindowBits), deflate.clientNoContextTakeover)
            reader.compressionNegotiated = true
        }
    }

    // MARK: - WebSocket

    /// Reads frames from `bytes`, calling `emit` for each action; `emit` returns false when the
    /// connection stopped taking input (it is closing). Returns the bytes used.
    public func readWebSocket(
        _ bytes: UnsafeMutableRawBufferPointer, now: Double,
        _ emit: (Action) -> Bool
    ) -> Int {
        let outcome = reader.read(bytes) { event in
            switch event {
            case .message(let opcode, let payload, let compressed):
                if sentClose { return true }  // RFC 6455 §1.4: data after our close is discarded
                if !compressed { return emit(.message(opcode, payload)) }
                guard let inflater = inflater ?? makeInflater() else {
                    return failing(.protocolError, "compressed message without permessage-deflate", now, emit)
                }
                switch inflater.inflate(payload, limit: settings.maxMessageSize) {
                case .tooBig:
                    return failing(
                        .messageTooBig, "message inflates beyond \(settings.maxMessageSize) bytes", now, emit)
                case .corrupt:
                    return failing(.invalidPayload, "invalid compressed data", now, emit)
                case .ok(let inflated):
                    if opcode == .text && !inflated.withUnsafeBytes({ UTF8Validator.isValid($0) }) {
                        return failing(.invalidPayload, "invalid UTF-8 in text message", now, emit)
                    }
                    return inflated.withUnsafeBytes { emit(.message(opcode, $0)) }
                }
            case .ping(let payload):
                if sentClose { return true }
                return answerPing(payload, now: now, emit)
            case .pong:
                pingSentAt = nil
                return true
            case .close(let code, let reason):
                receivedClose = true
                if sentClose { _ = emit(.closeNow); return false }  // our close was answered
                peerCloseCode = code?.rawValue ?? CloseCode.noStatus.rawValue
                // Echo the peer's code (§5.5.1), or 1000 when it sent none.
                for a in close(code ?? .normal, reason: String(decoding: reason, as: UTF8.self), now: now) {
                    _ = emit(a)
                }
                return false
            }
        }
        switch outcome {
        case .consumed(let n): return n
        case .failed(let violation):
            _ = failing(violation.code, violation.reason, now, emit)
            return bytes.count
        }
    }

    private func makeInflater() -> Inflater? {
        guard let (bits, noContextTakeover) = clientWindow else { return nil }
        guard let made = Inflater(windowBits: Int(bits), noContextTakeover: noContextTakeover) else { return nil }
        state = .inflater(made)
        return made
    }

    private func failing(_ code: CloseCode, _ reason: String, _ now: Double, _ emit: (Action) -> Bool) -> Bool {
        for a in fail(code, reason, now: now) { _ = emit(a) }
        return false
    }

    /// Every ping is answered (RFC 6455 §5.5.2). The adapter bounds what a peer that does not read can
    /// make it hold: past a little queued output only the latest ping's pong is kept (§5.5.3 allows
    /// answering just the most recent), so a flood costs CPU, never memory.
    private func answerPing(_ payload: UnsafeRawBufferPointer, now: Double, _ emit: (Action) -> Bool) -> Bool {
        emit(.pong(payload))
    }

    /// Starts the closing handshake: our close frame, then either TCP close once it is written (the
    /// peer's close came first) or a wait of at most `closeTimeout` for the peer's answer. Nothing
    /// when our close was sent already. Before the upgrade there is no handshake: TCP closes.
    public func close(_ code: CloseCode, reason: String, now: Double) -> [Action] {
        guard !sentClose else { return [] }
        guard phase == .websocket else { return [.closeNow] }
        sentClose = true
        closeSentAt = now
        let payload = code == .noStatus ? [] : FrameEncoder.closePayload(code, reason: reason)
        var frame: [UInt8] = []
        FrameEncoder.append(to: &frame, opcode: .close, payload: payload)
        return receivedClose
            ? [.send(frame), .closeAfterFlush(linger: settings.closeTimeout)]
            : [.send(frame), .arm(settings.closeTimeout)]
    }

    /// Fails the connection (RFC 6455 §7.1.7): the close frame with the code, then TCP close after a
    /// short linger, whether or not the peer answers.
    public func fail(_ code: CloseCode, _ reason: String, now: Double) -> [Action] {
        var out: [Action] = [.failed(code)]
        out += close(code, reason: reason, now: now)
        out.append(.closeAfterFlush(linger: settings.closeTimeout))
        return out
    }

    // MARK: - Time

    /// The connection's one timer fired. `lastActivity`: when bytes last arrived; `queued`/`lastWrite`:
    /// output not yet written and when bytes were last written.
    public func tick(now: Double, lastActivity: Double, queued: Int, lastWrite: Double) -> TickResult {
        switch phase {
        case .http:
            // Slowloris: a request must arrive completely within the handshake timeout of its first byte
            // (however slowly the rest dribbles in), the first within that of the connection's opening;
            // an idle keep-alive connection goes after the idle timeout. Answers the client does not read
            // (it pipelines and never reads) make it go after the handshake timeout without progress.
            let stallDue = queued > 0 ? max(lastWrite, lastActivity) + settings.handshakeTimeout - now : .infinity
            if stallDue <= 0 { return .close }
            // A response being prepared elsewhere (an export, say) is waited for, however long.
            if awaitingResponse { return .wait(min(settings.httpIdleTimeout, stallDue)) }
            guard let http else { return .close }
            let inRequest = http.partialRequest || http.bodyHead != nil
            let limit = inRequest || requestsServed == 0 ? settings.handshakeTimeout : settings.httpIdleTimeout
            // Idle from the last byte either way: a long answer (an export the client reads slowly) is
            // not cut off at the idle timeout of its request, nor right after it.
            let idleSince = max(lastActivity, lastWrite)
            let since = inRequest ? http.requestStartedAt : requestsServed == 0 ? http.openedAt : idleSince
            let due = since + limit - now
            if due > 0 { return .wait(min(due, stallDue)) }
            return inRequest ? .requestTimeout("request not completed within \(Int(limit)) s") : .close
        case .websocket:
            if sentClose {
                let due = closeSentAt + settings.closeTimeout - now
                return due > 0 ? .wait(due) : .close
            }
            // A peer that writes on but never reads (a ping flood) is not served forever: with output queued
            // (the adapter passes it only while a pong is held back) and no byte of it written for the
            // handshake timeout, the TCP connection goes. Its pongs are coalesced to the latest already,
            // so this bounds its CPU, not its memory.
            let stallDue = queued > 0 ? lastWrite + settings.handshakeTimeout - now : .infinity
            if stallDue <= 0 { return .close }
            if let sent = pingSentAt {
                if lastActivity > sent {
                    pingSentAt = nil
                } else {
                    let due = sent + settings.pingInterval - now
                    if due > 0 { return .wait(min(due, stallDue)) }
                    timedOut = true
                    return .pingTimeout(fail(.goingAway, "no pong within \(Int(settings.pingInterval)) s", now: now))
                }
            }
            let due = lastActivity + settings.pingInterval - now
            if due > 0 { return .wait(min(due, stallDue)) }
            pingSentAt = now
            return .ping(next: settings.pingInterval)
        }
    }
}
