import EventLoop
import Hub
import WebSocket

/// `/ws?session=CODE`: the collaboration protocol (Protocol/PROTOCOL.md), subprotocol `collabhub.v1`.
/// Connections arrive here already on the loop that owns their session (see `Connection.upgrade`).
final class HubEndpoint: Endpoint {
    let handshakeOptions: Handshake.Options
    unowned let hub: LoopHub
    /// Invalid messages a connection may send before it is closed with 4002.
    static let maxInvalidMessages = 20

    init(hub: LoopHub, allowedOrigins: [String]?) {
        self.hub = hub
        handshakeOptions = Handshake.Options(subprotocols: ["collabhub.v1"], allowedOrigins: allowedOrigins,
                                             subprotocolRequired: true)
    }

    func opened(_ connection: Connection) {}

    func received(_ connection: Connection, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        guard opcode == .text else {
            return reject(connection, MessageError("unsupported", "binary messages are not part of collabhub.v1; send JSON text"))
        }
        let message: ClientMessage
        do {
            message = try ClientMessage.parse(Array(payload), limits: hub.context.sessionPolicy.limits)
        } catch let e as MessageError {
            return reject(connection, e)
        } catch {
            return reject(connection, MessageError("bad_request", "\(error)"))
        }
        if case .join(let join) = message, connection.membership == nil {
            return self.join(connection, join)
        }
        guard let session = connection.membership?.session else {
            return reject(connection, MessageError("not_joined", "send a join first"))
        }
        session.received(connection, message)
    }

    private func join(_ connection: Connection, _ join: ClientMessage.Join) {
        let loop = connection.loop
        if hub.directory.isThrottled(connection.peer, now: loop.now) {
            connection.sendText(String(decoding: Wire.error("rate_limited", "too many failed joins from this address; wait a minute"), as: UTF8.self))
            connection.fail(.rateLimited, "too many failed joins")
            return
        }
        let urlCode = connection.sessionCode
        let requested = join.session.flatMap(SessionCode.normalize) ?? urlCode
        guard let code = requested else {
            return failedJoin(connection, MessageError("missing_field", "join needs the session code (in the URL ?session= or in \"session\")", field: "session"))
        }
        if let urlCode, urlCode != code {
            return failedJoin(connection, MessageError("invalid_field", "\"session\" does not match the session in the URL", field: "session"))
        }
        guard let session = hub.session(code) else {
            let ended = hub.directory.info(code)?.endedAt != nil
            return failedJoin(connection, ended ? MessageError("session_ended", "session \(code) has ended", field: "session")
                                                : MessageError("unknown_session", "no session with code \(code)", field: "session"))
        }
        session.join(connection, join)
    }

    private func failedJoin(_ connection: Connection, _ error: MessageError) {
        let allowed = hub.directory.failedJoin(from: connection.peer, now: connection.loop.now)
        connection.deliver(Chunk.text(Wire.error(error.code, error.message, ref: error.ref, field: error.field)))
        if !allowed { connection.fail(.rateLimited, "too many failed joins") }
    }

    private func reject(_ connection: Connection, _ error: MessageError) {
        connection.invalidMessages += 1
        connection.deliver(Chunk.text(Wire.error(error.code, error.message, ref: error.ref, field: error.field)))
        if connection.invalidMessages > Self.maxInvalidMessages {
            connection.fail(.badRequest, "too many invalid messages")
        }
    }

    func closed(_ connection: Connection) {
        connection.membership?.session.disconnected(connection, graceful: !connection.timedOut)
    }
}

extension Connection: HubClient {
    var queuedBytes: Int { outBytes }
    func deliver(_ frame: Chunk) { sendShared(frame) }
    func disconnect(_ code: CloseCode, _ reason: String) { fail(code, reason) }
}
