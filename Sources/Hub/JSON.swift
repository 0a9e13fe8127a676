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

/// One value: its kind and where it is in the input (the input held once, and offsets into it).
public struct JSONValue {
    public let kind: JSONKind
    let source: [UInt8]
    let start: Int, end: Int

    init(kind: JSONKind, _ source: [UInt8], _ span: JSONSpan) {
        self.kind = kind; self.source = source; start = span.valueStart; end = span.valueEnd
    }

    /// A value of these bytes (copied; the hub's own reads keep offsets into their input).
    init(kind: JSONKind, bytes: ArraySlice<UInt8>) {
        self.kind = kind; source = Array(bytes); start = 0; end = source.count
    }

    /// The value's JSON text.
    public var bytes: ArraySlice<UInt8> { source[start..<end] }

    /// Whether this is a string written exactly as `text` (no escapes): a test without decoding.
    func isString(written text: StaticString) -> Bool {
        let n = text.utf8CodeUnitCount
        return kind == .string && end - start == n + 2
            && source.withUnsafeBufferPointer { memcmp($0.baseAddress! + start + 1, text.utf8Start, n) == 0 }
    }

    /// The decoded string, for string values.
    public var string: String? {
        guard kind == .string else { return nil }
        return source.withUnsafeBufferPointer {
            JSONReader.decodeString(UnsafeBufferPointer(rebasing: $0[start..<end]))
        }
    }
    public var double: Double? {
        guard kind == .number else { return nil }
        return Double(String(decoding: bytes, as: UTF8.self))
    }
    public var int: Int? {
        guard kind == .number else { return nil }
        return Int(String(decoding: bytes, as: UTF8.self))
    }
    public var bool: Bool? { kind == .bool ? source[start] == UInt8(ascii: "t") : nil }
    /// The elements of an array value (already validated when the outer text was).
    public var array: [JSONValue]? {
        guard kind == .array else { return nil }
        return try? JSONReader.readArray(source, in: start..<end, maxDepth: 64)
    }

    /// The members of an object value (already validated when the outer text was), read in place.
    public var object: JSONObject? {
        guard kind == .object else { return nil }
        return try? JSONReader.readObject(source, in: start..<end, maxDepth: 64)
    }
}

/// Where one member or element is in the input: offsets, no reference to it (the object holds the
/// input once).
struct JSONSpan {
    /// The name with its quotes (members only).
    var nameStart = 0, nameEnd = 0
    var valueStart = 0, valueEnd = 0
    var kind = JSONKind.null
    /// Whether the name is written with a backslash escape (then a lookup decodes it).
    var nameEscaped = false
}

/// The top-level members of an object, in order. The object holds its input once and each member
/// as offsets into it: a lookup compares bytes, and only a name written with escapes is decoded.
public struct JSONObject {
    let source: [UInt8]
    let spans: [JSONSpan]

    public var members: [(key: String, value: JSONValue)] {
        spans.map { s in
            (
                key: JSONReader.decodeString(source[s.nameStart..<s.nameEnd]) ?? "",
                value: JSONValue(kind: s.kind, source, s)
            )
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard let s = span(key) else { return nil }
        return JSONValue(kind: s.kind, source, s)
    }

    /// The first member named `key`.
    func span(_ key: String) -> JSONSpan? {
        var key = key
        return key.withUTF8 { find($0) }
    }

    /// The member named `key`, one of the hub's own names: read without making a String of it (the
    /// message path's lookups).
    func value(_ key: StaticString) -> JSONValue? {
        guard let s = find(UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)) else { return nil }
        return JSONValue(kind: s.kind, source, s)
    }

    /// The first member whose name's UTF-8 bytes are `key`.
    @inline(__always)
    private func find(_ key: UnsafeBufferPointer<UInt8>) -> JSONSpan? {
        source.withUnsafeBufferPointer { src in
            spans.withUnsafeBufferPointer { list in
                for i in 0..<list.count where JSONReader.name(src, list[i], equals: key) { return list[i] }
                return nil
            }
        }
    }
}

public enum JSONReader {
    /// Parses `bytes`, which must hold exactly one JSON object, nested at most `maxDepth` deep.
    public static func readObject(_ bytes: [UInt8], maxDepth: Int = 32) throws -> JSONObject {
        try readObject(bytes, in: 0..<bytes.count, maxDepth: maxDepth)
    }

