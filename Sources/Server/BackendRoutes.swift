import EventLoop
import Foundation
import Hub
import WebSocket

/// Backends speak into sessions without joining them: `POST /api/sessions/{code}/messages` (a system
/// chat or an app event, answered once committed, `Idempotency-Key` honoured), `GET .../members`
/// (presence over HTTP) and `DELETE .../members/{id}` (like the host's `remove`). The work runs on the
/// session's loop.
extension SessionAPI {
    func postMessage(
        _ code: String, _ head: HTTPRequestHead, _ body: [UInt8], _ request: RouteRequest,
        actor: String
    ) -> Reply {
        guard let obj = try? JSONReader.readObject(body, maxDepth: 16) else {
            return .error(.badRequest, "bad_json", "the body must be a JSON object")
        }
        let fields = obj["type"]?.string == "event" ? ["type", "name", "data", "durable"] : ["kind", "text"]
        if let unknown = BodyFields.unknown(obj, known: fields) { return .now(unknown) }
        let key: String?
        switch IdempotencyKey.of(head) {
        case .failure(let refusal): return .now(refusal.response)
        case .success(let k): key = k
        }
        let message: BackendMessage
        if obj["type"]?.string == "event" {
            guard let name = obj["name"]?.string, ClientMessage.isValidEventName(name) else {
                return .error(.badRequest, "invalid_field", "\"name\" must be 1-64 characters of A-Za-z0-9_.:-")
            }
            let data = obj["data"]
            if let data, data.kind != .object && data.kind != .null {
                return .error(.badRequest, "invalid_field", "\"data\" must be an object")
            }
            // The same bound as a member's event: every subscriber queues it, and so may the webhook outbox.
            let limit = config.sessionPolicy.limits.maxEventBytes
            if let data, data.bytes.count > limit {
                return .error(.payloadTooLarge, "too_large", "\"data\" is larger than \(limit) bytes")
            }
            let durable = obj["durable"]?.bool ?? true
            if durable && key == nil {
                return .error(.badRequest, "missing_field", "a durable event needs an Idempotency-Key header")
            }
            message = .event(
                name: name, data: data?.kind == .object ? Array(data!.bytes) : Array("{}".utf8),
                durable: durable)
        } else if obj["kind"]?.string == "system" {
            guard let text = obj["text"]?.string, !text.isEmpty, text.fits(4096) else {
                return .error(.badRequest, "invalid_field", "\"text\" must be a string of 1 to 4096 characters")
            }
            message = .system(text: text)
        } else {
            return .error(
                .badRequest, "invalid_field",
                "send {\"kind\":\"system\",\"text\":...} or {\"type\":\"event\",\"name\":...,\"data\":{...}}")
        }
        return onSessionLoop(code, request) { session, answer in
            session.post(message, idempotencyKey: key) { result in
                switch result {
                case .success(let c?):
                    answer(
                        .json(.created, "{\"seq\":\(c.seq),\"ts\":\(c.ts)\(c.duplicate ? ",\"duplicate\":true" : "")}"))
                case .success(nil):
                    answer(.json(.accepted, "{\"delivered\":true}"))
                case .failure(let e):
                    answer(.error(e.code == "session_ended" ? .gone : .serviceUnavailable, e.code, e.message))
                }
            }
        }
    }

    /// `GET /api/sessions/{code}/members?limit=&cursor=` (default 1000 a page).
    func members(_ code: String, _ request: RouteRequest) -> Reply {
        let paging: Paging
        switch Paging.parse(request.head.query, route: "members", defaultLimit: 1000) {
        case .failure(let r): return .now(r)
        case .success(let p): paging = p
        }
        if paging.position != nil && paging.integer == nil { return .now(Paging.badCursor) }
        return onSessionLoop(code, request) { session, answer in
            let (page, next) = paging.slice(session.presentMembers, route: "members") ?? ([], nil)
            var w = JSONWriter()
            w.beginObject(); w.field("session", code); w.field("seq", session.lastSeq)
            w.beginArray("members"); for m in page { w.rawElement(m) }; w.endArray()
            w.field("next", next)
            w.endObject()
            answer(Response(status: .ok, body: w.bytes))
        }
    }

    func removeMember(_ code: String, _ id: String, _ request: RouteRequest, actor: String) -> Reply {
        let store = self.store
        return onSessionLoop(code, request) { session, answer in
            // In a cluster the member may be connected to other nodes (they are asked to remove it too).
            let found = session.removeAnywhere(id: id) { error in
                if let error { return answer(.error(.serviceUnavailable, error.code, error.message)) }
                store.record(
                    ActivityEntry(actor: "api", action: "member_removed", target: id, session: code, address: actor))
                answer(.json(.ok, "{\"removed\":\(jsonString(id))}"))
            }
            if !found { answer(.error(.notFound, "unknown_member", "no member \(id) in session \(code)")) }
        }
    }

    /// Runs `work` with the live session on its loop (woken up if needed) and answers the request
    /// with what it passes to `answer`, back on the connection's loop.
    private func onSessionLoop(
        _ code: String, _ request: RouteRequest,
        _ work: @escaping (Session, @escaping (Response) -> Void) -> Void
    ) -> Reply {
        let all = loops
        let owner = all[SessionCode.owner(of: code, loops: all.count)]
        let later = request.later()
        let answer: (Response) -> Void = later.answer
        owner.loop.post {
            guard let hub = owner.hub else { return answer(.error(.serviceUnavailable, "unavailable", "no hub")) }
            hub.withSession(code) { session in
                guard let session else {
                    if hub.wakeFailed.contains(code) {
                        return answer(
                            .error(.serviceUnavailable, "storage_unavailable", "session \(code) cannot be read now"))
                    }
                    let ended = hub.directory.info(code)?.endedAt != nil
                    return answer(
                        ended
                            ? .error(.gone, "session_ended", "session \(code) has ended")
                            : .error(.notFound, "unknown_session", "no session with code \(code)"))
                }
                work(session, answer)
            }
        }
        return .later(later)
    }
}
