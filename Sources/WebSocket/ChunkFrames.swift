@_exported import Bytes

extension Chunk {
    /// One complete, unmasked server frame: how a broadcast is encoded once for every recipient.
    public static func frame(_ opcode: Opcode, _ payload: [UInt8]) -> Chunk {
        let h = FrameEncoder.headerLength(payload: payload.count, masked: false)
        let chunk = Chunk(capacity: h + payload.count)
        let p = chunk.extend(by: h + payload.count)
        _ = FrameEncoder.writeHeader(p, opcode: opcode, length: payload.count)
        payload.withUnsafeBytes { if let src = $0.baseAddress { (p + h).copyMemory(from: src, byteCount: $0.count) } }
        return chunk
    }

    public static func text(_ json: [UInt8]) -> Chunk { frame(.text, json) }

    /// The opcode and payload of the unmasked frame this chunk holds.
    public var framePayload: (Opcode, UnsafeRawBufferPointer)? {
        guard count >= 2, let op = Opcode(rawValue: base.load(as: UInt8.self) & 0x0F) else { return nil }
        guard case .header(let h, let hl) = FrameHeader.parse(base, count: count), hl + Int(h.length) == count else {
            return nil
        }
        return (op, UnsafeRawBufferPointer(start: base + hl, count: Int(h.length)))
    }

    /// A complete frame with RSV1 set (a compressed message).
    public static func compressed(_ opcode: Opcode, _ payload: [UInt8]) -> Chunk {
        let h = FrameEncoder.headerLength(payload: payload.count, masked: false)
        let chunk = Chunk(capacity: h + payload.count)
        let p = chunk.extend(by: h + payload.count)
        _ = FrameEncoder.writeHeader(p, opcode: opcode, rsv1: true, length: payload.count)
        payload.withUnsafeBytes { if let src = $0.baseAddress { (p + h).copyMemory(from: src, byteCount: $0.count) } }
        return chunk
    }
}
