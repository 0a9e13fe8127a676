/// The Redis protocol (RESP2, and the RESP3 types a server may send, pushes included), written for this
/// project: an incremental reply parser (bytes in, replies out) and a command encoder.
///
/// The parser keeps its state between calls: an aggregate's header is consumed as soon as it is read, its
/// items as they complete, so a big reply arriving in many reads is scanned once. Everything it reads is
/// checked: a malformed or hostile stream is a `RESPParser.Failure` (the connection is then dropped),
/// never a trap. Limits: a bulk string is at most 512 MiB (Redis's own `proto-max-bulk-len`), an
/// aggregate at most 16 Mi items, nesting at most 32 deep, a simple line (status, error, number) at
/// most 1 MiB.
public struct RESPParser {
    public static let maxBulk = 512 << 20
    public static let maxCount = 1 << 24
    public static let maxDepth = 32
    public static let maxLine = 1 << 20

    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// One reply: `push` is a RESP3 push (`>`), which answers no command.
    public struct Parsed: Equatable {
        public let reply: RedisReply
        public let push: Bool
    }

    /// An aggregate being filled: its items so far and how many are still to come.
    private struct Frame {
        var items: [RedisReply]
        var remaining: Int
        let push: Bool
    }

    private var buffer: [UInt8] = []
    /// Where the next unread byte is in `buffer`.
    private var position = 0
    /// The next parse needs at least this many bytes in `buffer` (a bulk string's body): until then
    /// appended bytes are only stored.
    private var wanted = 0
    private var stack: [Frame] = []
    /// After a failure every call fails again (the stream cannot be resynchronised).
    private var failed: Failure?

    public init() {}

    /// Bytes held and not yet parsed into a whole reply (a partial one's items excluded).
    public var buffered: Int { buffer.count - position }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if position > 0 && position == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            position = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// The next whole reply, or nil when more bytes are needed.
    public mutating func next() throws -> Parsed? {
        if let failed { throw failed }
        do {
            let parsed = try parse()
            compact()
            return parsed
        } catch let e as Failure {
            failed = e
            buffer = []
            position = 0
            stack = []
            throw e
        }
    }

    /// `*3\r\n$7\r\nmessage\r\n$`: how a RESP2 publication on a subscribed link starts; a sharded one
    /// (`SPUBLISH`, Redis Cluster) starts `*3\r\n$8\r\nsmessage\r\n$`.
    private static let messageHead = Array("*3\r\n$7\r\nmessage\r\n$".utf8)
    private static let smessageHead = Array("*3\r\n$8\r\nsmessage\r\n$".utf8)

    /// A RESP2 pub/sub `message` (or sharded `smessage`) whole at the front of the buffer, taken without
    /// building a reply tree: its channel and payload. Nil (nothing consumed) when the next reply is
    /// anything else, is not all there yet, or breaks a rule: `next` then reads it (and refuses what it
    /// must). Only for a subscribed link, where such an array is a push and never a command's reply.
    public mutating func nextMessage() -> (channel: [UInt8], payload: [UInt8])? {
        guard failed == nil, stack.isEmpty, buffer.count - position > Self.smessageHead.count + 8 else { return nil }
        let at = position
        let found = buffer.withUnsafeBufferPointer { b -> (channel: [UInt8], payload: [UInt8], end: Int)? in
            let head = b[at + 8] == UInt8(ascii: "s") ? Self.smessageHead : Self.messageHead
            for i in 0..<head.count where b[at + i] != head[i] { return nil }
            guard let channel = Self.bulk(b, at: at + head.count),
                channel.end < b.count, b[channel.end] == UInt8(ascii: "$"),
                let payload = Self.bulk(b, at: channel.end + 1)
            else { return nil }
            return (Array(b[channel.body]), Array(b[payload.body]), payload.end)
        }
        guard let found else { return nil }
        position = found.end
        wanted = 0
        compact()
        return (found.channel, found.payload)
    }

