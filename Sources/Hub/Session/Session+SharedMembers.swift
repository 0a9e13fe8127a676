import Bytes
import WebSocket

/// When a session with a roster says again who this node holds (`Session.syncRoster`).
struct RosterSync {
    /// The first subscription took effect (a later one follows a broken link).
    var subscribed = false
    /// Who this node holds is to be said again (after a broken link, a failed leave or join, or this
    /// node being declared lost).
    var stale = false
    var inFlight = false
    /// After a failure: not before `retryAt`, the wait doubling from 0.25 s to 2 s.
    var retryAt = 0.0
    var wait = 0.0
    /// Members whose leave this node sent and has no answer for yet, and those of them whose leave
    /// another node committed meanwhile (its publication can overtake this node's answer, which then
    /// says another node still holds the member: it must not come back as a remote member).
    var releasing: Set<String> = []
    var leftMeanwhile: Set<String> = []
}

/// A session in a cluster: its members are keyed by identity across the nodes (`SharedRoster`). A join
/// of an identity another node has is that member (same id and colour, no second join event); a new
/// one is admitted against `max_participants` session-wide and gets a colour no member has; a leave
/// is committed only when no node holds the identity any more. The join or leave event goes through
/// `persist` (`via` the roster), so it is applied in seq order like any of this node's own events.
extension Session {
    /// Who this node holds is yet to be said to Redis (the session is not evicted meanwhile: a leave
    /// that failed must still reach Redis).
    public var rosterPending: Bool { rosterSync.stale || rosterSync.inFlight }

    /// Where the roster puts the colour it picks in a member's JSON.
    static let colorMark = "@roster-colour@"

    /// The member's JSON around its colour.
    func colorParts(_ member: Member) -> (before: [UInt8], after: [UInt8]) {
        let real = member.color
        member.color = Self.colorMark
        let json = member.json
        member.color = real
        // `"color":"` can only be the key itself: inside a JSON string every quote is escaped.
        let needle = Array(("\"color\":\"" + Self.colorMark).utf8)
        var at = 0
        while at + needle.count <= json.count && !json[at..<at + needle.count].elementsEqual(needle) { at += 1 }
        let cut = at + needle.count - Self.colorMark.utf8.count
        return (Array(json[..<cut]), Array(json[(cut + Self.colorMark.utf8.count)...]))
    }

    func joinShared(_ member: Member, resumeFrom: Int?, roster: SharedRoster) {
        let parts = colorParts(member)
        var outcome: RosterJoin?
        var color = member.color
        let via: (@escaping (Result<Committed, StoreFailure>) -> Void) -> Void = { [self] done in
            roster.join(
                session: code, identity: member.key, memberID: member.id, json: parts,
                maxParticipants: info.maxParticipants, executor: executor
            ) { result in
                switch result {
                case .failure(let f): done(.failure(f))
                case .success(let answer):
                    outcome = answer
                    if case .admitted(let c, let committed) = answer {
                        color = c
                        member.color = c
                        return done(.success(committed))
                    }
                    // No event: acknowledged without a frame.
                    done(.success(Committed(seq: 0, ts: 0, duplicate: true)))
                }
            }
        }
        persist(
            type: "presence", member: member.id, clientId: nil, body: [], via: via,
            rebody: { EventBody.presence(joins: [parts.before + Array(color.utf8) + parts.after], leaves: []) }
        ) { [weak self] result, frame in
            guard let self else { return }
            switch outcome {
            case .full?: return self.refuseFull(member)
            case .existing(let json)?: self.adopt(member, json)
            default: break
            }
            if case .failure = result { self.rosterSync.stale = true }
            member.announced = true
            if case .failure = result {
                self.broadcast(
                    ServerMessage.presenceUnstored(joins: [member.json], leaves: []).frame, .durable, except: member)
            } else if let frame {
                self.broadcast(frame, .durable, except: member)
            }
            // Gone before the answer came: the identity this node now holds is let go again.
            if member.leaving {
                if case .success = result { self.leaveShared(member, reason: "left", roster: roster) }
                return
            }
            if case .existing? = outcome { self.broadcastPresenceUpdate(member) }
            for c in member.connections { self.welcome(c, member, resumeFrom: resumeFrom, through: self.lastSeq) }
        }
    }

