import EventLoop
import Hub
import WebSocket
#if canImport(Glibc)
import Glibc
#endif

/// What a WebSocket path does with the messages of the connections upgraded on it.
protocol Endpoint: AnyObject {
    var handshakeOptions: Handshake.Options { get }
    func opened(_ connection: Connection)
    func received(_ connection: Connection, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer)
    func closed(_ connection: Connection)
}

/// One client connection: an HTTP/1.1 request loop that may upgrade to WebSocket. It owns the
/// protocol state (head parser, message reader, close handshake, keep-alive pings) and turns every
/// protocol violation into the close code or HTTP status the RFCs name.
final class Connection: Stream {
    enum Phase { case http, websocket }

    unowned(unsafe) let context: LoopContext
    private(set) var phase = Phase.http
    private var headParser: HTTPHeadParser
    private var reader: MessageReader
    /// Request whose body is still arriving.
    private var bodyHead: HTTPRequestHead?
    private var bodyLength = 0
    private var openedAt: Double
    private(set) var endpoint: Endpoint?
    private(set) var subprotocol: String?
    /// Whether we sent a close frame (the closing handshake is under way).
    private(set) var sentClose = false
    /// Whether the peer's close frame arrived (tracked here: `reader` is busy while its events run).
    private var receivedClose = false
    private var closeSentAt = 0.0
    private var pingSentAt: Double?
    /// Part of a request head has arrived (so the handshake timeout, not the idle one, applies).
    private var partialRequest = false
    private var requestsServed = 0
    /// The session and member this connection joined (hub endpoint).
    var membership: Membership?
    /// The session code from the upgrade URL (`/ws?session=CODE`).
    private(set) var sessionCode: String?
    var invalidMessages = 0
    /// Transcript playback on this connection (`replay`).
    var replayer: Replayer?
    /// Run/dashboard channels this connection watches (`/watch`).
    var watching: Set<String> = []
    /// Ephemeral updates held back while this client was behind: the latest per key, in first-seen order.
    var coalesced: [String: Chunk] = [:]
    var coalescedOrder: [String] = []
    /// permessage-deflate, when negotiated.
    private(set) var deflate: DeflateParameters?
    private var inflater: Inflater?
    /// Own compressor, only with context takeover (otherwise the loop's shared one is used).
    private var ownDeflater: Deflater?
    /// Messages shorter than this are sent uncompressed (deflate would not make them smaller).
    static let compressThreshold = 64
    /// Per-kind message rate limits (created on the first message).
    var limiter: ConnectionLimiter?
    /// Counted against the per-address connection limit.
    private var countedAddress = false
    /// Closed because the peer stopped answering pings (no reconnect grace then).
    private(set) var timedOut = false
    /// A response is being prepared off the loop; later requests wait (keeps pipelined responses in order).
    private var awaitingResponse = false

    init(context: LoopContext, fd: Int32, peer: String) {
        self.context = context
        headParser = HTTPHeadParser(maxHeadSize: context.config.maxHeadSize)
        reader = MessageReader(role: .server, maxMessageSize: context.config.maxMessageSize)
        openedAt = context.loop.now
        super.init(loop: context.loop, fd: fd, peer: peer)
        context.metrics.connectionsOpen.add()
        context.metrics.connectionsTotal.add()
    }

    override func start() {
        super.start()
        setTimer(context.config.handshakeTimeout)
    }

    // MARK: Input

    override func received(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        context.metrics.bytesIn.add(bytes.count)
        var used = 0
        while !isClosed && !isClosing && used < bytes.count {
            let rest = UnsafeMutableRawBufferPointer(rebasing: bytes[used...])
            let n: Int
            switch phase {
            case .http: n = receivedHTTP(rest)
            case .websocket: n = receivedWebSocket(rest)
            }
            if n == 0 { break }
            used += n
        }
        return isClosing ? bytes.count : used
    }

