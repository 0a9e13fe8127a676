import EventLoop
import Foundation
import Hub
import WebSocket

extension SessionAPI {
    /// `GET /api/activity?session=&actor=&since=&limit=&cursor=`: newest first, paged by `cursor` (or the
    /// older `before`, an id).
    func activity(_ head: HTTPRequestHead, _ request: RouteRequest) -> Reply {
        let q = head.query
        let paging: Paging
        switch Paging.parse(q, route: "activity", defaultLimit: 100) {
        case .failure(let r): return .now(r)
        case .success(let p): paging = p
        }
        let limit = paging.limit
        let since = q["since"].flatMap { Int64($0) }
        var before = q["before"].flatMap { Int($0) }
        if q["since"] != nil && since == nil {
            return .error(.badRequest, "invalid_field", "since must be a time in milliseconds", field: "since")
        }
        if q["before"] != nil && before == nil {
            return .error(.badRequest, "invalid_field", "before must be an activity id", field: "before")
        }
        if paging.position != nil {
            guard let id = paging.integer else { return .now(Paging.badCursor) }
            before = id
        }
        let session = q["session"].flatMap(SessionCode.normalize) ?? q["session"]
        return request.offLoop(worker) { [self] in
            let response: Response
            do {
                let rows = try store.activity(
                    ActivityQuery(
                        session: session, actor: q["actor"], since: since,
                        before: before, limit: limit + 1))
                var w = JSONWriter()
                w.beginObject()
                w.beginArray("activity")
                for r in rows.prefix(limit) {
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
                let last = rows.count > limit ? rows.prefix(limit).last?.id.map(String.init) : nil
                w.field("next", Paging.next(route: "activity", last))
                w.endObject()
                response = Response(status: .ok, body: w.bytes)
            } catch {
                response = .error(.serviceUnavailable, "storage_unavailable", "cannot read the activity log: \(error)")
            }
            return response
        }
    }
}
