import EventLoop
import Foundation
import Hub
import WebSocket

/// `/ws?session=CODE`: the collaboration protocol (Protocol/PROTOCOL.md), subprotocol `collabhub.v1`.
/// Connections arrive here already on the loop that owns their session (see `Connection.upgrade`).
final class HubEndpoint: Endpoint {
    let handshakeOptions: Handshake.Options
    /// The loop's hub: its `LoopContext` holds it (and this endpoint) for the loop's whole life, so the reference
    /// is not checked (a checked `unowned` read cost a strong retain and a release, two per message).
    unowned(unsafe) let hub: LoopHub
    /// Invalid messages a connection may send before it is closed with 4002.
    static let maxInvalidMessages = 20
    /// Rate-limited messages a connection may send before it is closed with 4008.
    static let maxRefusedMessages = 2000

    /// The message limits (the loop context's configuration, fixed for its life): kept here, since reading
    /// them through `hub.context` cost a retain, a checked unowned load and two releases per message.
    let limits: MessageLimits

    init(hub: LoopHub, allowedOrigins: [String]?) {
        self.hub = hub
        limits = hub.context.sessionPolicy.limits
        handshakeOptions = Handshake.Options(
            subprotocols: ["collabhub.v1"], allowedOrigins: allowedOrigins,
            subprotocolRequired: true)
    }

    func opened(_ connection: Connection) {}

    func received(_ connection: Connection, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        guard opcode == .text else {
            return reject(
                connection, MessageError("unsupported", "binary messages are not part of collabhub.v1; send JSON text"))
        }
        // Rate limits first: a flood is refused before it costs a parse.
        let now = connection.loopNow
        if connection.limiter == nil {
            connection.limiter = ConnectionLimiter(hub.context.limiterRates, now: now)
        }
        if connection.membership == nil, connection.joinQueue == nil, let replay = replayRequest(payload) {
            guard connection.limiter!.allow(.other, now: now) else { return refuse(connection) }
            return handleReplay(connection, replay)
        }
        let sniffed = ConnectionLimiter.sniff(payload)
        if let kind = sniffed, !connection.limiter!.allow(kind, now: now) { return refuse(connection) }
        let message: ClientMessage
        do {
            // A message that waits for a join is kept: its bytes get an array of their own, sized to it.
            let bytes = connection.joinQueue == nil ? scratchCopy(payload) : Array(payload)
            message = try ClientMessage.parse(bytes, limits: limits)
        } catch let e as MessageError {
            return reject(connection, e)
        } catch {
            return reject(connection, MessageError("bad_request", "\(error)"))
        }
        // A message the sniff could not classify, or classified as another kind than it parsed as,
        // is counted in its parsed kind's bucket.
        if sniffed != ConnectionLimiter.kind(of: message) && !connection.limiter!.allow(message, now: now) {
            return refuse(connection)
        }
        if case .join(let join) = message, connection.membership == nil, connection.joinQueue == nil {
            return self.join(connection, join)
        }
        if connection.joinQueue != nil {
            // The session is waking up for this connection's join: what the client sends meanwhile
            // waits for it, in order (a bounded number of messages).
            guard connection.joinQueue!.count < Self.maxQueuedWhileJoining,
                connection.joinQueueBytes + payload.count <= Self.maxQueuedBytesWhileJoining
            else {
                return reject(connection, MessageError("not_ready", "wait for joined before sending more"))
            }
            connection.joinQueue!.append(message)
            connection.joinQueueBytes += payload.count
            return
        }
        dispatch(connection, message)
    }

    /// The loop's buffer for the message being read: a parsed message keeps slices of its bytes (an app
    /// event's `data`), so they are copied into an array, and this one is used again once the message is
    /// handled and gone (an array made and freed per message cost ~480 instructions, about 4% of a message
    /// to 9 recipients at fixed load). Were a message still held, copy on write would give the next one a
    /// new buffer; the only messages kept past their handling, those queued while a join waits, are copied
    /// into arrays of their own instead (their bytes count against the queue's limit as they are). Messages
    /// over `scratchLimit` get their own too, so the loop holds at most that much between messages.
    private var scratch: [UInt8] = []
    static let scratchLimit = 4096

