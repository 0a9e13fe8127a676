import EventLoop
import Foundation
import Hub
import Store
import WebSocket

/// Plays a stored transcript back to one connection (`replay` message): the events exactly as they
/// were sent live, with the sampled cursor positions (`--record-cursors`) between them as `cursors`
/// messages, spaced by their original server-time gaps divided by `speed`, with pause, resume, seek
/// and speed changes (`replay_control`). Runs on the connection's loop; the transcript is read on the
/// API worker thread first.
final class Replayer {
    private unowned let connection: Connection
    /// First and last seq of the events replayed, and how many (cursor samples are not counted).
    private let firstSeq: Int, lastSeq: Int, eventCount: Int
    /// Events and cursor samples in time order: `seq` is nil for a cursor sample.
    private let timeline: [(ts: Int64, seq: Int?, json: [UInt8])]
    private var index = 0
    private(set) var speed: Double
    private var paused = false
    private var timer: Loop.Timer?
    /// Loop time at which event `index` is due.
    private var due = 0.0

    /// Longest silence replayed, in transcript time: a session idle overnight should not stall playback.
    static let maxGapMillis: Int64 = 60_000

    init(connection: Connection, events: [StoredEvent], cursors: [CursorSample] = [], speed: Double) {
        self.connection = connection
        firstSeq = events.first?.seq ?? 0
        lastSeq = events.last?.seq ?? 0
        eventCount = events.count
        self.speed = speed
        var timeline: [(ts: Int64, seq: Int?, json: [UInt8])] = []
        timeline.reserveCapacity(events.count + cursors.count)
        var c = 0
        for e in events {
            while c < cursors.count && cursors[c].ts < e.ts { timeline.append(Self.item(cursors[c])); c += 1 }
            timeline.append((e.ts, e.seq, e.json))
        }
        while c < cursors.count { timeline.append(Self.item(cursors[c])); c += 1 }
        self.timeline = timeline
    }

    private static func item(_ s: CursorSample) -> (ts: Int64, seq: Int?, json: [UInt8]) {
        let json = Array("{\"type\":\"cursors\",\"replayed\":true,\"ts\":\(s.ts),\"updates\":".utf8) + s.updates + [UInt8(ascii: "}")]
        return (s.ts, nil, json)
    }

    func start() {
        var w = JSONWriter()
        w.beginObject(); w.field("type", "replay_started")
        w.field("from", firstSeq); w.field("to", lastSeq)
        w.field("count", eventCount); w.field("speed", speed)
        if let f = timeline.first, let l = timeline.last { w.field("duration_ms", Int(l.ts - f.ts)) }
        w.endObject()
        connection.sendText(String(decoding: w.bytes, as: UTF8.self))
        due = connection.loop.now
        schedule()
    }

    func control(_ obj: JSONObject) -> MessageError? {
        guard let action = obj["action"]?.string else { return MessageError("missing_field", "replay_control needs \"action\"", field: "action") }
        // The answer comes before any event the change makes due.
        var restart = false
        switch action {
        case "pause":
            paused = true
            timer?.cancel(); timer = nil
        case "resume":
            guard paused else { break }
            paused = false
            due = connection.loop.now
            restart = true
        case "seek":
            guard let seq = obj["seq"]?.int, seq >= 0 else { return MessageError("invalid_field", "\"seq\" must be a non-negative integer", field: "seq") }
            index = timeline.firstIndex(where: { ($0.seq ?? -1) >= seq }) ?? timeline.count
            due = connection.loop.now
            timer?.cancel(); timer = nil
            restart = !paused
        case "speed":
            guard let s = obj["speed"]?.double, s >= 0.001, s <= 1000 else { return MessageError("invalid_field", "\"speed\" must be a number in [0.001, 1000]", field: "speed") }
            speed = s
            if !paused { timer?.cancel(); timer = nil; due = connection.loop.now; restart = true }
        default:
            return MessageError("invalid_field", "\"action\" must be pause, resume, seek or speed", field: "action")
        }
        var w = JSONWriter()
        w.beginObject(); w.field("type", "replay_state"); w.field("state", paused ? "paused" : (index >= timeline.count ? "finished" : "playing"))
        let next = timeline[index...].first { $0.seq != nil }?.seq
        w.field("seq", next ?? lastSeq); w.field("speed", speed); w.endObject()
        connection.sendText(String(decoding: w.bytes, as: UTF8.self))
        if restart { schedule() }
        return nil
    }

    func stop() { timer?.cancel(); timer = nil }

    /// Sends every event that is due, then sleeps until the next one.
    private func schedule() {
        let now = connection.loop.now
        while index < timeline.count && due <= now + 0.0005 {
            let e = timeline[index]
            connection.deliver(Chunk.text(e.json))
            index += 1
            if index < timeline.count {
                let gap = min(max(timeline[index].ts - e.ts, 0), Self.maxGapMillis)
                due += Double(gap) / 1000 / speed
            }
        }
        if index >= timeline.count {
            connection.sendText("{\"type\":\"replay_finished\"}")
            timer = nil
            return
        }
        timer = Loop.Timer(loop: connection.loop, after: max(due - now, 0.0005)) { [weak self] in self?.schedule() }
    }
}