    /// Parses `bytes[range]`, which must hold exactly one JSON object; the offsets stay `bytes`' own.
    static func readObject(_ bytes: [UInt8], in range: Range<Int>, maxDepth: Int) throws -> JSONObject {
        // A client message has a handful of members: one allocation instead of growing 1, 2, 4, 8.
        let spans = try bytes.withUnsafeBufferPointer { buffer in
            var p = Parser(buffer, range, maxDepth: maxDepth)
            p.skipSpace()
            guard p.pos < p.end, p.at(p.pos) == UInt8(ascii: "{") else {
                throw JSONError("message must be a JSON object")
            }
            // A client message has a handful of members: one allocation instead of growing 1, 2, 4, 8.
            p.spans.reserveCapacity(8)
            try p.object(depth: 1)
            p.skipSpace()
            guard p.pos == p.end else { throw p.trailing() }
            return p.spans
        }
        return JSONObject(source: bytes, spans: spans)
    }

    /// Whether the quoted, validated member name of `span` is the name whose UTF-8 bytes are `key`.
    @inline(__always)
    static func name(_ src: UnsafeBufferPointer<UInt8>, _ span: JSONSpan, equals key: UnsafeBufferPointer<UInt8>)
        -> Bool
    {
        // The names looked up are the hub's own (no backslashes): equal bytes are equal names, and
        // only a name with escapes can be equal with other bytes.
        let inner = span.nameEnd - span.nameStart - 2
        if !span.nameEscaped {
            // Names are short: a byte loop costs less than a call of memcmp.
            guard inner == key.count else { return false }
            let name = src.baseAddress! + span.nameStart + 1
            for i in 0..<inner where name[i] != key[i] { return false }
            return true
        }
        // An escape is always longer than what it stands for.
        guard inner > key.count,
            let decoded = decodeString(UnsafeBufferPointer(rebasing: src[span.nameStart..<span.nameEnd]))
        else { return false }
        return decoded.utf8.elementsEqual(key)
    }

    /// Parses `bytes`, which must hold exactly one JSON array; returns its elements.
    public static func readArray(_ bytes: [UInt8], maxDepth: Int = 32) throws -> [JSONValue] {
        try readArray(bytes, in: 0..<bytes.count, maxDepth: maxDepth)
    }

    static func readArray(_ bytes: [UInt8], in range: Range<Int>, maxDepth: Int) throws -> [JSONValue] {
        let spans = try bytes.withUnsafeBufferPointer { buffer in
            var p = Parser(buffer, range, maxDepth: maxDepth)
            p.skipSpace()
            guard p.pos < p.end, p.at(p.pos) == UInt8(ascii: "[") else { throw JSONError("expected a JSON array") }
            try p.array(depth: 1)
            p.skipSpace()
            guard p.pos == p.end else { throw p.trailing() }
            return p.spans
        }
        return spans.map { JSONValue(kind: $0.kind, bytes, $0) }
    }

    static func decodeString(_ s: ArraySlice<UInt8>) -> String? {
        s.withUnsafeBufferPointer { decodeString($0) }
    }

