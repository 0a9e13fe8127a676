import WebSocket

/// A resume that reaches back past the resume window is served from the store instead of `reset`:
/// the events the client missed are read a page at a time off the loop (`SessionHost.readEvents`)
/// and sent while the client's output is under the soft limit; the rest comes from the window, then
/// `joined` says what was recovered. While it catches up the connection is out of the broadcast list
/// (what is committed meanwhile reaches it through the window or the next page), so the client sees
/// every event once, in seq order. `reset` is left for events that retention deleted.
final class CatchUp {
    let client: HubClient
    let member: Member
    /// The client's `resume_from`.
    let from: Int
    /// Everything through this seq has been sent.
    var next: Int
    var count = 0
    var loading = false
    init(client: HubClient, member: Member, from: Int) {
        self.client = client; self.member = member; self.from = from; next = from
    }
}

extension Session {
    /// Events per store read (and at most the soft output limit's worth of bytes is sent per page).
    static let catchUpPage = 200
    /// Store reads in flight per session: more catch-ups wait their turn (`tick` tries again), so a
    /// crowd resuming from far back cannot monopolise the read worker.
    static let maxCatchUpReads = 4

    func catchUp(_ client: HubClient, _ member: Member, from: Int) {
        member.connections.removeAll { $0 === client }
        let c = CatchUp(client: client, member: member, from: from)
        catchUps.append(c)
        pump(c)
    }

    /// Sends the next page if the client has room, or finishes from the window.
    func pump(_ c: CatchUp) {
        guard !c.loading else { return }
        guard isCurrent(c) else { return forget(c) }
        if let rest = window.missing(after: c.next, through: lastSeq) {
            for f in rest { c.client.deliver(f) }
            c.count += rest.count
            c.next = lastSeq
            return finish(c, outcome: .fromStore)
        }
        guard c.client.queuedBytes <= policy.softOutputLimit else { return }  // `tick` tries again
        guard catchUps.lazy.filter(\.loading).count < Self.maxCatchUpReads else { return }
        guard let host else { return finish(c, outcome: .reset) }
        c.loading = true
        host.readEvents(self, after: c.next, limit: Self.catchUpPage) { [weak self] events in
            guard let self else { return }
            c.loading = false
            guard self.isCurrent(c) else { return self.forget(c) }
            guard let events, let first = events.first, first.seq == c.next + 1 else {
                // Unreadable, or retention deleted what the client is missing: the transcript API has
                // what is left.
                self.send(
                    c.client,
                    .reset(
                        reason: events == nil ? "storage_unavailable" : "history_deleted",
                        message: events == nil
                            ? "cannot read the events after \(c.next); reload the transcript"
                            : "events after \(c.next) were deleted by retention; reload the transcript",
                        seq: self.lastSeq))
                return self.finish(c, outcome: .reset)
            }
            var budget = max(self.policy.softOutputLimit - c.client.queuedBytes, 1)
            for e in events where e.seq == c.next + 1 && e.seq <= self.lastSeq {
                let frame = e.message.frame
                c.client.deliver(frame)
                c.next = e.seq
                c.count += 1
                budget -= frame.count
                if budget <= 0 { break }
            }
            self.pump(c)
        }
    }

    /// The connection is still this member's, the member still here.
    private func isCurrent(_ c: CatchUp) -> Bool {
        !c.client.isDisconnecting && c.client.membership?.member === c.member && !c.member.leaving
            && members.contains { $0 === c.member }
    }

    private func forget(_ c: CatchUp) { catchUps.removeAll { $0 === c } }

    private func finish(_ c: CatchUp, outcome: ResumeOutcome) {
        forget(c)
        guard isCurrent(c) else { return }
        host?.metrics.resumed(outcome)
        c.member.connections.append(c.client)
        let recovered = outcome == .fromStore ? Recovered(from: c.from + 1, to: c.next, count: c.count) : nil
        sendJoined(c.client, c.member, seq: lastSeq, recovered)
    }

    /// The connections still catching up (for `disconnected` and `tick`).
    func pumpCatchUps() {
        for c in catchUps { pump(c) }
    }
}
