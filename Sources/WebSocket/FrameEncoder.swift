/// Encodes WebSocket frames. Server frames are never masked; client frames (the load generator) always are.
public enum FrameEncoder {
    /// Bytes the header of a frame with `length` payload bytes takes.
    @inline(__always)
    public static func headerLength(payload length: Int, masked: Bool) -> Int {
        (length < 126 ? 2 : length <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0)
    }

    /// Writes a frame header at `p` (which must have `headerLength` bytes); returns its length.
    @inline(__always)
    public static func writeHeader(
        _ p: UnsafeMutableRawPointer, opcode: Opcode, fin: Bool = true,
        rsv1: Bool = false, length: Int, maskKey: UInt32? = nil
    ) -> Int {
        p.storeBytes(of: (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode.rawValue, as: UInt8.self)
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        var n: Int
        if length < 126 {
            p.storeBytes(of: maskBit | UInt8(length), toByteOffset: 1, as: UInt8.self)
            n = 2
        } else if length <= 0xFFFF {
            p.storeBytes(of: maskBit | 126, toByteOffset: 1, as: UInt8.self)
            p.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
            n = 4
        } else {
            p.storeBytes(of: maskBit | 127, toByteOffset: 1, as: UInt8.self)
            p.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 2, as: UInt64.self)
            n = 10
        }
        if let key = maskKey {
            p.storeBytes(of: key, toByteOffset: n, as: UInt32.self)
            n += 4
        }
        return n
    }

    /// Appends one complete frame to `out`. With a mask key the payload is masked as it is copied.
    public static func append(
        to out: inout [UInt8], opcode: Opcode, payload: UnsafeRawBufferPointer,
        fin: Bool = true, rsv1: Bool = false, maskKey: UInt32? = nil
    ) {
        let h = headerLength(payload: payload.count, masked: maskKey != nil)
        let start = out.count
        let total = h + payload.count
        out.reserveCapacity(start + total)
        out.append(contentsOf: repeatElement(0, count: total))
        out.withUnsafeMutableBytes { buf in
            let p = buf.baseAddress! + start
            _ = writeHeader(p, opcode: opcode, fin: fin, rsv1: rsv1, length: payload.count, maskKey: maskKey)
            if let src = payload.baseAddress, payload.count > 0 {
                (p + h).copyMemory(from: src, byteCount: payload.count)
                if let key = maskKey { applyMask(p + h, count: payload.count, key: key, offset: 0) }
            }
        }
    }

    public static func append(
        to out: inout [UInt8], opcode: Opcode, payload: [UInt8],
        fin: Bool = true, rsv1: Bool = false, maskKey: UInt32? = nil
    ) {
        payload.withUnsafeBytes {
            append(to: &out, opcode: opcode, payload: $0, fin: fin, rsv1: rsv1, maskKey: maskKey)
        }
    }

    /// A complete frame as its own array (for a broadcast: encode once, share the array).
    public static func frame(
        _ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv1: Bool = false,
        maskKey: UInt32? = nil
    ) -> [UInt8] {
        var out: [UInt8] = []
        append(to: &out, opcode: opcode, payload: payload, fin: fin, rsv1: rsv1, maskKey: maskKey)
        return out
    }

    /// The payload of a close frame: the code in network order, then at most 123 bytes of UTF-8 reason
    /// (cut on a character boundary so the frame stays a valid control frame).
    public static func closePayload(_ code: CloseCode, reason: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)]
        var used = 0
        for scalar in reason.unicodeScalars {
            let utf8 = Array(String(scalar).utf8)
            if used + utf8.count > 123 { break }
            out.append(contentsOf: utf8)
            used += utf8.count
        }
        return out
    }
}
