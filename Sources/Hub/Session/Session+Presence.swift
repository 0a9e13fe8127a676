import WebSocket

/// Joining (admission, a member per person, several connections per member), resume (what a
/// rejoining client missed, from the resume window), and leaving (grace, explicit leave, removal).
/// Joins and leaves are durable presence events in the session's seq order.
extension Session {
    public func join(_ client: HubClient, _ request: ClientMessage.Join) {
        if isEnded {
            send(client, .error(code: "session_ended", message: "session \(code) has ended"))
            client.disconnect(.sessionEnded, "session ended")
            return
        }
        if client.membership != nil {
            send(client, .error(code: "already_joined", message: "this connection already joined session \(code)"))
            return
        }
        // Who is this? A token names the person and the role; a host key makes the host; otherwise a guest.
        let (role, name, tokenExpiry, viaHostKey): (MemberRole, String, Int64?, Bool)
        var key: String, issuedSecret: String?
        switch Admission.decide(request, info: info, tokens: policy.tokens, now: wallClockMillis() / 1000) {
        case .reject(let code, let message, let field, let close):
            host?.metrics.refusedJoin(code, session: self.code, message: message, address: client.address)
            send(client, .error(code: code, message: message, field: field))
            if let close { client.disconnect(close, message) }
            return
        case .admit(let r, let k, let n, let e, let h, let secret):
            (role, name, tokenExpiry, viaHostKey, issuedSecret) = (r, n, e, h, secret)
            key = k ?? "anon:" + newID(9)
        }
        let wanted = MemberKey(key)
        if let member = members.first(where: { $0.memberKey == wanted && !$0.leaving }) {
            // A token's role is the member's role from now on (a demoted token demotes every tab).
            let holdsHostKey = member.connections.contains { $0.membership?.viaHostKey == true }
            if member.role != role && key.hasPrefix("sub:") && !(member.role == .host && holdsHostKey) {
                member.role = role
                if member.announced { broadcastPresenceUpdate(member) }
            }
            // A `client_id` is no credential: it joins an existing member only with that member's role
            // (a guest who learned the host's client_id does not become the host). A token for the same
            // person joins whatever the role (a host-key holder stays host).
            guard member.role == role || key.hasPrefix("sub:") else {
                send(
                    client,
                    .error(
                        code: "forbidden", message: "this identity is in the session with another role",
                        field: request.token != nil ? "token" : "client_id"))
                client.disconnect(.forbidden, "identity in use with another role")
                return
            }
            // A second tab, or a reconnect within the grace period: same member, no leave/join pair.
            let wasStale = member.connections.isEmpty && member.graceDeadline != nil
            member.graceDeadline = nil
            attach(client, to: member, tokenExpiry: tokenExpiry, viaHostKey: viaHostKey, issuedSecret: issuedSecret)
            if member.announced {
                let from = request.resumeFrom ?? request.history.flatMap { $0 > 0 ? max(0, lastSeq - $0) : nil }
                welcome(client, member, resumeFrom: from, through: lastSeq)
                // Others see the second tab, or the member live again after showing it stale.
                if member.connections.count > 1 || wasStale { broadcastPresenceUpdate(member) }
            }
            return
        }
        guard members.count < info.maxParticipants else {
            send(
                client,
                .error(code: "session_full", message: "session \(code) is full (\(info.maxParticipants) participants)"))
            client.disconnect(.sessionFull, "session full")
            return
        }
        nextMemberNumber += 1
        let used = Set(members.map(\.color))
        let color =
            Session.palette.first(where: { !used.contains($0) })
            ?? Session.palette[nextMemberNumber % Session.palette.count]
        let member = Member(id: "m" + newID(6), memberKey: wanted, name: name, color: color, role: role)
        if members.count == members.capacity {
            members.reserveCapacity(
                LongLivedCapacity.next(
                    count: members.count, first: LongLivedCapacity.firstMembers, limit: info.maxParticipants))
        }
        members.append(member)
        attach(client, to: member, tokenExpiry: tokenExpiry, viaHostKey: viaHostKey, issuedSecret: issuedSecret)
        // A newcomer asking for recent history is served like a resume from that far back.
        let resumeFrom = request.resumeFrom ?? request.history.flatMap { $0 > 0 ? max(0, lastSeq - $0) : nil }
        if let roster { return joinShared(member, resumeFrom: resumeFrom, roster: roster) }
        persist(
            type: "presence", member: member.id, clientId: nil,
            body: EventBody.presence(joins: [member.json], leaves: [])
        ) { [weak self] result, frame in
            guard let self else { return }
            member.announced = true
            if case .failure = result {
                // Storage is down: presence still works (without a seq), so the room keeps working.
                self.broadcast(
                    ServerMessage.presenceUnstored(joins: [member.json], leaves: []).frame, .durable,
                    except: member)
            } else if let frame {
                self.broadcast(frame, .durable, except: member)
            }
            for c in member.connections { self.welcome(c, member, resumeFrom: resumeFrom, through: self.lastSeq) }
        }
    }

