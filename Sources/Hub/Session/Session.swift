import WebSocket

/// A live collaboration session: presence, chat, app events and attached runs, with one `seq` order
/// for every durable event. Pure logic: it never touches a socket or a file. Connections come in as
/// `HubClient`s, durable events go out through an `EventLog`, time comes from `clock`.
///
/// This file holds the durable path (persist -> commit -> one frame -> resume window -> broadcast ->
/// ack), presence and resume, which share the seq order. Who may join is `Admission`; cursors and
/// typing (no seq) are `Session+Ephemera`; delivery is `Fanout`; messages are `ServerMessage`.
public final class Session {
    public let code: String
    public internal(set) var info: SessionInfo
    public let policy: SessionPolicy
    let store: EventLog
    let executor: Executor
    weak var host: SessionHost?
    let clock: () -> Double
    let wallClockMillis: () -> Int64
    /// Makes random identifiers (`bytes` of entropy, URL-safe): member ids and anonymous keys.
    let newID: (_ bytes: Int) -> String
    let fanout: Fanout

    public internal(set) var members: [Member] = []
    /// The last committed seq (every event up to it has been broadcast).
    public private(set) var lastSeq: Int
    /// Committed events for resume: the last `policy.resumeWindow` frames (and bytes).
    private var window: ResumeWindow
    private var nextMemberNumber = 0
    public internal(set) var isEnded = false
    var hasDirtyCursors = false

    public static let palette = [
        "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
        "#bfef45", "#469990", "#9a6324", "#800000", "#808000", "#000075", "#a9a9a9",
    ]

    /// Random, URL-safe identifiers from OpenSSL's generator.
    public static let randomID: (Int) -> String = { Base64.encode(Crypto.randomBytes($0), urlSafe: true) }

    /// `history` is what storage holds of the session (read off the loop before it wakes up).
    public init(
        info: SessionInfo, history: SessionHistory, policy: SessionPolicy, store: EventLog, executor: Executor,
        host: SessionHost?, clock: @escaping () -> Double, wallClockMillis: @escaping () -> Int64,
        newID: @escaping (Int) -> String = Session.randomID
    ) {
        self.code = info.code
        self.info = info
        self.policy = policy
        self.store = store
        self.executor = executor
        self.host = host
        self.clock = clock
        self.wallClockMillis = wallClockMillis
        self.newID = newID
        fanout = Fanout(softLimit: policy.softOutputLimit, hardLimit: policy.hardOutputLimit)
        lastSeq = history.lastSeq
        window = ResumeWindow(maxCount: policy.resumeWindow, maxBytes: policy.resumeWindowBytes)
        // Refill the resume window from storage, so clients resuming after a restart miss nothing.
        for e in history.tail { window.append((e.seq, e.message.frame)) }
        if let last = window.last?.seq { lastSeq = max(lastSeq, last) }
    }

    public var memberCount: Int { members.count }
    public var connectionCount: Int { members.reduce(0) { $0 + $1.connections.count } }

    /// New settings from the API (title, guest policy, event policy); the code and host key stay.
    public func update(_ newInfo: SessionInfo) {
        info.title = newInfo.title
        info.guestPolicy = newInfo.guestPolicy
        info.eventPolicy = newInfo.eventPolicy
    }

    // MARK: - Joining and leaving

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
        var key: String
        switch Admission.decide(request, info: info, tokens: policy.tokens, now: wallClockMillis() / 1000) {
        case .reject(let code, let message, let field, let close):
            send(client, .error(code: code, message: message, field: field))
            if let close { client.disconnect(close, message) }
            return
        case .admit(let r, let k, let n, let e, let h):
            (role, name, tokenExpiry, viaHostKey) = (r, n, e, h)
            key = k ?? "anon:" + newID(9)
        }
        if let member = members.first(where: { $0.key == key && !$0.leaving }) {
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
            member.graceDeadline = nil
            attach(client, to: member, tokenExpiry: tokenExpiry, viaHostKey: viaHostKey)
            if member.announced {
                welcome(client, member, resumeFrom: request.resumeFrom, through: lastSeq)
                if member.connections.count > 1 { broadcastPresenceUpdate(member) }
            }
            return
        }
        guard members.count < info.maxParticipants else {
            send(
                client,
                .error(code: "session_full", message: "session \(code) is full (\(info.maxParticipants) participants)"))
            return
        }
        nextMemberNumber += 1
        let used = Set(members.map(\.color))
        let color =
            Session.palette.first(where: { !used.contains($0) })
            ?? Session.palette[nextMemberNumber % Session.palette.count]
        let member = Member(id: "m" + newID(6), key: key, name: name, color: color, role: role)
        members.append(member)
        attach(client, to: member, tokenExpiry: tokenExpiry, viaHostKey: viaHostKey)
        let resumeFrom = request.resumeFrom
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
    private func attach(_ client: HubClient, to member: Member, tokenExpiry: Int64?, viaHostKey: Bool) {
        member.connections.append(client)
        let m = Membership(session: self, member: member)
        m.tokenExpiry = tokenExpiry
        m.viaHostKey = viaHostKey
        client.membership = m
    }

