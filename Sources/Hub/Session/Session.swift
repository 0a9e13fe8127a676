import WebSocket

/// A live collaboration session: presence, chat, app events and attached runs, with one `seq` order
/// for every durable event. Pure logic: it never touches a socket or a file. Connections come in as
/// `HubClient`s, durable events go out through an `EventLog`, time comes from `clock`.
///
/// This file holds the messages and the durable path (persist -> commit -> one frame -> resume window ->
/// broadcast -> ack). Joining, resume and leaving are `Session+Presence`; who may join is `Admission`;
/// cursors and typing (no seq) are `Session+Ephemera`; delivery is `Fanout`; messages are `ServerMessage`.
public final class Session {
    public let code: String
    public internal(set) var info: SessionInfo
    public let policy: SessionPolicy
    let store: EventLog & CursorSamples
    let executor: Executor
    weak var host: SessionHost?
    let clock: () -> Double
    let wallClockMillis: () -> Int64
    /// Makes random identifiers (`bytes` of entropy, URL-safe): member ids and anonymous keys.
    let newID: (_ bytes: Int) -> String
    let fanout: Fanout

    public internal(set) var members: [Member] = []
    /// The last committed seq (every event up to it has been broadcast).
    public internal(set) var lastSeq: Int
    /// Committed events for resume: the last `policy.resumeWindow` frames (and bytes).
    var window: ResumeWindow
    var nextMemberNumber = 0
    public internal(set) var isEnded = false
    var hasDirtyCursors = false
    /// Resumes older than the window, being served from the store (Session+CatchUp).
    var catchUps: [CatchUp] = []
    /// Their connections, which broadcasts skip until they have caught up.
    var catchingUp: Set<ObjectIdentifier> = []
    /// Edits of chat messages by target seq, while the resume window may hold them (a redaction of the
    /// target replaces their frames too): seq, ts and body of each.
    var editsByTarget: [Int: [(seq: Int, ts: Int64, body: [UInt8])]] = [:]
    /// Chat messages this session deleted or redacted (the newest 1,024, oldest first), by seq and why:
    /// a change whose read of the original began before that commit must not store its text again.
    var removedTargets: [(seq: Int, reason: Replacement.Reason)] = []
    /// The order committed events are applied in (`LogOrder`): with a shared log (cluster), what waits
    /// for a gap to be filled, the reads that fill it and this node's appends in flight.
    var order = LogOrder<Arrival>(last: 0)
    /// Members of this session connected to other nodes (from their presence events), in join order.
    public var remoteMembers: [(id: String, json: [UInt8])] = []
    /// Ephemeral broadcasts also go to the other nodes (set when the session follows a shared log).
    public var relays: Bool {
        get { order.shared }
        set { order.shared = newValue }
    }
    /// Members keyed by identity across the cluster (set with a shared log): joins and leaves go
    /// through it (Session+SharedMembers); `rosterSync` says when this node says again who it holds.
    public var roster: SharedRoster?
    var rosterSync = RosterSync()

    public static let palette = [
        "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
        "#bfef45", "#469990", "#9a6324", "#800000", "#808000", "#000075", "#a9a9a9",
    ]

    /// Random, URL-safe identifiers from OpenSSL's generator.
    public static let randomID: (Int) -> String = { Base64.encode(Crypto.randomBytes($0), urlSafe: true) }

    /// `history` is what storage holds of the session (read off the loop before it wakes up).
    public init(
        info: SessionInfo, history: SessionHistory, policy: SessionPolicy, store: EventLog & CursorSamples,
        executor: Executor,
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
        if let last = window.lastSeq { lastSeq = max(lastSeq, last) }
        order = LogOrder(last: lastSeq)
    }

    public var memberCount: Int { members.count }
    public var connectionCount: Int { members.reduce(0) { $0 + $1.connections.count } }

    /// New settings from the API (title, guest policy, event policy); the code and host key stay.
    public func update(_ newInfo: SessionInfo) {
        info.title = newInfo.title
        info.guestPolicy = newInfo.guestPolicy
        info.eventPolicy = newInfo.eventPolicy
    }

    // MARK: - Messages

