import WebSocket

extension ServerMessage {
    /// The frame of an ephemeral app event: the same bytes as
    /// `ServerMessage.event(body: EventBody.event(name:from:id:data:)).frame`, written in one buffer from
    /// the client's `data` where it lies in the parsed message (one copy and two allocations per event
    /// instead of four copies and five allocations: this runs once per message on the fan-out path).
    public static func eventFrame(name: String, from: String, id: String?, data: ArraySlice<UInt8>) -> Chunk {
        // The fixed parts are appended as they are (escaping the names cost ~200 instructions each); the
        // values go through `appendString`. `name` is validated (a-z, 0-9, _ . : -) but escaped all the same.
        var w = JSONWriter(capacity: data.count + 112)
        w.bytes.append(contentsOf: Self.eventHead)
        w.appendString(name)
        w.bytes.append(contentsOf: Self.eventFrom)
        w.appendString(from)
        if let id {
            w.bytes.append(contentsOf: Self.eventId)
            w.appendString(id)
        }
        w.bytes.append(contentsOf: Self.eventData)
        w.bytes.append(contentsOf: data)
        w.bytes.append(UInt8(ascii: "}"))
        return Chunk.text(w.bytes)
    }

    private static let eventHead: [UInt8] = Array(#"{"type":"event","name":"#.utf8)
    private static let eventFrom: [UInt8] = Array(#","from":"#.utf8)
    private static let eventId: [UInt8] = Array(#","id":"#.utf8)
    private static let eventData: [UInt8] = Array(#","data":"#.utf8)
}
