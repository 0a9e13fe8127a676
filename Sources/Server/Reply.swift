import EventLoop
import WebSocket

/// How a route answers: now, or later through a `Later` it holds.
///
/// An enum rather than "nil means later": a handler can only say `.later` by holding the `Later` that
/// will answer, which it gets from its request, so "who answers, and when" is in the types. `Reply`
/// also mirrors `Response`'s constructors (`.error`, `.json`, `.busy`), so a handler reads as before.
enum Reply {
    case now(Response)
    /// The answer comes through this (`Later.answer`), from any thread.
    case later(Later)

    static func error(
        _ status: HTTPStatus, _ code: String, _ message: String, field: String? = nil,
        headers: [(String, String)] = []
    ) -> Reply {
        .now(.error(status, code, message, field: field, headers: headers))
    }
    static func json(_ status: HTTPStatus, _ json: String, headers: [(String, String)] = []) -> Reply {
        .now(.json(status, json, headers: headers))
    }
    static func busy(_ what: String) -> Reply { .now(.busy(what)) }
}

/// The answer to a request that a handler gives later: after a read off the loop, a commit, or work on
/// another loop. `answer` may be called from any thread: it hops back to the connection's loop and
/// answers there if the connection is still open. The request waits (and the connection reads no
/// further requests) until it is called.
struct Later {
    private let connection: Connection
    private let loop: Loop

    init(_ connection: Connection) {
        self.connection = connection
        loop = connection.loop
    }

    func answer(_ response: Response) {
        let connection = connection
        loop.post {
            guard !connection.isClosed else { return }
            connection.respondLater(response)
        }
    }

    /// Runs `serve` on the connection's loop, if the connection is still open, and answers with its
    /// reply (a `.later` one answers by itself).
    func reply(_ serve: @escaping () -> Reply) {
        let connection = connection
        loop.post {
            guard !connection.isClosed else { return }
            if case .now(let response) = serve() { connection.respondLater(response) }
        }
    }

    /// Runs `work` on `worker` (blocking reads: SQLite, a key table) and answers with what it returns,
    /// or 503 `storage_unavailable` naming the error it throws. False, and nothing queued, when the
    /// worker's queue is full.
    func offLoop(_ worker: Worker, _ work: @escaping () throws -> Response) -> Bool {
        worker.submit {
            let response: Response
            do { response = try work() } catch {
                response = .error(.serviceUnavailable, "storage_unavailable", "\(error)")
            }
            answer(response)
        }
    }
}
