import Bytes
import WebSocket

/// A session whose log other nodes append to too (a shared log: Redis). Every node applies every
/// committed event once, in seq order: its own when the store answers, the others' when they are
/// published; an event past a gap waits (`parked`) until the gap is filled, by the publication on
/// its way or, after `gapPatience`, by a read of the log. Ephemeral traffic from other nodes is
/// delivered here like a local broadcast (and never relayed again).
extension Session {
    /// How long an event past a gap waits for the missing ones to be published before they are read.
    static let gapPatience = 0.05

    /// Applies `apply` (which sets `lastSeq` to `seq`) now if `seq` is next, else when it is.
    func inOrder(_ seq: Int, _ apply: @escaping () -> Void) {
        if !relays || seq == lastSeq + 1 {
            apply()
            if !parked.isEmpty { drainParked() }
        } else if seq > lastSeq {
            parked[seq] = apply
            if gapSince == nil { gapSince = clock() }
        }
    }

    private func drainParked() {
        while let next = parked.removeValue(forKey: lastSeq + 1) { next() }
        // Everything parked is older than what was just applied (a reset moved past it): dropped.
        if let low = parked.keys.min(), low <= lastSeq { parked = parked.filter { $0.key > lastSeq } }
        gapSince = parked.isEmpty ? nil : (gapSince ?? clock())
    }

    /// What the shared log says about this session (on the session's loop).
    public func shared(_ item: SharedItem) {
        switch item {
        case .committed(let e):
            guard e.seq > lastSeq, parked[e.seq] == nil else { return }
            inOrder(e.seq) { [weak self] in self?.applyRemote(e) }
        case .ephemeral(let traffic, let key, let frame):
            deliverHere(Chunk(frame), .ephemeral(traffic, key: key.isEmpty ? nil : key), except: nil)
        case .resubscribed:
            // Publications were missed while the link was down: read what the log has past lastSeq.
            gapSince = clock() - Self.gapPatience
            fillGap(now: clock(), force: true)
        case .lost(let seq):
            lostHistory(continuingAt: seq)
        }
    }

    /// Reads the events missing before the oldest parked one (or, `force`, whatever follows lastSeq).
    func fillGap(now: Double, force: Bool = false) {
        guard !gapReading, force || !parked.isEmpty, let since = gapSince, now - since >= Self.gapPatience else {
            return
        }
        gapReading = true
        let want = min(max((parked.keys.min() ?? lastSeq + 1) - lastSeq, 1), 500)
        host?.readEvents(self, after: lastSeq, limit: force ? 500 : want) { [weak self] events in
            guard let self else { return }
            self.gapReading = false
            guard let events else { return }  // storage unreachable: the next tick tries again
            for e in events where e.seq > self.lastSeq && self.parked[e.seq] == nil {
                self.inOrder(e.seq) { [weak self] in self?.applyRemote(e) }
            }
            if let first = events.first, first.seq > self.lastSeq + 1 {
                // Retention deleted the missing events before they were read: go on from what is there.
                self.lastSeq = first.seq - 1
                self.drainParked()
            }
            if force && events.count == 500 { self.fillGap(now: self.clock(), force: true) }
        }
    }

    /// Another node's event: into the resume window and out to this node's members.
    func applyRemote(_ e: StoredEvent) {
        let frame = e.message.frame
        lastSeq = e.seq
        window.append((e.seq, frame))
        switch e.type {
        case "presence": trackRemotePresence(e.body)
        case "redact":
            // The target's text must not be resumed from here: resumes from before it read the store.
            if let target = (try? JSONReader.readObject(Array("{".utf8) + e.body + Array("}".utf8)))?["target"]?.int {
                window.dropThrough(target)
            }
        default: break
        }
        deliverHere(frame, .durable, except: nil)
        if e.type == "chat", e.body.firstRange(of: Array("\"event\":\"session_ended\"".utf8)) != nil {
            let text = (try? JSONReader.readObject(Array("{".utf8) + e.body + Array("}".utf8)))?["text"]?.string
            endedElsewhere(reason: text.map { String($0.dropFirst("Session ended: ".count)) } ?? "ended")
        }
    }

    /// Joins and leaves of members on other nodes (this node's own are never delivered here).
    private func trackRemotePresence(_ body: [UInt8]) {
        guard let o = try? JSONReader.readObject(Array("{".utf8) + body + Array("}".utf8)) else { return }
        for j in o["joins"]?.array ?? [] {
            guard let id = j.object?["id"]?.string else { continue }
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

    /// The shared log lost this session's events (Redis restarted without them): clients are told
    /// with `reset` rather than left with a silent gap, and seq goes on above every seq seen here.
    private func lostHistory(continuingAt seq: Int) {
        let message = ServerMessage.reset(
            reason: "history_lost", message: "the shared log lost this session's history", seq: max(lastSeq, seq))
        window = ResumeWindow(maxCount: policy.resumeWindow, maxBytes: policy.resumeWindowBytes)
        parked.removeAll()
        gapSince = nil
        lastSeq = max(lastSeq, seq)
        deliverHere(message.frame, .durable, except: nil)
    }
}
