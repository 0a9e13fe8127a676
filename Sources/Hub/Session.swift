import WebSocket

/// A connection as the hub sees it. The server's `Connection` conforms; tests use a recording fake.
public protocol HubClient: AnyObject {
    /// Output queued for this client and not yet written: the backpressure measure.
    var queuedBytes: Int { get }
    /// The connection is being closed (or was cut off): nothing more is sent to it.
    var isDisconnecting: Bool { get }
    /// Queues a pre-framed message (the same chunk goes to every recipient of a broadcast).
    func deliver(_ frame: Chunk)
    /// Closes the connection with an application close code.
    func disconnect(_ code: CloseCode, _ reason: String)
    /// Holds an ephemeral update for a client that is behind: only the latest per `key` is kept, and
    /// it is sent when the client's output drains.
    func coalesce(_ frame: Chunk, key: String)
    /// Forgets what is held under `key` (a later message superseded it).
    func uncoalesce(key: String)
    /// The client's address (for the activity log).
    var address: String { get }
    /// Hub state attached to the connection.
    var membership: Membership? { get set }
}

/// Which session and member a connection belongs to.
public final class Membership {
    public unowned let session: Session
    public let member: Member
    /// When this connection's token expires (Unix seconds), if it joined with one.
    public var tokenExpiry: Int64?
    var warnedExpiry = false
    /// Joined with the session's host key (its role is host whatever a token says).
    var viaHostKey = false
    public init(session: Session, member: Member) { self.session = session; self.member = member }
}

/// Static facts about a session, shared with the HTTP API.
public struct SessionInfo: Sendable, Equatable {
    public var code: String
    public var title: String
    public var maxParticipants: Int
    public var guestPolicy: String
    public var hostKey: String
    public var createdAt: Int64
    public var endedAt: Int64?
    public var endReason: String?
    /// Which app-event names each role may send (`role -> names`; a name ending in `*` is a prefix).
    /// A role not listed may send any name.
    public var eventPolicy: [String: [String]] = [:]
    public init(code: String, title: String, maxParticipants: Int, guestPolicy: String, hostKey: String, createdAt: Int64) {
        self.code = code; self.title = title; self.maxParticipants = maxParticipants; self.guestPolicy = guestPolicy
        self.hostKey = hostKey; self.createdAt = createdAt
    }
}

/// One participant of a session: possibly several connections (tabs) of the same person.
public final class Member {
    public let id: String
    public let key: String
    public let name: String
    public let color: String
    /// Follows the member's current token: a refresh or a new tab with another role changes it.
    public internal(set) var role: String
    public internal(set) var connections: [HubClient] = []
    /// `{id, name, color}`: the `from` of everything the member sends (built once).
    lazy var fromJSON: [UInt8] = {
        var w = JSONWriter(capacity: 64)
        w.beginObject(); w.field("id", id); w.field("name", name); w.field("color", color); w.endObject()
        return w.bytes
    }()
    /// False until the member's join is committed and announced to the others.
    public internal(set) var announced = false
    var typingUntil: Double?
    var cursor: [UInt8]?
    var cursorDirty = false
    /// When this member's cursor was last sampled into the transcript (`--record-cursors`), and whether
    /// it moved since without being sampled (the interval had not passed): `tick` stores that position.
    var cursorRecordedAt = -Double.infinity
    var cursorUnsampled = false
    var graceDeadline: Double?
    var leaving = false

    init(id: String, key: String, name: String, color: String, role: String) {
        self.id = id; self.key = key; self.name = name; self.color = color; self.role = role
    }

    var json: [UInt8] {
        var w = JSONWriter(capacity: 96)
        w.beginObject()
        w.field("id", id); w.field("name", name); w.field("color", color); w.field("role", role)
        w.field("connections", connections.count)
        w.endObject()
        return w.bytes
    }
}

