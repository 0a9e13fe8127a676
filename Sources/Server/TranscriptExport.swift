import EventLoop
import Hub
import WebSocket

/// `GET /api/sessions/{code}/transcript`: a JSON page, or (`?format=ndjson`) every event from `after` on,
/// read a piece at a time (at most `pieceEvents` events and about `pieceBytes` bytes) on the transcript
/// worker as the client takes it, never built whole: a client that does not read holds one piece.
/// Reads go in the client address's lane of that worker, so one address's exports take turns with
/// everyone else's replays and exports; at most `maxPerAddress` run at once per address.
final class TranscriptExport: BodySource {
    enum Format { case page(limit: Int), ndjson }

    static let pieceBytes = 256 * 1024
    static let pieceEvents = 500
    static let maxPerAddress = 4

    private let store: TranscriptReads
    private let worker: Worker
    private let lane: String
    private let code: String
    private let format: Format
    private let loop: Loop
    /// The last seq sent (`after` before the first).
    private var cursor: Int
    /// Events sent so far (a page stops at its limit).
    private var sent = 0
    /// Set once the stream ended: a read queued before that does not start.
    private let ended = Latch()
    private var release: (() -> Void)?

    init(
        store: TranscriptReads, worker: Worker, lane: String, code: String, format: Format, after: Int, loop: Loop,
        release: @escaping () -> Void
    ) {
        self.store = store
        self.worker = worker
        self.lane = lane
        self.code = code
        self.format = format
        self.cursor = after
        self.loop = loop
        self.release = release
    }

    /// The response the stream goes out under.
    var response: Response {
        switch format {
        case .page:
            return Response(status: .ok, body: [], stream: self)
        case .ndjson:
            return Response(
                status: .ok, body: [], contentType: "application/x-ndjson",
                headers: [("Content-Disposition", "attachment; filename=\"\(code).ndjson\"")], stream: self)
        }
    }

    func end() {
        ended.set()
        release?()
        release = nil
    }

    /// What one read found: the bytes to send, where the next read starts, and whether it was the last.
    private struct Read { var bytes: [UInt8]; var cursor: Int; var count: Int; var last: Bool }

    func next(_ done: @escaping (BodyRead) -> Void) {
        let store = store, code = code, format = format, cursor = cursor, sent = sent, ended = ended, loop = loop
        let queued = worker.submit(lane: lane) { [weak self] in
            guard !ended.isSet else { return }  // the connection went while this waited: no read
            let result: Result<Read, Error> = Result {
                try Self.read(store: store, code: code, format: format, after: cursor, sent: sent)
            }
            loop.post {
                guard let self, !ended.isSet else { return }
                switch result {
                case .success(let r):
                    self.cursor = r.cursor
                    self.sent += r.count
                    done(.piece(r.bytes, last: r.last))
                case .failure(let error):
                    done(
                        .failed(
                            .error(
                                .serviceUnavailable, "storage_unavailable", "cannot read the transcript: \(error)")))
                }
            }
        }
        if !queued { loop.post { done(.failed(.busy("transcript reads"))) } }
    }

    /// One piece (on the worker). A page reads one event past its limit to say whether there are more.
    private static func read(
        store: TranscriptReads, code: String, format: Format, after cursor: Int, sent: Int
    ) throws -> Read {
        switch format {
        case .ndjson:
            let rows = try store.events(session: code, after: cursor, limit: pieceEvents, maxBytes: pieceBytes)
            var out: [UInt8] = []
            for e in rows { out += e.json; out.append(0x0A) }
            return Read(bytes: out, cursor: rows.last?.seq ?? cursor, count: rows.count, last: rows.isEmpty)
        case .page(let limit):
            let left = max(limit - sent, 0)
            let rows = try store.events(
                session: code, after: cursor, limit: min(left + 1, pieceEvents), maxBytes: pieceBytes)
            let taken = rows.prefix(left)
            var out: [UInt8] = sent == 0 ? Array("{\"session\":\"\(code)\",\"events\":[".utf8) : []
            for (i, e) in taken.enumerated() {
                if sent + i > 0 { out.append(UInt8(ascii: ",")) }
                out += e.json
            }
            let next = taken.last?.seq ?? cursor
            // The end: the transcript ran out, or an event past the limit was seen.
            let more = rows.count > taken.count
            let last = rows.isEmpty || more
            if last { out += Array("],\(Paging.nextField(route: "transcript", more ? String(next) : nil))}".utf8) }
            return Read(bytes: out, cursor: next, count: taken.count, last: last)
        }
    }
}
