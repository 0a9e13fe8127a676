import EventLoop
import Foundation
import Hub
import WebSocket

/// Plays a stored transcript back to one connection (`replay` message): the events exactly as they
/// were sent live, with the sampled cursor positions (`--record-cursors`) between them as `cursors`
/// messages, spaced by their original server-time gaps divided by `speed`, with pause, resume, seek
/// and speed changes (`replay_control`). Runs on the connection's loop.
///
/// The transcript is read a page at a time on the transcript worker (at most `pageEvents` events and
/// `pageBytes` bytes, plus the cursor samples between them), never whole: a replaying connection holds
/// one page, and sends only while its output is below the soft limit.
///
/// Reads are coalesced: at most one is in flight per replayer, and a seek made meanwhile replaces the
/// read waiting after it (the latest target wins; a binary search overtaken by a later seek stops at
/// its next probe). They go in the client address's lane of the transcript worker, which takes turns
/// across addresses, so a seek flood costs its sender's lane, not everyone's.
///
/// A finished replay gives up its slot and its page, and takes no more `replay_control` (error
/// `replay_finished`): playing again is a new `replay`, admitted and counted like the first. Holding
/// the slot instead would let idle finished sockets hold every slot of the per-address and per-loop
/// caps; seeking without one (as before) let a finished replay read without any cap.
final class Replayer {
    private unowned let connection: Connection
    private let code: String
    private let store: Storage
    private let worker: Worker
    /// The transcript worker's lane for this replay's reads (the client address).
    private let lane: String
    /// The range replayed, fixed when it starts: first and last seq, how many events, how long.
    let summary: Summary
    private var page: [Item] = []
    private var index = 0
    /// The page ends the transcript (nothing after it).
    private var exhausted = false
    /// A read is on the worker (at most one), and the read to make when it is back (the latest wins).
    private var reading = false
    private var wanted: Read?
    private var loading: Bool { reading || wanted != nil }
    /// Bumped by every seek: a read made for an earlier position is dropped (and a search stops early).
    private let generation = ReadGeneration()
    private(set) var speed: Double
    private var paused = false
    /// Everything was sent (or the connection closed): the slot and the page are given up.
    private(set) var finished = false
    private var timer: Loop.Timer?
    /// Ends a replay paused longer than `maxPause`: a paused replay holds one of the few slots.
    private var pauseTimer: Loop.Timer?
    static let maxPause = 600.0
    /// Called once when the replay has sent everything (its slot is free again).
    var onFinish: (() -> Void)?
    /// Transcript time and loop time of the last item sent (nil: the next item is due at once).
    private var lastTs: Int64?
    private var lastDue = 0.0

    struct Item { let ts: Int64; let seq: Int?; let message: ServerMessage }
    struct Summary { let first: Int, last: Int, count: Int, durationMillis: Int64 }
    struct Page { let items: [Item]; let exhausted: Bool }
    /// A read for the worker: the page after a seq, or the first seq at or after a time.
    private enum Read { case page(after: Int, fromTs: Int64?), time(Int64) }
    private enum ReadResult { case page(Page), seq(Int), dropped }

    static let pageEvents = 200
    static let pageBytes = 1 << 20
    static let pageCursorSamples = 2000
    /// Longest silence replayed, in transcript time: a session idle overnight should not stall playback.
    static let maxGapMillis: Int64 = 60_000

