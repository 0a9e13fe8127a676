/// The fixed part of a WebSocket frame (RFC 6455 §5.2), parsed but not yet validated against the
/// connection's state: that is `MessageReader`'s job.
public struct FrameHeader: Equatable, Sendable {
    public var fin: Bool
    /// RSV1..RSV3 as the low three bits (RSV1 = 0b100).
    public var rsv: UInt8
    /// Raw 4-bit opcode; `Opcode(rawValue:)` rejects the reserved ones.
    public var opcodeBits: UInt8
    /// Masking key as loaded natively from its four wire bytes (see `applyMask`), nil when unmasked.
    public var maskKey: UInt32?
    public var length: UInt64

    public init(fin: Bool, rsv: UInt8 = 0, opcodeBits: UInt8, maskKey: UInt32?, length: UInt64) {
        self.fin = fin; self.rsv = rsv; self.opcodeBits = opcodeBits; self.maskKey = maskKey; self.length = length
    }

    public enum ParseResult: Equatable {
        /// Fewer bytes than the header needs; nothing consumed.
        case needMore
        case header(FrameHeader, headerLength: Int)
        /// The 64-bit length had its most significant bit set (§5.2 forbids it).
        case invalidLength
    }

    /// Parses a header from the start of `p`. Never reads past `count`.
    @inline(__always)
    public static func parse(_ p: UnsafeRawPointer, count: Int) -> ParseResult {
        guard count >= 2 else { return .needMore }
        let b0 = p.load(as: UInt8.self)
        let b1 = p.load(fromByteOffset: 1, as: UInt8.self)
        let masked = b1 & 0x80 != 0
        var need = 2 + (masked ? 4 : 0)
        let len7 = b1 & 0x7F
        var length = UInt64(len7)
        if len7 == 126 {
            need += 2
            guard count >= need else { return .needMore }
            length = UInt64(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        } else if len7 == 127 {
            need += 8
            guard count >= need else { return .needMore }
            length = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt64.self))
            if length & (1 << 63) != 0 { return .invalidLength }
        } else if count < need {
            return .needMore
        }
        let key: UInt32? = masked ? p.loadUnaligned(fromByteOffset: need - 4, as: UInt32.self) : nil
        let header = FrameHeader(
            fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 0x7, opcodeBits: b0 & 0xF,
            maskKey: key, length: length)
        return .header(header, headerLength: need)
    }
}
