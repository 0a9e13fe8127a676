import EventLoop
import Foundation
import Hub
import WebSocket

/// Plays a stored transcript back to one connection (`replay` message): the events exactly as they
/// were sent live, with the sampled cursor positions (`--record-cursors`) between them as `cursors`
/// messages, spaced by their original server-time gaps divided by `speed`, with pause, resume, seek
/// and speed changes (`replay_control`). Runs on the connection's loop.
///
/// The transcript is read a page at a time on the API worker thread (at most `pageEvents` events and
/// `pageBytes` bytes, plus the cursor samples between them), never whole: a replaying connection holds
/// one page, and sends only while its output is below the soft limit.
final class Replayer {
    private unowned let connection: Connection
    private let code: String
    private let store: Storage
    private let worker: Worker
    /// The range replayed, fixed when it starts: first and last seq, how many events, how long.
    let summary: Summary
    private var page: [Item] = []
    private var index = 0
    /// The page ends the transcript (nothing after it).
    private var exhausted = false
    private var loading = false
    /// Bumped by a seek: a page requested before it is dropped when it arrives.
    private var generation = 0
    /// Bumped by every seek: a seek by time answered after a later seek is dropped.
    var seeks = 0
    private(set) var speed: Double
    private var paused = false
    private var finished = false
    private var timer: Loop.Timer?
    /// Called once when the replay has sent everything (its slot is free again).
    var onFinish: (() -> Void)?
    /// Transcript time and loop time of the last item sent (nil: the next item is due at once).
    private var lastTs: Int64?
    private var lastDue = 0.0

    struct Item { let ts: Int64; let seq: Int?; let message: ServerMessage }
    struct Summary { let first: Int, last: Int, count: Int, durationMillis: Int64 }
    struct Page { let items: [Item]; let exhausted: Bool }

    static let pageEvents = 200
    static let pageBytes = 1 << 20
    static let pageCursorSamples = 2000
    /// Longest silence replayed, in transcript time: a session idle overnight should not stall playback.
    static let maxGapMillis: Int64 = 60_000

    init(
        connection: Connection, code: String, store: Storage, worker: Worker, summary: Summary, first: Page,
        speed: Double
    ) {
        self.connection = connection
        self.code = code
        self.store = store
        self.worker = worker
        self.summary = summary
        self.speed = speed
        page = first.items
        exhausted = first.exhausted
    }

    // MARK: Reading (worker thread)

    /// What a replay from `from` covers (nil: nothing to replay), read on the worker.
    static func summary(store: Storage, code: String, from: Int) -> Summary? {
        guard let first = try? store.events(session: code, after: max(from, 1) - 1, limit: 1).first,
            let last = try? store.tail(session: code, limit: 1).first
        else { return nil }
        // Retention deletes from the front only, so the seqs from `first` to `last` are all there.
        return Summary(
            first: first.seq, last: last.seq, count: last.seq - first.seq + 1,
            durationMillis: max(last.ts - first.ts, 0))
    }

    /// The events after `after` (a page), with the cursor samples from `fromTs` up to the last of them.
    static func page(store: Storage, code: String, after: Int, fromTs: Int64?) -> Page {
        let rows = (try? store.events(session: code, after: after, limit: pageEvents)) ?? []
        var events: [StoredEvent] = []
        var bytes = 0
        for e in rows {
            if !events.isEmpty && bytes + e.body.count > pageBytes { break }
            bytes += e.body.count
            events.append(e)
        }
        let exhausted = events.count == rows.count && rows.count < pageEvents
        guard let firstEvent = events.first, let lastEvent = events.last else {
            return Page(items: [], exhausted: true)
        }
        let from = fromTs ?? firstEvent.ts
        // Samples before the next page's first event belong to it; the last page takes the rest.
        let to = exhausted ? Int64.max : lastEvent.ts - 1
        let cursors =
            to >= from
            ? ((try? store.cursorSamples(session: code, from: from, to: to, limit: pageCursorSamples)) ?? []) : []
        var items: [Item] = []
        items.reserveCapacity(events.count + cursors.count)
        var c = 0
        for e in events {
            while c < cursors.count && cursors[c].ts < e.ts { items.append(item(cursors[c])); c += 1 }
            items.append(Item(ts: e.ts, seq: e.seq, message: e.message))
        }
        while c < cursors.count { items.append(item(cursors[c])); c += 1 }
        return Page(items: items, exhausted: exhausted)
    }

    private static func item(_ s: CursorSample) -> Item {
        Item(ts: s.ts, seq: nil, message: .replayedCursors(ts: s.ts, updates: s.updates))
    }

    // MARK: Playing (the connection's loop)

    func start() {
        connection.send(
            .replayStarted(
                from: summary.first, to: summary.last, count: summary.count, speed: speed,
                durationMillis: summary.durationMillis))
        lastDue = connection.loop.now
        schedule()
    }

