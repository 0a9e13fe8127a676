import Bytes
import WebSocket
#if canImport(Glibc)
    import Glibc
#endif

/// How the resume window holds one frame (issue 30: memory per member). Every join is a durable presence
/// event, and every session keeps its last events for as long as it lives, mostly idle: a join's frame
/// (~175 bytes) was the largest thing an idle member cost after its connection. Those frames are alike
/// but for a few values (seq, ts, the member's id, name, colour, role), so a frame made of a template's
/// pieces, in order, with other bytes between them, is held as the template's number, the frame's first
/// header byte and the bytes between the pieces (a join: ~55 bytes). Any other frame is held as it is.
/// Reading gives back the same bytes, header and all: what a resume sends is what the broadcast sent.
///
/// A record is one of:
/// - the frame itself, when its first byte has the FIN bit (every frame the hub makes): `0x80...`;
/// - `0`, then the frame (a frame without FIN, kept as it came);
/// - `k` (1...templates.count), the frame's first byte, then for each gap between two pieces its length
///   (one byte below 255, else 255 and two bytes) and its bytes. The first piece starts the payload and
///   the last ends it; the header's length bytes are made again from the payload's length (only frames
///   whose header is the shortest for their length, under 64 KiB, are held this way).
enum WindowRecord {
    /// The templates' pieces (of the payload), as `ServerMessage` writes a join and a leave. (Only presence:
    /// a chat or an app event is held as it is, so the fan-out's path pays one byte's look.) What the pieces
    /// hold only decides how much is saved: a record reads back through the same pieces, whatever the frame
    /// says, so a change to the messages costs bytes, never correctness.
    static let templates: [[[UInt8]]] = [
        [
            #"{"type":"presence","seq":"#, #","ts":"#, #","joins":[{"id":""#, #"","name":""#, #"","color":""#,
            #"","role":""#, #"","connections":"#, #","status":""#, #"}],"leaves":[]}"#,
        ],
        [
            #"{"type":"presence","seq":"#, #","ts":"#, #","joins":[],"leaves":[{"id":""#, #"","reason":""#,
            #"}]}"#,
        ],
    ].map { $0.map { Array($0.utf8) } }

    /// The payload's start, if the header is an unmasked one of the shortest length, the frame is under
    /// 64 KiB and its payload starts like a presence event's (`{"type":"p`).
    @inline(__always)
    static func presenceStart(_ f: UnsafeRawBufferPointer) -> Int? {
        guard f.count >= 2, f[1] & 0x80 == 0, f[1] != 127 else { return nil }
        let (start, count) = f[1] < 126 ? (2, Int(f[1])) : (4, f.count >= 4 ? Int(f[2]) << 8 | Int(f[3]) : -1)
        guard start + count == f.count, count > 16, f[start + 9] == UInt8(ascii: "p"),
            FrameEncoder.headerLength(payload: count, masked: false) == start
        else { return nil }
        return start
    }

    /// Whether `piece` lies in `f` at `at`.
    @inline(__always)
    private static func lies(_ piece: UnsafeBufferPointer<UInt8>, in f: UnsafeRawBufferPointer, at: Int) -> Bool {
        guard at >= 0, at + piece.count <= f.count, let p = piece.baseAddress, let b = f.baseAddress else {
            return false
        }
        return f[at] == p[0] && memcmp(b + at, p, piece.count) == 0
    }

    /// Writes the record of `f` (a frame whose payload starts at `start`) held as template `k` into `out`
    /// (at least `f.count` bytes): its length, or nil if the template's pieces are not there (the first at
    /// the payload's start, each next after the one before, the last ending the frame) or save nothing.
    private static func encode(
        _ f: UnsafeRawBufferPointer, _ start: Int, _ k: Int, _ out: UnsafeMutableRawBufferPointer
    ) -> Int? {
        let pieces = templates[k]
        var n = 0
        func put(_ b: UInt8) -> Bool {
            guard n < out.count else { return false }
            out[n] = b
            n += 1
            return true
        }
        func gap(_ r: Range<Int>) -> Bool {
            let head = r.count < 255 ? 1 : 3
            guard n + head + r.count <= out.count, let o = out.baseAddress, let b = f.baseAddress else { return false }
            if r.count < 255 {
                out[n] = UInt8(r.count)
            } else {
                (out[n], out[n + 1], out[n + 2]) = (255, UInt8(r.count >> 8), UInt8(r.count & 0xFF))
            }
            (o + n + head).copyMemory(from: b + r.lowerBound, byteCount: r.count)
            n += head + r.count
            return true
        }
        guard put(UInt8(k + 1)), put(f[0]) else { return nil }
        return pieces[0].withUnsafeBufferPointer { first in
            guard lies(first, in: f, at: start) else { return nil }
            let last = pieces[pieces.count - 1]
            let lastAt = f.count - last.count
            var at = start + first.count
            for i in 1..<(pieces.count - 1) {
                let found: Int? = pieces[i].withUnsafeBufferPointer { piece in
                    var p = at
                    while p + piece.count <= lastAt {
                        if lies(piece, in: f, at: p) { return p }
                        p += 1
                    }
                    return nil
                }
                guard let found, gap(at..<found) else { return nil }
                at = found + pieces[i].count
            }
            guard at <= lastAt, last.withUnsafeBufferPointer({ lies($0, in: f, at: lastAt) }), gap(at..<lastAt),
                n < f.count
            else { return nil }
            return n
        }
    }

