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
final class Connection: Socket {
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
    /// A `replay` is being read for this connection.
    var replayPending = false
    /// Run/dashboard channels this connection watches (`/watch`).
    var watching: Set<String> = []
    /// What this socket presented at its upgrade (`/watch`, `/publish`), plus tokens sent since.
    var principals: [Principal] = []
    /// Runs this publisher socket speaks for (`/publish`).
    var publishing: Set<String> = []
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
    fileprivate(set) var countedAddress = false
    /// Closed because the peer stopped answering pings (no reconnect grace then).
    private(set) var timedOut = false
    /// A response is being prepared off the loop; later requests wait (keeps pipelined responses in order).
    private var awaitingResponse = false
    /// Reading stopped until the queued responses drain (pipelined requests from a client that does
    /// not read its answers).
    private var pausedForOutput = false
    /// When the request now arriving sent its first byte (the slowloris deadline runs from here).
    private var requestStartedAt = 0.0
    /// Cut off for output past the hard limit (counted once, however many broadcasts find it behind).
    private(set) var cutOff = false
    /// Bytes of the ephemeral updates held in `coalesced` (they count against the output limits).
    var coalescedBytes = 0
    /// Output queued while HTTP requests are parsed: past it, reading stops until the answers drain.
    static let httpPipelineBound = 64 * 1024
    /// Distinct ephemeral updates held for a client that is behind (the rest are dropped).
    static let maxCoalescedKeys = 64

    init(context: LoopContext, fd: Int32, peer: String) {
        self.context = context
        headParser = HTTPHeadParser(maxHeadSize: context.config.maxHeadSize)
        reader = MessageReader(role: .server, maxMessageSize: context.config.maxMessageSize)
        openedAt = context.loop.now
        super.init(loop: context.loop, fd: fd, peer: peer)
        // Unconsumed input: a request head and its body, or (WebSocket) at most a frame header.
        inputLimit = context.config.maxHeadSize + context.config.maxBodySize + 64 * 1024
        context.metrics.connectionsOpen.add()
        context.metrics.connectionsTotal.add()
    }

    override func start() {
        super.start()
        setTimer(context.config.handshakeTimeout)
        // Every connection counts against its address's cap, plain HTTP ones too (a connection handed
        // over from another loop was counted there).
        // A trusted proxy carries many clients on its address: it is not capped as one client.
        if !countedAddress && context.config.maxConnectionsPerAddress > 0 && !context.config.trustedProxies.contains(peer) {
            guard context.server.addresses.open(peer, limit: context.config.maxConnectionsPerAddress) else {
                context.metrics.rateLimited.add()
                failHTTP(.tooManyRequests, "too many connections from \(peer) (limit \(context.config.maxConnectionsPerAddress))",
                         headers: [("Retry-After", "10")])
                return
            }
            countedAddress = true
        }
    }

    // MARK: Input

    override func received(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        context.metrics.bytesIn.add(bytes.count)
        var used = 0
        while !isClosed && !isClosing && !isOverLimit && !pausedForOutput && used < bytes.count {
            let rest = UnsafeMutableRawBufferPointer(rebasing: bytes[used...])
            let n: Int
            switch phase {
            case .http: n = receivedHTTP(rest)
            case .websocket: n = receivedWebSocket(rest)
            }
            if n == 0 { break }
            used += n
        }
        return isClosing || isOverLimit ? bytes.count : used
    }