    /// The identity is a member on another node: this node's member is that one (id and colour).
    private func adopt(_ member: Member, _ json: [UInt8]) {
        guard let o = try? JSONReader.readObject(json), let id = o["id"]?.string, let color = o["color"]?.string
        else { return }
        member.id = id
        member.color = color
        remoteMembers.removeAll { $0.id == id }
    }

    /// The session is full cluster-wide: refused as a single node refuses (`session_full`, 4006).
    private func refuseFull(_ member: Member) {
        member.leaving = true
        members.removeAll { $0 === member }
        let message = "session \(code) is full (\(info.maxParticipants) participants)"
        for c in detachAll(member) {
            send(c, .error(code: "session_full", message: message))
            c.disconnect(.sessionFull, "session full")
        }
        finishIfDone()
    }

    func leaveShared(_ member: Member, reason: String, roster: SharedRoster) {
        var outcome: RosterLeave?
        rosterSync.releasing.insert(member.id)
        let via: (@escaping (Result<Committed, StoreFailure>) -> Void) -> Void = { [self] done in
            roster.leave(
                session: code, identity: member.key, memberID: member.id, name: member.name, reason: reason,
                executor: executor
            ) { result in
                switch result {
                case .failure(let f): done(.failure(f))
                case .success(let answer):
                    outcome = answer
                    if case .left(let committed) = answer { return done(.success(committed)) }
                    done(.success(Committed(seq: 0, ts: 0, duplicate: true)))
                }
            }
        }
        persist(
            type: "presence", member: member.id, clientId: nil,
            body: EventBody.presence(joins: [], leaves: [(member.id, reason, member.name)]), via: via
        ) { [weak self] result, frame in
            guard let self else { return }
            self.rosterSync.releasing.remove(member.id)
            let leftMeanwhile = self.rosterSync.leftMeanwhile.remove(member.id) != nil
            switch outcome {
            case .stillPresent(let json)?:
                // Its other connections are on other nodes: here it is one of theirs now (unless their
                // leave was applied here before this answer came).
                if !leftMeanwhile && !self.remoteMembers.contains(where: { $0.id == member.id }) {
                    self.remoteMembers.append((member.id, json))
                }
            case .gone?:
                // A survivor declared this node lost and its leave (node_lost) was told already.
                break
            default:
                // Redis unreachable: said here without a seq, and again to Redis once it answers.
                if case .failure = result { self.rosterSync.stale = true }
                let out = frame ?? ServerMessage.presenceUnstored(joins: [], leaves: [member.id]).frame
                self.broadcast(out, .durable, except: nil)
            }
            self.finishIfDone()
        }
    }

    /// Says again who this node holds (`SharedRoster.reassert`): members the cluster lost join again and
    /// what Redis still has of this node beyond them leaves. Its events are this node's own, read from
    /// the log like a gap.
    func syncRoster(now: Double) {
        guard let roster, rosterSync.stale, !rosterSync.inFlight, now >= rosterSync.retryAt else { return }
        rosterSync.stale = false
        rosterSync.inFlight = true
        let holdings = members.filter { !$0.leaving }.map {
            RosterHolding(identity: $0.key, memberID: $0.id, connections: $0.connections.count, json: $0.json)
        }
        roster.reassert(
            session: code, holdings: holdings, maxParticipants: info.maxParticipants, executor: executor
        ) { [weak self] result in
            guard let self else { return }
            self.rosterSync.inFlight = false
            switch result {
            case .success(let answer):
                self.rosterSync.wait = 0
                if !answer.refused.isEmpty { self.refusedAgain(answer.refused) }
                if answer.committed > 0 { self.follow(self.order.committedUnseen(now: self.clock())) }
            case .failure:
                self.rosterSync.stale = true
                self.rosterSync.wait = min(max(self.rosterSync.wait * 2, 0.25), 2)
                self.rosterSync.retryAt = self.clock() + self.rosterSync.wait
            }
        }
    }
}