    /// Unties every connection of `member` from it (they stay open, detached).
    func detachAll(_ member: Member) -> [HubClient] {
        let connections = member.connections
        for c in connections { c.membership = nil }
        member.connections.removeAll()
        return connections
    }

    /// Replays what a (re)joining client missed, then sends `joined` with the presence snapshot.
    private func welcome(_ client: HubClient, _ member: Member, resumeFrom: Int?, through seq: Int) {
        if let from = resumeFrom, from < seq {
            if let missed = window.missing(after: from, through: seq) {
                for frame in missed { client.deliver(frame) }
            } else {
                send(
                    client,
                    .reset(
                        reason: "history_truncated",
                        message: "events after \(from) are older than the resume window; reload the transcript",
                        seq: seq))
            }
        }
        send(
            client,
            .joined(
                session: code, title: info.title, you: member.json,
                members: members.filter(\.announced).map(\.json), seq: seq))
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
        persist(
            type: "presence", member: member.id, clientId: nil,
            body: EventBody.presence(joins: [], leaves: [(member.id, reason)])
        ) { [weak self] _, frame in
            guard let self else { return }
            let out = frame ?? ServerMessage.presenceUnstored(joins: [], leaves: [member.id]).frame
            self.broadcast(out, .durable, except: nil)
            self.finishIfDone()
        }
    }

    // MARK: - Messages

    public func received(_ client: HubClient, _ message: ClientMessage) {
        guard let membership = client.membership else {
            return send(client, .error(code: "not_joined", message: "send a join first"))
        }
        let member = membership.member
        if isEnded {
            // Between `end` and its commit nothing more is stored after the "Session ended" event.
            return send(client, .error(code: "session_ended", message: "session \(code) has ended"))
        }
        if member.role.isReadOnly {
            switch message {
            case .chat, .cursor, .typing, .event, .runControl, .remove, .end:
                return send(client, .error(code: "forbidden", message: "viewers are read-only"))
            default: break
            }
        }
        switch message {
        case .refresh(let token):
            refresh(client, membership, token)
        case .join:
            send(client, .error(code: "already_joined", message: "this connection already joined session \(code)"))
        case .leave:
            leave(client)
        case .ping(let ref):
            send(client, .pong(id: ref))
        case .chat(let chat):
            guard member.announced else {
                return send(client, .error(code: "not_ready", message: "wait for joined before sending", ref: chat.id))
            }
            if chat.kind == .system && member.role != .host {
                return send(
                    client,
                    .error(
                        code: "forbidden", message: "only the host may send system messages",
                        ref: chat.id, field: "kind"))
            }
            // Deduplicated by the sender's stable identity (token subject or client_id), not the member
            // id, which is new after the reconnect grace or a restart.
            persistAcked(
                client, type: "chat", member: member, id: chat.id,
                body: EventBody.chat(id: chat.id, from: member.fromJSON, message: chat.body), what: "message")
        case .cursor(let cursor):
            moveCursor(member, cursor.body)
        case .typing(let start):
            setTyping(member, start)
        case .event(let event):
            guard member.announced else {
                return send(client, .error(code: "not_ready", message: "wait for joined before sending", ref: event.id))
            }
            if let allowed = info.eventPolicy[member.role.rawValue],
                !allowed.contains(where: {
                    $0 == event.name || ($0.hasSuffix("*") && event.name.hasPrefix($0.dropLast()))
                })
            {
                return send(
                    client,
                    .error(
                        code: "forbidden", message: "role \(member.role.rawValue) may not send event \(event.name)",
                        ref: event.id, field: "name"))
            }
            let body = EventBody.event(name: event.name, from: member.id, id: event.id, data: Array(event.data))
            if event.durable {
                persistAcked(client, type: "event", member: member, id: event.id!, body: body, what: "event")
            } else {
                broadcast(
                    ServerMessage.event(body: body).frame, .ephemeral(key: "event:\(member.id):\(event.name)"),
                    except: member)
            }
        case .end(let reason):
            guard member.role == .host else {
                return send(client, .error(code: "forbidden", message: "only the host may end the session"))
            }
            host?.record(
                "session_ended", session: self, actor: member, target: code, details: reason, address: client.address)
            end(reason: reason ?? "ended by host")
        case .remove(let id):
            guard member.role == .host else {
                return send(
                    client, .error(code: "forbidden", message: "only the host may remove a member", field: "member"))
            }
            guard let target = members.first(where: { $0.id == id }), target !== member else {
                return send(
                    client,
                    .error(
                        code: "invalid_field", message: "no other member \(id) in this session",
                        field: "member"))
            }
            host?.record(
                "member_removed", session: self, actor: member, target: target.id, details: target.name,
                address: client.address)
            remove(target)
        case .runControl(let run, let action, let ref):
            guard member.role.mayControlRuns else {
                return send(client, .error(code: "forbidden", message: "your role may not control runs", ref: ref))
            }
            host?.controlRun(run, action: action, session: self, by: member) { [weak self] error in
                guard let self else { return }
                if let error {
                    return self.send(
                        client, .error(code: error.code, message: error.message, ref: ref, field: error.field))
                }
                self.host?.record(
                    "run_controlled", session: self, actor: member, target: run, details: action.rawValue,
                    address: client.address)
                self.send(client, .runControlSent(run: run, action: action, id: ref))
            }
        }
    }