    public func received(_ client: HubClient, _ message: ClientMessage) {
        guard let member = client.joinedMember else {
            return send(client, .error(code: "not_joined", message: "send a join first"))
        }
        if isEnded {
            // Between `end` and its commit nothing more is stored after the "Session ended" event.
            return send(client, .error(code: "session_ended", message: "session \(code) has ended"))
        }
        if member.role.isReadOnly {
            switch message {
            case .chat, .cursor, .typing, .event, .runControl, .remove, .end, .chatChange:
                return send(client, .error(code: "forbidden", message: "viewers are read-only"))
            default: break
            }
        }
        switch message {
        case .refresh(let token):
            if let membership = client.membership { refresh(client, membership, token) }
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
        case .chatChange(let change):
            guard member.announced else {
                return send(
                    client, .error(code: "not_ready", message: "wait for joined before sending", ref: change.id))
            }
            changeChat(client, member, change)
        case .cursor(let cursor):
            moveCursor(member, cursor.body)
        case .typing(let start):
            setTyping(member, start)
        case .presence(let status, let location):
            guard member.announced else { return send(client, .error(code: "not_ready", message: "wait for joined")) }
            guard member.status != status || member.location != location else { return }
            member.status = status
            member.location = location
            broadcastPresenceUpdate(member)
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
            if event.durable {
                let body = EventBody.event(name: event.name, from: member.id, id: event.id, data: Array(event.data))
                persistAcked(client, type: "event", member: member, id: event.id!, body: body, what: "event")
            } else {
                let frame = ServerMessage.eventFrame(name: event.name, from: member.id, id: event.id, data: event.data)
                broadcastEvent(frame, from: member, name: event.name)
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
            // In a cluster the member may be on other nodes too, or only there (Session+ClusterRemoval).
            if roster != nil { return hostRemoves(id, by: member, client: client) }
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
        pumpCatchUps()
        let now = clock()
        expireTyping(now: now)
        for m in members where m.connections.isEmpty {
            if let deadline = m.graceDeadline, deadline <= now { removeMember(m, reason: "left") }
        }
        checkTokens()
        if order.needsTick { follow(order.tick(now: now)) }
        if rosterSync.stale { syncRoster(now: now) }
    }

    public var needsTick: Bool {
        policy.tokens.isEnabled || !catchUps.isEmpty || order.needsTick || rosterSync.stale
            || members.contains { $0.typingUntil != nil || $0.graceDeadline != nil }
    }

    // MARK: - The durable path

    /// Persists a durable event; after the commit builds the event's frame once, adds it to the resume
    /// window and calls `then` (on this session's loop, in append order). `via` appends instead of the
    /// store (a roster's join or leave), `rebody` gives the body as committed (a colour the roster picked).
    func persist(
        type: String, member: String?, clientId: String?, body: [UInt8], replaces: Replacement? = nil,
        via: ((@escaping (Result<Committed, StoreFailure>) -> Void) -> Void)? = nil, rebody: (() -> [UInt8])? = nil,
        then: @escaping (Result<Committed, StoreFailure>, Chunk?) -> Void
    ) {
        var event = DurableEvent(session: code, type: type, member: member, clientId: clientId, body: body)
        event.replaces = replaces
        let appended = clock()
        order.sent()
        // The session is kept alive by its pending completions (it outlives them anyway).
        let append = via ?? { [store, executor] in store.append(event, executor: executor, done: $0) }
        append { result in
            let own = Arrival.own(
                OwnCommit(type: type, body: body, rebody: rebody, replaces: replaces, result: result, then: then))
            switch result {
            case .success(let committed):
                if !committed.duplicate { self.host?.metrics.durableCommitted(latency: self.clock() - appended) }
                self.follow(
                    self.order.answered(
                        .committed(seq: committed.seq, duplicate: committed.duplicate, own), now: self.clock()))
            case .failure:
                self.host?.metrics.storeFailure()
                self.follow(self.order.answered(.failed(own), now: self.clock()))
            }
        }
    }

    /// Persists a member's message with its id; after the commit, broadcasts it and acknowledges it
    /// to the sender (a resend gets the original's seq, marked duplicate, and is not broadcast again).
    func persistAcked(
        _ client: HubClient, type: String, member: Member, id: String, body: [UInt8], what: String,
        replaces: Replacement? = nil, committed: ((Committed) -> Void)? = nil, failed: (() -> Void)? = nil
    ) {
        persist(type: type, member: member.key, clientId: id, body: body, replaces: replaces) {
            [weak self] result, frame in
            guard let self else { return }
            switch result {
            case .success(let c):
                if let frame {
                    committed?(c)
                    self.broadcast(frame, .durable, except: nil)
                }
                self.send(client, .ack(id: id, seq: c.seq, ts: c.ts, duplicate: c.duplicate))
            case .failure(let failure):
                failed?()
                self.send(
                    client,
                    .error(
                        code: "storage_unavailable", message: "\(what) \(failure.notStoredWords): \(failure.message)",
                        ref: id))
            }
        }
    }

    // MARK: - Delivery

    func broadcastPresenceUpdate(_ member: Member) {
        // Coalesced per member: a client that is behind gets the latest state, not the history.
        broadcast(
            ServerMessage.presenceUpdates([member.json]).frame, .ephemeral(.presence, key: "presence:\(member.id)"),
            except: nil)
    }

    func send(_ client: HubClient, _ message: ServerMessage) { client.deliver(message.frame) }

    /// Sends one pre-framed message to every connection of every announced member, under the fan-out
    /// policy (`Fanout`). `supersedes` names a coalescing key this frame makes stale.
    func broadcast(_ frame: Chunk, _ kind: Fanout.Kind, except: Member?, supersedes: String? = nil) {
        if relays, case .ephemeral(let traffic, let key) = kind {
            host?.relay(self, traffic: traffic, key: key, frame: frame)
        }
        deliverHere(frame, kind, except: except, supersedes: supersedes)
    }

    /// `broadcast` to this node's connections only.
    func deliverHere(_ frame: Chunk, _ kind: Fanout.Kind, except: Member?, supersedes: String? = nil) {
        let metrics = host?.metrics
        let skipping = !catchingUp.isEmpty
        for m in members where m.announced && m !== except {
            for c in m.connections {
                if skipping && catchingUp.contains(ObjectIdentifier(c)) { continue }
                fanout.deliver(frame, to: c, kind, supersedes: supersedes, metrics: metrics)
            }
        }
    }
}