    private func scratchCopy(_ payload: UnsafeRawBufferPointer) -> [UInt8] {
        guard payload.count <= Self.scratchLimit else { return Array(payload) }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: payload)
        return scratch
    }

    /// Queued messages (sent while the join waited for the session to wake up), at most.
    static let maxQueuedWhileJoining = 64
    static let maxQueuedBytesWhileJoining = 256 * 1024

    private func dispatch(_ connection: Connection, _ message: ClientMessage) {
        guard let session = connection.membership?.session else {
            return reject(connection, MessageError("not_joined", "send a join first"))
        }
        session.received(connection, message)
    }

    private func refuse(_ connection: Connection) {
        hub.context.metrics.rateLimited.add()
        let refused = connection.limiter!.refused
        // Tell the client now and then (not once per refused message: that would amplify a flood).
        if refused == 1 || refused % 100 == 0 {
            connection.sendError(MessageError("rate_limited", "too many messages of this kind; slow down"))
        }
        if refused > Self.maxRefusedMessages { connection.fail(.rateLimited, "message rate limit exceeded") }
    }

    private func join(_ connection: Connection, _ join: ClientMessage.Join) {
        let loop = connection.loop
        if hub.directory.isThrottled(connection.clientKey, now: loop.now) {
            connection.send(
                .error(code: "rate_limited", message: "too many failed joins from this address; wait a minute"))
            connection.fail(.rateLimited, "too many failed joins")
            return
        }
        let urlCode = connection.sessionCode
        let requested = join.session.flatMap(SessionCode.normalize) ?? urlCode
        guard let code = requested else {
            return failedJoin(
                connection,
                MessageError(
                    "missing_field", "join needs the session code (in the URL ?session= or in \"session\")",
                    field: "session"))
        }
        if let urlCode, urlCode != code {
            return failedJoin(
                connection,
                MessageError("invalid_field", "\"session\" does not match the session in the URL", field: "session"))
        }
        guard hub.owns(code) else {
            // A socket opened without `?session=` landed on a loop that does not own this session.
            return failedJoin(
                connection,
                MessageError("invalid_field", "connect to /ws?session=\(code) to join this session", field: "session"))
        }
        connection.joinQueue = []
        hub.withSession(code) { [self] session in
            let queued = connection.joinQueue ?? []
            connection.joinQueue = nil
            connection.joinQueueBytes = 0
            guard !connection.isClosed, !connection.isClosing else { return }
            defer { for m in queued where !connection.isClosed && !connection.isClosing { dispatch(connection, m) } }
            guard let session else {
                if hub.wakeFailed.contains(code) {
                    return connection.sendError(
                        MessageError("storage_unavailable", "session \(code) cannot be read now; retry"))
                }
                // A refusal: said, then the socket is closed (it can join nothing else).
                let ended = hub.directory.info(code)?.endedAt != nil
                return ended
                    ? failedJoin(
                        connection, MessageError("session_ended", "session \(code) has ended", field: "session"),
                        close: .sessionEnded)
                    : failedJoin(
                        connection, MessageError("unknown_session", "no session with code \(code)", field: "session"),
                        close: .unknownSession)
            }
            session.join(connection, join)
        }
    }

    private static let replayNeedle: [UInt8] = Array("\"replay".utf8)

    /// Whether `needle` (not empty) occurs in `hay`.
    private static func contains(_ hay: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Bool {
        let n = needle.count, first = needle[0]
        guard hay.count >= n else { return false }
        var i = 0
        while i <= hay.count - n {
            if hay[i] == first {
                var j = 1
                while j < n && hay[i + j] == needle[j] { j += 1 }
                if j == n { return true }
            }
            i += 1
        }
        return false
    }

    /// `replay` / `replay_control` messages (only for connections that did not join).
    private func replayRequest(_ payload: UnsafeRawBufferPointer) -> JSONObject? {
        // Cheap pre-check so ordinary traffic is not parsed twice.
        // (A byte search: Foundation's generic `firstRange(of:)` cost ~80,000 instructions per join message.)
        guard payload.count < 16 * 1024, Self.contains(payload, Self.replayNeedle) else { return nil }
        guard let obj = try? JSONReader.readObject(Array(payload), maxDepth: 4),
            let type = obj["type"]?.string, type == "replay" || type == "replay_control"
        else { return nil }
        return obj
    }

    private func handleReplay(_ connection: Connection, _ obj: JSONObject) {
        if obj["type"]?.string == "replay_control" {
            guard let replayer = connection.replayer else {
                return reject(connection, MessageError("not_replaying", "send replay first"))
            }
            if let e = replayer.control(obj) { reject(connection, e) }
            return
        }
        // A finished replay gave up its slot: playing again is a new replay, admitted and counted anew.
        guard connection.replayer?.finished ?? true, !connection.replayPending else {
            return reject(connection, MessageError("already_replaying", "this connection is already replaying"))
        }
        // A replay names a session like a join does: the same throttle on failures, checked first, so
        // it is no code oracle.
        if hub.directory.isThrottled(connection.clientKey, now: connection.loop.now) {
            connection.sendError(MessageError("rate_limited", "too many failed joins from this address; wait a minute"))
            return connection.fail(.rateLimited, "too many failed joins")
        }
        guard let code = (obj["session"]?.string).flatMap(SessionCode.normalize) ?? connection.sessionCode,
            let info = hub.directory.info(code)
        else {
            return failedJoin(connection, MessageError("unknown_session", "no session to replay", field: "session"))
        }
        // The same admission as a join: a token for this session, its host key, guests where the
        // session admits them, or (for backends) an API key with transcripts:read; a refusal counts
        // toward the failed-join throttle.
        if let refusal = replayAdmission(connection, obj, info) {
            hub.context.server.authFailures.record(
                connection.peer, what: "replay of \(code): \(refusal.message)", store: hub.store)
            return failedJoin(connection, refusal)
        }
        hub.store.record(
            ActivityEntry(
                actor: "replay", action: "transcript_replayed", target: code, session: code, address: connection.peer))
        let from = obj["from"]?.int ?? 0
        let speed = obj["speed"]?.double ?? 1
        guard from >= 0 else {
            return reject(
                connection, MessageError("invalid_field", "\"from\" must be a non-negative integer", field: "from"))
        }
        guard speed >= 0.001, speed <= 1000 else {
            return reject(
                connection, MessageError("invalid_field", "\"speed\" must be a number in [0.001, 1000]", field: "speed")
            )
        }
        guard activeReplays < Self.maxReplaysPerLoop else {
            return reject(
                connection,
                MessageError(
                    "too_many_replays",
                    "\(Self.maxReplaysPerLoop) replays are running on this hub thread; try again shortly"))
        }
        // One address cannot take every slot.
        guard replaysByAddress[connection.clientKey, default: 0] < Self.maxReplaysPerAddress else {
            return reject(
                connection,
                MessageError(
                    "too_many_replays",
                    "\(Self.maxReplaysPerAddress) replays are running from your address; try again shortly"))
        }
        // Replay reads go to the transcript worker (not the API's), in the client address's lane.
        guard let worker = hub.context.server.api?.transcriptReads else {
            return reject(connection, MessageError("unavailable", "replay is not available"))
        }
        let store = hub.store, loop = connection.loop
        let key = connection.clientKey
        activeReplays += 1
        replaysByAddress[key, default: 0] += 1
        connection.replayPending = true
        let queued = worker.submit(lane: key) { [weak self] in
            let summary = Replayer.summary(store: store, code: code, from: from)
            let first = summary.map {
                Replayer.page(store: store, code: code, after: $0.first - 1, last: $0.last, fromTs: nil)
            }
            loop.post {
                connection.replayPending = false
                guard let self else { return }
                guard !connection.isClosed else { self.replayEnded(key); return }
                guard let summary, let first else {
                    self.replayEnded(key)
                    connection.send(.replayStarted(from: 0, to: 0, count: 0, speed: speed, durationMillis: 0))
                    connection.send(.replayFinished)
                    return
                }
                let replayer = Replayer(
                    connection: connection, code: code, store: store, worker: worker, lane: key, summary: summary,
                    first: first, speed: speed)
                // The slot is held until the replay finishes (it then takes no more controls) or the
                // connection closes.
                replayer.onFinish = { [weak self] in self?.replayEnded(key) }
                connection.replayer = replayer
                replayer.start()
            }
        }
        if !queued {
            connection.replayPending = false
            replayEnded(key)
            connection.sendError(MessageError("storage_unavailable", "replay reads are backed up; try again shortly"))
        }
    }

    private func replayAdmission(_ connection: Connection, _ obj: JSONObject, _ info: SessionInfo) -> MessageError? {
        let server = hub.context.server!
        if server.openMode || info.guestPolicy == .allow { return nil }
        if let key = obj["host_key"]?.string, HostKey.matches(key, stored: info.hostKey) {
            return nil
        }
        if let token = obj["token"]?.string {
            switch hub.context.sessionPolicy.tokens.verify(token, now: Int64(Date().timeIntervalSince1970)) {
            case .success(let claims):
                if claims.isRevokedShare(in: info) {
                    return MessageError("unauthorized", "this share link was revoked", field: "token")
                }
                if claims.channels == nil, claims.role != .publisher,
                    claims.session == "*" || claims.session == info.code
                {
                    return nil
                }
                return MessageError("forbidden", "this token is not for session \(info.code)", field: "token")
            case .failure(let e):
                return MessageError(
                    e.closeCode == .unauthorized ? "token_expired" : "unauthorized", e.message, field: "token")
            }
        }
        if let key = obj["key"]?.string {
            var access = Access()
            if let p = server.principal(bearer: key, access: &access),
                Authorization.allows(p, .readTranscript(info.code))
            {
                return nil
            }
            return MessageError("forbidden", "this key may not read transcripts", field: "key")
        }
        return MessageError(
            "unauthorized",
            "replaying session \(info.code) needs a token for it, its host key, or an API key with transcripts:read",
            field: "token")
    }

    /// Replays running (or being read) on this loop at once: each holds a page of transcript.
    private var activeReplays = 0
    /// ... and per client address (`AddressKey`; at most 32 entries: one per running replay).
    private var replaysByAddress: [String: Int] = [:]
    static let maxReplaysPerLoop = 32
    static let maxReplaysPerAddress = 4

    private func replayEnded(_ key: String) {
        activeReplays -= 1
        let left = replaysByAddress[key, default: 1] - 1
        replaysByAddress[key] = left > 0 ? left : nil
    }

    /// A join or replay that failed: the error, counted toward the address's failed-join throttle, and
    /// then the close `close` names (a refused join; nil: the socket stays open, for a malformed join or
    /// a replay to try again).
    private func failedJoin(_ connection: Connection, _ error: MessageError, close: CloseCode? = nil) {
        let key = connection.clientKey
        let allowed = hub.directory.failedJoin(from: key, now: connection.loop.now)
        // Only refusals of a credential count as auth refusals (not a malformed join).
        if AuthFailures.reasons.contains(error.code) { hub.context.server.authFailures.refused(error.code) }
        guard let shared = hub.store.accounting else {
            return refuse(connection, error, allowed: allowed, close: close)
        }
        // In a cluster the count is the cluster's (Redis); the answer waits for it on this loop's own
        // Redis connection (never blocking the loop). Redis unreachable: this node's count decides.
        shared.countFailedJoin(key: key, window: 60, executor: hub.executor) { [self] count in
            let inBudget = count.map { hub.directory.learnFailedJoins(key, count: $0, now: connection.loop.now) }
            refuse(connection, error, allowed: inBudget ?? allowed, close: close)
        }
    }

    private func refuse(_ connection: Connection, _ error: MessageError, allowed: Bool, close: CloseCode?) {
        connection.send(.error(error))
        if !allowed {
            connection.fail(.rateLimited, "too many failed joins")
        } else if let close {
            connection.fail(close, close == .unknownSession ? "unknown session" : "session ended")
        }
    }

    private func reject(_ connection: Connection, _ error: MessageError) {
        connection.invalidMessages += 1
        connection.send(.error(error))
        if connection.invalidMessages > Self.maxInvalidMessages {
            connection.fail(.badRequest, "too many invalid messages")
        }
    }

    func closed(_ connection: Connection) {
        connection.replayer?.stop()  // frees its slot if it still held one
        connection.replayer = nil
        connection.membership?.session.disconnected(connection, graceful: !connection.timedOut)
    }
}