    func control(_ obj: JSONObject) -> MessageError? {
        guard let action = obj["action"]?.string else {
            return MessageError("missing_field", "replay_control needs \"action\"", field: "action")
        }
        // The answer comes before any event the change makes due.
        var restart = false
        var next: Int?
        switch action {
        case "pause":
            paused = true
            cancelTimer()
        case "resume":
            guard paused else { break }
            paused = false
            lastTs = nil
            restart = true
        case "seek":
            seeks += 1
            if obj["seq"] == nil, let t = obj["ts"] {
                // By time: the first event at or after `ts`, found off the loop (then a seek to its seq).
                guard let ts = t.int, ts >= 0 else {
                    return MessageError("invalid_field", "\"ts\" must be a non-negative integer (ms)", field: "ts")
                }
                seek(toTime: Int64(ts))
                return nil
            }
            guard let seq = obj["seq"]?.int, seq >= 0 else {
                return MessageError("invalid_field", "\"seq\" must be a non-negative integer", field: "seq")
            }
            cancelTimer()
            lastTs = nil
            finished = false
            if let i = indexOfFirstEvent(atLeast: seq) {
                index = i
            } else {
                // Outside the page held: the page from there is read (the answer names where it starts).
                page = []; index = 0; exhausted = seq > summary.last; loading = false
                generation += 1
                if !exhausted { load(after: max(seq, 1) - 1, fromTs: nil) }
                next = exhausted ? summary.last : max(seq, summary.first)
            }
            restart = !paused
        case "speed":
            guard let s = obj["speed"]?.double, s >= 0.001, s <= 1000 else {
                return MessageError("invalid_field", "\"speed\" must be a number in [0.001, 1000]", field: "speed")
            }
            speed = s
            if !paused { cancelTimer(); lastTs = nil; restart = true }
        default:
            return MessageError("invalid_field", "\"action\" must be pause, resume, seek or speed", field: "action")
        }
        let upcoming = next ?? page[index...].first { $0.seq != nil }?.seq
        let done = upcoming == nil && exhausted && !loading
        connection.send(
            .replayState(
                paused ? .paused : (done ? .finished : .playing), seq: upcoming ?? summary.last,
                speed: speed))
        if restart { schedule() }
        return nil
    }

    /// Binary search of the page held for the first event with seq >= `seq` (events are in seq order;
    /// cursor samples between them are skipped over). Nil when the page does not cover `seq`.
    private func indexOfFirstEvent(atLeast seq: Int) -> Int? {
        guard let firstSeq = page.first(where: { $0.seq != nil })?.seq, seq >= firstSeq else { return nil }
        guard let lastSeq = page.last(where: { $0.seq != nil })?.seq, seq <= lastSeq else { return nil }
        var lo = 0, hi = page.count - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            // A cursor sample counts as its next event: find that event's seq.
            var probe = mid
            while probe < page.count && page[probe].seq == nil { probe += 1 }
            if probe < page.count, let s = page[probe].seq, s < seq { lo = probe + 1 } else { hi = mid }
        }
        // Land on the event itself, not on a cursor sample before it.
        var i = lo
        while i < page.count && page[i].seq == nil { i += 1 }
        return i < page.count ? i : nil
    }

    /// The connection closed: stop, and free the slot if it was still held.
    func stop() {
        cancelTimer()
        finished = true
        let done = onFinish
        onFinish = nil
        done?()
    }

    private func cancelTimer() { timer?.cancel(); timer = nil }

    /// Sends every item that is due, then sleeps until the next one (or until a page arrives, or the
    /// client's output drains).
    private func schedule() {
        timer = nil
        guard !paused, !finished, !connection.isClosed else { return }
        let now = connection.loop.now
        while true {
            if index >= page.count {
                if exhausted {
                    finished = true
                    connection.send(.replayFinished)
                    let done = onFinish
                    onFinish = nil
                    done?()
                    return
                }
                guard let last = page.last(where: { $0.seq != nil }) ?? page.last else { return }
                let after = last.seq ?? 0
                page = []; index = 0
                return load(after: after, fromTs: last.ts)
            }
            if connection.queuedBytes > connection.context.config.softOutputLimit {
                // The client is behind: look again shortly rather than queue without bound.
                timer = Loop.Timer(loop: connection.loop, after: 0.05) { [weak self] in self?.schedule() }
                return
            }
            let item = page[index]
            let due =
                lastTs.map { lastDue + Double(min(max(item.ts - $0, 0), Self.maxGapMillis)) / 1000 / speed } ?? now
            if due > now + 0.0005 {
                timer = Loop.Timer(loop: connection.loop, after: due - now) { [weak self] in self?.schedule() }
                return
            }
            connection.deliver(item.message.frame)
            lastTs = item.ts
            lastDue = due
            index += 1
        }
    }

    private func load(after: Int, fromTs: Int64?) {
        guard !loading else { return }
        loading = true
        let generation = generation, store = store, code = code, loop = connection.loop
        worker.submit { [weak self] in
            let next = Self.page(store: store, code: code, after: after, fromTs: fromTs)
            loop.post {
                guard let self, self.generation == generation, !self.connection.isClosed else { return }
                self.loading = false
                self.page = next.items
                self.index = 0
                self.exhausted = next.exhausted
                self.schedule()
            }
        }
    }
}

extension Replayer {
    /// Seeks to the first event at or after `ts` (ms since the epoch). Commit times follow seq order,
    /// so the event is found by binary search over the replayed seqs, about 20 point reads on the
    /// worker: the timeline needs no index of its own (which would cost every commit a B-tree page).
    func seek(toTime ts: Int64) {
        let store = self.store, code = self.code, summary = self.summary, loop = connection.loop
        let asked = seeks
        worker.submit { [weak self] in
            let seq = Self.firstSeq(store: store, code: code, atOrAfter: ts, first: summary.first, last: summary.last)
            loop.post {
                // A later seek (by seq or time) wins over this one.
                guard let self, self.seeks == asked, !self.connection.isClosed,
                    let obj = try? JSONReader.readObject(Array("{\"action\":\"seek\",\"seq\":\(seq)}".utf8))
                else { return }
                if let e = self.control(obj) { self.connection.sendError(e) }
            }
        }
    }

    /// The first seq in `first...last` whose event is at or after `ts` (`last + 1`: none).
    static func firstSeq(store: TranscriptReads, code: String, atOrAfter ts: Int64, first: Int, last: Int) -> Int {
        var lo = first, hi = last + 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            let t = (try? store.event(session: code, seq: mid))?.event.ts ?? .max
            if t >= ts { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