    private func receivedHTTP(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        if awaitingResponse { return 0 }
        if outBytes > Self.httpPipelineBound {
            // Answers are piling up unread: take no more requests until they drain (`outputDrained`).
            pausedForOutput = true
            pauseReading()
            return 0
        }
        if !partialRequest && bodyHead == nil { requestStartedAt = loop.now }
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
            // Content-Length: digits only, and one value however often it is repeated (RFC 9110 §8.6):
            // two framings of one request are how requests are smuggled past a proxy.
            let lengths = Set(head.headers.filter { $0.name.lowercased() == "content-length" }.map(\.value))
            let lengthHeader = lengths.first ?? "0"
            guard lengths.count <= 1, !lengthHeader.isEmpty, lengthHeader.utf8.count <= 18,
                  lengthHeader.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let bodyLength = Int(lengthHeader) else {
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
        let counted = countedAddress
        countedAddress = false  // the address stays counted: the new owner releases it
        owner.loop.post {
            let c = Connection(context: owner, fd: fd, peer: peer)
            c.countedAddress = counted
            if let session = box.session { c.adoptTLS(session) }
            c.start()
            c.feed(bytes)
        }
    }

    private func respond(to head: HTTPRequestHead, body: [UInt8]) {
        context.metrics.httpRequests.add()
        guard let response = context.router.handle(head, body: body, connection: self) else {
            // Answered later (off-loop read or a durable write): hold further requests, and stop
            // reading, until then.
            awaitingResponse = true
            pauseReading()
            deferredKeepAlive = head.keepAlive
            deferredHeadOnly = head.method == "HEAD"
            return
        }
        finish(response, keepAlive: head.keepAlive, headOnly: head.method == "HEAD")
    }
    private var deferredKeepAlive = true
    private var deferredHeadOnly = false

    /// Sends a response prepared off the loop (call on the connection's loop).
    func respondLater(_ response: Response) {
        guard !isClosed, awaitingResponse else { return }
        awaitingResponse = false
        if !pausedForOutput { resumeReading() }
        finish(response, keepAlive: deferredKeepAlive, headOnly: deferredHeadOnly)
        // Requests that arrived meanwhile are in the stream's pending bytes: process them now.
        if !isClosed && !isClosing { feed(takePending()) }
    }

    private func finish(_ response: Response, keepAlive requested: Bool, headOnly: Bool) {
        if response.status.code >= 400 { context.metrics.httpError(response.status.code) }
        let keepAlive = requested && response.status.code < 500
        send(HTTPResponse.bytes(response.status, headers: response.headers, body: response.body,
                                contentType: response.contentType, keepAlive: keepAlive, headOnly: headOnly))
        if !keepAlive { closeAfterFlush() }
    }

    private func failHTTP(_ status: HTTPStatus, _ message: String, headers: [(String, String)] = []) {
        failHTTP(Response(status: status, body: Array((message + "\n").utf8), contentType: "text/plain; charset=utf-8", headers: headers))
    }

    /// Answers with `r` and closes the connection once it is written.
    private func failHTTP(_ r: Response) {
        context.metrics.httpError(r.status.code)
        send(HTTPResponse.bytes(r.status, headers: r.headers, body: r.body, contentType: r.contentType, keepAlive: false))
        closeAfterFlush()
    }

    private func upgrade(_ head: HTTPRequestHead) {
        guard let endpoint = context.endpoints[head.path] else {
            context.metrics.handshakesFailed.add()
            failHTTP(.notFound, "no WebSocket endpoint at \(head.path)")
            return
        }
        if head.path == "/publish" || head.path == "/watch" {
            // What the socket presented at the upgrade (?key=, ?token=, headers) stays with it; each
            // message is then authorized against it (`Authorization.allows`).
            let access = context.server.access(head, upgrade: true)
            if access.unknownKeyId, let api = context.server.api {
                api.keys.refreshNow(on: context.server.wakeups) {}  // a retry finds a key made since
            }
            if let failure = access.failure {
                context.metrics.handshakesFailed.add()
                return failHTTP(failure)
            }
            principals = access.principals
            if head.path == "/publish" && !principals.contains(where: { $0.mayPublishSomeRun }) {
                context.metrics.handshakesFailed.add()
                failHTTP(access.presented ? .forbidden : .unauthorized, "publishing needs the admin key or an API key with scope runs:publish (?key= or X-API-Key)")
                return
            }
        }
        switch Handshake.negotiate(head, options: endpoint.handshakeOptions) {
        case .failure(let rejection):
            context.metrics.handshakesFailed.add()
            failHTTP(rejection.status, rejection.message, headers: rejection.headers)
        case .success(let accepted):
            context.metrics.handshakesOK.add()
            if let params = DeflateNegotiation.negotiate(accepted.extensionOffers, mode: context.config.compression) {
                deflate = params
                inflater = Inflater(windowBits: params.clientMaxWindowBits, noContextTakeover: params.clientNoContextTakeover)
                // Only context takeover (`--compression context`) costs a compressor per connection; a
                // smaller window in shared mode uses the loop's shared compressor of that size.
                if !params.serverNoContextTakeover {
                    ownDeflater = Deflater(windowBits: params.serverMaxWindowBits, noContextTakeover: false)
                }
                reader.compressionNegotiated = true
            }
            send(Handshake.response(accepted, extensionResponse: deflate?.responseHeader))
            // From here every byte queued for this client counts against the hard limit: broadcasts,
            // pongs, snapshots, replies, replay alike.
            outputLimit = context.config.hardOutputLimit
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
                if !sentClose { answerPing(payload) }
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
            let deflater = ownDeflater ?? context.sharedDeflater(windowBits: deflate!.serverMaxWindowBits)
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
            // Shared mode: compress the broadcast once; every compressing recipient gets the same frame
            // (a client that asked for a smaller window gets its own compression of it).
            let bits = deflate!.serverMaxWindowBits
            if bits >= 15, let c = frame.compressedFrame { return send(c) }
            guard let (op, payload) = frame.framePayload, !op.isControl else { return send(frame) }
            let c = Chunk.compressed(op, context.sharedDeflater(windowBits: bits).deflate(payload))
            if bits >= 15 { frame.compressedFrame = c }
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
        guard !isClosed, !isClosing else { return }
        context.metrics.closedWith(code)
        sendClose(code, reason: reason)
        closeAfterFlush(lingerSeconds: context.config.closeTimeout)
    }


    // MARK: Timers and closing

    override func timerFired(now: Double) -> Double? {
        let config = context.config
        switch phase {
        case .http:
            // Slowloris: a request must arrive completely within the handshake timeout of its first
            // byte (however slowly the rest dribbles in), the first one within that of the connection's
            // opening; an idle keep-alive connection goes after the idle timeout.
            // Answers the client does not read (it pipelines and never reads): it goes after the
            // handshake timeout without progress.
            let stallDue = outBytes > 0 ? max(lastWriteAt, lastActivity) + config.handshakeTimeout - now : Double.infinity
            if stallDue <= 0 {
                close()
                return nil
            }
            // A response being prepared off the loop (an export, say) is waited for, however long.
            if awaitingResponse { return min(config.httpIdleTimeout, stallDue) }
            let inRequest = partialRequest || bodyHead != nil
            let limit = inRequest || requestsServed == 0 ? config.handshakeTimeout : config.httpIdleTimeout
            let since = inRequest ? requestStartedAt : requestsServed == 0 ? openedAt : lastActivity
            let due = since + limit - now
            if due > 0 { return min(due, stallDue) }
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
        if pausedForOutput {
            pausedForOutput = false
            if !awaitingResponse { resumeReading() }
            feed(takePending())
            return
        }
        if let p = pendingPong {
            pendingPong = nil
            p.withUnsafeBytes { sendFrame(.pong, $0) }
        }
        guard !coalescedOrder.isEmpty else { return }
        let order = coalescedOrder, frames = coalesced
        coalescedOrder = []
        coalesced = [:]
        coalescedBytes = 0
        for key in order { if let f = frames[key] { sendShared(f) } }
    }

    /// Output past the hard limit: the client has stopped reading. Its queue is gone already; it gets a
    /// close frame (4000: resume from your last seq) and the socket closes after a short linger,
    /// whether or not the close is answered. HTTP connections just close.
    override func outputLimitExceeded() {
        guard phase == .websocket else { return close() }
        slowConsumer(count: true)
    }

    /// Pongs: every ping is answered while the client reads; one with output piling up gets a pong
    /// for the latest ping only, once it drains (RFC 6455 §5.5.3 allows this). Pings beyond 20 a
    /// second (burst 100) are not answered, and a client that keeps flooding is closed with 1008.
    private func answerPing(_ payload: UnsafeRawBufferPointer) {
        let now = loop.now
        if pings == nil { pings = TokenBucket(rate: 20, burst: 100, now: now) }
        guard pings!.take(now: now) else {
            pingsRefused += 1
            context.metrics.rateLimited.add()
            if pingsRefused > Self.maxRefusedPings { fail(.policyViolation, "ping flood") }
            return
        }
        if outBytes > Self.pongCoalesceBound {
            pendingPong = Array(payload)
        } else {
            sendFrame(.pong, payload)
        }
    }
    private var pings: TokenBucket?
    private var pingsRefused = 0
    private var pendingPong: [UInt8]?
    static let pongCoalesceBound = 64 * 1024
    static let maxRefusedPings = 1000

    /// Cuts off a client that fell too far behind (once; `count` false when the caller counted it).
    func slowConsumer(count: Bool) {
        guard !cutOff, !isClosed else { return }
        cutOff = true
        if count { context.metrics.slowConsumerDrops.add() }
        coalesced = [:]; coalescedOrder = []; coalescedBytes = 0
        liftOutputLimit()
        dropQueuedOutput()
        if isClosing { return close() }
        fail(.slowConsumer, "too far behind; resume from your last seq")
    }

    override func inputLimitExceeded() {
        if phase == .http { failHTTP(.payloadTooLarge, "request too large") } else { fail(.messageTooBig, "too much unconsumed input") }
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