    private func receivedHTTP(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        if awaitingResponse { return 0 }
        if let head = bodyHead {
            guard bytes.count >= bodyLength else { return 0 }
            bodyHead = nil
            let body = Array(UnsafeRawBufferPointer(rebasing: bytes[..<bodyLength]))
            respond(to: head, body: body)
            return bodyLength
        }
        switch headParser.parse(UnsafeRawBufferPointer(bytes)) {
        case .needMore:
            partialRequest = true
            return 0
        case .failure(let status, let message):
            failHTTP(status, message)
            return bytes.count
        case .complete(let head, let length):
            headParser.reset()
            partialRequest = false
            requestsServed += 1
            if Handshake.isUpgradeRequest(head) || context.endpoints[head.path] != nil {
                if let owner = ownerLoop(for: head), owner !== context {
                    // A socket moves to another loop only with nothing queued for it (a response to an
                    // earlier pipelined request would otherwise be lost or written from two threads).
                    guard outBytes == 0 else {
                        failHTTP(.badRequest, "send the WebSocket upgrade on its own, not pipelined behind other requests")
                        return bytes.count
                    }
                    handOff(to: owner, bytes: Array(UnsafeRawBufferPointer(bytes)))
                    return bytes.count
                }
                upgrade(head)
                return length
            }
            if head.header("Transfer-Encoding") != nil {
                failHTTP(.lengthRequired, "chunked request bodies are not supported; send Content-Length")
                return bytes.count
            }
            let lengthHeader = head.header("Content-Length") ?? "0"
            guard let bodyLength = Int(lengthHeader), bodyLength >= 0 else {
                failHTTP(.badRequest, "invalid Content-Length")
                return bytes.count
            }
            guard bodyLength <= context.config.maxBodySize else {
                failHTTP(.payloadTooLarge, "request body over \(context.config.maxBodySize) bytes")
                return bytes.count
            }
            if bodyLength == 0 {
                respond(to: head, body: [])
            } else {
                bodyHead = head
                self.bodyLength = bodyLength
            }
            return length
        }
    }

    /// The loop that owns the session named in a `/ws?session=CODE` upgrade (nil: any loop will do).
    private func ownerLoop(for head: HTTPRequestHead) -> LoopContext? {
        // Runs, dashboards and publishers live on loop 0.
        if head.path == "/watch" || head.path == "/publish" { return context.server.contexts[0] }
        guard head.path == "/ws", let raw = head.query["session"], let code = SessionCode.normalize(raw) else { return nil }
        sessionCode = code
        let all = context.server.contexts
        return all[SessionCode.owner(of: code, loops: all.count)]
    }

    /// Hands the socket, and the bytes received so far, to another loop before anything was written:
    /// that loop parses the request again and upgrades it, so every member of a session lives on the
    /// session's loop and its fan-out never crosses threads.
    private func handOff(to owner: LoopContext, bytes: [UInt8]) {
        let fd = self.fd, peer = self.peer
        context.metrics.connectionsOpen.add(-1)
        context.metrics.connectionsTotal.add(-1)
        let tls = super.handOff()
        let box = TLSBox(tls)
        owner.loop.post {
            let c = Connection(context: owner, fd: fd, peer: peer)
            if let session = box.session { c.adoptTLS(session) }
            c.start()
            c.feed(bytes)
        }
    }

    private func respond(to head: HTTPRequestHead, body: [UInt8]) {
        context.metrics.httpRequests.add()
        guard let response = context.router.handle(head, body: body, connection: self) else {
            // Answered later (off-loop read or a durable write): hold further requests until then.
            awaitingResponse = true
            deferredKeepAlive = head.keepAlive
            return
        }
        finish(response, keepAlive: head.keepAlive)
    }
    private var deferredKeepAlive = true

    /// Sends a response prepared off the loop (call on the connection's loop).
    func respondLater(_ response: Response) {
        guard !isClosed, awaitingResponse else { return }
        awaitingResponse = false
        finish(response, keepAlive: deferredKeepAlive)
        // Requests that arrived meanwhile are in the stream's pending bytes: process them now.
        if !isClosed && !isClosing { feed(takePending()) }
    }

    private func finish(_ response: Response, keepAlive requested: Bool) {
        if response.status.code >= 400 { context.metrics.httpError(response.status.code) }
        let keepAlive = requested && response.status.code < 500
        send(HTTPResponse.bytes(response.status, headers: response.headers, body: response.body,
                                contentType: response.contentType, keepAlive: keepAlive))
        if !keepAlive { closeAfterFlush() }
    }

    private func failHTTP(_ status: HTTPStatus, _ message: String, headers: [(String, String)] = []) {
        context.metrics.httpError(status.code)
        send(HTTPResponse.text(status, message + "\n", headers: headers, keepAlive: false))
        closeAfterFlush()
    }

