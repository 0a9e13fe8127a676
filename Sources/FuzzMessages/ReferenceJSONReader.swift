#if canImport(Glibc)
    import Glibc
#endif
import Hub

// The JSON reader as it was before it read a raw buffer by offsets (2026-12-06): the fuzz target
// checks that the hub's reader agrees with it on every input, refusals and their texts included.
// Not the hub's code: only this target compiles it.

/// One value: its kind and where it is in the input.
struct ReferenceJSONValue {
    let kind: JSONKind
    let bytes: ArraySlice<UInt8>

    /// The decoded string, for string values.
    var string: String? {
        guard kind == .string else { return nil }
        return ReferenceJSONReader.decodeString(bytes)
    }
    var double: Double? {
        guard kind == .number else { return nil }
        return Double(String(decoding: bytes, as: UTF8.self))
    }
    var int: Int? {
        guard kind == .number else { return nil }
        return Int(String(decoding: bytes, as: UTF8.self))
    }
    var bool: Bool? { kind == .bool ? bytes.first == UInt8(ascii: "t") : nil }
    /// The elements of an array value (already validated when the outer text was).
    var array: [ReferenceJSONValue]? {
        guard kind == .array else { return nil }
        return try? ReferenceJSONReader.readArray(Array(bytes), maxDepth: 64)
    }

    /// The members of an object value (already validated when the outer text was).
    var object: ReferenceJSONObject? {
        guard kind == .object else { return nil }
        return try? ReferenceJSONReader.readObject(Array(bytes), maxDepth: 64)
    }
}

/// The top-level members of an object, in order. Names stay bytes of the input until asked for: a
/// lookup compares bytes, and only a name written with escapes is decoded.
struct ReferenceJSONObject {
    /// Each name with its quotes, as in the input (validated).
    let names: [ArraySlice<UInt8>]
    let values: [ReferenceJSONValue]

    var members: [(key: String, value: ReferenceJSONValue)] {
        zip(names, values).map { (key: ReferenceJSONReader.decodeString($0) ?? "", value: $1) }
    }

    subscript(key: String) -> ReferenceJSONValue? {
        var key = key
        return key.withUTF8 { k in
            for i in names.indices where ReferenceJSONReader.name(names[i], equals: k) { return values[i] }
            return nil
        }
    }
}

enum ReferenceJSONReader {
    /// Parses `bytes`, which must hold exactly one JSON object, nested at most `maxDepth` deep.
    static func readObject(_ bytes: [UInt8], maxDepth: Int = 32) throws -> ReferenceJSONObject {
        var p = Parser(bytes: bytes, maxDepth: maxDepth)
        p.skipSpace()
        guard p.pos < bytes.count, bytes[p.pos] == UInt8(ascii: "{") else {
            throw JSONError("message must be a JSON object")
        }
        var names: [ArraySlice<UInt8>] = [], values: [ReferenceJSONValue] = []
        // A client message has a handful of members: one allocation each instead of growing 1, 2, 4, 8.
        names.reserveCapacity(8)
        values.reserveCapacity(8)
        try p.object(depth: 1) { name, value in
            names.append(name); values.append(value)
        }
        p.skipSpace()
        guard p.pos == bytes.count else { throw JSONError("unexpected bytes after the JSON value at offset \(p.pos)") }
        return ReferenceJSONObject(names: names, values: values)
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
    static func readArray(_ bytes: [UInt8], maxDepth: Int = 32) throws -> [ReferenceJSONValue] {
        var p = Parser(bytes: bytes, maxDepth: maxDepth)
        p.skipSpace()
        guard p.pos < bytes.count, bytes[p.pos] == UInt8(ascii: "[") else { throw JSONError("expected a JSON array") }
        var elements: [ReferenceJSONValue] = []
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

        mutating func object(depth: Int, _ member: (ArraySlice<UInt8>, ReferenceJSONValue) throws -> Void) throws {
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

        mutating func value(depth: Int) throws -> ReferenceJSONValue {
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
            return ReferenceJSONValue(kind: kind, bytes: bytes[start..<pos])
        }

        mutating func array(depth: Int, _ element: (ReferenceJSONValue) -> Void) throws {
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