/// Tunables of the session logic (defaults from the product spec).
public struct SessionPolicy: Sendable {
    /// A member whose last connection dropped stays present this long, so a reconnect is seamless.
    public var reconnectGrace = 10.0
    /// A typing "start" not refreshed within this is expired and a "stop" broadcast.
    public var typingTimeout = 5.0
    /// Recent durable events kept in memory for resume; older resumes get a reset.
    public var resumeWindow = 1000
    /// ... and at most this many bytes of them (1,000 events of 64 KiB would be 64 MiB per session).
    /// Half the hard output limit: a resume must fit in what a client may have queued.
    public var resumeWindowBytes = 2 << 20
    /// Output past which a client's cursor/typing updates are dropped.
    public var softOutputLimit = 256 * 1024
    /// Output past which a client is disconnected (4000) and must resume.
    public var hardOutputLimit = 4 * 1024 * 1024
    public var limits = MessageLimits()
    /// Access-token verification; without keys, tokens are refused and only guests/host keys join.
    public var tokens = TokenVerifier(keys: [:])
    /// A connection is warned this many seconds before its token expires.
    public var tokenWarning: Int64 = 30
    /// Stores each member's cursor at most this often (seconds) for playback; nil stores none.
    public var cursorSampleInterval: Double?
    public init() {}
}

/// What the session asks of the loop that owns it.
public protocol SessionHost: AnyObject {
    /// Schedules a cursor flush soon (at most ~60 per second).
    func cursorsPending(_ session: Session)
    /// The session ended and has no members left: forget it.
    func sessionFinished(_ session: Session)
    var metrics: HubMetrics { get }
    /// Records an administrative action in the activity log.
    func record(_ action: String, session: Session, actor: Member?, target: String?, details: String?, address: String?)
    /// Forwards a run control request to the run's publisher; `reply` gets nil once forwarded.
    func controlRun(_ run: String, action: String, session: Session, by: Member, reply: @escaping (MessageError?) -> Void)
}

/// Counters the session logic bumps.
public protocol HubMetrics: AnyObject {
    func droppedEphemeral()
    func slowConsumer()
    func durableCommitted()
    func storeFailure()
}

/// A live collaboration session: presence, cursors, chat, typing and app events, with one `seq` order
/// for every durable event. Pure logic: it never touches a socket or a file. Connections come in as
/// `HubClient`s, durable events go out through an `EventStore`, time comes from `clock`.
public final class Session {
    public let code: String
    public private(set) var info: SessionInfo
    public let policy: SessionPolicy
    let store: EventStore
    let executor: Executor
    weak var host: SessionHost?
    let clock: () -> Double
    let wallClockMillis: () -> Int64

    public private(set) var members: [Member] = []
    /// The last committed seq (every event up to it has been broadcast).
    public private(set) var lastSeq: Int
    /// Committed events for resume: a ring of the last `policy.resumeWindow` frames.
    private var window: ResumeWindow
    private var nextMemberNumber = 0
    public private(set) var isEnded = false
    var hasDirtyCursors = false