    private func upgrade(_ head: HTTPRequestHead) {
        guard let endpoint = context.endpoints[head.path] else {
            context.metrics.handshakesFailed.add()
            failHTTP(.notFound, "no WebSocket endpoint at \(head.path)")
            return
        }
        if head.path == "/publish" {
            let given = head.query["key"] ?? head.header("X-API-Key") ?? ""
            guard let key = context.config.publishKey, Crypto.constantTimeEquals(Array(given.utf8), Array(key.utf8)) else {
                context.metrics.handshakesFailed.add()
                failHTTP(.unauthorized, "a valid publish key is required (?key= or X-API-Key)")
                return
            }
        }
        switch Handshake.negotiate(head, options: endpoint.handshakeOptions) {
        case .failure(let rejection):
            context.metrics.handshakesFailed.add()
            failHTTP(rejection.status, rejection.message, headers: rejection.headers)
        case .success(let accepted):
            if context.config.maxConnectionsPerAddress > 0 {
                guard context.server.addresses.open(peer, limit: context.config.maxConnectionsPerAddress) else {
                    context.metrics.handshakesFailed.add()
                    context.metrics.rateLimited.add()
                    failHTTP(.tooManyRequests, "too many connections from \(peer) (limit \(context.config.maxConnectionsPerAddress))",
                             headers: [("Retry-After", "10")])
                    return
                }
                countedAddress = true
            }
            context.metrics.handshakesOK.add()
            if let params = DeflateNegotiation.negotiate(accepted.extensionOffers, mode: context.config.compression) {
                deflate = params
                inflater = Inflater(windowBits: params.clientMaxWindowBits, noContextTakeover: params.clientNoContextTakeover)
                if !params.serverNoContextTakeover || params.serverMaxWindowBits < 15 {
                    ownDeflater = Deflater(windowBits: params.serverMaxWindowBits, noContextTakeover: params.serverNoContextTakeover)
                }
                reader.compressionNegotiated = true
            }
            send(Handshake.response(accepted, extensionResponse: deflate?.responseHeader))
            phase = .websocket
            subprotocol = accepted.subprotocol
            self.endpoint = endpoint
            setTimer(context.config.pingInterval)
            endpoint.opened(self)
        }
    }

    private func receivedWebSocket(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        let outcome = reader.read(bytes) { event in
            switch event {
            case .message(let opcode, let payload, let compressed):
                context.metrics.messagesIn.add()
                if sentClose { return true }  // RFC 6455 §1.4: data after our close is discarded
                if compressed {
                    guard let inflater else { fail(.protocolError, "compressed message without permessage-deflate"); return false }
                    switch inflater.inflate(payload, limit: context.config.maxMessageSize) {
                    case .tooBig:
                        fail(.messageTooBig, "message inflates beyond \(context.config.maxMessageSize) bytes"); return false
                    case .corrupt:
                        fail(.invalidPayload, "invalid compressed data"); return false
                    case .ok(let bytes):
                        if opcode == .text && !bytes.withUnsafeBytes({ UTF8Validator.isValid($0) }) {
                            fail(.invalidPayload, "invalid UTF-8 in text message"); return false
                        }
                        bytes.withUnsafeBytes { endpoint?.received(self, opcode, $0) }
                    }
                } else {
                    endpoint?.received(self, opcode, payload)
                }
            case .ping(let payload):
                if !sentClose { sendFrame(.pong, payload) }
            case .pong:
                pingSentAt = nil
            case .close(let code, let reason):
                receivedClose = true
                if sentClose {
                    close()  // our close was answered: the handshake is complete
                } else {
                    // Echo the peer's code (§5.5.1), or 1000 when it sent none.
                    sendClose(code ?? .normal, reason: String(decoding: reason, as: UTF8.self))
                }
            }
            return !isClosed && !isClosing
        }
        switch outcome {
        case .consumed(let n): return n
        case .failed(let violation):
            fail(violation.code, violation.reason)
            return bytes.count
        }
    }

    // MARK: Output

    /// Frames and queues one message (copying the payload into the connection's own output chunk).
    @inline(__always)
    func sendFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        guard !isClosed, !isClosing else { return }
        if deflate != nil && !opcode.isControl && payload.count >= Self.compressThreshold {
            let deflater = ownDeflater ?? context.sharedDeflater
            send(Chunk.compressed(opcode, deflater.deflate(payload)))
            context.metrics.messagesOut.add()
            return
        }
        let h = FrameEncoder.headerLength(payload: payload.count, masked: false)
        if payload.count > 16 * 1024 {
            var frame: [UInt8] = []
            FrameEncoder.append(to: &frame, opcode: opcode, payload: payload)
            send(Chunk(frame))
        } else {
            let p = reserve(h + payload.count)
            _ = FrameEncoder.writeHeader(p, opcode: opcode, length: payload.count)
            if payload.count > 0 { (p + h).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
        }
        if !opcode.isControl { context.metrics.messagesOut.add() }
    }