    func finishIfDone() {
        if isEnded && members.isEmpty { host?.sessionFinished(self) }
    }

    /// Expires typing indicators, reconnect grace periods and tokens. Called a few times a second.
    public func tick() {
        sampleCursors()
        let now = clock()
        expireTyping(now: now)
        for m in members where m.connections.isEmpty {
            if let deadline = m.graceDeadline, deadline <= now { removeMember(m, reason: "left") }
        }
        checkTokens()
    }

    public var needsTick: Bool {
        policy.tokens.isEnabled || members.contains { $0.typingUntil != nil || $0.graceDeadline != nil }
    }

    // MARK: - The durable path

    /// Persists a durable event; after the commit builds the event's frame once, adds it to the resume
    /// window and calls `then` (on this session's loop, in append order).
    func persist(
        type: String, member: String?, clientId: String?, body: [UInt8],
        then: @escaping (Result<Committed, StoreFailure>, Chunk?) -> Void
    ) {
        let event = DurableEvent(session: code, type: type, member: member, clientId: clientId, body: body)
        // The session is kept alive by its pending completions (it outlives them anyway).
        store.append(event, executor: executor) { result in
            switch result {
            case .success(let committed):
                if committed.duplicate { return then(result, nil) }
                self.host?.metrics.durableCommitted()
                let frame = ServerMessage.durable(type: type, seq: committed.seq, ts: committed.ts, body: body).frame
                self.lastSeq = committed.seq
                self.window.append((committed.seq, frame))
                then(result, frame)
            case .failure:
                self.host?.metrics.storeFailure()
                then(result, nil)
            }
        }
    }

    /// Persists a member's message with its id; after the commit, broadcasts it and acknowledges it
    /// to the sender (a resend gets the original's seq, marked duplicate, and is not broadcast again).
    private func persistAcked(
        _ client: HubClient, type: String, member: Member, id: String, body: [UInt8], what: String
    ) {
        persist(type: type, member: member.key, clientId: id, body: body) { [weak self] result, frame in
            guard let self else { return }
            switch result {
            case .success(let c):
                if let frame { self.broadcast(frame, .durable, except: nil) }
                self.send(client, .ack(id: id, seq: c.seq, ts: c.ts, duplicate: c.duplicate))
            case .failure(let failure):
                self.send(
                    client,
                    .error(code: "storage_unavailable", message: "\(what) not stored: \(failure.message)", ref: id))
            }
        }
    }

    // MARK: - Delivery

    func broadcastPresenceUpdate(_ member: Member) {
        broadcast(ServerMessage.presenceUpdates([member.json]).frame, .ephemeral(key: nil), except: nil)
    }

    func send(_ client: HubClient, _ message: ServerMessage) { client.deliver(message.frame) }

    /// Sends one pre-framed message to every connection of every announced member, under the fan-out
    /// policy (`Fanout`). `supersedes` names a coalescing key this frame makes stale.
    func broadcast(_ frame: Chunk, _ kind: Fanout.Kind, except: Member?, supersedes: String? = nil) {
        let metrics = host?.metrics
        for m in members where m.announced && m !== except {
            for c in m.connections { fanout.deliver(frame, to: c, kind, supersedes: supersedes, metrics: metrics) }
        }
    }
}