    public static let palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
                                 "#bfef45", "#469990", "#9a6324", "#800000", "#808000", "#000075", "#a9a9a9"]

    public init(info: SessionInfo, policy: SessionPolicy, store: EventStore, executor: Executor, host: SessionHost?,
                clock: @escaping () -> Double, wallClockMillis: @escaping () -> Int64) {
        self.code = info.code
        self.info = info
        self.policy = policy
        self.store = store
        self.executor = executor
        self.host = host
        self.clock = clock
        self.wallClockMillis = wallClockMillis
        lastSeq = store.lastSeq(session: info.code)
        window = ResumeWindow(maxCount: policy.resumeWindow, maxBytes: policy.resumeWindowBytes)
        // Refill the resume window from disk, so clients resuming after a restart miss nothing.
        for e in store.tail(session: info.code, limit: policy.resumeWindow) {
            window.append((e.seq, Chunk.text(e.json)))
        }
        if let last = window.last?.seq { lastSeq = max(lastSeq, last) }
    }

    public var memberCount: Int { members.count }

    /// New settings from the API (title, guest policy, event policy); the code and host key stay.
    public func update(_ newInfo: SessionInfo) {
        info.title = newInfo.title
        info.guestPolicy = newInfo.guestPolicy
        info.eventPolicy = newInfo.eventPolicy
    }
    public var connectionCount: Int { members.reduce(0) { $0 + $1.connections.count } }

    // MARK: - Joining and leaving

    public func join(_ client: HubClient, _ request: ClientMessage.Join) {
        if isEnded {
            send(client, Wire.error("session_ended", "session \(code) has ended"))
            client.disconnect(.sessionEnded, "session ended")
            return
        }
        if client.membership != nil {
            send(client, Wire.error("already_joined", "this connection already joined session \(code)"))
            return
        }
        // Who is this? A token names the person and the role; a host key makes the host; otherwise a guest.
        var role = "editor", name = request.name, tokenExpiry: Int64?
        var key = request.clientId.map { "c:" + $0 } ?? "anon:" + Base64.encode(Crypto.randomBytes(9), urlSafe: true)
        let isHost = request.hostKey.map { Crypto.constantTimeEquals(Array($0.utf8), Array(info.hostKey.utf8)) } == true
        if let token = request.token {
            switch policy.tokens.verify(token, now: wallClockMillis() / 1000) {
            case .failure(let e):
                send(client, Wire.error(e.closeCode == .unauthorized ? "token_expired" : "unauthorized", e.message, field: "token"))
                client.disconnect(e.closeCode, e.message)
                return
            case .success(let claims):
                guard claims.session == "*" || claims.session == code else {
                    send(client, Wire.error("forbidden", "this token is for session \(claims.session), not \(code)", field: "token"))
                    client.disconnect(.forbidden, "token is for another session")
                    return
                }
                guard claims.role != "publisher" else {
                    send(client, Wire.error("forbidden", "publisher tokens cannot join sessions", field: "token"))
                    client.disconnect(.forbidden, "publisher token")
                    return
                }
                role = claims.role
                name = claims.name ?? request.name
                key = "sub:" + claims.sub
                tokenExpiry = claims.exp
            }
        } else if !isHost && info.guestPolicy != "allow" {
            send(client, Wire.error("guests_not_allowed", "session \(code) admits only people with a token"))
            client.disconnect(.unauthorized, "a token is required")
            return
        }
        if isHost { role = "host" }
        if let member = members.first(where: { $0.key == key && !$0.leaving }) {
            // A token's role is the member's role from now on (a demoted token demotes every tab).
            let holdsHostKey = member.connections.contains { $0.membership?.viaHostKey == true }
            if member.role != role && key.hasPrefix("sub:") && !(member.role == "host" && holdsHostKey) {
                member.role = role
                if member.announced { broadcastPresenceUpdate(member) }
            }
            // A `client_id` is no credential: it joins an existing member only with that member's role
            // (a guest who learned the host's client_id does not become the host). A token for the same
            // person joins whatever the role (a host-key holder stays host).
            guard member.role == role || key.hasPrefix("sub:") else {
                send(client, Wire.error("forbidden", "this identity is in the session with another role", field: request.token != nil ? "token" : "client_id"))
                client.disconnect(.forbidden, "identity in use with another role")
                return
            }
            // A second tab, or a reconnect within the grace period: same member, no leave/join pair.
            member.graceDeadline = nil
            member.connections.append(client)
            client.membership = Membership(session: self, member: member)
            client.membership?.tokenExpiry = tokenExpiry
            client.membership?.viaHostKey = isHost
            if member.announced {
                welcome(client, member, resumeFrom: request.resumeFrom, through: lastSeq)
                if member.connections.count > 1 { broadcastPresenceUpdate(member) }
            }
            return
        }
        guard members.count < info.maxParticipants else {
            send(client, Wire.error("session_full", "session \(code) is full (\(info.maxParticipants) participants)"))
            return
        }
        nextMemberNumber += 1
        let used = Set(members.map(\.color))
        let color = Session.palette.first(where: { !used.contains($0) }) ?? Session.palette[nextMemberNumber % Session.palette.count]
        let member = Member(id: "m" + Base64.encode(Crypto.randomBytes(6), urlSafe: true), key: key,
                            name: name, color: color, role: role)
        member.connections.append(client)
        members.append(member)
        client.membership = Membership(session: self, member: member)
        client.membership?.tokenExpiry = tokenExpiry
        client.membership?.viaHostKey = isHost

        var w = JSONWriter()
        w.beginArray("joins"); w.rawElement(member.json); w.endArray()
        w.beginArray("leaves"); w.endArray()
        let resumeFrom = request.resumeFrom
        persist(type: "presence", member: member.id, clientId: nil, body: w.bytes) { [weak self] result, frame in
            guard let self else { return }
            member.announced = true
            if case .failure = result {
                // Storage is down: presence still works (without a seq), so the room keeps working.
                self.broadcast(Chunk.text(Wire.presenceWithoutSeq(joins: [member.json])), durable: true, except: member)
            } else if let frame {
                self.broadcast(frame, durable: true, except: member)
            }
            for c in member.connections { self.welcome(c, member, resumeFrom: resumeFrom, through: self.lastSeq) }
        }
    }

    /// Replays what a (re)joining client missed, then sends `joined` with the presence snapshot.
    private func welcome(_ client: HubClient, _ member: Member, resumeFrom: Int?, through seq: Int) {
        if let from = resumeFrom, from < seq {
            if let missed = window.missing(after: from, through: seq) {
                for frame in missed { client.deliver(frame) }
            } else {
                var w = JSONWriter()
                w.beginObject(); w.field("type", "reset"); w.field("reason", "history_truncated")
                w.field("message", "events after \(from) are older than the resume window; reload the transcript")
                w.field("seq", seq); w.endObject()
                send(client, w.bytes)
            }
        }
        var w = JSONWriter(capacity: 256 + members.count * 96)
        w.beginObject()
        w.field("type", "joined")
        w.field("session", code)
        w.field("title", info.title)
        w.raw("you", member.json)
        w.beginArray("members")
        for m in members where m.announced { w.rawElement(m.json) }
        w.endArray()
        w.field("seq", seq)
        w.endObject()
        send(client, w.bytes)
        for m in members where m.announced && m !== member {
            if m.typingUntil != nil { send(client, typingMessage(m, start: true)) }
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
        for c in member.connections { c.membership = nil }
        member.connections.removeAll()
        removeMember(member, reason: "left")
    }

    private func removeMember(_ member: Member, reason: String) {
        guard !member.leaving else { return }
        member.leaving = true
        if member.typingUntil != nil {
            member.typingUntil = nil
            broadcast(Chunk.text(typingMessage(member, start: false)), durable: false, except: member)
        }
        members.removeAll { $0 === member }
        if !member.announced {
            finishIfDone()
            return
        }
        var w = JSONWriter()
        w.beginArray("joins"); w.endArray()
        w.beginArray("leaves")
        w.beginObject(); w.field("id", member.id); w.field("reason", reason); w.endObject()
        w.endArray()
        persist(type: "presence", member: member.id, clientId: nil, body: w.bytes) { [weak self] result, frame in
            guard let self else { return }
            if let frame { self.broadcast(frame, durable: true, except: nil) }
            else { self.broadcast(Chunk.text(Wire.presenceWithoutSeq(leaves: [member.id])), durable: true, except: nil) }
            self.finishIfDone()
        }
    }

    // MARK: - Messages

    public func received(_ client: HubClient, _ message: ClientMessage) {
        guard let member = client.membership?.member else {
            send(client, Wire.error("not_joined", "send a join first"))
            return
        }
        if isEnded {
            // Between `end` and its commit nothing more is stored after the "Session ended" event.
            return send(client, Wire.error("session_ended", "session \(code) has ended"))
        }
        if member.role == "viewer" {
            switch message {
            case .chat, .cursor, .typing, .event, .runControl, .remove, .end:
                return send(client, Wire.error("forbidden", "viewers are read-only"))
            default: break
            }
        }
        switch message {
        case .refresh(let token):
            guard let membership = client.membership else { return }
            switch policy.tokens.verify(token, now: wallClockMillis() / 1000) {
            case .failure(let e):
                send(client, Wire.error("unauthorized", e.message, field: "token"))
            case .success(let claims):
                guard "sub:" + claims.sub == member.key, claims.session == "*" || claims.session == code else {
                    return send(client, Wire.error("forbidden", "the new token is for another person or session", field: "token"))
                }
                guard claims.role != "publisher" else {
                    return send(client, Wire.error("forbidden", "publisher tokens cannot join sessions", field: "token"))
                }
                membership.tokenExpiry = claims.exp
                membership.warnedExpiry = false
                // Roles follow the current token: a refreshed token with another role changes it (a host
                // key keeps its holder the host).
                if member.role != claims.role && !(member.role == "host" && membership.viaHostKey) {
                    member.role = claims.role
                    broadcastPresenceUpdate(member)
                }
                var w = JSONWriter(); w.beginObject(); w.field("type", "token_refreshed"); w.field("exp", Int(claims.exp)); w.endObject()
                send(client, w.bytes)
            }
        case .join:
            send(client, Wire.error("already_joined", "this connection already joined session \(code)"))
        case .leave:
            leave(client)
        case .ping(let ref):
            var w = JSONWriter(); w.beginObject(); w.field("type", "pong"); if let ref { w.field("id", ref) }; w.endObject()
            send(client, w.bytes)
        case .chat(let chat):
            guard member.announced else { return send(client, Wire.error("not_ready", "wait for joined before sending", ref: chat.id)) }
            if chat.kind == "system" && member.role != "host" {
                return send(client, Wire.error("forbidden", "only the host may send system messages", ref: chat.id, field: "kind"))
            }
            var w = JSONWriter(capacity: chat.body.count + 128)
            w.field("id", chat.id)
            w.raw("from", fromJSON(member))
            var body = w.bytes
            body.append(UInt8(ascii: ","))
            body += chat.body
            // Deduplicated by the sender's stable identity (token subject or client_id), not the member
            // id, which is new after the reconnect grace or a restart.
            persist(type: "chat", member: member.key, clientId: chat.id, body: body) { [weak self] result, frame in
                guard let self else { return }
                switch result {
                case .success(let committed):
                    if let frame { self.broadcast(frame, durable: true, except: nil) }
                    self.sendAck(client, id: chat.id, committed)
                case .failure(let failure):
                    self.send(client, Wire.error("storage_unavailable", "message not stored: \(failure.message)", ref: chat.id))
                }
            }
        case .cursor(let cursor):
            guard member.announced else { return }
            member.cursor = cursor.body
            if !member.cursorDirty {
                member.cursorDirty = true
                if !hasDirtyCursors { hasDirtyCursors = true; host?.cursorsPending(self) }
            }
        case .typing(let start):
            guard member.announced else { return }
            let wasTyping = member.typingUntil != nil
            member.typingUntil = start ? clock() + policy.typingTimeout : nil
            if start != wasTyping {
                broadcast(Chunk.text(typingMessage(member, start: start)), durable: false, except: member, key: "typing:\(member.id)")
            }
        case .event(let event):
            guard member.announced else { return send(client, Wire.error("not_ready", "wait for joined before sending", ref: event.id)) }
            if let allowed = info.eventPolicy[member.role],
               !allowed.contains(where: { $0 == event.name || ($0.hasSuffix("*") && event.name.hasPrefix($0.dropLast())) }) {
                return send(client, Wire.error("forbidden", "role \(member.role) may not send event \(event.name)", ref: event.id, field: "name"))
            }
            var w = JSONWriter(capacity: event.data.count + 96)
            w.field("name", event.name)
            w.field("from", member.id)
            if let id = event.id { w.field("id", id) }
            w.raw("data", event.data)
            if event.durable {
                persist(type: "event", member: member.key, clientId: event.id, body: w.bytes) { [weak self] result, frame in
                    guard let self else { return }
                    switch result {
                    case .success(let committed):
                        if let frame { self.broadcast(frame, durable: true, except: nil) }
                        self.sendAck(client, id: event.id!, committed)
                    case .failure(let failure):
                        self.send(client, Wire.error("storage_unavailable", "event not stored: \(failure.message)", ref: event.id))
                    }
                }
            } else {
                var out: [UInt8] = Array("{\"type\":\"event\",".utf8)
                out += w.bytes
                out.append(UInt8(ascii: "}"))
                broadcast(Chunk.text(out), durable: false, except: member, key: "event:\(member.id):\(event.name)")
            }
        case .end(let reason):
            guard member.role == "host" else { return send(client, Wire.error("forbidden", "only the host may end the session")) }
            host?.record("session_ended", session: self, actor: member, target: code, details: reason, address: client.address)
            end(reason: reason ?? "ended by host")
        case .remove(let id):
            guard member.role == "host" else { return send(client, Wire.error("forbidden", "only the host may remove a member", field: "member")) }
            guard let target = members.first(where: { $0.id == id }), target !== member else {
                return send(client, Wire.error("invalid_field", "no other member \(id) in this session", field: "member"))
            }
            host?.record("member_removed", session: self, actor: member, target: target.id, details: target.name, address: client.address)
            let connections = target.connections
            for c in connections { c.membership = nil }
            target.connections.removeAll()
            removeMember(target, reason: "removed")
            for c in connections { c.disconnect(.removed, "removed by the host") }
        case .runControl(let run, let action, let ref):
            guard member.role == "host" || member.role == "editor" else {
                return send(client, Wire.error("forbidden", "your role may not control runs", ref: ref))
            }
            host?.controlRun(run, action: action, session: self, by: member) { [weak self] error in
                guard let self else { return }
                if let error { return self.send(client, Wire.error(error.code, error.message, ref: ref, field: error.field)) }
                self.host?.record("run_controlled", session: self, actor: member, target: run, details: action, address: client.address)
                var w = JSONWriter(); w.beginObject(); w.field("type", "run_control_sent"); w.field("run", run); w.field("action", action)
                if let ref { w.field("id", ref) }
                w.endObject()
                self.send(client, w.bytes)
            }
        }
    }

    /// A run attached to this session changed (collaborative testing: everyone in the room sees it).
    /// Status changes are durable events of the session (`type: "run"`); progress is ephemeral.
    /// A run attached to the session changed: status changes are durable events; progress is ephemeral,
    /// and a member who is behind gets only the latest (held until it catches up, and forgotten when a
    /// status change, which carries the whole state, overtakes it).
    public func runUpdate(run: String, summary: [UInt8], event: String, durable: Bool) {
        guard !isEnded else { return }
        var w = JSONWriter(capacity: summary.count + 32)
        w.field("event", event)
        w.raw("run", summary)
        let key = "run:" + run
        if durable {
            persist(type: "run", member: nil, clientId: nil, body: w.bytes) { [weak self] _, frame in
                if let frame { self?.broadcast(frame, durable: true, except: nil, supersedes: key) }
            }
        } else {
            broadcast(Chunk.text(Array("{\"type\":\"run\",".utf8) + w.bytes + [UInt8(ascii: "}")]), durable: false, except: nil, key: key)
        }
    }

    /// Ends the session: a durable system event, then every member is told and disconnected (4004).
    public func end(reason: String) {
        guard !isEnded else { return }
        isEnded = true
        info.endedAt = wallClockMillis()
        info.endReason = reason
        var w = JSONWriter()
        w.field("kind", "system"); w.field("text", "Session ended: \(reason)"); w.field("event", "session_ended")
        persist(type: "chat", member: nil, clientId: nil, body: w.bytes) { [weak self] _, frame in
            guard let self else { return }
            if let frame { self.broadcast(frame, durable: true, except: nil) }
            var e = JSONWriter()
            e.beginObject(); e.field("type", "session_ended"); e.field("reason", reason); e.endObject()
            let ended = Chunk.text(e.bytes)
            for m in self.members {
                for c in m.connections {
                    c.deliver(ended)
                    c.membership = nil
                    c.disconnect(.sessionEnded, "session ended: \(reason)")
                }
                m.connections.removeAll()
            }
            self.members.removeAll()
            self.finishIfDone()
        }
    }

    private func finishIfDone() {
        if isEnded && members.isEmpty { host?.sessionFinished(self) }
    }

    // MARK: - Periodic work

    /// Sends the cursors that moved since the last flush, one message for the whole session.
    public func flushCursors() {
        hasDirtyCursors = false
        var w = JSONWriter(capacity: 64 + members.count * 64)
        w.beginObject()
        w.field("type", "cursors")
        w.beginArray("updates")
        var any = false
        for m in members where m.cursorDirty {
            m.cursorDirty = false
            guard m.cursor != nil else { continue }
            w.rawElement(cursorUpdate(m))
            any = true
            m.cursorUnsampled = policy.cursorSampleInterval != nil
        }
        w.endArray()
        w.endObject()
        if any { broadcast(Chunk.text(w.bytes), durable: false, except: nil) }
        sampleCursors()
    }

    private func cursorUpdate(_ m: Member) -> [UInt8] {
        var u: [UInt8] = Array("{\"id\":\"".utf8) + Array(m.id.utf8) + Array("\",".utf8)
        u += m.cursor ?? []
        u.append(UInt8(ascii: "}"))
        return u
    }

    /// Stores (for playback) the cursors that moved since their last sample, for members whose last
    /// sample is at least the interval old. Called after each flush and from `tick`, so a cursor that
    /// stops moving within the interval still gets its final position stored.
    private func sampleCursors() {
        guard let interval = policy.cursorSampleInterval else { return }
        let now = clock()
        var sample: JSONWriter?
        for m in members where m.cursorUnsampled && now - m.cursorRecordedAt >= interval {
            m.cursorUnsampled = false
            m.cursorRecordedAt = now
            if sample == nil { sample = JSONWriter(capacity: 128); sample!.beginArray() }
            sample!.rawElement(cursorUpdate(m))
        }
        if var sample {
            sample.endArray()
            store.recordCursors(session: code, ts: wallClockMillis(), updates: sample.bytes)
        }
    }

    /// Expires typing indicators and reconnect grace periods. Called a few times a second.
    public func tick() {
        sampleCursors()
        let now = clock()
        for m in members {
            if let until = m.typingUntil, until <= now {
                m.typingUntil = nil
                broadcast(Chunk.text(typingMessage(m, start: false)), durable: false, except: m)
            }
        }
        for m in members where m.connections.isEmpty {
            if let deadline = m.graceDeadline, deadline <= now { removeMember(m, reason: "left") }
        }
        // Tokens: warn before expiry; past it (and the clock skew), the connection goes with 4001.
        let wallNow = wallClockMillis() / 1000
        for m in members {
            for c in m.connections {
                guard let ms = c.membership, let exp = ms.tokenExpiry else { continue }
                if wallNow - policy.tokens.skew > exp {
                    send(c, Wire.error("token_expired", "your token expired; join again with a fresh one"))
                    c.disconnect(.unauthorized, "token expired")
                } else if !ms.warnedExpiry && wallNow + policy.tokenWarning >= exp {
                    ms.warnedExpiry = true
                    var w = JSONWriter(); w.beginObject(); w.field("type", "token_expiring"); w.field("exp", Int(exp)); w.endObject()
                    send(c, w.bytes)
                }
            }
        }
    }

    public var needsTick: Bool {
        policy.tokens.isEnabled || members.contains { $0.typingUntil != nil || $0.graceDeadline != nil }
    }

    // MARK: - Plumbing

    /// Persists a durable event; after the commit builds the event's frame once, adds it to the resume
    /// window and calls `then` (on this session's loop, in append order).
    private func persist(type: String, member: String?, clientId: String?, body: [UInt8],
                         then: @escaping (Result<Committed, StoreFailure>, Chunk?) -> Void) {
        let event = DurableEvent(session: code, type: type, member: member, clientId: clientId, body: body)
        // The session is kept alive by its pending completions (it outlives them anyway).
        store.append(event, executor: executor) { result in
            switch result {
            case .success(let committed):
                if committed.duplicate { return then(result, nil) }
                self.host?.metrics.durableCommitted()
                let frame = Chunk.text(Wire.event(type: type, seq: committed.seq, ts: committed.ts, body: body))
                self.lastSeq = committed.seq
                self.window.append((committed.seq, frame))
                then(result, frame)
            case .failure:
                self.host?.metrics.storeFailure()
                then(result, nil)
            }
        }
    }

    private func sendAck(_ client: HubClient, id: String, _ committed: Committed) {
        var w = JSONWriter(capacity: 96)
        w.beginObject()
        w.field("type", "ack"); w.field("id", id); w.field("seq", committed.seq); w.field("ts", Int(committed.ts))
        if committed.duplicate { w.field("duplicate", true) }
        w.endObject()
        send(client, w.bytes)
    }

    private func fromJSON(_ m: Member) -> [UInt8] { m.fromJSON }

    private func typingMessage(_ m: Member, start: Bool) -> [UInt8] {
        var w = JSONWriter(capacity: 64)
        w.beginObject(); w.field("type", "typing"); w.field("member", m.id); w.field("state", start ? "start" : "stop"); w.endObject()
        return w.bytes
    }

    private func broadcastPresenceUpdate(_ member: Member) {
        var w = JSONWriter()
        w.beginObject(); w.field("type", "presence")
        w.beginArray("updates"); w.rawElement(member.json); w.endArray()
        w.endObject()
        broadcast(Chunk.text(w.bytes), durable: false, except: nil)
    }

    func send(_ client: HubClient, _ json: [UInt8]) { client.deliver(Chunk.text(json)) }

    /// Sends one pre-framed message to every connection of every announced member. Durable messages
    /// always go (a client past the hard limit is disconnected with 4000 and resumes); ephemeral ones
    /// for a client past the soft limit are coalesced (latest per `key`, sent when it drains) or, without
    /// a key (cursor batches), dropped. `supersedes` names a coalescing key this frame makes stale.
    func broadcast(_ frame: Chunk, durable: Bool, except: Member?, key: String? = nil, supersedes: String? = nil) {
        for m in members where m.announced && m !== except {
            for c in m.connections where !c.isDisconnecting {
                if let supersedes { c.uncoalesce(key: supersedes) }
                let queued = c.queuedBytes
                if durable {
                    if queued > policy.hardOutputLimit {
                        host?.metrics.slowConsumer()
                        c.disconnect(.slowConsumer, "too far behind; resume from your last seq")
                        continue
                    }
                } else if queued > policy.softOutputLimit {
                    host?.metrics.droppedEphemeral()
                    if let key { c.coalesce(frame, key: key) }
                    continue
                }
                c.deliver(frame)
            }
        }
    }
}

