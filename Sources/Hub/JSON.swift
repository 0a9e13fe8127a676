#if canImport(Glibc)
    import Glibc
#endif

/// A small, strict JSON reader (RFC 8259) for client messages. It validates the whole text once, with a
/// depth limit, and keeps values as byte ranges of the input, decoded only when asked for: the hub reads
/// a few fields of each message and splices the rest (an app event's `data`, a cursor's selection) into
/// the outgoing frame without re-encoding it.
public struct JSONError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum JSONKind: Equatable { case object, array, string, number, bool, null }

/// One value: its kind and where it is in the input.
public struct JSONValue {
    public let kind: JSONKind
    public let bytes: ArraySlice<UInt8>

    /// The decoded string, for string values.
    public var string: String? {
        guard kind == .string else { return nil }
        return JSONReader.decodeString(bytes)
    }
    public var double: Double? {
        guard kind == .number else { return nil }
        return Double(String(decoding: bytes, as: UTF8.self))
    }
    public var int: Int? {
        guard kind == .number else { return nil }
        return Int(String(decoding: bytes, as: UTF8.self))
    }
    public var bool: Bool? { kind == .bool ? bytes.first == UInt8(ascii: "t") : nil }
    /// The elements of an array value (already validated when the outer text was).
    public var array: [JSONValue]? {
        guard kind == .array else { return nil }
        return try? JSONReader.readArray(Array(bytes), maxDepth: 64)
    }

    /// The members of an object value (already validated when the outer text was).
    public var object: JSONObject? {
        guard kind == .object else { return nil }
        return try? JSONReader.readObject(Array(bytes), maxDepth: 64)
    }
}

/// The top-level members of an object, in order. Names stay bytes of the input until asked for: a
/// lookup compares bytes, and only a name written with escapes is decoded.
public struct JSONObject {
    /// Each name with its quotes, as in the input (validated).
    let names: [ArraySlice<UInt8>]
    let values: [JSONValue]

    public var members: [(key: String, value: JSONValue)] {
        zip(names, values).map { (key: JSONReader.decodeString($0) ?? "", value: $1) }
    }

    public subscript(key: String) -> JSONValue? {
        var key = key
        return key.withUTF8 { k in
            for i in names.indices where JSONReader.name(names[i], equals: k) { return values[i] }
            return nil
        }
    }
}

public enum JSONReader {
    /// Parses `bytes`, which must hold exactly one JSON object, nested at most `maxDepth` deep.
    public static func readObject(_ bytes: [UInt8], maxDepth: Int = 32) throws -> JSONObject {
        var p = Parser(bytes: bytes, maxDepth: maxDepth)
        p.skipSpace()
        guard p.pos < bytes.count, bytes[p.pos] == UInt8(ascii: "{") else {
            throw JSONError("message must be a JSON object")
        }
        var names: [ArraySlice<UInt8>] = [], values: [JSONValue] = []
        // A client message has a handful of members: one allocation each instead of growing 1, 2, 4, 8.
        names.reserveCapacity(8)
        values.reserveCapacity(8)
        try p.object(depth: 1) { name, value in
            names.append(name); values.append(value)
        }
        p.skipSpace()
        guard p.pos == bytes.count else { throw JSONError("unexpected bytes after the JSON value at offset \(p.pos)") }
        return JSONObject(names: names, values: values)
    }

    /// Whether a quoted, validated member name is the name whose UTF-8 bytes are `key`.
    @inline(__always)
    static func name(_ quoted: ArraySlice<UInt8>, equals key: UnsafeBufferPointer<UInt8>) -> Bool {
        // The names looked up are the hub's own (no backslashes): equal bytes are equal names, and
        // only a name with escapes can be equal with other bytes. An escape is always longer than what
        // it stands for, so a name that is not longer than the key cannot be equal with other bytes.
        let inner = quoted.count - 2
        if inner < key.count { return false }
        if inner == key.count {
            return quoted.withUnsafeBufferPointer { q in
                key.count == 0 || memcmp(q.baseAddress! + 1, key.baseAddress!, key.count) == 0
            }
        }
        guard quoted.dropFirst().dropLast().contains(UInt8(ascii: "\\")), let decoded = decodeString(quoted) else {
            return false
        }
        return decoded.utf8.elementsEqual(key)
    }

    /// Parses `bytes`, which must hold exactly one JSON array; returns its elements.
    public static func readArray(_ bytes: [UInt8], maxDepth: Int = 32) throws -> [JSONValue] {
        var p = Parser(bytes: bytes, maxDepth: maxDepth)
        p.skipSpace()
        guard p.pos < bytes.count, bytes[p.pos] == UInt8(ascii: "[") else { throw JSONError("expected a JSON array") }
        var elements: [JSONValue] = []
        try p.array(depth: 1) { elements.append($0) }
        p.skipSpace()
        guard p.pos == bytes.count else { throw JSONError("unexpected bytes after the JSON value at offset \(p.pos)") }
        return elements
    }