    /// The one place a connection and a member are tied together (and `detach` unties them).
    func attach(
        _ client: HubClient, to member: Member, tokenExpiry: Int64?, viaHostKey: Bool, issuedSecret: String? = nil
    ) {
        member.connections.append(client)
        var m = Membership(session: self, member: member)
        m.tokenExpiry = tokenExpiry
        m.viaHostKey = viaHostKey
        m.issuedSecret = issuedSecret
        client.membership = m
    }

    /// Unties every connection of `member` from it (they stay open, detached).
    func detachAll(_ member: Member) -> [HubClient] {
        let connections = Array(member.connections)
        for c in connections { c.membership = nil }
        member.connections.removeAll()
        return connections
    }

    /// Replays what a (re)joining client missed, then sends `joined` with the presence snapshot.
    func welcome(_ client: HubClient, _ member: Member, resumeFrom: Int?, through seq: Int) {
        var recovered: Recovered?
        if let from = resumeFrom, from < seq {
            guard let missed = window.missing(after: from, through: seq) else {
                // Older than the window: from the store, a page at a time (Session+CatchUp).
                return catchUp(client, member, from: from)
            }
            host?.metrics.resumed(.exact)
            for frame in missed { client.deliver(frame) }
            recovered = Recovered(from: from + 1, to: seq, count: missed.count)
        }
        sendJoined(client, member, seq: seq, recovered)
    }

    /// `joined`: the presence snapshot, the seq the client is now in sync with, and what a resume
    /// recovered (and, once, the resume secret the hub made up for this connection); then who is typing.
    func sendJoined(_ client: HubClient, _ member: Member, seq: Int, _ recovered: Recovered?) {
        let secret = client.membership?.issuedSecret
        client.membership?.issuedSecret = nil
        send(
            client,
            .joined(
                session: code, title: info.title, you: member.json,
                members: presenceSnapshot(), seq: seq,
                recovered: recovered, resumeSecret: secret))
        for m in members where m.announced && m !== member && m.typingUntil != nil {
            send(client, .typing(member: m.id, state: .start))
        }
    }

    /// A connection is gone. `graceful` false (ping timeout, slow consumer) skips the reconnect grace.
    public func disconnected(_ client: HubClient, graceful: Bool) {
        guard let membership = client.membership else { return }
        client.membership = nil
        let member = membership.member
        member.connections.removeAll { $0 === client }
        if !member.connections.isEmpty {
            if member.announced { broadcastPresenceUpdate(member) }
            return
        }
        if graceful && !isEnded {
            member.graceDeadline = clock() + policy.reconnectGrace
            // Shown as stale while it may come back, not gone and not falsely live.
            if member.announced { broadcastPresenceUpdate(member) }
        } else {
            removeMember(member, reason: graceful ? "left" : "timeout")
        }
    }

    /// An explicit `leave`: the member goes at once (all its connections stay open but detached).
    public func leave(_ client: HubClient) {
        guard let member = client.membership?.member else { return }
        _ = detachAll(member)
        removeMember(member, reason: "left")
    }

    func removeMember(_ member: Member, reason: String) {
        guard !member.leaving else { return }
        member.leaving = true
        stopTyping(member)
        members.removeAll { $0 === member }
        if !member.announced {
            finishIfDone()
            return
        }
        if let roster { return leaveShared(member, reason: reason, roster: roster) }
        persist(
            type: "presence", member: member.id, clientId: nil,
            body: EventBody.presence(joins: [], leaves: [(member.id, reason, member.name)])
        ) { [weak self] _, frame in
            guard let self else { return }
            let out = frame ?? ServerMessage.presenceUnstored(joins: [], leaves: [member.id]).frame
            self.broadcast(out, .durable, except: nil)
            self.finishIfDone()
        }
    }
}
