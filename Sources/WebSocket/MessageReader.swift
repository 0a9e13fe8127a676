/// Which side of a connection a reader or writer serves: servers receive masked frames, clients unmasked.
public enum Role: Sendable { case server, client }

/// One thing a peer said, handed to the reader's callback. Byte buffers are only valid during the call.
public enum ReadEvent {
    /// A complete text or binary message. Text is already UTF-8 validated unless `compressed`
    /// (then the inflated bytes still need validating).
    case message(Opcode, UnsafeRawBufferPointer, compressed: Bool)
    case ping(UnsafeRawBufferPointer)
    case pong(UnsafeRawBufferPointer)
    /// A valid close frame: code nil when the frame had no body (1005); reason is valid UTF-8.
    case close(CloseCode?, reason: UnsafeRawBufferPointer)
}

public enum ReadOutcome: Equatable {
    /// This many input bytes were used; the caller keeps the rest (always less than one frame header,
    /// or an incomplete control frame) and offers it again with more bytes.
    case consumed(Int)
    /// The peer broke the protocol: close the connection with this code.
    case failed(ProtocolViolation)
}

/// Turns the byte stream of a WebSocket connection into messages (RFC 6455 §5): validates every frame
/// header against the connection state, unmasks payloads in place, reassembles fragments, validates
/// text incrementally and enforces the message size limit as soon as a frame's length is known.
///
/// Sans-I/O: it is given bytes and calls back with events; it never touches a socket. A data frame's
/// payload is consumed as it arrives (so a large frame never sits in the caller's input buffer and
/// invalid UTF-8 is caught on the chunk that carries it); a complete unfragmented message found whole
/// in the input is delivered straight from it without a copy.
public struct MessageReader {
    /// Largest message (sum of its fragments' payloads) accepted; a larger one fails with 1009. (Held in
    /// 32 bits, at most 4 GiB: the reader is 48 bytes, not 56, in every WebSocket connection.)
    public var maxMessageSize: Int {
        get { Int(maxSize) }
        set { maxSize = UInt32(clamping: newValue) }
    }
    private var maxSize: UInt32
    public let role: Role
    /// RSV1 means "compressed" once permessage-deflate was negotiated (RFC 7692); otherwise it is an error.
    public var compressionNegotiated: Bool

    // (Fields ordered so the small ones share words: every WebSocket connection has a reader.)
    /// Opcode of the message being assembled (text or binary); nil between messages.
    private var messageOpcode: Opcode?
    private var messageCompressed = false
    /// The data frame whose payload is still arriving.
    private var frameFin = false
    private var inFrame = false
    public private(set) var isClosed = false
    private var stopRequested = false
    private var utf8 = UTF8Validator()
    private var frameKey: UInt32?
    private var message: [UInt8] = []
    private var frameRemaining = 0
    private var frameOffset = 0

    public init(role: Role, maxMessageSize: Int = 1 << 20, compressionNegotiated: Bool = false) {
        self.role = role
        maxSize = UInt32(clamping: maxMessageSize)
        self.compressionNegotiated = compressionNegotiated
    }

    /// True while a message is partly received (used by idle/shutdown logic and tests).
    public var isMidMessage: Bool { messageOpcode != nil }

