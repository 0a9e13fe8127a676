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