    /// Writes the record of a presence frame (`presenceStart`) into `out` (at least `f.count` bytes): its
    /// length, or nil when neither template fits (the frame is then held as it is).
    static func encodePresence(
        _ f: UnsafeRawBufferPointer, _ start: Int, _ out: UnsafeMutableRawBufferPointer
    ) -> Int? {
        encode(f, start, 0, out) ?? encode(f, start, 1, out)
    }

    /// The record of a frame held as it is: its length.
    @inline(__always)
    static func plainSize(_ f: UnsafeRawBufferPointer) -> Int { f.count + (f.count > 0 && f[0] & 0x80 != 0 ? 0 : 1) }

    /// Appends the record of a frame held as it is.
    static func appendPlain(_ f: UnsafeRawBufferPointer, to storage: inout [UInt8]) {
        if !(f.count > 0 && f[0] & 0x80 != 0) { storage.append(0) }
        // As typed bytes: a raw buffer would be appended a byte at a time, a typed one is copied at once.
        storage.append(
            contentsOf: UnsafeBufferPointer(start: f.baseAddress?.assumingMemoryBound(to: UInt8.self), count: f.count))
    }

    /// The record of `f` (a redaction's replacement, tests).
    static func record(_ f: UnsafeRawBufferPointer) -> [UInt8] {
        if let start = presenceStart(f) {
            var out = [UInt8](repeating: 0, count: f.count)
            let n = out.withUnsafeMutableBytes { encodePresence(f, start, $0) }
            if let n { return Array(out[..<n]) }
        }
        var out: [UInt8] = []
        appendPlain(f, to: &out)
        return out
    }

    /// Calls `body` with each gap of a template record (the gaps come after the number and first byte).
    @inline(__always)
    private static func gaps(_ r: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var at = 2
        for _ in 1..<templates[Int(r[0]) - 1].count {
            var n = Int(r[at])
            at += 1
            if n == 255 {
                n = Int(r[at]) << 8 | Int(r[at + 1])
                at += 2
            }
            body(UnsafeRawBufferPointer(rebasing: r[at..<(at + n)]))
            at += n
        }
    }

    /// The payload's length of a template record.
    private static func payloadLength(_ r: UnsafeRawBufferPointer) -> Int {
        var n = templates[Int(r[0]) - 1].reduce(0) { $0 + $1.count }
        gaps(r) { n += $0.count }
        return n
    }

    /// The frame a record holds: its length.
    static func frameLength(_ r: UnsafeRawBufferPointer) -> Int {
        guard let first = r.first else { return 0 }
        if first & 0x80 != 0 { return r.count }
        if first == 0 { return r.count - 1 }
        let payload = payloadLength(r)
        return FrameEncoder.headerLength(payload: payload, masked: false) + payload
    }

    /// The frame a record holds, as a fresh chunk.
    static func frame(_ r: UnsafeRawBufferPointer) -> Chunk {
        guard let first = r.first, first & 0x80 == 0 else { return Chunk(r) }
        if first == 0 { return Chunk(UnsafeRawBufferPointer(rebasing: r[1...])) }
        let pieces = templates[Int(first) - 1]
        let payload = payloadLength(r)
        let h = FrameEncoder.headerLength(payload: payload, masked: false)
        let chunk = Chunk(capacity: h + payload)
        var out = chunk.extend(by: h + payload)
        // The header as the frame had it: its first byte, then the payload's length (shortest form).
        out.storeBytes(of: r[1], as: UInt8.self)
        if h == 2 {
            out.storeBytes(of: UInt8(payload), toByteOffset: 1, as: UInt8.self)
        } else {
            out.storeBytes(of: 126, toByteOffset: 1, as: UInt8.self)
            out.storeBytes(of: UInt8(payload >> 8), toByteOffset: 2, as: UInt8.self)
            out.storeBytes(of: UInt8(payload & 0xFF), toByteOffset: 3, as: UInt8.self)
        }
        out += h
        func put(_ b: UnsafeRawBufferPointer) {
            if let s = b.baseAddress { out.copyMemory(from: s, byteCount: b.count) }
            out += b.count
        }
        var i = 0
        pieces[0].withUnsafeBytes(put)
        gaps(r) { gap in
            put(gap)
            i += 1
            pieces[i].withUnsafeBytes(put)
        }
        return chunk
    }
}