extension Wire {
    static func presenceWithoutSeq(joins: [[UInt8]] = [], leaves: [String] = []) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject(); w.field("type", "presence"); w.field("stored", false)
        w.beginArray("joins"); for j in joins { w.rawElement(j) }; w.endArray()
        w.beginArray("leaves"); for l in leaves { w.beginObject(); w.field("id", l); w.endObject() }; w.endArray()
        w.endObject()
        return w.bytes
    }
}

/// The resume window: the last committed frames, bounded by count and by bytes (the oldest go first;
/// the newest one always stays). A client resuming from before its first seq gets a `reset`.
public struct ResumeWindow {
    private var items: [(seq: Int, frame: Chunk)] = []
    private var head = 0
    public private(set) var bytes = 0
    public let maxCount: Int
    public let maxBytes: Int
    public init(maxCount: Int, maxBytes: Int) { self.maxCount = maxCount; self.maxBytes = maxBytes }

    public var count: Int { items.count - head }
    public var first: (seq: Int, frame: Chunk)? { head < items.count ? items[head] : nil }
    public var last: (seq: Int, frame: Chunk)? { head < items.count ? items[items.count - 1] : nil }

    public mutating func append(_ e: (seq: Int, frame: Chunk)) {
        guard maxCount > 0 else { return }
        items.append(e)
        bytes += e.frame.count
        while count > 1 && (count > maxCount || bytes > maxBytes) {
            bytes -= items[head].frame.count
            head += 1
        }
        if head >= 64 && head * 2 >= items.count { items.removeFirst(head); head = 0 }
    }

    /// Oldest first.
    public func forEach(_ body: ((seq: Int, frame: Chunk)) -> Void) {
        for i in head..<items.count { body(items[i]) }
    }
}

extension ResumeWindow {
    /// The frames a client that has everything up to `from` is missing, through `last` (the stream's
    /// last seq): nil when the window no longer reaches back that far (the client gets a snapshot or
    /// a reset), empty when it has everything. `from` comes from the wire: compared, never added to.
    public func missing(after from: Int, through last: Int) -> [Chunk]? {
        if from >= last { return [] }
        guard let first = self.first?.seq, from >= first - 1 else { return nil }
        var out: [Chunk] = []
        forEach { e in if e.seq > from && e.seq <= last { out.append(e.frame) } }
        return out
    }
}
