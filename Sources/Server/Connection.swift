import EventLoop
import Hub
import WebSocket
#if canImport(Glibc)
    import Glibc
#endif

/// One client connection: an HTTP/1.1 request loop that may upgrade to WebSocket. It owns the
/// protocol state (head parser, message reader, close handshake, keep-alive pings) and turns every
/// protocol violation into the close code or HTTP status the RFCs name.
final class Connection: Socket {
    unowned(unsafe) let context: LoopContext
    /// Every protocol rule that depends on the connection's state: this class only carries out what it says.
    let machine: ConnectionMachine
    var phase: ConnectionMachine.Phase { machine.phase }
    /// The WebSocket endpoint, once upgraded: where it is in the loop's `endpointList`, plus one (0: none).
    /// A byte beside the flags rather than a 16-byte reference: it takes the connection's object from a
    /// 336- to a 320-byte malloc block (issue 30; `ConnectionSizeTests`).
    private(set) var endpoint: Endpoint? {
        get { endpointSlot == 0 ? nil : context.endpointList[Int(endpointSlot) - 1] }
        set {
            guard let e = newValue, let i = context.endpointList.firstIndex(where: { $0 === e }), i < 255 else {
                precondition(newValue == nil, "an endpoint not registered with the loop")
                endpointSlot = 0
                return
            }
            endpointSlot = UInt8(i + 1)
        }
    }
    var sentClose: Bool { machine.sentClose }
    var timedOut: Bool { machine.timedOut }
    /// The session and member this connection joined (hub endpoint).
    var membership: Membership?
    /// The session code from the upgrade URL (`/ws?session=CODE`): a code of up to 8 characters (the
    /// usual) packed in a word (`SessionCodeWord`), a longer one in the side object.
    var sessionCode: String? {
        get { codeWord != 0 ? SessionCodeWord.text(codeWord) : rare?.longSessionCode }
        set {
            codeWord = newValue.flatMap(SessionCodeWord.word) ?? 0
            if codeWord == 0 && newValue != nil {
                extras.longSessionCode = newValue
            } else if rare?.longSessionCode != nil {
                rare?.longSessionCode = nil
            }
        }
    }
    private var codeWord: UInt64 = 0
    /// What per-address state is keyed by: the peer, or its IPv6 network (`AddressKey`). Worked out when
    /// asked (at the open and the close, and for a refused join), not stored in every connection.
    var addressKey: String { AddressKey.of(peer, ipv6Prefix: context.config.ipv6Prefix) }
    /// What few connections need (a join waiting, a replay, held-back output, HTTP requests, tokens,
    /// a compressor of their own), allocated on first use: an idle joined member never has it.
    private var rare: ConnectionExtras?
    private var extras: ConnectionExtras {
        if let e = rare { return e }
        let e = ConnectionExtras()
        rare = e
        return e
    }
    /// Per-kind message rate limits (created on the first message). The one-byte fields follow it, in
    /// the word its optional's tag starts.
    var limiter: ConnectionLimiter?
    /// permessage-deflate, when negotiated: the window bits the server compresses with (0: it does not).
    private(set) var compressBits: UInt8 = 0
    /// Counted against the per-address connection limit.
    var countedAddress = false
    /// A `replay` is being read for this connection.
    var replayPending = false
    /// A join waits for its session to wake up (`joinQueue`).
    private var joinWaiting = false
    /// (One byte: past `HubEndpoint.maxInvalidMessages`, 20, the connection closes; it saturates at 255.)
    private var invalidCount: UInt8 = 0
    /// Reading stopped until the queued responses drain (pipelined requests from a client that does
    /// not read its answers).
    private(set) var pausedForOutput = false
    /// Cut off for output past the hard limit (counted once, however many broadcasts find it behind).
    private(set) var cutOff = false
    /// `endpoint`'s place (with the one-byte fields above: they share a word).
    private var endpointSlot: UInt8 = 0
    /// How the request being answered later wants its answer (kept with the request's other state in
    /// the side object, which `respond` made).
    private(set) var deferredKeepAlive: Bool {
        get { rare?.deferredKeepAlive ?? true }
        set { extras.deferredKeepAlive = newValue }
    }
    private(set) var deferredHeadOnly: Bool {
        get { rare?.deferredHeadOnly ?? false }
        set { extras.deferredHeadOnly = newValue }
    }
    /// The waiting request is HTTP/1.1: a streamed body may be chunked.
    private(set) var deferredChunked: Bool {
        get { rare?.deferredChunked ?? true }
        set { extras.deferredChunked = newValue }
    }

