extension ClientMessage {
    /// An app event read in one pass, without the object's member list: the message's top-level members
    /// are walked by the same validating `JSONReader.Parser` as `JSONReader.readObject`, and only the
    /// offsets of the first `type`, `name`, `data`, `durable` and `id` are kept (in locals; no array, no
    /// `JSONObject`, no lookups afterwards). Values are checked by the parser's `skim` functions: the same
    /// grammar without the errors (whatever they refuse, the full path reads and names). The full path cost
    /// ~3,600 instructions per event at fixed load, about a quarter of the hub's user space per message;
    /// this one about half of that.
    ///
    /// It answers only for an event the full path (`readObject` + `parseEvent`) would accept, and with the
    /// same event; for anything else it answers nil and the full path reads the message, refusals and their
    /// texts included: a JSON error, a type other than `"event"` as written, a member name written with an
    /// escape (the full path decodes those before comparing), a field the full path would refuse or would
    /// decode (a name written with an escape). A message whose `type` is not `"event"` is left as soon as
    /// that member is read, so other messages pay for little more than reading their first member twice.
    /// `ClientMessageFastPathTests` and `FuzzMessages` hold the two paths to the same answers.
    static func scanEvent(_ bytes: [UInt8], limits: MessageLimits) -> ClientMessage? {
        guard bytes.count <= limits.maxEventBytes, limits.maxJSONDepth >= 1 else { return nil }
        let found: EventMembers? = bytes.withUnsafeBufferPointer { buffer in
            var p = JSONReader.Parser(buffer, 0..<buffer.count, maxDepth: limits.maxJSONDepth)
            return EventMembers.scan(&p)
        }
        guard let found, let nameRange = found.name else { return nil }
        let name = bytes.withUnsafeBufferPointer {
            String(decoding: UnsafeBufferPointer(rebasing: $0[nameRange]), as: UTF8.self)
        }
        var ref: String?
        if let id = found.id {
            ref = bytes.withUnsafeBufferPointer { JSONReader.decodeString(UnsafeBufferPointer(rebasing: $0[id])) }
        }
        if found.durable && ref == nil { return nil }
        let data = found.data.map { bytes[$0] } ?? ArraySlice(Array("{}".utf8))
        return .event(AppEvent(name: name, data: data, durable: found.durable, id: ref))
    }

    /// What an event's scan keeps: the members the hub reads, each the first of its name. (Offsets only: a
    /// struct of plain values is copied and dropped without reference counting.)
    private struct EventMembers {
        var sawType = false
        /// The validated event name, inside its quotes (nil: absent).
        var name: Range<Int>?
        /// `data`'s bytes when it is an object (nil: absent or null, which read as `{}`).
        var data: Range<Int>?
        var durable = false
        /// `id`'s string with its quotes, when it is a string (any other kind gives no `id`, as in the full path).
        var id: Range<Int>?
        var seen: UInt8 = 0
        static let nameBit: UInt8 = 1, dataBit: UInt8 = 2, durableBit: UInt8 = 4, idBit: UInt8 = 8

        /// The top-level object at the parser's position, as `Parser.object(depth: 1)` reads it plus the
        /// trailing white space `readObject` allows; nil for whatever the full path must read.
        static func scan(_ p: inout JSONReader.Parser) -> EventMembers? {
            var m = EventMembers()
            p.skipSpace()
            guard p.pos < p.end, p.at(p.pos) == UInt8(ascii: "{") else { return nil }
            p.pos += 1
            p.skipSpace()
            if p.pos < p.end, p.at(p.pos) == UInt8(ascii: "}") { return nil }  // no type
            while true {
                p.skipSpace()
                guard p.pos < p.end, p.at(p.pos) == UInt8(ascii: "\"") else { return nil }
                let keyStart = p.pos
                // `"type"`, `"name"` and `"data"` as written by every client: one word compared, where the
                // string scan cost ~60 instructions a member. (Four letters between quotes are a string
                // without escapes that ends there: what `skimString` would answer.)
                if p.pos + 8 <= p.end, EventScanWords.isCommonKey(p.word(at: p.pos)) {
                    p.pos += 6
                } else {
                    guard let escaped = p.skimString(), !escaped else { return nil }
                }
                let key = UnsafeBufferPointer(start: p.base + keyStart + 1, count: p.pos - keyStart - 2)
                p.skipSpace()
                guard p.pos < p.end, p.at(p.pos) == UInt8(ascii: ":") else { return nil }
                p.pos += 1
                p.skipSpace()
                let valueStart = p.pos
                guard p.pos < p.end else { return nil }
                // A string value is read here to learn whether it holds an escape (`skimValue` reads it the same way).
                let kind: JSONKind
                var valueEscaped = false
                if p.pos + 8 <= p.end, p.word(at: p.pos) & EventScanWords.sevenBytes == EventScanWords.event {
                    // `"event"`, the type's value (as above: a plain string that ends there).
                    kind = .string
                    p.pos += 7
                } else if p.at(p.pos) == UInt8(ascii: "\"") {
                    guard let e = p.skimString() else { return nil }
                    (kind, valueEscaped) = (.string, e)
                } else {
                    guard let k = p.skimValue(depth: 1) else { return nil }
                    kind = k
                }
                let value = valueStart..<p.pos
                guard m.take(key, kind, value, escaped: valueEscaped, p.base) else { return nil }
                p.skipSpace()
                guard p.pos < p.end else { return nil }
                if p.at(p.pos) == UInt8(ascii: ",") { p.pos += 1; continue }
                if p.at(p.pos) == UInt8(ascii: "}") { p.pos += 1; break }
                return nil
            }
            p.skipSpace()
            guard p.pos == p.end, m.sawType else { return nil }
            return m
        }