    /// A bulk string's `<length>\r\n<body>\r\n` from `at` (just past its `$`): its body and where the
    /// next element starts; nil if it is not all there or not strictly well formed.
    private static func bulk(_ b: UnsafeBufferPointer<UInt8>, at: Int) -> (body: Range<Int>, end: Int)? {
        var i = at
        var n = 0
        while i < b.count, i - at < 10, b[i] >= 48, b[i] <= 57 {
            n = n * 10 + Int(b[i] - 48)
            i += 1
        }
        guard i > at, n <= maxBulk, i + 1 < b.count, b[i] == 13, b[i + 1] == 10 else { return nil }
        let start = i + 2
        guard b.count - start >= n + 2, b[start + n] == 13, b[start + n + 1] == 10 else { return nil }
        return (start..<(start + n), start + n + 2)
    }

    private mutating func compact() {
        if position == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            position = 0
        } else if position >= 64 * 1024 && position * 2 >= buffer.count {
            buffer.removeFirst(position)
            wanted = max(0, wanted - position)
            position = 0
        }
    }

    private mutating func parse() throws -> Parsed? {
        guard buffer.count >= wanted else { return nil }
        wanted = 0
        while true {
            guard let (value, opened) = try element() else { return nil }
            var done: RedisReply
            var push = false
            if let opened {
                guard stack.count < Self.maxDepth else { throw Failure(description: "RESP nesting deeper than 32") }
                stack.append(opened)
                continue
            }
            done = value
            // Complete the aggregates this value finishes.
            while var top = stack.popLast() {
                top.items.append(done)
                top.remaining -= 1
                if top.remaining > 0 {
                    stack.append(top)
                    break
                }
                done = .array(top.items)
                push = top.push
            }
            if stack.isEmpty { return Parsed(reply: done, push: push) }
        }
    }

    /// One element at `position`: a value, or the frame of an aggregate whose items follow (nil when
    /// the element is not all there yet; nothing is consumed then).
    private mutating func element() throws -> (RedisReply, Frame?)? {
        guard position < buffer.count else { return nil }
        guard let end = try lineEnd(from: position + 1) else {
            if buffer.count - position > Self.maxLine { throw Failure(description: "a RESP line longer than 1 MiB") }
            return nil
        }
        let type = buffer[position]
        let line = buffer[(position + 1)..<end]
        let next = end + 2
        switch type {
        case UInt8(ascii: "+"):
            position = next
            return (.status(String(decoding: line, as: UTF8.self)), nil)
        case UInt8(ascii: "-"):
            position = next
            return (.error(String(decoding: line, as: UTF8.self)), nil)
        case UInt8(ascii: ":"):
            let n = try Self.number(line)
            position = next
            return (.integer(n), nil)
        case UInt8(ascii: "_"):
            guard line.isEmpty else { throw Failure(description: "a RESP null with a body") }
            position = next
            return (.null, nil)
        case UInt8(ascii: "#"):
            guard line.count == 1, line.first == UInt8(ascii: "t") || line.first == UInt8(ascii: "f") else {
                throw Failure(description: "a RESP boolean that is not t or f")
            }
            position = next
            return (.integer(line.first == UInt8(ascii: "t") ? 1 : 0), nil)
        case UInt8(ascii: ","), UInt8(ascii: "("):
            // Doubles and big numbers: kept as their text (nothing the hub sends asks for them).
            guard !line.isEmpty, line.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw Failure(description: "a RESP number with a space or a control character")
            }
            position = next
            return (.string(Array(line)), nil)
        case UInt8(ascii: "$"), UInt8(ascii: "="), UInt8(ascii: "!"):
            let n = try Self.number(line)
            if n == -1 && type == UInt8(ascii: "$") {
                position = next
                return (.null, nil)
            }
            guard n >= 0, n <= Self.maxBulk else {
                throw Failure(description: "a RESP bulk length out of range (\(n); at most 512 MiB)")
            }
            guard buffer.count - next >= n + 2 else {
                wanted = next + n + 2
                return nil
            }
            guard buffer[next + n] == 13, buffer[next + n + 1] == 10 else {
                throw Failure(description: "a RESP bulk string not ended by CRLF")
            }
            var body = Array(buffer[next..<(next + n)])
            position = next + n + 2
            if type == UInt8(ascii: "!") { return (.error(String(decoding: body, as: UTF8.self)), nil) }
            if type == UInt8(ascii: "=") {
                // A verbatim string: a three-letter format and a colon, then the text.
                guard n >= 4, body[3] == UInt8(ascii: ":") else {
                    throw Failure(description: "a RESP verbatim string without its format")
                }
                body.removeFirst(4)
            }
            return (.string(body), nil)
        case UInt8(ascii: "*"), UInt8(ascii: ">"), UInt8(ascii: "~"), UInt8(ascii: "%"):
            let n = try Self.number(line)
            if n == -1 && type == UInt8(ascii: "*") {
                position = next
                return (.null, nil)
            }
            guard n >= 0, n <= Self.maxCount else {
                throw Failure(description: "a RESP aggregate count out of range (\(n); at most 16 Mi)")
            }
            position = next
            // A map's entries are its keys and values, in order.
            let count = type == UInt8(ascii: "%") ? n * 2 : n
            if count == 0 { return (.array([]), nil) }
            // Storage grows with the items that arrive, never with what a header claims.
            var items: [RedisReply] = []
            items.reserveCapacity(min(count, 1024))
            return (.null, Frame(items: items, remaining: count, push: type == UInt8(ascii: ">")))
        default:
            throw Failure(description: "not a RESP reply (type byte \(type))")
        }
    }

    /// The index of the CR of the first CRLF at or after `from` (a CR not followed by LF is refused).
    private func lineEnd(from: Int) throws -> Int? {
        var i = from
        let limit = min(buffer.count, from + Self.maxLine + 2)
        while i < limit {
            let b = buffer[i]
            if b == 13 {
                guard i + 1 < buffer.count else { return nil }
                guard buffer[i + 1] == 10 else { throw Failure(description: "a RESP line with a lone CR") }
                return i
            }
            i += 1
        }
        return nil
    }

    /// A decimal integer, strictly: an optional minus and 1-19 digits, no overflow.
    static func number(_ line: ArraySlice<UInt8>) throws -> Int {
        var digits = line[...]
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.count <= 19 else { throw Failure(description: "a RESP number out of range") }
        var n = 0
        for d in digits {
            guard d >= 48, d <= 57 else { throw Failure(description: "a RESP number with a non-digit") }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int(d - 48))
            guard !o1, !o2 else { throw Failure(description: "a RESP number out of range") }
            n = s
        }
        return negative ? -n : n
    }
}

