#if canImport(Glibc)
    import Glibc
#endif
import WebSocket

extension ServerMessage {
    /// The frame of an ephemeral app event: the same bytes as
    /// `ServerMessage.event(body: EventBody.event(name:from:id:data:)).frame`, written once, header and
    /// all, into the chunk every recipient shares (one chunk and one copy of `data`, where it lies in the
    /// parsed message: this runs once per message on the fan-out path).
    public static func eventFrame(name: String, from: String, id: String?, data: ArraySlice<UInt8>) -> Chunk {
        var name = name, from = from
        return name.withUTF8 { n in
            from.withUTF8 { f in
                guard var id else { return eventFrame(n, f, nil, data) }
                return id.withUTF8 { eventFrame(n, f, $0, data) }
            }
        }
    }

    private static func eventFrame(
        _ name: UnsafeBufferPointer<UInt8>, _ from: UnsafeBufferPointer<UInt8>, _ id: UnsafeBufferPointer<UInt8>?,
        _ data: ArraySlice<UInt8>
    ) -> Chunk {
        // `name` is validated (a-z, 0-9, _ . : -), the member id is the hub's, and a client's `id` is
        // usually plain: a string with nothing to escape is copied as it is, and any other goes the
        // writer's way.
        guard plain(name), plain(from), id.map(plain) ?? true else { return escapedEventFrame(name, from, id, data) }
        var length = eventHead.utf8CodeUnitCount + name.count + 2 + eventFrom.utf8CodeUnitCount + from.count + 2
        if let id { length += eventId.utf8CodeUnitCount + id.count + 2 }
        length += eventData.utf8CodeUnitCount + data.count + 1
        let h = FrameEncoder.headerLength(payload: length, masked: false)
        let chunk = Chunk(capacity: h + length)
        let start = chunk.extend(by: h + length)
        _ = FrameEncoder.writeHeader(start, opcode: .text, length: length)
        var p = start + h
        func put(_ bytes: UnsafeRawBufferPointer) {
            if let src = bytes.baseAddress { p.copyMemory(from: src, byteCount: bytes.count) }
            p += bytes.count
        }
        func quoted(_ s: UnsafeBufferPointer<UInt8>) {
            p.storeBytes(of: UInt8(ascii: "\""), as: UInt8.self)
            p += 1
            put(UnsafeRawBufferPointer(s))
            p.storeBytes(of: UInt8(ascii: "\""), as: UInt8.self)
            p += 1
        }
        put(eventHead.bytes)
        quoted(name)
        put(eventFrom.bytes)
        quoted(from)
        if let id {
            put(eventId.bytes)
            quoted(id)
        }
        put(eventData.bytes)
        data.withUnsafeBytes { put($0) }
        p.storeBytes(of: UInt8(ascii: "}"), as: UInt8.self)
        assert(p + 1 == start + h + length)
        return chunk
    }

    /// Whether a JSON string of these bytes is the bytes themselves in quotes (no quote, backslash or
    /// control character to escape).
    private static func plain(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        for b in s where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { return false }
        return true
    }

    /// The same frame for strings that need escaping, through the writer.
    private static func escapedEventFrame(
        _ name: UnsafeBufferPointer<UInt8>, _ from: UnsafeBufferPointer<UInt8>, _ id: UnsafeBufferPointer<UInt8>?,
        _ data: ArraySlice<UInt8>
    ) -> Chunk {
        var w = JSONWriter(capacity: data.count + 112)
        w.bytes.append(contentsOf: Self.eventHead.bytes)
        w.appendEscaped(name)
        w.bytes.append(contentsOf: Self.eventFrom.bytes)
        w.appendEscaped(from)
        if let id {
            w.bytes.append(contentsOf: Self.eventId.bytes)
            w.appendEscaped(id)
        }
        w.bytes.append(contentsOf: Self.eventData.bytes)
        w.bytes.append(contentsOf: data)
        w.bytes.append(UInt8(ascii: "}"))
        return Chunk.text(w.bytes)
    }

    private static let eventHead: StaticString = #"{"type":"event","name":"#
    private static let eventFrom: StaticString = #","from":"#
    private static let eventId: StaticString = #","id":"#
    private static let eventData: StaticString = #","data":"#
}

extension StaticString {
    /// The text's UTF-8 bytes.
    fileprivate var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: utf8Start, count: utf8CodeUnitCount) }
}
