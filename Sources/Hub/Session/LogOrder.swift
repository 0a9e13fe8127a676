/// The order in which a session applies committed events: every seq once, in increasing order. A pure
/// state machine (no I/O, no clock: time comes in with the inputs); `Session` feeds it and carries out
/// the actions it returns, in order.
///
/// With one store (SQLite) the store assigns every seq of the session, and an answer is applied as it
/// comes. With a shared log (Redis, `shared`) other nodes append too: this node's answers and the other
/// nodes' publications arrive in any interleaving, so an event past a gap waits (parked) until the gap is
/// filled, by the publication on its way or, after `patience`, by a read of the log (one at a time,
/// backing off while the log is unreachable). `Event` is what the session applies (its own answer or
/// another node's event); the machine only keeps and hands back.
public struct LogOrder<Event> {
    /// What the session does next.
    public enum Action {
        /// Apply the event with this seq (the session's last seq becomes `seq`).
        case apply(Int, Event)
        /// Do not apply it (the session has it, or moved past it): its sender, if this node's, still gets
        /// an answer.
        case ack(Event)
        /// Read the log after `after` (up to `limit` events) and hand the result to `read`.
        case read(after: Int, limit: Int)
        /// The events up to `seq` are gone: clients are told, the resume window starts over at `seq`.
        case reset(Int, Reset)
    }

    public enum Reset: Equatable {
        /// Retention deleted events before this node read them.
        case deleted
        /// The shared log lost the session's events (its epoch changed).
        case lost
    }

    /// An answer to one of this node's appends.
    public enum Answer {
        case committed(seq: Int, duplicate: Bool, Event)
        case failed(Event)
    }

    /// How long an event past a gap waits for the missing ones to be published before they are read.
    /// Publications reach a subscribed node in seq order and are lost only with the connection (whose
    /// return triggers a read, `subscribed`): a gap is almost always one still on its way, and under
    /// load it may take a while. Reading early only adds load when Redis is busiest (measured: at
    /// 50 ms, an overloaded three-node run collapsed to a sixth of its throughput on gap reads).
    public static var patience: Double { 1.0 }
    /// The most events one read asks for.
    public static var readLimit: Int { 500 }

    /// The last seq applied.
    public private(set) var last: Int
    /// Whether other nodes append to the log too.
    public var shared: Bool
    /// Committed events past a gap, by seq, and since when the oldest gap is open.
    public private(set) var parked: [Int: Event] = [:]
    public private(set) var gapSince: Double?
    /// A read in flight: whether it was forced, what it asked for and the last seq when it began.
    public private(set) var reading: (force: Bool, limit: Int, from: Int)?
    /// A forced read asked for while another read was running (it runs when that one ends), or after a
    /// forced read failed.
    public private(set) var forced = false
    /// After a read failed, a tick reads again only from `at` on, the wait doubling from 0.25 s to 2 s.
    public private(set) var retry = (at: 0.0, wait: 0.0)
    /// This node's appends not yet answered, and the highest seq answered so far: a read leaves an own
    /// event above it to its answer while any is in flight (answers come in append order).
    public private(set) var inFlight = 0
    public private(set) var answeredThrough = 0

    public init(last: Int, shared: Bool = false) {
        self.last = last
        self.shared = shared
    }

    /// Whether `tick` has anything to do.
    public var needsTick: Bool { !parked.isEmpty || forced }

    // MARK: - Inputs

    /// One of this node's appends went to the store.
    public mutating func sent() { inFlight += 1 }

    /// The store answered one of this node's appends.
    public mutating func answered(_ answer: Answer, now: Double) -> [Action] {
        inFlight = max(inFlight - 1, 0)
        switch answer {
        case .failed(let e):
            // With a shared log, a lost answer may hide a stored event: the log is read.
            if shared { forced = true }
            return [.ack(e)]
        case .committed(let seq, let duplicate, let e):
            answeredThrough = max(answeredThrough, seq)
            if duplicate {
                // A resend of an event whose answer was lost: with a shared log this node never applied
                // it (its own publications are not delivered back), so the log is read.
                var out: [Action] = []
                if shared && seq > last { out = fill(now: now, force: true) }
                return out + [.ack(e)]
            }
            // Already applied from the shared log (a read got there first): acknowledged only.
            if seq <= last { return [.ack(e)] }
            var out: [Action] = []
            inOrder(seq, e, now: now, into: &out)
            return out
        }
    }