    /// Reads as much of `input` as forms frames. `handler` returns false to stop early (the connection
    /// is going away); bytes not consumed are reported so the caller can keep them.
    public mutating func read(_ input: UnsafeMutableRawBufferPointer, _ handler: (ReadEvent) -> Bool) -> ReadOutcome {
        guard let base = input.baseAddress else { return .consumed(0) }
        let count = input.count
        var pos = 0
        while !isClosed {
            if inFrame {
                let n = min(frameRemaining, count - pos)
                if n == 0 && frameRemaining > 0 { break }
                if n > 0 {
                    let chunk = base + pos
                    if let key = frameKey { applyMask(chunk, count: n, key: key, offset: frameOffset) }
                    if messageOpcode == .text && !messageCompressed && !utf8.validate(UnsafeRawPointer(chunk), count: n)
                    {
                        return .failed(ProtocolViolation(.invalidPayload, "invalid UTF-8 in text message"))
                    }
                    message.append(contentsOf: UnsafeRawBufferPointer(start: chunk, count: n))
                    pos += n; frameRemaining -= n; frameOffset += n
                }
                if frameRemaining == 0 {
                    inFrame = false
                    if frameFin {
                        if let failure = finishMessage(handler) { return failure }
                        if stopRequested { stopRequested = false; return .consumed(pos) }
                    }
                }
                continue
            }

            let header: FrameHeader, headerLength: Int
            switch FrameHeader.parse(base + pos, count: count - pos) {
            case .needMore: return .consumed(pos)
            case .invalidLength:
                return .failed(ProtocolViolation(.protocolError, "64-bit frame length has its top bit set"))
            case .header(let h, let hl): header = h; headerLength = hl
            }
            if let violation = validate(header) { return .failed(violation) }
            let opcode = Opcode(rawValue: header.opcodeBits)!
            let length = Int(header.length)

            if opcode.isControl {
                // Control frames are at most 125 bytes: wait until the whole frame is here.
                guard count - pos >= headerLength + length else { return .consumed(pos) }
                let payload = base + pos + headerLength
                if let key = header.maskKey { applyMask(payload, count: length, key: key, offset: 0) }
                pos += headerLength + length
                let body = UnsafeRawBufferPointer(start: payload, count: length)
                let keepGoing: Bool
                switch opcode {
                case .ping: keepGoing = handler(.ping(body))
                case .pong: keepGoing = handler(.pong(body))
                default:
                    switch Self.parseClose(body) {
                    case .failure(let violation): return .failed(violation)
                    case .success(let (code, reason)):
                        isClosed = true
                        _ = handler(.close(code, reason: reason))
                        return .consumed(pos)
                    }
                }
                if !keepGoing { return .consumed(pos) }
                continue
            }

            // Data frame.
            let compressed = header.rsv & 0x4 != 0
            if opcode == .continuation {
                guard messageOpcode != nil else {
                    return .failed(
                        ProtocolViolation(.protocolError, "continuation frame without a message to continue"))
                }
            } else {
                guard messageOpcode == nil else {
                    return .failed(
                        ProtocolViolation(.protocolError, "new data frame before the fragmented message ended"))
                }
            }
            let soFar = opcode == .continuation ? message.count : 0
            if header.length > UInt64(maxMessageSize - soFar) {
                return .failed(ProtocolViolation(.messageTooBig, "message exceeds \(maxMessageSize) bytes"))
            }

            // Fast path: a whole unfragmented message already in the buffer is delivered in place.
            if opcode != .continuation && header.fin && count - pos - headerLength >= length {
                let payload = base + pos + headerLength
                if let key = header.maskKey { applyMask(payload, count: length, key: key, offset: 0) }
                if opcode == .text && !compressed {
                    var v = UTF8Validator()
                    guard v.validate(UnsafeRawPointer(payload), count: length), v.isComplete else {
                        return .failed(ProtocolViolation(.invalidPayload, "invalid UTF-8 in text message"))
                    }
                }
                pos += headerLength + length
                if !handler(
                    .message(opcode, UnsafeRawBufferPointer(start: payload, count: length), compressed: compressed))
                {
                    return .consumed(pos)
                }
                continue
            }

            // Slow path: stream the payload into the message buffer.
            if opcode != .continuation {
                messageOpcode = opcode
                messageCompressed = compressed
                utf8.reset()
                message.reserveCapacity(min(length, maxMessageSize))
            }
            pos += headerLength
            inFrame = true
            frameFin = header.fin
            frameKey = header.maskKey
            frameRemaining = length
            frameOffset = 0
        }
        return .consumed(pos)
    }

    private mutating func finishMessage(_ handler: (ReadEvent) -> Bool) -> ReadOutcome? {
        let opcode = messageOpcode!
        if opcode == .text && !messageCompressed && !utf8.isComplete {
            return .failed(ProtocolViolation(.invalidPayload, "text message ends inside a UTF-8 sequence"))
        }
        let compressed = messageCompressed
        messageOpcode = nil
        messageCompressed = false
        let keepGoing = message.withUnsafeBytes { handler(.message(opcode, $0, compressed: compressed)) }
        message = []
        if !keepGoing { stopRequested = true }
        return nil
    }

    /// Checks a header against the rules that do not depend on its payload.
    private func validate(_ h: FrameHeader) -> ProtocolViolation? {
        guard let opcode = Opcode(rawValue: h.opcodeBits) else {
            return ProtocolViolation(.protocolError, "reserved opcode \(h.opcodeBits)")
        }
        switch role {
        case .server where h.maskKey == nil: return ProtocolViolation(.protocolError, "client frames must be masked")
        case .client where h.maskKey != nil:
            return ProtocolViolation(.protocolError, "server frames must not be masked")
        default: break
        }
        if h.rsv & 0x3 != 0 { return ProtocolViolation(.protocolError, "reserved bits RSV2/RSV3 set") }
        if h.rsv & 0x4 != 0 {
            if !compressionNegotiated {
                return ProtocolViolation(.protocolError, "RSV1 set but no extension negotiated")
            }
            if opcode.isControl || opcode == .continuation {
                return ProtocolViolation(.protocolError, "RSV1 is only allowed on the first frame of a data message")
            }
        }
        if opcode.isControl {
            if !h.fin { return ProtocolViolation(.protocolError, "control frames must not be fragmented") }
            if h.length > 125 { return ProtocolViolation(.protocolError, "control frame payload over 125 bytes") }
        }
        return nil
    }

    /// Validates a close frame body (§5.5.1, §7.4): empty, or a valid code plus UTF-8 reason.
    public static func parseClose(_ body: UnsafeRawBufferPointer) -> Result<
        (CloseCode?, UnsafeRawBufferPointer), ProtocolViolation
    > {
        if body.count == 0 { return .success((nil, UnsafeRawBufferPointer(start: nil, count: 0))) }
        if body.count == 1 { return .failure(ProtocolViolation(.protocolError, "close frame with a 1-byte body")) }
        let code = CloseCode(UInt16(body[0]) << 8 | UInt16(body[1]))
        guard code.isValidOnWire else {
            return .failure(ProtocolViolation(.protocolError, "invalid close code \(code.rawValue)"))
        }
        let reason = UnsafeRawBufferPointer(rebasing: body[2...])
        guard UTF8Validator.isValid(reason) else {
            return .failure(ProtocolViolation(.invalidPayload, "close reason is not valid UTF-8"))
        }
        return .success((code, reason))
    }
}
