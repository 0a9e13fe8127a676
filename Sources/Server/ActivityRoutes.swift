import EventLoop
import Foundation
import Hub
import WebSocket

extension SessionAPI {
    /// `GET /api/activity?session=&actor=&since=&before=&limit=`: newest first, paged by `before` (an id).
    func activity(_ head: HTTPRequestHead, _ request: RouteRequest) -> Reply {
        let q = head.query
        guard let limit = Int(q["limit"] ?? "100"), limit >= 1, limit <= 1000 else {
            return .error(.badRequest, "invalid_field", "limit must be 1-1000")
        }
        let since = q["since"].flatMap { Int64($0) }, before = q["before"].flatMap { Int($0) }
        if q["since"] != nil && since == nil {
            return .error(.badRequest, "invalid_field", "since must be a time in milliseconds")
        }
        let session = q["session"].flatMap(SessionCode.normalize) ?? q["session"]
        return request.offLoop(worker) { [self] in
            let response: Response
            do {
                let rows = try store.activity(
                    ActivityQuery(
                        session: session, actor: q["actor"], since: since,
                        before: before, limit: limit))
                var w = JSONWriter()
                w.beginObject()
                w.beginArray("activity")
                for r in rows {
                    w.beginObject()
                    w.field("id", r.id ?? 0); w.field("ts", Int(r.ts)); w.field("actor", r.actor);
                    w.field("action", r.action)
                    if let t = r.target { w.field("target", t) }
                    if let s = r.session { w.field("session", s) }
                    if let a = r.address { w.field("address", a) }
                    if let d = r.details { w.field("details", d) }
                    w.endObject()
                }
                w.endArray()
                if rows.count == limit, let last = rows.last?.id { w.field("next_before", last) }
                w.endObject()
                response = Response(status: .ok, body: w.bytes)
            } catch {
                response = .error(.serviceUnavailable, "storage_unavailable", "cannot read the activity log: \(error)")
            }
            return response
        }
    }
}