    /// Decodes a quoted, validated string.
    static func decodeString(_ s: UnsafeBufferPointer<UInt8>) -> String? {
        let inner = UnsafeBufferPointer(rebasing: s.dropFirst().dropLast())
        if inner.isEmpty { return "" }
        if memchr(inner.baseAddress!, Int32(UInt8(ascii: "\\")), inner.count) == nil {
            return String(decoding: inner, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(inner.count)
        var i = 0
        var pendingHigh: UInt32?
        func appendScalar(_ v: UInt32) {
            if let sc = Unicode.Scalar(v) {
                out.append(contentsOf: Array(String(sc).utf8))
            } else {
                out.append(contentsOf: [0xEF, 0xBF, 0xBD])
            }
        }
        while i < inner.count {
            let c = inner[i]
            if c != UInt8(ascii: "\\") {
                if pendingHigh != nil { appendScalar(0xFFFD); pendingHigh = nil }
                out.append(c); i += 1; continue
            }
            let e = inner[i + 1]
            i += 2
            if e == UInt8(ascii: "u") {
                var v: UInt32 = 0
                for k in 0..<4 { v = v << 4 | UInt32(hexValue(inner[i + k])) }
                i += 4
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

    /// The value of a validated hex digit.
    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8 {
        c <= 57 ? c - 48 : (c | 0x20) - 87
    }

    /// The validating reader: one pass over a buffer the caller keeps alive, offsets only. Bytes are
    /// read without bounds checks; every read is behind a `pos < end` test.
    struct Parser {
        let base: UnsafePointer<UInt8>
        let end: Int
        let maxDepth: Int
        var pos: Int
        /// The top level's members or elements.
        var spans: [JSONSpan] = []

        init(_ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, maxDepth: Int) {
            precondition(range.lowerBound >= 0 && range.upperBound <= buffer.count)
            // An empty array may have no storage: any address will do, nothing is read.
            base = buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!
            end = range.upperBound
            pos = range.lowerBound
            self.maxDepth = maxDepth
        }

        @inline(__always) func at(_ i: Int) -> UInt8 { base[i] }
        /// The eight bytes at `i` as a little-endian word (the caller has checked `i + 8 <= end`).
        @inline(__always) func word(at i: Int) -> UInt64 {
            UInt64(littleEndian: UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self))
        }

        func trailing() -> JSONError { JSONError("unexpected bytes after the JSON value at offset \(pos)") }

        @inline(__always)
        mutating func skipSpace() {
            while pos < end {
                let c = base[pos]
                if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { break }
            }
        }

        mutating func expect(_ c: UInt8) throws {
            skipSpace()
            guard pos < end, base[pos] == c else {
                throw JSONError("expected '\(Character(Unicode.Scalar(c)))' at offset \(pos)")
            }
            pos += 1
        }

        /// An object at `pos`; its members go to `spans` at the top level (depth 1), else are only validated.
        mutating func object(depth: Int) throws {
            guard depth <= maxDepth else { throw JSONError("JSON nested deeper than \(maxDepth)") }
            try expect(UInt8(ascii: "{"))
            skipSpace()
            if pos < end, base[pos] == UInt8(ascii: "}") { pos += 1; return }
            while true {
                skipSpace()
                guard pos < end, base[pos] == UInt8(ascii: "\"") else {
                    throw JSONError("expected a member name at offset \(pos)")
                }
                let keyStart = pos
                let escaped = try string()
                let keyEnd = pos
                try expect(UInt8(ascii: ":"))
                skipSpace()
                let valueStart = pos
                let kind = try value(depth: depth)
                if depth == 1 {
                    spans.append(
                        JSONSpan(
                            nameStart: keyStart, nameEnd: keyEnd, valueStart: valueStart, valueEnd: pos, kind: kind,
                            nameEscaped: escaped))
                }
                skipSpace()
                guard pos < end else { throw JSONError("unterminated object") }
                if base[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if base[pos] == UInt8(ascii: "}") { pos += 1; return }
                throw JSONError("expected ',' or '}' at offset \(pos)")
            }
        }

        /// One value at `pos` (after white space), validated; its kind.
        mutating func value(depth: Int) throws -> JSONKind {
            skipSpace()
            guard pos < end else { throw JSONError("unexpected end of JSON") }
            switch base[pos] {
            case UInt8(ascii: "{"): try object(depth: depth + 1); return .object
            case UInt8(ascii: "["): try array(depth: depth + 1); return .array
            case UInt8(ascii: "\""): _ = try string(); return .string
            case UInt8(ascii: "t"): try literal("true"); return .bool
            case UInt8(ascii: "f"): try literal("false"); return .bool
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: try number(); return .number
            }
        }

        /// An array at `pos`; its elements go to `spans` at the top level (depth 1), else are only validated.
        mutating func array(depth: Int) throws {
            guard depth <= maxDepth else { throw JSONError("JSON nested deeper than \(maxDepth)") }
            pos += 1
            skipSpace()
            if pos < end, base[pos] == UInt8(ascii: "]") { pos += 1; return }
            while true {
                skipSpace()
                let start = pos
                let kind = try value(depth: depth)
                if depth == 1 { spans.append(JSONSpan(valueStart: start, valueEnd: pos, kind: kind)) }
                skipSpace()
                guard pos < end else { throw JSONError("unterminated array") }
                if base[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if base[pos] == UInt8(ascii: "]") { pos += 1; return }
                throw JSONError("expected ',' or ']' at offset \(pos)")
            }
        }

        mutating func literal(_ word: StaticString) throws {
            guard skimLiteral(word) else { throw JSONError("invalid literal at offset \(pos)") }
        }

        /// Moves `pos` to the first quote, backslash or control character at or after it (or to `end`):
        /// eight bytes at a time while none is one, then byte by byte. The word that holds one goes
        /// straight to its first: the lowest flagged byte is exact (a false flag can only sit above a true
        /// one), so the byte loop starts on it.
        @inline(__always)
        mutating func skipPlainBytes() {
            while pos + 8 <= end {
                let found = Self.specialBytes(UnsafeRawPointer(base + pos).loadUnaligned(as: UInt64.self))
                if found == 0 { pos += 8; continue }
                pos += found.trailingZeroBitCount >> 3
                break
            }
            while pos < end {
                let c = base[pos]
                if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 { break }
                pos += 1
            }
        }

        /// A string at `pos` (its opening quote); whether it holds an escape.
        mutating func string() throws -> Bool {
            pos += 1
            var escaped = false
            while true {
                skipPlainBytes()
                guard pos < end else { break }
                let c = base[pos]
                if c == UInt8(ascii: "\"") { pos += 1; return escaped }
                if c < 0x20 { throw JSONError("control character in string at offset \(pos)") }
                // a backslash
                guard pos + 1 < end else { break }
                escaped = true
                let e = base[pos + 1]
                if e == UInt8(ascii: "u") {
                    guard pos + 6 <= end, isHex(base[pos + 2]), isHex(base[pos + 3]), isHex(base[pos + 4]),
                        isHex(base[pos + 5])
                    else {
                        throw JSONError("invalid \\u escape at offset \(pos)")
                    }
                    pos += 6
                    continue
                }
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    pos += 2
                default: throw JSONError("invalid escape at offset \(pos)")
                }
            }
            throw JSONError("unterminated string")
        }

        // MARK: Validation without errors (the app event's one-pass scan)
        //
        // The same grammar as `value`, `object`, `array`, `string` and `number` above, with the same depth
        // rule, answering nil (or false) where those throw: the event scan only needs to know whether the
        // message is valid, and leaves every invalid one to the full path, which names the error. Without
        // the errors, strings and numbers are read inline and a container is one loop (no `throws` call per
        // member, no `expect`): the `data` object of a fixed-load event cost ~770 instructions through
        // `value`, ~40% of that here. `JSONSkimTests` holds them to the throwing reader's answers (accepted,
        // kind, end) over generated, cut and mutated texts.

        /// A string at `pos` (its opening quote), as `string()` reads it: whether it holds an escape, nil
        /// where `string()` throws.
        @inline(__always)
        mutating func skimString() -> Bool? {
            pos += 1
            var escaped = false
            while true {
                skipPlainBytes()
                guard pos < end else { return nil }
                let c = base[pos]
                if c == UInt8(ascii: "\"") { pos += 1; return escaped }
                guard c == UInt8(ascii: "\\"), pos + 1 < end else { return nil }  // a control character
                escaped = true
                switch base[pos + 1] {
                case UInt8(ascii: "u"):
                    guard pos + 6 <= end, isHex(base[pos + 2]), isHex(base[pos + 3]), isHex(base[pos + 4]),
                        isHex(base[pos + 5])
                    else { return nil }
                    pos += 6
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    pos += 2
                default: return nil
                }
            }
        }

        /// A number at `pos`, as `number()` reads it; false where it throws.
        @inline(__always)
        mutating func skimNumber() -> Bool {
            if base[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < end else { return false }
            if base[pos] == UInt8(ascii: "0") {
                pos += 1
            } else if digits() == 0 {
                return false
            }
            guard pos < end else { return true }
            if base[pos] == UInt8(ascii: ".") {
                pos += 1
                guard digits() > 0 else { return false }
                guard pos < end else { return true }
            }
            if base[pos] == UInt8(ascii: "e") || base[pos] == UInt8(ascii: "E") {
                pos += 1
                if pos < end, base[pos] == UInt8(ascii: "+") || base[pos] == UInt8(ascii: "-") { pos += 1 }
                guard digits() > 0 else { return false }
            }
            return true
        }

        /// `true`, `false` or `null` at `pos`, as `literal(_:)` reads it.
        @inline(__always)
        mutating func skimLiteral(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard pos + n <= end, memcmp(base + pos, word.utf8Start, n) == 0 else { return false }
            pos += n
            return true
        }

        /// One value at `pos` (after white space), as `value(depth:)` reads it: its kind, nil where it throws.
        mutating func skimValue(depth: Int) -> JSONKind? {
            skipSpace()
            guard pos < end else { return nil }
            switch base[pos] {
            case UInt8(ascii: "\""): return skimString() == nil ? nil : .string
            case UInt8(ascii: "{"): return skimContainer(depth: depth + 1, close: UInt8(ascii: "}")) ? .object : nil
            case UInt8(ascii: "["): return skimContainer(depth: depth + 1, close: UInt8(ascii: "]")) ? .array : nil
            case UInt8(ascii: "t"): return skimLiteral("true") ? .bool : nil
            case UInt8(ascii: "f"): return skimLiteral("false") ? .bool : nil
            case UInt8(ascii: "n"): return skimLiteral("null") ? .null : nil
            default: return skimNumber() ? .number : nil
            }
        }

        /// An object (`close` is '}') or an array (']') at `pos`, as `object(depth:)` or `array(depth:)`
        /// reads it below the top level; false where they throw. Members' and elements' values that are
        /// strings or numbers are read here, without a call.
        mutating func skimContainer(depth: Int, close: UInt8) -> Bool {
            guard depth <= maxDepth else { return false }
            let isObject = close == UInt8(ascii: "}")
            pos += 1
            skipSpace()
            guard pos < end else { return false }
            if base[pos] == close { pos += 1; return true }
            while true {
                if isObject {
                    skipSpace()
                    guard pos < end, base[pos] == UInt8(ascii: "\""), skimString() != nil else { return false }
                    skipSpace()
                    guard pos < end, base[pos] == UInt8(ascii: ":") else { return false }
                    pos += 1
                }
                skipSpace()
                guard pos < end else { return false }
                let c = base[pos]
                if c == UInt8(ascii: "\"") {
                    guard skimString() != nil else { return false }
                } else if c == UInt8(ascii: "-") || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) {
                    guard skimNumber() else { return false }
                } else {
                    guard skimValue(depth: depth) != nil else { return false }
                }
                skipSpace()
                guard pos < end else { return false }
                let next = base[pos]
                pos += 1
                if next == UInt8(ascii: ",") { continue }
                return next == close
            }
        }

        /// Whether one of the 8 bytes of `w` is '"', '\\' or below 0x20 (exact: each test is the
        /// classic "has a zero byte" test, which has no false answer for the word as a whole).
        @inline(__always)
        static func hasSpecialByte(_ w: UInt64) -> Bool { specialBytes(w) != 0 }

        /// The high bit of each byte of `w` (little-endian) that may be '"', '\\' or below 0x20; the lowest
        /// one set is the first such byte (a borrow only flags bytes above a true match), 0 for none.
        @inline(__always)
        static func specialBytes(_ w: UInt64) -> UInt64 {
            let quote = w ^ 0x2222_2222_2222_2222
            let backslash = w ^ 0x5C5C_5C5C_5C5C_5C5C
            // A zero byte of x: (x - 1) borrows into its high bit while x's own high bit is clear; a byte
            // below 0x20: the same with 0x20.
            let found =
                ((quote &- 0x0101_0101_0101_0101) & ~quote) | ((backslash &- 0x0101_0101_0101_0101) & ~backslash)
                | ((w &- 0x2020_2020_2020_2020) & ~w)
            return found & 0x8080_8080_8080_8080
        }

        @inline(__always)
        func isHex(_ c: UInt8) -> Bool {
            (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)
        }

        @inline(__always)
        mutating func digits() -> Int {
            let s = pos
            while pos < end, base[pos] >= 48, base[pos] <= 57 { pos += 1 }
            return pos - s
        }

        mutating func number() throws {
            let start = pos
            if pos < end, base[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < end else { throw JSONError("invalid number at offset \(start)") }
            if base[pos] == UInt8(ascii: "0") {
                pos += 1
            } else if digits() == 0 {
                throw JSONError("invalid value at offset \(start)")
            }
            if pos < end, base[pos] == UInt8(ascii: ".") {
                pos += 1
                guard digits() > 0 else { throw JSONError("invalid number at offset \(start)") }
            }
            if pos < end, base[pos] == UInt8(ascii: "e") || base[pos] == UInt8(ascii: "E") {
                pos += 1
                if pos < end, base[pos] == UInt8(ascii: "+") || base[pos] == UInt8(ascii: "-") { pos += 1 }
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

/// The decimal digits of an integer (with its sign), rendered once so their count is known before they
/// are copied (a frame's length goes in its header, ahead of the payload).
struct DecimalDigits {
    private var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: a sign and up to 20 digits
    let count: Int

    init(_ v: Int) {
        var m = v.magnitude
        var n = 0
        Swift.withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[23 - n] = UInt8(truncatingIfNeeded: 48 + m % 10)
                m /= 10
                n += 1
            } while m > 0
            if v < 0 { d[23 - n] = UInt8(ascii: "-"); n += 1 }
        }
        count = n
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        Swift.withUnsafeBytes(of: digits) { body(UnsafeRawBufferPointer(rebasing: $0[(24 - count)...])) }
    }
}

extension Array where Element == UInt8 {
    /// Appends the decimal digits of `v` (no intermediate String).
    public mutating func appendDecimal(_ v: Int) {
        DecimalDigits(v).withBytes { append(contentsOf: $0) }
    }
}
