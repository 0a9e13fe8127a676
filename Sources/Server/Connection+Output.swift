import EventLoop
import Hub
import WebSocket

/// What a connection sends: frames it encodes itself, shared broadcast frames (compressed once per
/// window size), single messages, and pongs.
extension Connection {
    /// Sends one message to this client alone (framed into the connection's own output chunk).
    func send(_ message: ServerMessage) {
        let json = message.json
        json.withUnsafeBytes { sendFrame(.text, $0) }
    }

    func sendError(_ e: MessageError) { send(.error(e)) }

    /// Frames and queues one message (copying the payload into the connection's own output chunk).
    @inline(__always)
    func sendFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        guard !isClosed, !isClosing else { return }
        if compressBits != 0 && !opcode.isControl && payload.count >= Self.compressThreshold {
            let deflater = ownDeflater ?? context.sharedDeflater(windowBits: Int(compressBits))
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

    /// Queues a shared, pre-framed message (a broadcast).
    @inline(__always)
    func sendShared(_ frame: Chunk) {
        // Through an unowned(unsafe) binding: the counter lives as long as the loop's context, and reading
        // it as a plain property cost a retain and a release per recipient.
        unowned(unsafe) let counter = context.metrics.messagesOut
        Unmanaged.passUnretained(counter)._withUnsafeGuaranteedRef { $0.add() }
        guard compressBits != 0, frame.count >= Self.compressThreshold + 2 else { return send(frame) }
        if ownDeflater == nil {
            // Shared mode: compress the broadcast once; every compressing recipient gets the same frame
            // (a client that asked for a smaller window gets its own compression of it).
            let bits = Int(compressBits)
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

    /// Pongs (the machine decided this ping gets one): every ping is answered while the client reads;
    /// one with output piling up gets a pong for the latest ping only, once it drains (RFC 6455 §5.5.3
    /// allows this).
    func answerPing(_ payload: UnsafeRawBufferPointer) {
        if outBytes > Self.pongCoalesceBound {
            // The first pong held back: look again within the handshake timeout, so a peer that floods
            // pings without reading is cut then (the machine's write-stall rule), not at the next ping.
            if pendingPong == nil { setTimer(context.config.handshakeTimeout) }
            pendingPong = Array(payload)
        } else {
            sendFrame(.pong, payload)
        }
    }
    static let pongCoalesceBound = 64 * 1024
}
