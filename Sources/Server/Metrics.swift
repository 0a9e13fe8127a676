import EventLoop
import WebSocket

/// Counters of one loop. Each is written only by its loop's thread; `/metrics` sums all loops.
public final class Metrics {
    public let connectionsOpen = Counter()
    public let connectionsTotal = Counter()
    public let handshakesOK = Counter()
    public let handshakesFailed = Counter()
    public let httpRequests = Counter()
    public let messagesIn = Counter()
    public let messagesOut = Counter()
    public let bytesIn = Counter()
    public let bytesOut = Counter()
    public let pingsSent = Counter()
    public let pingTimeouts = Counter()
    public let slowConsumerDrops = Counter()
    public let droppedEphemeral = Counter()
    public let durableEvents = Counter()
    public let rateLimited = Counter()
    public let storeFailures = Counter()
    /// Loop lag, microseconds: how late the last housekeeping tick ran.
    public let loopLagMicros = Counter()
    /// Connections closed by us for a protocol error, by close code.
    public let closeCodes: [UInt16: Counter] = Dictionary(
        uniqueKeysWithValues: [1001, 1002, 1003, 1007, 1008, 1009, 1011, 4000, 4001, 4002, 4003, 4008, 4009].map {
            (UInt16($0), Counter())
        })
    public let httpErrors: [Int: Counter] = Dictionary(
        uniqueKeysWithValues: [400, 401, 403, 404, 405, 408, 409, 411, 413, 426, 429, 431, 500, 503, 505].map {
            ($0, Counter())
        })

    public init() {}

    func closedWith(_ code: CloseCode) { closeCodes[code.rawValue]?.add() }
    func httpError(_ status: Int) { httpErrors[status]?.add() }

    /// Prometheus text exposition of all loops' counters.
    static func render(_ all: [Metrics], extra: [(String, String, Int)] = []) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: (Metrics) -> Counter) {
            out += "# HELP collabhub_\(name) \(help)\n# TYPE collabhub_\(name) \(type)\n"
            out += "collabhub_\(name) \(all.reduce(0) { $0 + value($1).get })\n"
        }
        metric("connections_open", "gauge", "Open TCP connections.", { $0.connectionsOpen })
        metric("connections_total", "counter", "Accepted TCP connections.", { $0.connectionsTotal })
        metric("handshakes_total", "counter", "Completed WebSocket handshakes.", { $0.handshakesOK })
        metric("handshakes_failed_total", "counter", "Rejected WebSocket handshakes.", { $0.handshakesFailed })
        metric("http_requests_total", "counter", "Plain HTTP requests served.", { $0.httpRequests })
        metric("messages_in_total", "counter", "WebSocket messages received.", { $0.messagesIn })
        metric("messages_out_total", "counter", "WebSocket messages queued to clients.", { $0.messagesOut })
        metric("bytes_in_total", "counter", "Bytes received.", { $0.bytesIn })
        metric("bytes_out_total", "counter", "Bytes written.", { $0.bytesOut })
        metric("pings_sent_total", "counter", "Keep-alive pings sent to idle clients.", { $0.pingsSent })
        metric("ping_timeouts_total", "counter", "Connections dropped for a missed pong.", { $0.pingTimeouts })
        metric(
            "slow_consumer_disconnects_total", "counter", "Clients closed with 4000 for output past the hard limit.",
            { $0.slowConsumerDrops })
        metric(
            "ephemeral_dropped_total", "counter", "Cursor/typing updates dropped for clients past the soft limit.",
            { $0.droppedEphemeral })
        metric(
            "rate_limited_total", "counter", "Messages, connections and API calls refused by a rate or count limit.",
            { $0.rateLimited })
        metric("durable_events_total", "counter", "Durable events committed and broadcast.", { $0.durableEvents })
        metric(
            "store_failures_total", "counter", "Durable events rejected because the store could not commit.",
            { $0.storeFailures })
        out += "# HELP collabhub_loop_lag_seconds How late the last housekeeping tick of the slowest loop ran.\n"
        out += "# TYPE collabhub_loop_lag_seconds gauge\n"
        out += "collabhub_loop_lag_seconds \(Double(all.map { $0.loopLagMicros.get }.max() ?? 0) / 1e6)\n"
        out +=
            "# HELP collabhub_closes_total Connections closed by the server, by close code.\n# TYPE "
            + "collabhub_closes_total counter\n"
        for code in all[0].closeCodes.keys.sorted() {
            out += "collabhub_closes_total{code=\"\(code)\"} \(all.reduce(0) { $0 + $1.closeCodes[code]!.get })\n"
        }
        out +=
            "# HELP collabhub_http_errors_total HTTP error responses, by status.\n# TYPE "
            + "collabhub_http_errors_total counter\n"
        for status in all[0].httpErrors.keys.sorted() {
            out +=
                "collabhub_http_errors_total{status=\"\(status)\"} "
                + "\(all.reduce(0) { $0 + $1.httpErrors[status]!.get })\n"
        }
        for (name, help, value) in extra {
            out += "# HELP collabhub_\(name) \(help)\n# TYPE collabhub_\(name) gauge\ncollabhub_\(name) \(value)\n"
        }
        return out
    }
}