    static func decodeString(_ s: ArraySlice<UInt8>) -> String? {
        // s includes the quotes and is already validated.
        let inner = s.dropFirst().dropLast()
        if !inner.contains(UInt8(ascii: "\\")) { return String(decoding: inner, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(inner.count)
        var i = inner.startIndex
        var pendingHigh: UInt32?
        func appendScalar(_ v: UInt32) {
            if let sc = Unicode.Scalar(v) {
                out.append(contentsOf: Array(String(sc).utf8))
            } else {
                out.append(contentsOf: [0xEF, 0xBF, 0xBD])
            }
        }
        while i < inner.endIndex {
            let c = inner[i]
            if c != UInt8(ascii: "\\") {
                if let h = pendingHigh { appendScalar(0xFFFD); _ = h; pendingHigh = nil }
                out.append(c); i += 1; continue
            }
            let e = inner[i + 1]
            i += 2
            if e == UInt8(ascii: "u") {
                let hex = String(decoding: inner[i..<i + 4], as: UTF8.self)
                i += 4
                let v = UInt32(hex, radix: 16)!
                if let h = pendingHigh {
                    pendingHigh = nil
                    if (0xDC00...0xDFFF).contains(v) {
                        appendScalar(0x10000 + ((h - 0xD800) << 10) + (v - 0xDC00)); continue
                    }
                    appendScalar(0xFFFD)
                }
                if (0xD800...0xDBFF).contains(v) {
                    pendingHigh = v
                } else if (0xDC00...0xDFFF).contains(v) {
                    appendScalar(0xFFFD)
                } else {
                    appendScalar(v)
                }
                continue
            }
            if pendingHigh != nil { appendScalar(0xFFFD); pendingHigh = nil }
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            default: out.append(e)  // " \ /
            }
        }
        if pendingHigh != nil { appendScalar(0xFFFD) }
        return String(decoding: out, as: UTF8.self)
    }

    struct Parser {
        let bytes: [UInt8]
        let maxDepth: Int
        var pos = 0

        mutating func skipSpace() {
            while pos < bytes.count {
                let c = bytes[pos]
                if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { break }
            }
        }

        mutating func expect(_ c: UInt8) throws {
            skipSpace()
            guard pos < bytes.count, bytes[pos] == c else {
                throw JSONError("expected '\(Character(Unicode.Scalar(c)))' at offset \(pos)")
            }
            pos += 1
        }

        mutating func object(depth: Int, _ member: (ArraySlice<UInt8>, JSONValue) throws -> Void) throws {
            guard depth <= maxDepth else { throw JSONError("JSON nested deeper than \(maxDepth)") }
            try expect(UInt8(ascii: "{"))
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return }
            while true {
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else {
                    throw JSONError("expected a member name at offset \(pos)")
                }
                let keyStart = pos
                try string()
                let key = bytes[keyStart..<pos]
                try expect(UInt8(ascii: ":"))
                let v = try value(depth: depth)
                try member(key, v)
                skipSpace()
                guard pos < bytes.count else { throw JSONError("unterminated object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return }
                throw JSONError("expected ',' or '}' at offset \(pos)")
            }
        }

        mutating func value(depth: Int) throws -> JSONValue {
            skipSpace()
            guard pos < bytes.count else { throw JSONError("unexpected end of JSON") }
            let start = pos
            let kind: JSONKind
            switch bytes[pos] {
            case UInt8(ascii: "{"): try object(depth: depth + 1) { _, _ in }; kind = .object
            case UInt8(ascii: "["): try array(depth: depth + 1) { _ in }; kind = .array
            case UInt8(ascii: "\""): try string(); kind = .string
            case UInt8(ascii: "t"): try literal("true"); kind = .bool
            case UInt8(ascii: "f"): try literal("false"); kind = .bool
            case UInt8(ascii: "n"): try literal("null"); kind = .null
            default: try number(); kind = .number
            }
            return JSONValue(kind: kind, bytes: bytes[start..<pos])
        }

        mutating func array(depth: Int, _ element: (JSONValue) -> Void) throws {
            guard depth <= maxDepth else { throw JSONError("JSON nested deeper than \(maxDepth)") }
            pos += 1
            skipSpace()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return }
            while true {
                element(try value(depth: depth))
                skipSpace()
                guard pos < bytes.count else { throw JSONError("unterminated array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return }
                throw JSONError("expected ',' or ']' at offset \(pos)")
            }
        }

        mutating func literal(_ word: StaticString) throws {
            let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            guard pos + w.count <= bytes.count, bytes[pos..<pos + w.count].elementsEqual(w) else {
                throw JSONError("invalid literal at offset \(pos)")
            }
            pos += w.count
        }

        mutating func string() throws {
            pos += 1
            while pos < bytes.count {
                let c = bytes[pos]
                if c == UInt8(ascii: "\"") { pos += 1; return }
                if c < 0x20 { throw JSONError("control character in string at offset \(pos)") }
                if c == UInt8(ascii: "\\") {
                    guard pos + 1 < bytes.count else { break }
                    let e = bytes[pos + 1]
                    if e == UInt8(ascii: "u") {
                        guard pos + 6 <= bytes.count, bytes[pos + 2..<pos + 6].allSatisfy({ isHex($0) }) else {
                            throw JSONError("invalid \\u escape at offset \(pos)")
                        }
                        pos += 6
                        continue
                    }
                    guard "\"\\/bfnrt".utf8.contains(e) else { throw JSONError("invalid escape at offset \(pos)") }
                    pos += 2
                    continue
                }
                pos += 1
            }
            throw JSONError("unterminated string")
        }

        func isHex(_ c: UInt8) -> Bool {
            (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)
        }

        mutating func number() throws {
            let start = pos
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            func digits() -> Int {
                let s = pos; while pos < bytes.count, bytes[pos] >= 48, bytes[pos] <= 57 { pos += 1 }; return pos - s
            }
            guard pos < bytes.count else { throw JSONError("invalid number at offset \(start)") }
            if bytes[pos] == UInt8(ascii: "0") {
                pos += 1
            } else if digits() == 0 {
                throw JSONError("invalid value at offset \(start)")
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
                pos += 1
                guard digits() > 0 else { throw JSONError("invalid number at offset \(start)") }
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
                pos += 1
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
                guard digits() > 0 else { throw JSONError("invalid number at offset \(start)") }
            }
        }
    }
}

/// Builds JSON text into a byte array, escaping strings per RFC 8259.
public struct JSONWriter {
    public var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func beginObject() { separator(); bytes.append(UInt8(ascii: "{")); needsComma = false }
    public mutating func endObject() { bytes.append(UInt8(ascii: "}")); needsComma = true }
    public mutating func beginArray(_ key: String) {
        keyPrefix(key); bytes.append(UInt8(ascii: "[")); needsComma = false
    }
    public mutating func beginArray() { separator(); bytes.append(UInt8(ascii: "[")); needsComma = false }
    public mutating func endArray() { bytes.append(UInt8(ascii: "]")); needsComma = true }
    public mutating func beginObject(_ key: String) {
        keyPrefix(key); bytes.append(UInt8(ascii: "{")); needsComma = false
    }

    private mutating func separator() { if needsComma { bytes.append(UInt8(ascii: ",")) } }
    private mutating func keyPrefix(_ key: String) {
        separator()
        appendString(key)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func field(_ key: String, _ value: String?) {
        keyPrefix(key)
        if let value { appendString(value) } else { bytes.append(contentsOf: "null".utf8) }
        needsComma = true
    }
    public mutating func field(_ key: String, _ value: Int) {
        keyPrefix(key); bytes.appendDecimal(value); needsComma = true
    }
    public mutating func field(_ key: String, _ value: Double) {
        keyPrefix(key)
        bytes += Array(
            (value.isFinite
                ? (value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)) : "null").utf8)
        needsComma = true
    }
    public mutating func field(_ key: String, _ value: Bool) {
        keyPrefix(key); bytes.append(contentsOf: (value ? "true" : "false").utf8); needsComma = true
    }
    /// A value that is already JSON (validated input being forwarded).
    public mutating func raw(_ key: String, _ json: ArraySlice<UInt8>) {
        keyPrefix(key); bytes += json; needsComma = true
    }
    public mutating func raw(_ key: String, _ json: [UInt8]) { keyPrefix(key); bytes += json; needsComma = true }
    public mutating func element(_ value: String) { separator(); appendString(value); needsComma = true }
    public mutating func rawElement(_ json: [UInt8]) { separator(); bytes += json; needsComma = true }

    /// Appends `s` as a JSON string: runs that need no escaping are copied whole.
    public mutating func appendString(_ s: String) {
        if s.utf8.withContiguousStorageIfAvailable({ appendEscaped($0) }) != nil { return }
        let copy = Array(s.utf8)  // a bridged or otherwise non-contiguous string
        copy.withUnsafeBufferPointer { appendEscaped($0) }
    }

    mutating func appendEscaped(_ p: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        var run = 0
        for i in 0..<p.count {
            let b = p[i]
            if b >= 0x20 && b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\") { continue }
            if i > run { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: p[run..<i])) }
            run = i + 1
            bytes.append(92)
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(b)
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            default:
                let hex: StaticString = "0123456789abcdef"
                bytes.append(UInt8(ascii: "u")); bytes.append(48); bytes.append(48)
                bytes.append(hex.utf8Start[Int(b >> 4)]); bytes.append(hex.utf8Start[Int(b & 0xF)])
            }
        }
        if p.count > run { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: p[run..<p.count])) }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension Array where Element == UInt8 {
    /// Appends the decimal digits of `v` (no intermediate String).
    public mutating func appendDecimal(_ v: Int) {
        if v < 0 { append(UInt8(ascii: "-")) }
        var m = v.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes, enough for 20 digits
        var n = 0
        Swift.withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[23 - n] = UInt8(truncatingIfNeeded: 48 + m % 10)
                m /= 10
                n += 1
            } while m > 0
            append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(24 - n)...]))
        }
    }
}