extension Connection: HubClient {
    /// What is queued and what is held back for when it drains: both are memory this client holds.
    var queuedBytes: Int { outBytes + coalescedBytes }
    var isDisconnecting: Bool { isClosed || isClosing || cutOff || sentClose }
    var address: String { peer }
    var joinedMember: Member? { membership?.member }
    func deliver(_ frame: Chunk) { sendShared(frame) }
    /// The protocol's default, written here so that the three reads and the send are this class's own
    /// (inlined; no witness call each).
    func offerEphemeral(_ frame: Chunk, softLimit: Int) -> Bool {
        guard !isDisconnecting else { return true }
        if queuedBytes > softLimit { return false }
        sendShared(frame)
        return true
    }
    func disconnect(_ code: CloseCode, _ reason: String) {
        if code == .slowConsumer { slowConsumer(count: false) } else { fail(code, reason) }
    }
    /// Holds the latest update per key while the client is behind: at most `maxCoalescedKeys` keys (keys
    /// come from client-chosen event names); an update under a new key past that is dropped.
    func coalesce(_ frame: Chunk, key: String) {
        if let old = coalesced[key] {
            coalescedBytes += frame.count - old.count
        } else {
            guard coalescedOrder.count < Self.maxCoalescedKeys else { return }
            coalescedOrder.append(key)
            coalescedBytes += frame.count
        }
        coalesced[key] = frame
    }
    func uncoalesce(key: String) {
        guard let old = coalesced.removeValue(forKey: key) else { return }
        coalescedBytes -= old.count
        coalescedOrder.removeAll { $0 == key }
    }
}
