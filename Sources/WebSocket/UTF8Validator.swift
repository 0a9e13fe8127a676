/// Incremental UTF-8 validator (Unicode 15, Table 3-7 "well-formed byte sequences").
///
/// It keeps only the number of continuation bytes still expected and the range the next one must fall
/// in, so a text message can be checked fragment by fragment, and a connection closed with 1007 on the
/// very chunk where the text stops being valid (Autobahn 6.4.x "fail fast"), not at the end of it.
/// ASCII runs are skipped eight bytes at a time.
public struct UTF8Validator: Sendable {
    private var needed: UInt8 = 0
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    public init() {}

    /// True when the bytes seen so far end on a code point boundary.
    public var isComplete: Bool { needed == 0 }

    public mutating func reset() { needed = 0; lower = 0x80; upper = 0xBF }

    /// Feeds the next bytes; returns false as soon as they cannot be part of valid UTF-8.
    @inline(__always)
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        return validate(base, count: bytes.count)
    }

    public mutating func validate(_ base: UnsafeRawPointer, count: Int) -> Bool {
        var i = 0
        while i < count {
            if needed == 0 {
                // Fast path: skip whole words of ASCII.
                while i + 8 <= count {
                    let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    if word & 0x8080_8080_8080_8080 != 0 { break }
                    i += 8
                }
                if i >= count { break }
                // An ASCII tail shorter than a word (a text message of JSON, nearly always): one word
                // overlapping the bytes before it instead of a byte loop (up to seven bytes a message, ~8
                // instructions each). Bytes before `i` are already valid, so all-ASCII means the tail is.
                if i + 8 > count, count >= 8,
                    base.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self) & 0x8080_8080_8080_8080 == 0
                {
                    break
                }
                let b = base.load(fromByteOffset: i, as: UInt8.self)
                i += 1
                if b < 0x80 { continue }
                switch b {
                case 0xC2...0xDF: needed = 1; lower = 0x80; upper = 0xBF
                case 0xE0: needed = 2; lower = 0xA0; upper = 0xBF
                case 0xE1...0xEC, 0xEE, 0xEF: needed = 2; lower = 0x80; upper = 0xBF
                case 0xED: needed = 2; lower = 0x80; upper = 0x9F  // no UTF-16 surrogates
                case 0xF0: needed = 3; lower = 0x90; upper = 0xBF
                case 0xF1...0xF3: needed = 3; lower = 0x80; upper = 0xBF
                case 0xF4: needed = 3; lower = 0x80; upper = 0x8F  // nothing above U+10FFFF
                default: return false  // 0x80-0xC1 as a lead byte, 0xF5-0xFF
                }
            } else {
                let b = base.load(fromByteOffset: i, as: UInt8.self)
                i += 1
                if b < lower || b > upper { return false }
                lower = 0x80; upper = 0xBF
                needed -= 1
            }
        }
        return true
    }

    /// Validates a complete buffer in one call.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var v = UTF8Validator()
        return v.validate(bytes) && v.isComplete
    }

    public static func isValid<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        let array = Array(bytes)
        return array.withUnsafeBytes { isValid($0) }
    }
}
