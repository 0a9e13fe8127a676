import WebSocket

/// A resume that reaches back past the resume window is served from the store instead of `reset`:
/// the events the client missed are read a page at a time off the loop (`SessionHost.readEvents`)
/// and sent while the client's output is under the soft limit; the rest comes from the window, then
/// `joined` says what was recovered. The connection stays one of the member's (leave, removal, the
/// session's end, the grace and token checks all see it), but broadcasts skip it while it catches up
/// (`catchingUp`): what is committed meanwhile reaches it through the window or the next page, so the
/// client sees every event once, in seq order. A gap that retention deleted is a `reset` naming where
/// the store resumes, and the catch-up goes on from there.
final class CatchUp {
    let client: HubClient
    let member: Member
    /// The client's `resume_from`.
    let from: Int
    /// Everything through this seq has been sent.
    var next: Int
    var count = 0
    var loading = false
    /// The rest of the last page read (sent before anything is read again).
    var buffered: ArraySlice<StoredEvent> = []
    init(client: HubClient, member: Member, from: Int) {
        self.client = client; self.member = member; self.from = from; next = from
    }
}

extension Session {
    /// Events per store read (and at most the soft output limit's worth of bytes is sent per turn).
    static let catchUpPage = 200
    /// Store reads in flight per session: more catch-ups wait their turn (`tick` tries again), so a
    /// crowd resuming from far back cannot monopolise the read worker.
    static let maxCatchUpReads = 4
    /// Bytes of a page held for one catching-up connection, at most.
    static let maxBufferedBytes = 1 << 20

    func catchUp(_ client: HubClient, _ member: Member, from: Int) {
        let c = CatchUp(client: client, member: member, from: from)
        catchUps.append(c)
        catchingUp.insert(ObjectIdentifier(client))
        pump(c)
    }

    /// Sends what the client has room for: buffered events, else a new page (if a read slot is free),
    /// else, once the window reaches back far enough, the rest from memory and `joined`.
    func pump(_ c: CatchUp) {
        guard !c.loading else { return }
        guard isCurrent(c) else { return forget(c) }
        if c.buffered.isEmpty, let rest = window.missing(after: c.next, through: lastSeq) {
            for f in rest { c.client.deliver(f) }
            c.count += rest.count
            c.next = lastSeq
            return finish(c, outcome: .fromStore)
        }
        guard c.client.queuedBytes <= policy.softOutputLimit else { return }  // `tick` tries again
        if !c.buffered.isEmpty { return send(c) }
        guard catchUps.lazy.filter(\.loading).count < Self.maxCatchUpReads, let host else { return }
        c.loading = true
        host.readEvents(self, after: c.next, limit: Self.catchUpPage) { [weak self] events in
            guard let self else { return }
            c.loading = false
            guard self.isCurrent(c) else { return self.forget(c) }
            guard let events, let first = events.first else {
                self.send(
                    c.client,
                    .reset(
                        reason: "storage_unavailable",
                        message: "cannot read the events after \(c.next); reload the transcript", seq: self.lastSeq))
                return self.finish(c, outcome: .reset)
            }
            if first.seq > c.next + 1 {
                // Retention deleted what the client is missing up to here: it learns so, and goes on.
                self.send(
                    c.client,
                    .reset(
                        reason: "history_deleted",
                        message: "events \(c.next + 1) to \(first.seq - 1) were deleted by retention",
                        seq: first.seq - 1))
                c.next = first.seq - 1
                self.host?.metrics.resumed(.reset)
            }
            // Held at most a megabyte of it (the rest is read again): memory a client makes the hub
            // hold is bounded like its output.
            var keep = 0, bytes = 0
            for e in events {
                bytes += e.body.count
                if keep > 0 && bytes > Self.maxBufferedBytes { break }
                keep += 1
            }
            c.buffered = events[..<keep]
            self.send(c)
            // Fairness: the next turn goes to the others first.
            if let i = self.catchUps.firstIndex(where: { $0 === c }) {
                self.catchUps.append(self.catchUps.remove(at: i))
            }
        }
    }

    /// Sends buffered events in order up to the soft limit's worth, then looks again.
    private func send(_ c: CatchUp) {
        var budget = max(policy.softOutputLimit - c.client.queuedBytes, 1)
        while let e = c.buffered.first, budget > 0 {
            c.buffered = c.buffered.dropFirst()
            guard e.seq == c.next + 1, e.seq <= lastSeq else { continue }
            let frame = e.message.frame
            c.client.deliver(frame)
            c.next = e.seq
            c.count += 1
            budget -= frame.count
        }
        if c.buffered.isEmpty || c.client.queuedBytes <= policy.softOutputLimit { pump(c) }
    }

    /// The connection is still this member's, the member still here.
    private func isCurrent(_ c: CatchUp) -> Bool {
        !c.client.isDisconnecting && c.client.membership?.member === c.member && !c.member.leaving
            && members.contains { $0 === c.member }
    }

    private func forget(_ c: CatchUp) {
        catchUps.removeAll { $0 === c }
        catchingUp.remove(ObjectIdentifier(c.client))
    }

    private func finish(_ c: CatchUp, outcome: ResumeOutcome) {
        forget(c)
        guard isCurrent(c) else { return }
        host?.metrics.resumed(outcome)
        let recovered = outcome == .fromStore ? Recovered(from: c.from + 1, to: c.next, count: c.count) : nil
        sendJoined(c.client, c.member, seq: lastSeq, recovered)
    }

    /// The connections still catching up (`tick`).
    func pumpCatchUps() {
        for c in catchUps { pump(c) }
    }
}