/// Commands as Redis reads them: an array of bulk strings (binary-safe).
public enum RESPCommand {
    /// The encoded length of `args`.
    public static func size(_ args: [[UInt8]]) -> Int {
        var n = 1 + digits(args.count) + 2
        for a in args { n += 1 + digits(a.count) + 2 + a.count + 2 }
        return n
    }

    /// Writes `args` at `out`, which has room for `size(args)` bytes.
    public static func write(_ args: [[UInt8]], to out: UnsafeMutableRawPointer) {
        var p = out.assumingMemoryBound(to: UInt8.self)
        func put(_ b: UInt8) {
            p.pointee = b
            p += 1
        }
        func header(_ type: UInt8, _ n: Int) {
            put(type)
            var divisor = 1
            while divisor <= n / 10 { divisor *= 10 }
            var rest = n
            while divisor > 0 {
                put(UInt8(48 + rest / divisor))
                rest %= divisor
                divisor /= 10
            }
            put(13)
            put(10)
        }
        header(UInt8(ascii: "*"), args.count)
        for a in args {
            header(UInt8(ascii: "$"), a.count)
            a.withUnsafeBufferPointer { src in
                if let base = src.baseAddress { p.update(from: base, count: a.count) }
            }
            p += a.count
            put(13)
            put(10)
        }
    }

    public static func encode(_ args: [[UInt8]]) -> [UInt8] {
        let n = size(args)
        return [UInt8](unsafeUninitializedCapacity: n) { buf, count in
            write(args, to: UnsafeMutableRawPointer(buf.baseAddress!))
            count = n
        }
    }

    static func digits(_ n: Int) -> Int {
        var d = 1
        var v = n
        while v >= 10 {
            v /= 10
            d += 1
        }
        return d
    }
}