    init(
        connection: Connection, code: String, store: Storage, worker: Worker, lane: String, summary: Summary,
        first: Page, speed: Double
    ) {
        self.connection = connection
        self.code = code
        self.store = store
        self.worker = worker
        self.lane = lane
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

    /// The events after `after` up to `last` (a page), with the cursor samples from `fromTs` up to the
    /// last of them. The read stops at the byte budget, so an event past it is never loaded.
    static func page(store: Storage, code: String, after: Int, last: Int, fromTs: Int64?) -> Page {
        let rows = (try? store.events(session: code, after: after, limit: pageEvents, maxBytes: pageBytes)) ?? []
        // The replay ends at the `to` it announced (a live session may have gone on since).
        let events = rows.filter { $0.seq <= last }
        let exhausted = (events.last?.seq ?? last) >= last || events.count < rows.count
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
        guard ["pause", "resume", "seek", "speed"].contains(action) else {
            return MessageError("invalid_field", "\"action\" must be pause, resume, seek or speed", field: "action")
        }
        guard !finished else {
            return MessageError(
                "replay_finished",
                "this replay has finished and gave up its slot; send replay (with from) to play again")
        }
        // The answer comes before any event the change makes due.
        var restart = false
        var next: Int?
        switch action {
        case "pause":
            paused = true
            cancelTimer()
            if pauseTimer == nil {
                pauseTimer = Loop.Timer(loop: connection.loop, after: Self.maxPause) { [weak self] in
                    guard let self, self.paused, !self.finished else { return }
                    self.connection.sendError(
                        MessageError(
                            "replay_finished",
                            "paused for \(Int(Self.maxPause)) s: the replay gave up its slot; send replay to play again"
                        ))
                    self.connection.send(.replayFinished)
                    self.finish()
                }
            }
        case "resume":
            guard paused else { break }
            pauseTimer?.cancel(); pauseTimer = nil
            paused = false
            lastTs = nil
            restart = true
        case "seek":
            if obj["seq"] == nil, let t = obj["ts"] {
                // By time: the first event at or after `ts`, found off the loop (then a seek to its seq).
                guard let ts = t.int, ts >= 0 else {
                    return MessageError("invalid_field", "\"ts\" must be a non-negative integer (ms)", field: "ts")
                }
                // Nothing of the page held plays meanwhile (it would ask for the next page, replacing
                // this read): the seek's answer decides where playback goes on.
                cancelTimer()
                page = []; index = 0
                generation.advance()
                request(.time(Int64(ts)))
                return nil
            }
            guard let seq = obj["seq"]?.int, seq >= 0 else {
                return MessageError("invalid_field", "\"seq\" must be a non-negative integer", field: "seq")
            }
            next = seek(toSeq: seq)
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
        sendState(next: next)
        if restart { schedule() }
        return nil
    }

    private func sendState(next: Int?) {
        let upcoming = next ?? page[index...].first { $0.seq != nil }?.seq
        let done = upcoming == nil && exhausted && !loading
        connection.send(
            .replayState(
                paused ? .paused : (done ? .finished : .playing), seq: upcoming ?? summary.last,
                speed: speed))
    }

    /// Moves to the first event with seq >= `seq`; returns that seq when the page from it is being read
    /// (nil: it is in the page held).
    private func seek(toSeq seq: Int) -> Int? {
        cancelTimer()
        lastTs = nil
        // Whatever was being read for the old position is not wanted now.
        generation.advance()
        wanted = nil
        if let i = indexOfFirstEvent(atLeast: seq) {
            index = i
            return nil
        }
        // Outside the page held: the page from there is read (the answer names where it starts).
        page = []; index = 0; exhausted = seq > summary.last
        if !exhausted { request(.page(after: max(seq, 1) - 1, fromTs: nil)) }
        return exhausted ? summary.last : max(seq, summary.first)
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
    func stop() { finish() }

    /// Gives up the slot (once) and the page; no read starts or continues after this.
    private func finish() {
        generation.cancel()
        cancelTimer()
        pauseTimer?.cancel(); pauseTimer = nil
        finished = true
        page = []
        index = 0
        wanted = nil
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
                    connection.send(.replayFinished)
                    return finish()
                }
                guard let last = page.last(where: { $0.seq != nil }) ?? page.last else { return }
                let after = last.seq ?? 0
                page = []; index = 0
                return request(.page(after: after, fromTs: last.ts))
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

    // MARK: Reads (coalesced)

    /// Makes `read` the next one: now if none is in flight, else when it is back (replacing any
    /// other waiting: the latest wins).
    private func request(_ read: Read) {
        wanted = read
        startRead()
    }

    private func startRead() {
        guard !reading, !finished, let read = wanted else { return }
        wanted = nil
        reading = true
        let store = store, code = code, summary = summary, loop = connection.loop, generation = generation
        let asked = generation.current
        let queued = worker.submit(lane: lane) { [weak self] in
            let result: ReadResult
            if !generation.isCurrent(asked) {
                result = .dropped  // overtaken by a later seek, or the connection closed: no read
            } else {
                switch read {
                case .page(let after, let fromTs):
                    result = .page(
                        Self.page(store: store, code: code, after: after, last: summary.last, fromTs: fromTs))
                case .time(let ts):
                    let seq = Self.firstSeq(
                        store: store, code: code, atOrAfter: ts, first: summary.first, last: summary.last
                    ) { generation.isCurrent(asked) }
                    result = seq.map { .seq($0) } ?? .dropped
                }
            }
            loop.post { self?.readDone(result, asked: asked) }
        }
        guard queued else {
            // The transcript worker's queue is full: this replay ends with a clear answer.
            reading = false
            connection.sendError(MessageError("storage_unavailable", "replay reads are backed up; try again shortly"))
            return finish()
        }
    }

    private func readDone(_ result: ReadResult, asked: Int) {
        reading = false
        guard !finished, !connection.isClosed else { return }
        // A read made for a position a later seek replaced is dropped; the latest one goes next.
        if generation.isCurrent(asked) {
            switch result {
            case .dropped: break
            case .page(let next):
                page = next.items
                index = 0
                exhausted = next.exhausted
                schedule()
            case .seq(let seq):
                let next = seek(toSeq: seq)
                sendState(next: next)
                if !paused { schedule() }
            }
        }
        startRead()
    }
}

extension Replayer {
    /// The first seq in `first...last` whose event is at or after `ts` (`last + 1`: none), or nil when
    /// `going` says stop. Commit times follow seq order, so the event is found by binary search over the
    /// replayed seqs, about 20 point reads: the timeline needs no index of its own (which would cost every
    /// commit a B-tree page).
    static func firstSeq(
        store: TranscriptReads, code: String, atOrAfter ts: Int64, first: Int, last: Int,
        going: () -> Bool = { true }
    ) -> Int? {
        var lo = first, hi = last + 1
        while lo < hi {
            guard going() else { return nil }
            let mid = lo + (hi - lo) / 2
            let t = (try? store.event(session: code, seq: mid))?.event.ts ?? .max
            if t >= ts { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}

/// A replayer's read generation, shared with the worker: a read made for an older generation (a seek
/// came since) or after `cancel` (the connection closed) does not start, and a search stops early.
final class ReadGeneration: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    private var cancelled = false

    var current: Int { lock.lock(); defer { lock.unlock() }; return value }

    func advance() { lock.lock(); value &+= 1; lock.unlock() }

    func cancel() { lock.lock(); cancelled = true; lock.unlock() }

    func isCurrent(_ g: Int) -> Bool { lock.lock(); defer { lock.unlock() }; return !cancelled && value == g }
}
