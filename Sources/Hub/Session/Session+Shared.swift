import Bytes
import WebSocket

/// A committed event on its way into the session (`Session.apply`): this node's own, as the store
/// answered it (with what the sender is told), or another node's.
enum Arrival {
    case own(OwnCommit)
    case remote(StoredEvent)
}

/// The store's answer to one of this node's appends, and the continuation that tells the sender: with
/// the event's frame once applied, without it if it is not applied here (a duplicate, a failure, or
/// an event the session moved past).
struct OwnCommit {
    let type: String
    let body: [UInt8]
    /// The body as committed, when the store changed it (a colour the roster picked).
    let rebody: (() -> [UInt8])?
    let replaces: Replacement?
    let result: Result<Committed, StoreFailure>
    let then: (Result<Committed, StoreFailure>, Chunk?) -> Void
}

/// A session whose log other nodes append to too (a shared log: Redis). Every node applies every
/// committed event once, in seq order: `LogOrder` decides when, `apply` is the one way in (on SQLite
/// as on Redis). Ephemeral traffic from other nodes is delivered here like a local broadcast (and
/// never relayed again).
extension Session {
    /// Every committed event enters here, once, in seq order: into the resume window and out to this
    /// node's members (and, for this node's own, its sender's continuation).
    func apply(_ arrival: Arrival) {
        switch arrival {
        case .own(let o):
            guard case .success(let c) = o.result else { return o.then(o.result, nil) }
            let frame = ServerMessage.durable(type: o.type, seq: c.seq, ts: c.ts, body: o.rebody?() ?? o.body).frame
            lastSeq = c.seq
            window.append((c.seq, frame))
            if let r = o.replaces {
                let tombstone = ServerMessage.durable(type: r.type, seq: r.seq, ts: r.ts, body: r.body).frame
                window.replace(seq: r.seq, with: tombstone)
            }
            o.then(o.result, frame)
        case .remote(let e):
            applyRemote(e)
        }
    }

    /// Carries out what the order decided, in order.
    func follow(_ actions: [LogOrder<Arrival>.Action]) {
        for action in actions {
            switch action {
            case .apply(_, let arrival):
                apply(arrival)
            case .ack(let arrival):
                if case .own(let o) = arrival { o.then(o.result, nil) }
            case .read(let after, let limit):
                host?.readLog(self, after: after, limit: limit) { [weak self] events in
                    guard let self else { return }
                    let read = events?.map { (seq: $0.event.seq, own: $0.own, event: Arrival.remote($0.event)) }
                    self.follow(self.order.read(read, now: self.clock()))
                }
            case .reset(let seq, let why):
                reset(to: seq, why)
            }
        }
    }

    /// What the shared log says about this session (on the session's loop).
    public func shared(_ item: SharedItem) {
        switch item {
        case .committed(let e):
            follow(order.published(e.seq, .remote(e), now: clock()))
        case .ephemeral(let traffic, let key, let frame):
            deliverRelayed(frame, traffic, key: key)
        case .subscribed:
            // Publications before the subscription took effect (or while the link was down) were
            // missed: read what the log has past lastSeq.
            follow(order.subscribed(now: clock()))
            // After a first subscription, a new one follows a broken link: who this node holds is said again.
            if rosterSync.subscribed { rosterSync.stale = true } else { rosterSync.subscribed = true }
        case .lost(let seq):
            follow(order.lost(continuingAt: seq))
        case .reannounce:
            rosterSync.stale = true
        }
    }

    /// How a system message's body starts (`EventBody.system`): only those are parsed for an end.
    static let systemKind = Array(#""kind":"system""#.utf8)

    /// Another node's event: into the resume window and out to this node's members.
    func applyRemote(_ e: StoredEvent) {
        let frame = e.message.frame
        lastSeq = e.seq
        window.append((e.seq, frame))
        var ended: String?
        switch e.type {
        case "presence": trackRemotePresence(e.body)
        case "redact", "chat_delete":
            // The target's text, and its edits', must not be resumed from here: resumes read the
            // store, which rewrote them, until the window fills again.
            window.dropThrough(e.seq)
        case "chat" where e.body.starts(with: Self.systemKind):
            // The end is a system message with no author (a member's `meta` is nested, not top-level).
            if let o = try? JSONReader.readObject(Array("{".utf8) + e.body + Array("}".utf8)),
                o["from"] == nil, o["kind"]?.string == "system", o["event"]?.string == "session_ended"
            {
                ended = o["text"]?.string.map { String($0.dropFirst("Session ended: ".count)) } ?? "ended"
            }
        default: break
        }
        deliverHere(frame, .durable, except: nil)
        if let ended { endedElsewhere(reason: ended) }
    }

    /// Joins and leaves of members on other nodes (this node's own are delivered here only when read
    /// back from the log: its members announced again).
    private func trackRemotePresence(_ body: [UInt8]) {
        guard let o = try? JSONReader.readObject(Array("{".utf8) + body + Array("}".utf8)) else { return }
        for j in o["joins"]?.array ?? [] {
            guard let id = j.object?["id"]?.string else { continue }
            if let own = members.first(where: { $0.id == id }) {
                // This node's member announced again (`syncRoster`), under the colour the cluster gave it.
                if let color = j.object?["color"]?.string, color != own.color { own.recolor(color) }
                continue
            }
            rosterSync.leftMeanwhile.remove(id)
            if let i = remoteMembers.firstIndex(where: { $0.id == id }) { remoteMembers.remove(at: i) }
            remoteMembers.append((id, Array(j.bytes)))
        }
        for l in o["leaves"]?.array ?? [] {
            guard let id = l.object?["id"]?.string else { continue }
            remoteMembers.removeAll { $0.id == id }
            // This node's leave of it is on its way: its answer ("another node holds it") is older news.
            if rosterSync.releasing.contains(id) { rosterSync.leftMeanwhile.insert(id) }
        }
    }

    /// The session was ended on another node: this node's members are told and let go.
    private func endedElsewhere(reason: String) {
        guard !isEnded else { return }
        isEnded = true
        info.endedAt = wallClockMillis()
        info.endReason = reason
        let ended = ServerMessage.sessionEnded(reason: reason).frame
        for m in members {
            for c in detachAll(m) {
                c.deliver(ended)
                c.disconnect(.sessionEnded, "session ended")
            }
        }
        members.removeAll()
        finishIfDone()
    }

    /// Events up to `seq` are gone: connected clients get `reset` rather than a silent gap, and the
    /// window starts over. `deleted`: retention deleted them before they were read. `lost`: the shared
    /// log lost this session's events (Redis restarted without them), and seq goes on from the new
    /// log's (what a client had past it is gone with the log).
    private func reset(to seq: Int, _ why: LogOrder<Arrival>.Reset) {
        let message =
            why == .deleted
            ? ServerMessage.reset(
                reason: "history_deleted", message: "events up to \(seq) were deleted before they were read", seq: seq)
            : ServerMessage.reset(
                reason: "history_lost", message: "the shared log lost this session's history", seq: seq)
        window = ResumeWindow(maxCount: policy.resumeWindow, maxBytes: policy.resumeWindowBytes)
        lastSeq = seq
        deliverHere(message.frame, .durable, except: nil)
    }
}
