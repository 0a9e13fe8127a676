import Bytes
import WebSocket

/// A committed event waiting for the seqs before it: `apply` sets `lastSeq` to its seq; `discard`
/// runs instead if the session moves past it without it (a lost log), so a sender still gets its ack.
struct Parked {
    let apply: () -> Void
    var discard: () -> Void = {}
}

/// A session whose log other nodes append to too (a shared log: Redis). Every node applies every
/// committed event once, in seq order: its own when the store answers, the others' when they are
/// published; an event past a gap waits (`parked`) until the gap is filled, by the publication on
/// its way or, after `gapPatience`, by a read of the log. Ephemeral traffic from other nodes is
/// delivered here like a local broadcast (and never relayed again).
extension Session {
    /// How long an event past a gap waits for the missing ones to be published before they are read.
    /// Publications reach a subscribed node in seq order and are lost only with the connection (whose
    /// return triggers a read, `.subscribed`): a gap is almost always one still on its way, and under
    /// load it may take a while. Reading early only adds load when Redis is busiest (measured: at
    /// 50 ms, an overloaded three-node run collapsed to a sixth of its throughput on gap reads).
    static let gapPatience = 1.0

    /// Applies now if `seq` is next, else when it is.
    func inOrder(_ seq: Int, _ entry: Parked) {
        if !relays || seq == lastSeq + 1 {
            entry.apply()
            if !parked.isEmpty { drainParked() }
        } else if seq > lastSeq {
            parked[seq] = entry
            if gapSince == nil { gapSince = clock() }
        } else {
            entry.discard()
        }
    }

    private func drainParked() {
        let before = lastSeq
        while let next = parked.removeValue(forKey: lastSeq + 1) { next.apply() }
        // Older than what was applied (the session moved past them): let go.
        if let low = parked.keys.min(), low <= lastSeq {
            for (seq, p) in parked.sorted(by: { $0.key < $1.key }) where seq <= lastSeq {
                parked[seq] = nil
                p.discard()
            }
        }
        // Patience counts from the last progress: a busy session always has something on its way.
        gapSince = parked.isEmpty ? nil : (lastSeq > before ? clock() : gapSince ?? clock())
    }

    /// What the shared log says about this session (on the session's loop).
    public func shared(_ item: SharedItem) {
        switch item {
        case .committed(let e):
            guard e.seq > lastSeq, parked[e.seq] == nil else { return }
            inOrder(e.seq, Parked(apply: { [weak self] in self?.applyRemote(e) }))
        case .ephemeral(let traffic, let key, let frame):
            deliverHere(Chunk(frame), .ephemeral(traffic, key: key.isEmpty ? nil : key), except: nil)
        case .subscribed:
            // Publications before the subscription took effect (or while the link was down) were
            // missed: read what the log has past lastSeq.
            fillGap(now: clock(), force: true)
            // After a first subscription, a new one follows a broken link: who this node holds is said again.
            if rosterSync.subscribed { rosterSync.stale = true } else { rosterSync.subscribed = true }
        case .lost(let seq):
            lostHistory(continuingAt: seq)
        case .reannounce:
            rosterSync.stale = true
        }
    }

    /// Reads the events missing before the oldest parked one (or, `force`, whatever follows lastSeq).
    func fillGap(now: Double, force: Bool = false) {
        if gapReading {
            if force { gapForced = true }
            return
        }
        guard force || (!parked.isEmpty && now - (gapSince ?? now) >= Self.gapPatience) else { return }
        gapForced = false
        gapReading = true
        let before = lastSeq
        let want = force ? 500 : min(max((parked.keys.min() ?? lastSeq + 1) - lastSeq, 1), 500)
        host?.readLog(self, after: lastSeq, limit: want) { [weak self] events in
            guard let self else { return }
            self.gapReading = false
            guard let events else {
                // Storage unreachable: a tick tries again, after a wait that doubles while it stays so.
                if force { self.gapForced = true }
                let wait = min(max(self.gapRetry.wait * 2, 0.25), 2)
                self.gapRetry = (self.clock() + wait, wait)
                return
            }
            self.gapRetry = (0, 0)
            if let first = events.first, first.event.seq > self.lastSeq + 1 {
                // Retention deleted the missing events before they were read: clients are told, and
                // the session goes on from what is there.
                self.skip(to: first.event.seq - 1)
            }
            for (e, own) in events where e.seq > self.lastSeq && self.parked[e.seq] == nil {
                // This node's own event whose answer is still on its way: the answer applies it.
                if own && e.seq > self.ownAnswered && self.ownInFlight > 0 { break }
                self.inOrder(e.seq, Parked(apply: { [weak self] in self?.applyRemote(e) }))
            }
            if (force && events.count == want && self.lastSeq > before) || self.gapForced {
                self.fillGap(now: self.clock(), force: true)
            }
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

    /// Joins and leaves of members on other nodes (this node's own are never delivered here).
    private func trackRemotePresence(_ body: [UInt8]) {
        guard let o = try? JSONReader.readObject(Array("{".utf8) + body + Array("}".utf8)) else { return }
        for j in o["joins"]?.array ?? [] {
            guard let id = j.object?["id"]?.string, !members.contains(where: { $0.id == id }) else { continue }
            if let i = remoteMembers.firstIndex(where: { $0.id == id }) { remoteMembers.remove(at: i) }
            remoteMembers.append((id, Array(j.bytes)))
        }
        for l in o["leaves"]?.array ?? [] {
            guard let id = l.object?["id"]?.string else { continue }
            remoteMembers.removeAll { $0.id == id }
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

    /// Events up to `seq` are gone (retention): connected clients get `reset`, the window starts over.
    private func skip(to seq: Int) {
        guard seq > lastSeq else { return }
        let message = ServerMessage.reset(
            reason: "history_deleted", message: "events up to \(seq) were deleted before they were read", seq: seq)
        window = ResumeWindow(maxCount: policy.resumeWindow, maxBytes: policy.resumeWindowBytes)
        lastSeq = seq
        deliverHere(message.frame, .durable, except: nil)
        if !parked.isEmpty { drainParked() }
    }

    /// The shared log lost this session's events (Redis restarted without them): clients are told
    /// with `reset` rather than left with a silent gap, and seq goes on from the new log's `seq`
    /// (what a client had past it is gone with the log).
    private func lostHistory(continuingAt seq: Int) {
        let message = ServerMessage.reset(
            reason: "history_lost", message: "the shared log lost this session's history", seq: seq)
        window = ResumeWindow(maxCount: policy.resumeWindow, maxBytes: policy.resumeWindowBytes)
        let waiting = parked.sorted { $0.key < $1.key }
        parked.removeAll()
        gapSince = nil
        lastSeq = seq
        deliverHere(message.frame, .durable, except: nil)
        for (_, p) in waiting { p.discard() }
    }
}