    /// While a join waits for its session to wake up: the messages sent meanwhile (nil: no join waiting).
    /// (Waiting with nothing queued yet, the usual case, needs no extras.)
    var joinQueue: [ClientMessage]? {
        get { joinWaiting ? (rare?.joinQueue ?? []) : nil }
        set {
            joinWaiting = newValue != nil
            if let queue = newValue, !queue.isEmpty { extras.joinQueue = queue } else { rare?.joinQueue = nil }
        }
    }
    var joinQueueBytes: Int {
        get { rare?.joinQueueBytes ?? 0 }
        set { if newValue != 0 || rare != nil { extras.joinQueueBytes = newValue } }
    }
    /// Invalid messages so far (the endpoint closes the connection past a few).
    var invalidMessages: Int {
        get { Int(invalidCount) }
        set { invalidCount = UInt8(clamping: newValue) }
    }
    /// Transcript playback on this connection (`replay`).
    var replayer: Replayer? {
        get { rare?.replayer }
        set { if newValue != nil || rare != nil { extras.replayer = newValue } }
    }
    /// What this socket presented at its upgrade (`/watch`, `/publish`), plus tokens sent since.
    var principals: [Principal] {
        get { rare?.principals ?? [] }
        set { if !newValue.isEmpty || rare != nil { extras.principals = newValue } }
        _modify {
            // Changed in place: the side object only if something is left in it (a lookup or a removal
            // on a connection without extras allocates nothing).
            if let e = rare {
                yield &e.principals
            } else {
                var value: [Principal] = []
                yield &value
                if !value.isEmpty { extras.principals = value }
            }
        }
    }
    /// The tokens among `principals`, with their expiry (Unix s): a watcher's access ends with them.
    var tokenExpiries: [(principal: Principal, exp: Int64)] {
        get { rare?.tokenExpiries ?? [] }
        set { if !newValue.isEmpty || rare != nil { extras.tokenExpiries = newValue } }
        _modify {
            // Changed in place: the side object only if something is left in it (a lookup or a removal
            // on a connection without extras allocates nothing).
            if let e = rare {
                yield &e.tokenExpiries
            } else {
                var value: [(principal: Principal, exp: Int64)] = []
                yield &value
                if !value.isEmpty { extras.tokenExpiries = value }
            }
        }
    }
    /// Ephemeral updates held back while this client was behind: the latest per key, in first-seen order.
    var coalesced: [String: Chunk] {
        get { rare?.coalesced ?? [:] }
        set { if !newValue.isEmpty || rare != nil { extras.coalesced = newValue } }
        _modify {
            // Changed in place: the side object only if something is left in it (a lookup or a removal
            // on a connection without extras allocates nothing).
            if let e = rare {
                yield &e.coalesced
            } else {
                var value: [String: Chunk] = [:]
                yield &value
                if !value.isEmpty { extras.coalesced = value }
            }
        }
    }
    var coalescedOrder: [String] {
        get { rare?.coalescedOrder ?? [] }
        set { if !newValue.isEmpty || rare != nil { extras.coalescedOrder = newValue } }
        _modify {
            // Changed in place: the side object only if something is left in it (a lookup or a removal
            // on a connection without extras allocates nothing).
            if let e = rare {
                yield &e.coalescedOrder
            } else {
                var value: [String] = []
                yield &value
                if !value.isEmpty { extras.coalescedOrder = value }
            }
        }
    }
    /// Bytes of the ephemeral updates held in `coalesced` (they count against the output limits).
    var coalescedBytes: Int {
        get { rare?.coalescedBytes ?? 0 }
        set { if newValue != 0 || rare != nil { extras.coalescedBytes = newValue } }
    }
    /// Own compressor, only with context takeover (otherwise the loop's shared one is used).
    var ownDeflater: Deflater? { rare?.ownDeflater }
    /// Messages shorter than this are sent uncompressed (deflate would not make them smaller).
    static let compressThreshold = 64
    /// Whom per-client limits of a WebSocket count (failed joins, replays): the socket's address key, or,
    /// when the peer is a proxy named in `--trusted-proxies`, the client its `X-Forwarded-For` names
    /// (else one anonymous client behind the proxy could throttle everyone).
    var clientKey: String {
        get { rare?.clientKey ?? addressKey }
        set { if newValue != addressKey || rare != nil { extras.clientKey = newValue } }
    }
    /// The response whose body is being sent a piece at a time (an export).
    var stream: ResponseStream? {
        get { rare?.stream }
        set { if newValue != nil || rare != nil { extras.stream = newValue } }
    }
    /// Output queued while HTTP requests are parsed: past it, reading stops until the answers drain.
    static let httpPipelineBound = 64 * 1024
    /// A pong held back while output piles up (only the latest ping's is sent, once it drains).
    var pendingPong: [UInt8]? {
        get { rare?.pendingPong }
        set { if newValue != nil || rare != nil { extras.pendingPong = newValue } }
    }
    /// Distinct ephemeral updates held for a client that is behind (the rest are dropped).
    static let maxCoalescedKeys = 64

