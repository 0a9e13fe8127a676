import EventLoop
import Foundation
import Hub
import WebSocket

/// `/api/runs`: publishing run events over HTTP and reading runs (the runs live on loop 0).
extension SessionAPI {
    // MARK: Runs (owned by loop 0)

    /// `POST /api/runs/{id}/events`: answered once loop 0's board committed the events.
    func publishRunEvents(_ request: RouteRequest) -> Reply {
        let head = request.head, body = request.body, access = request.access, loop0 = loops[0]
        do {
            let runId = request["id"]
            guard RunBoard.isValidId(runId) else {
                return .error(.badRequest, "invalid_field", "run ids are 1-128 characters of A-Za-z0-9._-")
            }
            // Authorized in `handle`: the admin key, or a key with runs:publish for this run.
            let limitHeaders = access.headers
            let obj: JSONObject
            do { obj = try JSONReader.readObject(body, maxDepth: 8) } catch {
                return .error(.badRequest, "bad_json", "request body must be a JSON object: \(error)")
            }
            if let unknown = RunAPI.unknownField(obj) { return .now(unknown) }
            var events: [RunEvent]
            do { events = try RunAPI.events(from: obj) } catch let e as MessageError {
                return .error(.badRequest, e.code, e.message + (e.field.map { " (field \($0))" } ?? ""))
            } catch { return .error(.badRequest, "bad_request", "\(error)") }
            // A key limited to some owners starts runs for those only (else it could put runs on any
            // team's dashboard).
            for (i, e) in events.enumerated() {
                if let owner = e.owner, e.kind == .started, !access.allows(.startRun(owner: owner)) {
                    let field = events.count == 1 && obj["events"] == nil ? "owner" : "events[\(i)].owner"
                    return .error(
                        .forbidden, "forbidden", "this key may not start runs for owner \(owner) (field \(field))",
                        field: field)
                }
            }
            // A `started` event that attaches the run to a session needs a credential that may change
            // that session too (else any publisher could write into any session's transcript).
            for e in events {
                if let code = e.session.flatMap(SessionCode.normalize), !access.allows(.changeSession(code)),
                    !directory.isHostKey(head.header("X-Host-Key"), of: code)
                {
                    return .error(
                        .forbidden, "forbidden",
                        "attaching run \(runId) to session \(code) needs its host key or scope sessions:write")
                }
            }
            // The request's Idempotency-Key names each of its events that has no `id` of its own: a request of
            // one event gets the key itself, event i of a batch `KEY.i`. The board stores each id once per run,
            // so a batch sent again with the same key is answered event by event as duplicates.
            let key: String?
            switch IdempotencyKey.of(head) {
            case .failure(let refusal): return .now(refusal.response)
            case .success(let k): key = k
            }
            if let key {
                for i in events.indices where events[i].id == nil {
                    events[i].id = events.count == 1 ? key : "\(key).\(i)"
                }
            }
            let later = request.later()
            loop0.loop.post {
                guard let runs = loop0.runs else { return }
                runs.board.publish(runId, events) { result in
                    let response: Response
                    switch result {
                    case .success(let seqs):
                        let list = seqs.map { "{\"seq\":\($0.seq)\($0.duplicate ? ",\"duplicate\":true" : "")}" }
                            .joined(separator: ",")
                        let single = seqs.count == 1 ? "\"seq\":\(seqs[0].seq)," : ""
                        response = .json(
                            .accepted, "{\"run\":\(jsonString(runId)),\(single)\"events\":[\(list)]}",
                            headers: limitHeaders)
                    case .failure(let r):
                        response = .error(r.status, r.code, r.message, headers: limitHeaders)
                    }
                    later.answer(response)
                }
            }
            return .later(later)
        }
    }

    /// `GET /api/runs/{id}`: the run as loop 0's board has it, with its events read off the loop.
    func readRun(_ request: RouteRequest) -> Reply {
        let loop0 = loops[0]
        do {
            let runId = request["id"]
            let later = request.later()
            let store = self.store
            loop0.loop.post {
                let copy = loop0.runs?.board.committed[runId]
                let clustered = loop0.runs?.board.shared != nil
                let queued = later.offLoop(self.worker) {
                    let response: Response
                    let events = (try? store.events(session: "run:" + runId, after: 0, limit: 10_000)) ?? []
                    var run = copy
                    // In a cluster the log in Redis is the run: its state is rebuilt from the events read
                    // (this node's copy may not have heard the newest yet), and the copy is read up.
                    if clustered, let last = events.last {
                        if events.first?.seq == 1 && events.count < 10_000 {
                            var rebuilt = Run(id: runId)
                            for e in events {
                                if let ev = RunEvent.fromStored(e.body) { rebuilt.apply(ev, seq: e.seq, ts: e.ts) }
                            }
                            run = rebuilt
                        }
                        if last.seq > copy?.seq ?? 0 {
                            loop0.loop.post {
                                loop0.runs?.runGap(runId, after: loop0.runs?.board.committed[runId]?.seq ?? 0)
                            }
                        }
                    }
                    if let run {
                        var out = Array("{\"run\":".utf8) + run.stateJSON + Array(",\"events\":[".utf8)
                        for (i, e) in events.enumerated() { if i > 0 { out.append(UInt8(ascii: ",")) }; out += e.json }
                        out += Array("]}".utf8)
                        response = Response(status: .ok, body: out)
                    } else {
                        response = .error(.notFound, "unknown_run", "no run \(runId)")
                    }
                    return response
                }
                if !queued { later.answer(.busy("API requests")) }
            }
            return .later(later)
        }
    }

    /// `GET /api/runs?owner=&status=&limit=&cursor=`: loop 0's board, paged (`offset` still works).
    func listRuns(_ request: RouteRequest) -> Reply {
        let loop0 = loops[0]
        do {
            let q = request.head.query
            let paging: Paging
            switch Paging.parse(q, route: "runs", defaultLimit: 50) {
            case .failure(let r): return .now(r)
            case .success(let p): paging = p
            }
            // `offset` is the older way to page (before `cursor`), kept for existing callers.
            guard let offset = Int(q["offset"] ?? "0"), offset >= 0 else {
                return .error(.badRequest, "invalid_field", "offset must be a non-negative integer", field: "offset")
            }
            if paging.position != nil && paging.integer == nil { return .now(Paging.badCursor) }
            let status = q["status"].flatMap(RunStatus.init(rawValue:))
            if q["status"] != nil && status == nil {
                return .error(
                    .badRequest, "invalid_field",
                    "status must be pending, running, paused, succeeded, failed or cancelled", field: "status")
            }
            let later = request.later()
            let list = {
                let all = loop0.runs?.board.list(owner: q["owner"], status: status) ?? []
                let (page, next) = paging.slice(all, route: "runs", from: offset) ?? ([], nil)
                var out = Array("{\"runs\":[".utf8)
                for (i, r) in page.enumerated() { if i > 0 { out.append(UInt8(ascii: ",")) }; out += r.summaryJSON }
                out += Array("],\"total\":\(all.count),\"next\":\(next.map(jsonString) ?? "null")}".utf8)
                let response = Response(status: .ok, body: out)
                later.answer(response)
            }
            loop0.loop.post {
                // A cluster: read-your-writes, the listing waits until this node's copy has every run
                // event appended (on any node) before the request (`ClusterControl.caughtUp`).
                guard let control = loop0.control else { return list() }
                control.caughtUp { failure in
                    guard let failure else { return list() }
                    later.answer(
                        .error(
                            .serviceUnavailable, "storage_unavailable",
                            "runs cannot be listed as the cluster has them: \(failure.message)"))
                }
            }
            return .later(later)
        }
    }
}