    /// Another node committed `seq` (published, in the order it was committed; seqs may have gaps).
    public mutating func published(_ seq: Int, _ e: Event, now: Double) -> [Action] {
        guard seq > last, parked[seq] == nil else { return [] }
        var out: [Action] = []
        inOrder(seq, e, now: now, into: &out)
        return out
    }

    /// The subscription took effect (first, or again after the link was down): whatever was published
    /// before it was missed, and is read.
    public mutating func subscribed(now: Double) -> [Action] { fill(now: now, force: true) }

    /// This node committed events it did not apply (a roster's re-assertion answers only how many):
    /// they are read from the log, as after a subscription.
    public mutating func committedUnseen(now: Double) -> [Action] { fill(now: now, force: true) }

    /// The result of the read in flight: the events (seq order), each marked if this node appended it;
    /// nil if the log could not be read.
    public mutating func read(_ events: [(seq: Int, own: Bool, event: Event)]?, now: Double) -> [Action] {
        guard let r = reading else { return [] }
        reading = nil
        guard let events else {
            // Unreachable: a tick tries again, after a wait that doubles while it stays so.
            if r.force { forced = true }
            let wait = min(max(retry.wait * 2, 0.25), 2)
            retry = (now + wait, wait)
            return []
        }
        retry = (0, 0)
        var out: [Action] = []
        if let first = events.first, first.seq > last + 1 {
            // Retention deleted the missing events before they were read: the session goes on from
            // what is there.
            last = first.seq - 1
            out.append(.reset(last, .deleted))
            if !parked.isEmpty { drain(now: now, into: &out) }
        }
        for e in events where e.seq > last && parked[e.seq] == nil {
            // This node's own event whose answer is still on its way: the answer applies it.
            if e.own && e.seq > answeredThrough && inFlight > 0 { break }
            inOrder(e.seq, e.event, now: now, into: &out)
        }
        if (r.force && events.count == r.limit && last > r.from) || forced {
            out += fill(now: now, force: true)
        }
        return out
    }

    /// The shared log lost the session's events: seq goes on from `seq`; what waited is let go.
    public mutating func lost(continuingAt seq: Int) -> [Action] {
        let waiting = parked.sorted { $0.key < $1.key }
        parked.removeAll()
        gapSince = nil
        last = seq
        return [.reset(seq, .lost)] + waiting.map { .ack($0.value) }
    }

    /// Time passed (a few times a second): a gap open for `patience`, or a forced read still owed, is
    /// read once the backoff allows.
    public mutating func tick(now: Double) -> [Action] {
        guard needsTick && now >= retry.at else { return [] }
        return fill(now: now, force: forced)
    }

    // MARK: - Inside

    private mutating func inOrder(_ seq: Int, _ e: Event, now: Double, into out: inout [Action]) {
        if !shared || seq == last + 1 {
            last = seq
            out.append(.apply(seq, e))
            if !parked.isEmpty { drain(now: now, into: &out) }
        } else if seq > last {
            parked[seq] = e
            if gapSince == nil { gapSince = now }
        } else {
            out.append(.ack(e))
        }
    }

    private mutating func drain(now: Double, into out: inout [Action]) {
        let before = last
        while let next = parked.removeValue(forKey: last + 1) {
            last += 1
            out.append(.apply(last, next))
        }
        // Older than what was applied (the session moved past them): let go.
        for seq in parked.keys.sorted() where seq <= last {
            out.append(.ack(parked.removeValue(forKey: seq)!))
        }
        // Patience counts from the last progress: a busy session always has something on its way.
        gapSince = parked.isEmpty ? nil : (last > before ? now : gapSince ?? now)
    }

    /// Reads the events missing before the oldest parked one (or, `force`, whatever follows `last`).
    private mutating func fill(now: Double, force: Bool) -> [Action] {
        if reading != nil {
            if force { forced = true }
            return []
        }
        guard force || (!parked.isEmpty && now - (gapSince ?? now) >= Self.patience) else { return [] }
        forced = false
        let limit =
            force ? Self.readLimit : min(max((parked.keys.min() ?? last + 1) - last, 1), Self.readLimit)
        reading = (force, limit, last)
        return [.read(after: last, limit: limit)]
    }
}
