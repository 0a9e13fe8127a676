import Hub

/// Drives a `LogOrder` through an interleaving of its inputs picked by a stream of bytes (from libFuzzer
/// in `FuzzLogOrder`, from a seeded generator in the unit tests), against a model of the shared log:
/// this node's appends (answered in append order, some failing with the event stored anyway, some
/// resent and answered as duplicates), other nodes' commits (published in seq order, some publications
/// lost), reads (answered with what the log holds, or failing), the log losing its data, retention
/// deleting old events, and time passing. Checks, at every step, that each seq is applied at most once
/// and in increasing order, that no read is asked for while one is in flight and that a tick never reads
/// before the backoff allows; at the end (everything answered, one more event published, time passing),
/// that every event the log holds past the last reset was applied and every append answered exactly once.
/// A broken invariant is returned as a sentence (nil: all held).
public struct LogOrderSimulation {
    /// What the machine carries: the seq, and the append it answers (this node's own, via its answer).
    public struct Token {
        let seq: Int
        let append: Int?
    }

    var order: LogOrder<Token>
    var now = 0.0
    /// The log: seq -> appended by this node.
    var log: [Int: Bool] = [:]
    var nextSeq = 1
    /// Answers on their way, in append order: append id, seq (nil: failed), duplicate.
    var answers: [(append: Int, seq: Int?, duplicate: Bool)] = []
    var appends = 0
    /// Stored own events whose answer was lost (a resend of one is answered as a duplicate).
    var unanswered: [Int] = []
    var publications: [Int] = []
    var readPending: (after: Int, limit: Int)?
    /// Read failures in a row and when the last one happened.
    var failures = 0
    var failedAt = 0.0
    var applied: [Int] = []
    var outcomes: [Int: Int] = [:]
    /// The seq of the last reset: events up to it may never be applied.
    var resetTo = 0
    var failure: String?

    public init(shared: Bool) { order = LogOrder(last: 0, shared: shared) }

    /// Runs the inputs `next` picks (nil ends them), then settles and checks.
    public static func run(_ next: () -> UInt8?) -> String? {
        guard let first = next() else { return nil }
        var sim = LogOrderSimulation(shared: first % 8 != 0)
        while sim.failure == nil, let b = next() { sim.step(b, next() ?? 0) }
        if sim.failure == nil { sim.settle() }
        return sim.failure
    }

    mutating func step(_ op: UInt8, _ arg: UInt8) {
        guard order.shared else {
            // One store: appends answered in order, every seq this node's.
            if op % 2 == 0 { append(fails: arg % 8 == 0, stored: false) } else { answer() }
            return
        }
        switch op % 11 {
        case 0, 1: append(fails: arg % 6 == 0, stored: arg % 12 == 0)
        case 2: resend()
        case 3, 4: answer()
        case 5: commitElsewhere(published: arg % 5 != 0)
        case 6: deliverPublication()
        case 7: finishRead(fails: arg % 4 == 0)
        case 8: carry(order.subscribed(now: now), byTick: false)
        case 9: tick(by: Double(arg % 16) * 0.125)
        default:
            if arg % 2 == 0 { loseData() } else { trim(through: nextSeq - 1 - Int(arg % 8)) }
        }
    }

    mutating func append(fails: Bool, stored: Bool) {
        appends += 1
        order.sent()
        if fails {
            // The answer is lost; the event may have been stored all the same.
            if stored {
                log[nextSeq] = true
                unanswered.append(nextSeq)
                nextSeq += 1
            }
            answers.append((appends, nil, false))
        } else {
            log[nextSeq] = true
            answers.append((appends, nextSeq, false))
            nextSeq += 1
        }
    }

    mutating func resend() {
        guard !unanswered.isEmpty else { return }
        let seq = unanswered.removeFirst()
        appends += 1
        order.sent()
        answers.append((appends, seq, true))
    }

    mutating func answer() {
        guard !answers.isEmpty else { return }
        let a = answers.removeFirst()
        let token = Token(seq: a.seq ?? 0, append: a.append)
        let input: LogOrder<Token>.Answer =
            a.seq.map { .committed(seq: $0, duplicate: a.duplicate, token) } ?? .failed(token)
        carry(order.answered(input, now: now), byTick: false)
    }