    init(context: LoopContext, fd: Int32, peer: String) {
        self.context = context
        machine = ConnectionMachine(shared: context.machineSettings, now: context.loop.now)
        super.init(loop: context.loop, fd: fd, peer: peer)
        // HTTP answers count against the hard limit too (exports are streamed under it: `startStream`).
        outputLimit = context.config.hardOutputLimit
        context.metrics.connectionsOpen.add()
        context.metrics.connectionsTotal.add()
    }

    override func start() {
        super.start()
        setTimer(context.config.handshakeTimeout)
        // Every connection counts against its address's cap, plain HTTP ones too (a connection handed
        // over from another loop was counted there).
        // A trusted proxy carries many clients on its address: it is not capped as one client.
        if !countedAddress && context.config.maxConnectionsPerAddress > 0
            && !context.config.trustedProxies.contains(peer)
        {
            guard context.server.addresses.open(addressKey, limit: context.config.maxConnectionsPerAddress) else {
                context.metrics.rateLimited.add()
                failHTTP(
                    .tooManyRequests,
                    "too many connections from \(addressKey) (limit \(context.config.maxConnectionsPerAddress))",
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
            switch machine.phase {
            case .http: n = receivedHTTP(rest)
            case .websocket: n = machine.readWebSocket(rest, now: loopNow) { carryOut($0) }
            }
            if n == 0 { break }
            used += n
        }
        return isClosing || isOverLimit ? bytes.count : used
    }

    private func receivedHTTP(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        if outBytes > Self.httpPipelineBound {
            // Answers are piling up unread: take no more requests until they drain (`outputDrained`).
            pausedForOutput = true
            pauseReading()
            return 0
        }
        let endpoints = context.endpoints
        let (used, event) = machine.readHTTP(UnsafeRawBufferPointer(bytes), now: loop.now) { endpoints[$0] != nil }
        switch event {
        case nil: break
        case .fail(let status, let message):
            failHTTP(status, message)
        case .request(let head, let body):
            respond(to: head, body: body)
        case .upgrade(let head, _):
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
        }
        return used
    }

    /// Carries out one action of the protocol machine; false once the connection takes no more input.
    private func carryOut(_ action: ConnectionMachine.Action) -> Bool {
        switch action {
        case .message(let opcode, let payload):
            context.metrics.messagesIn.add()
            endpoint?.received(self, opcode, payload)
        case .pong(let payload):
            answerPing(payload)
        case .send(let frame):
            send(frame)
        case .closeAfterFlush(let linger):
            closeAfterFlush(lingerSeconds: linger)
        case .closeNow:
            close()
        case .failed(let code):
            context.metrics.closedWith(code)
        case .arm(let seconds):
            setTimer(seconds)
        }
        return !isClosed && !isClosing
    }

    private func respond(to head: HTTPRequestHead, body: [UInt8]) {
        context.metrics.httpRequests.add()
        let request = extras
        request.requestStarted = ev_time_now()
        request.requestRoute = Metrics.route(head.target)
        // A browser app on a --cors-origins origin may read the answer, whenever it comes.
        request.corsHeaders =
            head.path.hasPrefix("/api/") ? context.server.siteGate.corsHeaders(head.header("Origin")) : []
        let reply = context.router.handle(head, body: body, connection: self)
        var response: Response?
        if case .now(let r) = reply { response = r }
        if response == nil || response?.stream != nil {
            // Answered later (off-loop read or a durable write), or a body sent a piece at a time: hold
            // further requests, and stop reading, until then.
            machine.awaitResponse()
            pauseReading()
            deferredKeepAlive = head.keepAlive
            deferredHeadOnly = head.method == "HEAD"
            deferredChunked = head.versionMinor >= 1
        }
        guard let response else { return }
        if let source = response.stream { return startStream(response, source) }
        finish(response, keepAlive: head.keepAlive, headOnly: head.method == "HEAD")
    }
    /// CORS headers for the request being answered (empty unless its Origin is a --cors-origins one).
    var corsHeaders: [(String, String)] { rare?.corsHeaders ?? [] }
    /// `extra` added to `headers`, except names `headers` has already (a preflight sets its own).
    static func merging(_ headers: [(String, String)], _ extra: [(String, String)]) -> [(String, String)] {
        guard !extra.isEmpty else { return headers }
        let have = Set(headers.map { $0.0.lowercased() })
        return headers + extra.filter { !have.contains($0.0.lowercased()) }
    }
    /// Sends a response prepared off the loop (call on the connection's loop).
    func respondLater(_ response: Response) {
        if let source = response.stream { return startStream(response, source) }
        guard !isClosed, machine.awaitingResponse else { return }
        machine.responded()
        if !pausedForOutput { resumeReading() }
        finish(response, keepAlive: deferredKeepAlive, headOnly: deferredHeadOnly)
        // Requests that arrived meanwhile are in the stream's pending bytes: process them now.
        if !isClosed && !isClosing { feed(takePending()) }
    }

    private func finish(_ response: Response, keepAlive requested: Bool, headOnly: Bool) {
        observeResponse(response.status)
        let keepAlive = requested && response.status.code < 500
        let bytes = HTTPResponse.bytes(
            response.status, headers: Self.merging(response.headers, corsHeaders), body: response.body,
            contentType: response.contentType, keepAlive: keepAlive, headOnly: headOnly)
        // A whole answer bigger than the limit on its own (a long session list: its size is the hub's
        // state, not the client's doing) still goes out, the limit raised until it drains. What a client
        // can make large is streamed under the limit, and pipelined requests wait at 64 KiB queued.
        if outBytes + bytes.count > outputLimit { outputLimit = outBytes + bytes.count }
        send(bytes)
        if !keepAlive { closeAfterFlush() }
    }

    /// Response time and errors, counted when the head goes out.
    func observeResponse(_ status: HTTPStatus) {
        let request = extras
        context.metrics.httpDuration[request.requestRoute].observe(ev_time_now() - request.requestStarted)
        if status.code >= 400 { context.metrics.httpError(status.code) }
    }

    private func failHTTP(_ status: HTTPStatus, _ message: String, headers: [(String, String)] = []) {
        failHTTP(.error(status, Response.transportCode(status), message, headers: headers))
    }

    /// Answers with `r` and closes the connection once it is written.
    private func failHTTP(_ r: Response) {
        context.metrics.httpError(r.status.code)
        send(
            HTTPResponse.bytes(r.status, headers: r.headers, body: r.body, contentType: r.contentType, keepAlive: false)
        )
        closeAfterFlush()
    }

    /// `refreshed`: tried again after the key table was read again for an unknown key id.
    private func upgrade(_ head: HTTPRequestHead, refreshed: Bool = false) {
        guard let endpoint = context.endpoints[head.path] else {
            context.metrics.handshakesFailed.add()
            failHTTP(.notFound, "no WebSocket endpoint at \(head.path)")
            return
        }
        if let refusal = context.server.siteGate.check(head, upgrade: true) {
            context.metrics.handshakesFailed.add()
            return failHTTP(refusal)
        }
        if context.config.trustedProxies.contains(peer) {
            clientKey = AddressKey.of(
                context.server.clientAddress(head, peer: peer), ipv6Prefix: context.config.ipv6Prefix)
        }
        if head.path == "/publish" || head.path == "/watch" {
            // What the socket presented at the upgrade (?key=, ?token=, headers) stays with it; each
            // message is then authorized against it (`Authorization.allows`).
            let access = context.server.access(head, upgrade: true)
            if let unknown = access.unknownKeyId, !refreshed, let api = context.server.api {
                // A key made by `collabhub keys` since the table was read: read it again (off the loop),
                // then decide. Nothing was written yet; reading waits meanwhile.
                machine.awaitResponse()
                pauseReading()
                let loop = self.loop
                api.keys.refreshNow(for: unknown) {
                    loop.post { [self] in
                        guard !isClosed else { return }
                        machine.responded()
                        resumeReading()
                        upgrade(head, refreshed: true)
                        if !isClosed && !isClosing { feed(takePending()) }
                    }
                }
                return
            }
            if let failure = access.failure {
                context.metrics.handshakesFailed.add()
                return failHTTP(failure)
            }
            principals = access.principals
            tokenExpiries = access.tokens
            if head.path == "/publish" && !principals.contains(where: { $0.mayPublishSomeRun }) {
                context.metrics.handshakesFailed.add()
                failHTTP(
                    access.presented ? .forbidden : .unauthorized,
                    "publishing needs the admin key or an API key with scope runs:publish (?key= or X-API-Key)")
                return
            }
        }
        switch Handshake.negotiate(head, options: endpoint.handshakeOptions) {
        case .failure(let rejection):
            context.metrics.handshakesFailed.add()
            failHTTP(rejection.status, rejection.message, headers: rejection.headers)
        case .success(let accepted):
            context.metrics.handshakesOK.add()
            let deflate = DeflateNegotiation.negotiate(accepted.extensionOffers, mode: context.config.compression)
            if let params = deflate {
                compressBits = UInt8(params.serverMaxWindowBits)
                // Only context takeover (`--compression context`) costs a compressor per connection; a
                // smaller window in shared mode uses the loop's shared compressor of that size.
                if !params.serverNoContextTakeover {
                    extras.ownDeflater = Deflater(windowBits: params.serverMaxWindowBits, noContextTakeover: false)
                }
            }
            machine.accept(deflate: deflate, now: loop.now)
            // In a chunk of its own size, not the socket's 4 KB output chunk: every upgrade's answer is
            // freed once written, so a join burst frees no 4 KB block per connection among the members'
            // long-lived objects (heap holes count in RSS; loadtest/README.md, fifth pass).
            send(Chunk(Handshake.response(accepted, extensionResponse: deflate?.responseHeader)))
            // From here every byte queued for this client counts against the hard limit: broadcasts,
            // pongs, snapshots, replies, replay alike.
            outputLimit = context.config.hardOutputLimit
            self.endpoint = endpoint
            setTimer(context.config.pingInterval)
            measuresDelivery = true
            queuedSince = 0  // the 101 response is not a delivery
            endpoint.opened(self)
        }
    }

    /// Starts the closing handshake: sends a close frame and waits (at most `closeTimeout`) for the reply.
    func sendClose(_ code: CloseCode, reason: String) {
        guard !isClosed else { return }
        for a in machine.close(code, reason: reason, now: loop.now) { _ = carryOut(a) }
    }

    /// Fails the WebSocket connection (RFC 6455 §7.1.7): close frame with the code, then TCP close.
    func fail(_ code: CloseCode, _ reason: String) {
        guard !isClosed, !isClosing else { return }
        for a in machine.fail(code, reason, now: loop.now) { _ = carryOut(a) }
    }

    // MARK: Timers and closing

    override func timerFired(now: Double) -> Double? {
        // Write progress counts from when the oldest queued byte was queued, if that is later (a socket idle
        // for an hour that just queued a frame has not stalled).
        let progress = max(lastWriteAt, queuedSince)
        // On a WebSocket the write-stall cut is for a peer that pings without reading (a pong held back):
        // a reader that is merely slow is the output limits' business (4000 past the hard limit).
        let queued = machine.phase == .websocket && pendingPong == nil ? 0 : outBytes
        switch machine.tick(now: now, lastActivity: lastActivity, queued: queued, lastWrite: progress) {
        case .wait(let seconds):
            return seconds
        case .ping(let next):
            context.metrics.pingsSent.add()
            sendFrame(.ping, UnsafeRawBufferPointer(start: nil, count: 0))
            return next
        case .requestTimeout(let message):
            failHTTP(.requestTimeout, message)
            return nil
        case .close:
            close()
            return nil
        case .pingTimeout(let actions):
            context.metrics.pingTimeouts.add()
            for a in actions { _ = carryOut(a) }
            return nil
        }
    }

    override func outputDrained() {
        if machine.phase == .http {
            outputLimit = context.config.hardOutputLimit  // raised for one big answer (`finish`)
            pullStream()
        }
        if pausedForOutput {
            pausedForOutput = false
            if !machine.awaitingResponse { resumeReading() }
            feed(takePending())
            return
        }
        guard let held = rare else { return }
        if let p = held.pendingPong {
            held.pendingPong = nil
            p.withUnsafeBytes { sendFrame(.pong, $0) }
        }
        if !held.coalescedOrder.isEmpty {
            let order = held.coalescedOrder, frames = held.coalesced
            held.coalescedOrder = []
            held.coalesced = [:]
            held.coalescedBytes = 0
            for key in order { if let f = frames[key] { sendShared(f) } }
        }
        // A WebSocket client that caught up gives its extras back (it was only ever behind).
        if machine.phase == .websocket && held.isUnused && rare === held { rare = nil }
    }

    /// Output past the hard limit: the client has stopped reading. Its queue is gone already; it gets a
    /// close frame (4000: resume from your last seq) and the socket closes after a short linger,
    /// whether or not the close is answered. HTTP connections just close.
    override func outputLimitExceeded() {
        guard machine.phase == .websocket else { return close() }
        slowConsumer(count: true)
    }

    /// Cuts off a client that fell too far behind (once; `count` false when the caller counted it).
    func slowConsumer(count: Bool) {
        guard !cutOff, !isClosed else { return }
        cutOff = true
        context.server.logSummary.count("slow consumers cut (4000)", "clients")
        context.server.log.debug(
            "slow consumer cut",
            metadata: [
                "session": .string(membership?.session.code ?? sessionCode ?? "-"), "peer": .string(peer),
                "queued_bytes": .stringConvertible(queuedBytes),
            ])
        if count { context.metrics.slowConsumerDrops.add() }
        coalesced = [:]; coalescedOrder = []; coalescedBytes = 0
        liftOutputLimit()
        dropQueuedOutput()
        if isClosing { return close() }
        fail(.slowConsumer, "too far behind; resume from your last seq")
    }

    /// Unconsumed input: a request head and its body, or (WebSocket) at most a frame header.
    override var inputLimit: Int { context.config.maxHeadSize + context.config.maxBodySize + 64 * 1024 }

    override func inputLimitExceeded() {
        if machine.phase == .http {
            failHTTP(.payloadTooLarge, "request too large")
        } else {
            fail(.messageTooBig, "too much unconsumed input")
        }
    }

    override func peerClosed() {
        close()
    }

    override func didClose() {
        if machine.phase == .websocket {
            if let code = machine.peerCloseCode {
                context.metrics.clientClosed(code)
            } else if !machine.sentClose && !machine.receivedClose {
                context.metrics.clientClosed(CloseCode.abnormal.rawValue)
            }
        }
        if countedAddress { context.server.addresses.close(addressKey); countedAddress = false }
        cancelStream()
        context.metrics.connectionsOpen.add(-1)
        endpoint?.closed(self)
        endpoint = nil
        membership = nil
    }
}

/// The state of a connection that most connections never need (`Connection.extras`): one object,
/// allocated on first use, so an idle joined member costs only the fields every member uses.
final class ConnectionExtras {
    var joinQueue: [ClientMessage]?
    var joinQueueBytes = 0
    var replayer: Replayer?
    var principals: [Principal] = []
    var tokenExpiries: [(principal: Principal, exp: Int64)] = []
    var coalesced: [String: Chunk] = [:]
    var coalescedOrder: [String] = []
    var coalescedBytes = 0
    var ownDeflater: Deflater?
    var clientKey: String?
    var stream: ResponseStream?
    var pendingPong: [UInt8]?
    var corsHeaders: [(String, String)] = []
    var requestStarted = 0.0
    var requestRoute = 0
    var deferredKeepAlive = true
    var deferredHeadOnly = false
    var deferredChunked = true
    /// A session code from the upgrade URL too long to pack (`Connection.sessionCode`).
    var longSessionCode: String?

    /// Nothing here differs from a fresh connection's: the object can go.
    var isUnused: Bool {
        joinQueue == nil && joinQueueBytes == 0 && replayer == nil && principals.isEmpty
            && tokenExpiries.isEmpty && coalesced.isEmpty && coalescedOrder.isEmpty && coalescedBytes == 0
            && ownDeflater == nil && clientKey == nil && stream == nil && pendingPong == nil && corsHeaders.isEmpty
            && longSessionCode == nil
    }
}
