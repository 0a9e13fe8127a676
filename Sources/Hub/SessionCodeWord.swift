/// A session code of up to 8 characters packed in one word (`Connection.sessionCode`, kept by every
/// connection that named its session in the URL until it closes): its ASCII bytes, the first in the
/// lowest byte. Codes are letters and digits, never a zero byte, so 0 is "no code" and the length is
/// where the zero bytes begin. (In Hub, not Server, so that `FuzzCompactIds` can reach it: fuzzing builds have
/// no Server.)
public enum SessionCodeWord {
    /// The word for `code`, or nil when it does not fit (longer than 8 bytes, empty, or not ASCII).
    public static func word(_ code: String) -> UInt64? {
        let utf8 = code.utf8
        guard !utf8.isEmpty, utf8.count <= 8 else { return nil }
        var w: UInt64 = 0, shift: UInt64 = 0
        for b in utf8 {
            guard b != 0, b < 0x80 else { return nil }
            w |= UInt64(b) << shift
            shift += 8
        }
        return w
    }

    public static func text(_ word: UInt64) -> String {
        let count = (64 - word.leadingZeroBitCount + 7) / 8
        return String(unsafeUninitializedCapacity: count) { buf in
            for i in 0..<count { buf[i] = UInt8(truncatingIfNeeded: word >> UInt64(8 * i)) }
            return count
        }
    }
}