    mutating func commitElsewhere(published: Bool) {
        log[nextSeq] = false
        if published { publications.append(nextSeq) }
        nextSeq += 1
    }

    mutating func deliverPublication() {
        guard !publications.isEmpty else { return }
        let seq = publications.removeFirst()
        carry(order.published(seq, Token(seq: seq, append: nil), now: now), byTick: false)
    }

    mutating func finishRead(fails: Bool) {
        guard let r = readPending else { return }
        readPending = nil
        if fails {
            failures += 1
            failedAt = now
            return carry(order.read(nil, now: now), byTick: false)
        }
        failures = 0
        let events = log.keys.filter { $0 > r.after }.sorted().prefix(r.limit).map {
            (seq: $0, own: log[$0]!, event: Token(seq: $0, append: nil))
        }
        carry(order.read(Array(events), now: now), byTick: false)
    }

    mutating func tick(by seconds: Double) {
        now += seconds
        carry(order.tick(now: now), byTick: true)
    }

    /// The log restarts without its data; numbering goes on past every seq it gave.
    mutating func loseData() {
        log.removeAll()
        unanswered.removeAll()
        carry(order.lost(continuingAt: nextSeq - 1), byTick: false)
    }

    mutating func trim(through seq: Int) {
        for s in log.keys where s <= seq { log[s] = nil }
    }

    mutating func carry(_ actions: [LogOrder<Token>.Action], byTick: Bool) {
        for action in actions {
            switch action {
            case .apply(let seq, let t):
                if t.seq != seq { return fail("apply(\(seq)) carries the event of seq \(t.seq)") }
                if let last = applied.last, seq <= last { return fail("seq \(seq) applied after \(last)") }
                if seq <= resetTo { return fail("seq \(seq) applied after a reset to \(resetTo)") }
                applied.append(seq)
                if let a = t.append { outcomes[a, default: 0] += 1 }
            case .ack(let t):
                if let a = t.append { outcomes[a, default: 0] += 1 }
            case .read(let after, let limit):
                if readPending != nil { return fail("a read asked for while one is in flight") }
                if limit < 1 { return fail("a read of \(limit) events") }
                if byTick && failures > 0 {
                    let wait = min(0.25 * Double(1 << min(failures - 1, 4)), 2)
                    if now < failedAt + wait { return fail("read \(now - failedAt) s after failure \(failures)") }
                }
                readPending = (after, limit)
            case .reset(let seq, _):
                if let last = applied.last, seq < last { return fail("reset to \(seq) below applied \(last)") }
                resetTo = max(resetTo, seq)
            }
        }
    }

    mutating func fail(_ why: String) { if failure == nil { failure = why } }

    /// Everything answered and delivered, one more event published (a stalled gap needs a next event to
    /// be noticed), then time passes with reads succeeding until nothing is left to do.
    mutating func settle() {
        while !answers.isEmpty && failure == nil { answer() }
        while !publications.isEmpty && failure == nil { deliverPublication() }
        if order.shared {
            commitElsewhere(published: true)
            deliverPublication()
        }
        for _ in 0..<200 where failure == nil && (readPending != nil || order.needsTick) {
            if readPending != nil { finishRead(fails: false) } else { tick(by: 2.5) }
        }
        guard failure == nil else { return }
        if readPending != nil || order.needsTick { return fail("still not settled: parked \(order.parked.keys)") }
        if order.inFlight != 0 { return fail("\(order.inFlight) appends still counted in flight") }
        let appliedSet = Set(applied)
        if let missing = log.keys.sorted().first(where: { $0 > resetTo && !appliedSet.contains($0) }) {
            return fail("seq \(missing) never applied (last \(order.last), reset \(resetTo))")
        }
        for a in 1...max(appends, 1) where appends > 0 && outcomes[a] != 1 {
            return fail("append \(a) answered \(outcomes[a] ?? 0) times")
        }
    }
}
