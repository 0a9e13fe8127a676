#if canImport(Glibc)
import Glibc
#endif

/// A block of bytes queued for output. A broadcast frame is one immutable chunk shared by every
/// recipient's queue (encoded once, no per-recipient copy); a stream's own small frames (echoes,
/// pongs, acks) are packed into a chunk it owns and may keep appending to until it is written.
public final class Chunk {
    public let base: UnsafeMutableRawPointer
    public private(set) var count: Int
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = max(capacity, 1)
        base = malloc(self.capacity)!
        count = 0
    }

    public convenience init(_ bytes: UnsafeRawBufferPointer) {
        self.init(capacity: bytes.count)
        if let src = bytes.baseAddress { base.copyMemory(from: src, byteCount: bytes.count) }
        count = bytes.count
    }

    public convenience init(_ bytes: [UInt8]) {
        self.init(capacity: bytes.count)
        bytes.withUnsafeBytes { if let src = $0.baseAddress { base.copyMemory(from: src, byteCount: $0.count) } }
        count = bytes.count
    }

    @inline(__always) public var free: Int { capacity - count }

    /// Reserves `n` bytes at the end and returns where to write them.
    @inline(__always) public func extend(by n: Int) -> UnsafeMutableRawPointer {
        precondition(n <= free)
        let p = base + count
        count += n
        return p
    }

    /// Empties the chunk (a scratch chunk reused for output that is thrown away).
    public func removeAll() { count = 0 }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// For a broadcast frame: the same message compressed (permessage-deflate, no context takeover),
    /// made by the first recipient that negotiated compression and shared by the rest.
    public var compressedFrame: Chunk?

    deinit { Glibc.free(base) }
}

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
        guard case .header(let h, let hl) = FrameHeader.parse(base, count: count), hl + Int(h.length) == count else { return nil }
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
