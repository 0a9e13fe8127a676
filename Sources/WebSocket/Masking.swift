/// The WebSocket masking transform (RFC 6455 §5.3): payload byte i is XORed with key byte (i mod 4).
///
/// `key` is the four masking-key bytes exactly as they appear on the wire, loaded into a UInt32 in
/// native (little-endian) order, so byte i of the key is `(key >> (8 * i)) & 0xFF`. `offset` is how many
/// payload bytes of this frame came before `bytes`, which lets a frame be unmasked chunk by chunk as
/// it arrives. Works a machine word at a time: 8 bytes per XOR, four words per iteration.
@inline(__always)
public func applyMask(_ bytes: UnsafeMutableRawPointer, count: Int, key: UInt32, offset: Int) {
    let shift = UInt32((offset & 3) * 8)
    let k32 = shift == 0 ? key : (key >> shift) | (key << (32 - shift))
    let k64 = UInt64(k32) | (UInt64(k32) << 32)
    var i = 0
    while i + 32 <= count {
        let a = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        let b = bytes.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
        let c = bytes.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)
        let d = bytes.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)
        bytes.storeBytes(of: a ^ k64, toByteOffset: i, as: UInt64.self)
        bytes.storeBytes(of: b ^ k64, toByteOffset: i + 8, as: UInt64.self)
        bytes.storeBytes(of: c ^ k64, toByteOffset: i + 16, as: UInt64.self)
        bytes.storeBytes(of: d ^ k64, toByteOffset: i + 24, as: UInt64.self)
        i += 32
    }
    while i + 8 <= count {
        let a = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        bytes.storeBytes(of: a ^ k64, toByteOffset: i, as: UInt64.self)
        i += 8
    }
    var k = k64
    while i < count {
        let b = bytes.load(fromByteOffset: i, as: UInt8.self)
        bytes.storeBytes(of: b ^ UInt8(truncatingIfNeeded: k), toByteOffset: i, as: UInt8.self)
        k >>= 8
        i += 1
    }
}
