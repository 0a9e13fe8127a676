import WebSocket

/// What a backend posts into a session over HTTP (`POST /api/sessions/{code}/messages`).
public enum BackendMessage: Sendable {
    /// A system chat message, shown to everyone (durable).
    case system(text: String)
    /// An app event (durable: stored, with a seq; ephemeral: forwarded to who is there now).
    case event(name: String, data: [UInt8], durable: Bool)
}

/// Backends speak into a session and manage its members without joining it.
extension Session {
    /// The identity backend messages are stored under: `Idempotency-Key`s are unique per session for it.
    static let backendMember = "api"

    /// Posts `message`; `done` gets the commit (nil for an ephemeral event) once it is committed and
    /// broadcast, or the error. A repeated `idempotencyKey` gets the original's seq, marked duplicate,
    /// and is not broadcast again.
    public func post(
        _ message: BackendMessage, idempotencyKey: String?,
        done: @escaping (Result<Committed?, MessageError>) -> Void
    ) {
        guard !isEnded else { return done(.failure(MessageError("session_ended", "session \(code) has ended"))) }
        let type: String, body: [UInt8]
        switch message {
        case .system(let text):
            type = "chat"
            var w = JSONWriter()
            if let idempotencyKey { w.field("id", idempotencyKey) }
            body =
                w.bytes.isEmpty
                ? EventBody.system(text: text, event: nil)
                : w.bytes + [UInt8(ascii: ",")] + EventBody.system(text: text, event: nil)
        case .event(let name, let data, let durable):
            body = EventBody.event(name: name, from: Self.backendMember, id: idempotencyKey, data: data)
            guard durable else {
                broadcast(
                    ServerMessage.event(body: body).frame, .ephemeral(.event, key: "event:api:\(name)"), except: nil)
                return done(.success(nil))
            }
            type = "event"
        }
        persist(type: type, member: Self.backendMember, clientId: idempotencyKey, body: body) {
            [weak self] result, frame in
            switch result {
            case .success(let c):
                if let frame { self?.broadcast(frame, .durable, except: nil) }
                done(.success(c))
            case .failure(let f):
                done(.failure(MessageError("storage_unavailable", "\(f.notStoredWords): \(f.message)")))
            }
        }
    }

    /// The members present (announced), as member objects; in a cluster also those on other nodes.
    public var presentMembers: [[UInt8]] { members.filter(\.announced).map(\.json) + remoteMembers.map(\.json) }

    /// Removes a member by id, like the host's `remove`; false when there is no such member.
    public func removeMember(id: String) -> Bool {
        guard let target = members.first(where: { $0.id == id }) else { return false }
        remove(target)
        return true
    }
}