        /// Keeps one member if it is the first of a name the hub reads; false when the full path must read
        /// the message (a type other than `"event"`, or a value of a kind or form it refuses).
        @inline(__always)
        mutating func take(
            _ key: UnsafeBufferPointer<UInt8>, _ kind: JSONKind, _ value: Range<Int>, escaped: Bool,
            _ base: UnsafePointer<UInt8>
        ) -> Bool {
            switch key.count {
            case 4:
                if Self.equal(key, "type") {
                    if sawType { return true }
                    sawType = true
                    // Exactly `"event"` as written: the full path's `isString(written:)`.
                    return kind == .string && value.count == 7 && Self.equal(Self.inner(base, value), "event")
                }
                if Self.equal(key, "name") {
                    if seen & Self.nameBit != 0 { return true }
                    seen |= Self.nameBit
                    // Null, missing, not a string, too long or not of the event-name characters: refused by
                    // the full path; written with an escape: decoded by it.
                    guard kind == .string, !escaped else { return false }
                    guard ClientMessage.isValidEventName(bytes: Self.inner(base, value)) else { return false }
                    name = value.lowerBound + 1..<value.upperBound - 1
                    return true
                }
                if Self.equal(key, "data") {
                    if seen & Self.dataBit != 0 { return true }
                    seen |= Self.dataBit
                    if kind == .object { data = value; return true }
                    return kind == .null
                }
                return true
            case 7:
                guard Self.equal(key, "durable"), seen & Self.durableBit == 0 else { return true }
                seen |= Self.durableBit
                if kind == .bool { durable = base[value.lowerBound] == UInt8(ascii: "t"); return true }
                return kind == .null
            case 2:
                guard Self.equal(key, "id"), seen & Self.idBit == 0 else { return true }
                seen |= Self.idBit
                if kind == .string { id = value }
                return true
            default:
                return true
            }
        }

        /// A string value's bytes inside its quotes.
        @inline(__always)
        private static func inner(_ base: UnsafePointer<UInt8>, _ r: Range<Int>) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(start: base + r.lowerBound + 1, count: r.count - 2)
        }

        @inline(__always)
        private static func equal(_ a: UnsafeBufferPointer<UInt8>, _ b: StaticString) -> Bool {
            guard a.count == b.utf8CodeUnitCount else { return false }
            let s = b.utf8Start
            for i in 0..<a.count where a[i] != s[i] { return false }
            return true
        }
    }
}

/// The app event's commonest JSON strings as little-endian words (quotes included), for the scan's one-load
/// compare. `ClientMessageFastPathTests.testTheScansWordsAreTheirStrings` checks each against its text.
enum EventScanWords {
    static let sixBytes: UInt64 = 0xFFFF_FFFF_FFFF
    static let sevenBytes: UInt64 = 0xFF_FFFF_FFFF_FFFF
    /// `"type"`, `"name"`, `"data"`.
    static let type: UInt64 = 0x2265_7079_7422
    static let name: UInt64 = 0x2265_6D61_6E22
    static let data: UInt64 = 0x2261_7461_6422
    /// `"event"`.
    static let event: UInt64 = 0x2274_6E65_7665_22

    /// Whether the word's first six bytes are `"type"`, `"name"` or `"data"`.
    @inline(__always)
    static func isCommonKey(_ w: UInt64) -> Bool {
        let six = w & sixBytes
        return six == type || six == name || six == data
    }
}