    func sendText(_ text: String) {
        var t = text
        t.withUTF8 { sendFrame(.text, UnsafeRawBufferPointer($0)) }
    }

    /// Queues a shared, pre-framed message (a broadcast).
    @inline(__always)
    func sendShared(_ frame: Chunk) {
        context.metrics.messagesOut.add()
        guard deflate != nil, frame.count >= Self.compressThreshold + 2 else { return send(frame) }
        if ownDeflater == nil {
            // Shared mode: compress the broadcast once; every compressing recipient gets the same frame.
            if let c = frame.compressedFrame { return send(c) }
            guard let (op, payload) = frame.framePayload, !op.isControl else { return send(frame) }
            let c = Chunk.compressed(op, context.sharedDeflater.deflate(payload))
            frame.compressedFrame = c
            send(c)
        } else {
            guard let (op, payload) = frame.framePayload, !op.isControl else { return send(frame) }
            send(Chunk.compressed(op, ownDeflater!.deflate(payload)))
        }
    }

    /// Starts the closing handshake: sends a close frame and waits (at most `closeTimeout`) for the reply.
    func sendClose(_ code: CloseCode, reason: String) {
        guard !isClosed, !sentClose else { return }
        if phase != .websocket { close(); return }
        sentClose = true
        closeSentAt = loop.now
        let payload = code == .noStatus ? [] : FrameEncoder.closePayload(code, reason: reason)
        payload.withUnsafeBytes { p in
            let h = FrameEncoder.headerLength(payload: p.count, masked: false)
            let dst = reserve(h + p.count)
            _ = FrameEncoder.writeHeader(dst, opcode: .close, length: p.count)
            if p.count > 0 { (dst + h).copyMemory(from: p.baseAddress!, byteCount: p.count) }
        }
        if receivedClose {
            // The peer's close came first and this is our answer: close TCP once it is written.
            closeAfterFlush(lingerSeconds: context.config.closeTimeout)
        } else {
            setTimer(context.config.closeTimeout)
        }
    }

    /// Fails the WebSocket connection (RFC 6455 §7.1.7): close frame with the code, then TCP close.
    func fail(_ code: CloseCode, _ reason: String) {
        context.metrics.closedWith(code)
        sendClose(code, reason: reason)
        closeAfterFlush(lingerSeconds: context.config.closeTimeout)
    }


    // MARK: Timers and closing

    override func timerFired(now: Double) -> Double? {
        let config = context.config
        switch phase {
        case .http:
            // Slowloris: a request must arrive completely within the handshake timeout of the last
            // activity; an idle keep-alive connection goes after the idle timeout.
            let waiting = partialRequest || bodyHead != nil || requestsServed == 0
            let limit = waiting ? config.handshakeTimeout : config.httpIdleTimeout
            let due = lastActivity + limit - now
            if due > 0 { return due }
            if partialRequest || bodyHead != nil {
                failHTTP(.requestTimeout, "request not completed within \(Int(limit)) s")
            } else {
                close()
            }
            return nil
        case .websocket:
            if sentClose {
                let due = closeSentAt + config.closeTimeout - now
                if due > 0 { return due }
                close()
                return nil
            }
            if let sent = pingSentAt {
                if lastActivity > sent { pingSentAt = nil }
                else {
                    let due = sent + config.pingInterval - now
                    if due > 0 { return due }
                    context.metrics.pingTimeouts.add()
                    timedOut = true
                    fail(.goingAway, "no pong within \(Int(config.pingInterval)) s")
                    return nil
                }
            }
            let due = lastActivity + config.pingInterval - now
            if due > 0 { return due }
            pingSentAt = now
            context.metrics.pingsSent.add()
            sendFrame(.ping, UnsafeRawBufferPointer(start: nil, count: 0))
            return config.pingInterval
        }
    }

    override func outputDrained() {
        guard !coalescedOrder.isEmpty else { return }
        let order = coalescedOrder, frames = coalesced
        coalescedOrder = []
        coalesced = [:]
        for key in order { if let f = frames[key] { sendShared(f) } }
    }

    override func peerClosed() {
        close()
    }

    override func didClose() {
        if countedAddress { context.server.addresses.close(peer); countedAddress = false }
        context.metrics.connectionsOpen.add(-1)
        endpoint?.closed(self)
        endpoint = nil
        membership = nil
    }
}

/// Carries a TLS session pointer to the loop that adopts the connection.
private final class TLSBox: @unchecked Sendable {
    let session: OpaquePointer?
    init(_ s: OpaquePointer?) { session = s }
}
