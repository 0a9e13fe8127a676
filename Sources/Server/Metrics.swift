import CEV
import EventLoop
import Hub
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
    public let pingsSent = Counter()
    public let pingTimeouts = Counter()
    public let slowConsumerDrops = Counter()
    public let droppedEphemeral = Counter()
    public let durableEvents = Counter()
    public let rateLimited = Counter()
    public let storeFailures = Counter()
    /// Idle sessions' resume windows deflated (`WindowPacker`).
    public let windowsPacked = Counter()
    /// Loop lag, microseconds: how late the last housekeeping tick ran.
    public let loopLagMicros = Counter()
    /// Connections closed by us for a protocol error, by close code.
    public let closeCodes: [UInt16: Counter] = Dictionary(
        uniqueKeysWithValues: [
            1001, 1002, 1003, 1007, 1008, 1009, 1011, 4000, 4001, 4002, 4003, 4004, 4005, 4006, 4008, 4009, 4404,
        ].map {
            (UInt16($0), Counter())
        })
    /// Connections the client closed, by its close code (1006: it vanished without a close frame; codes
    /// outside this set count as 0, "other").
    public let clientCloses: [UInt16: Counter] = Dictionary(
        uniqueKeysWithValues: [0, 1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011].map {
            (UInt16($0), Counter())
        })
    public let httpErrors: [Int: Counter] = Dictionary(
        uniqueKeysWithValues: [400, 401, 403, 404, 405, 408, 409, 411, 413, 426, 429, 431, 500, 503, 505].map {
            ($0, Counter())
        })

    /// Append to commit of durable session events (loop time: no clock read of its own).
    public let commitLatency = BucketHistogram(bounds: BucketHistogram.latencyBounds)
    /// Request complete to response queued, by route (indexed like `Metrics.routes`).
    public let httpDuration: [BucketHistogram] = Metrics.routes.map { _ in
        BucketHistogram(bounds: BucketHistogram.latencyBounds)
    }
    public let resumes: [ResumeOutcome: Counter] = Dictionary(
        uniqueKeysWithValues: ResumeOutcome.allCases.map { ($0, Counter()) })
    /// Ephemeral updates for clients past the soft limit, by kind: dropped, or held back (coalesced).
    public let dropped: [Traffic: Counter] = Dictionary(uniqueKeysWithValues: Traffic.allCases.map { ($0, Counter()) })
    public let coalesced: [Traffic: Counter] = Dictionary(
        uniqueKeysWithValues: Traffic.allCases.map { ($0, Counter()) })

    public init() {}

    /// The route label of an HTTP request target, as an index into `routes` (a fixed set, so that the
    /// label cannot grow with paths). Bytes only: this runs for every request.
    static func route(_ target: String) -> Int {
        var parts: [Substring.UTF8View] = []
        for p in target.utf8.split(separator: UInt8(ascii: "?"), maxSplits: 1).first?.split(
            separator: UInt8(ascii: "/")) ?? []
        {
            parts.append(p)
            if parts.count > 4 { break }
        }
        func at(_ i: Int, _ s: StaticString) -> Bool {
            i < parts.count
                && parts[i].elementsEqual(UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
        }
        let label: String
        if parts.count == 1 && at(0, "healthz") {
            label = "healthz"
        } else if parts.count == 1 && at(0, "metrics") {
            label = "metrics"
        } else if !at(0, "api") {
            label = "static"
        } else if parts.count == 2 && at(1, "mode") {
            label = "mode"
        } else if at(1, "sessions") {
            switch parts.count {
            case 2: label = "sessions"
            case 3: label = "session"
            default:
                label =
                    at(3, "transcript")
                    ? "session_transcript"
                    : at(3, "messages")
                        ? "session_messages"
                        : at(3, "members") ? "session_members" : at(3, "end") ? "session_end" : "other"
            }
        } else if at(1, "runs") {
            label = at(3, "events") ? "run_events" : "runs"
        } else if at(1, "keys") {
            label = "keys"
        } else if at(1, "webhooks") {
            label = "webhooks"
        } else if at(1, "activity") {
            label = "activity"
        } else {
            label = "other"
        }
        return routes.firstIndex(of: label)!
    }
    static let routes = [
        "healthz", "metrics", "mode", "static", "sessions", "session", "session_transcript", "session_messages",
        "session_members", "session_end", "run_events", "runs", "keys", "webhooks", "activity", "other",
    ]

    func closedWith(_ code: CloseCode) { closeCodes[code.rawValue]?.add() }
    func clientClosed(_ code: UInt16) { (clientCloses[code] ?? clientCloses[0])?.add() }
    func httpError(_ status: Int) { httpErrors[status]?.add() }

    /// Heap bytes in use, every thread's arena and the large blocks mapped on their own (what a memory
    /// budget per connection is measured against: RSS also counts freed pages not yet given back).
    static var heapBytes: Int { Int(chub_heap_bytes()) }

    /// Prometheus text exposition of all loops' counters.
    static func render(
        _ all: [Metrics], loops: [Loop], refusals: [String: Int] = [:], extra: [(String, String, Int)] = []
    ) -> String {
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
        out += "# HELP collabhub_build_info The version and commit of this binary.\n"
        out += "# TYPE collabhub_build_info gauge\n"
        out += "collabhub_build_info{version=\"\(Build.version)\",commit=\"\(Build.commit)\"} 1\n"
        // Read from each loop's own counter: a scrape writes nothing another thread owns (L12).
        out += "# HELP collabhub_bytes_out_total Bytes written.\n# TYPE collabhub_bytes_out_total counter\n"
        out += "collabhub_bytes_out_total \(loops.reduce(0) { $0 + $1.bytesWritten.get })\n"
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
            "resume_windows_packed_total", "counter", "Idle sessions' resume windows deflated until their next event.",
            { $0.windowsPacked })
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
            "# HELP collabhub_client_closes_total WebSocket connections closed by the client, by its close code "
            + "(1006: gone without a close frame; other: a code outside the listed ones).\n"
            + "# TYPE collabhub_client_closes_total counter\n"
        for code in all[0].clientCloses.keys.sorted() {
            let n = all.reduce(0) { $0 + $1.clientCloses[code]!.get }
            out += "collabhub_client_closes_total{code=\"\(code == 0 ? "other" : String(code))\"} \(n)\n"
        }
        out +=
            "# HELP collabhub_http_errors_total HTTP error responses, by status.\n# TYPE "
            + "collabhub_http_errors_total counter\n"
        for status in all[0].httpErrors.keys.sorted() {
            out +=
                "collabhub_http_errors_total{status=\"\(status)\"} "
                + "\(all.reduce(0) { $0 + $1.httpErrors[status]!.get })\n"
        }
        out += BucketHistogram.render(
            "collabhub_commit_latency_seconds", help: "Durable session events: append to commit.",
            all.map(\.commitLatency))
        out += BucketHistogram.render(
            "collabhub_delivery_latency_seconds",
            help:
                "WebSocket output: from the loop iteration that received or committed it until written to the socket.",
            loops.map(\.deliveryLatency))
        out += BucketHistogram.render(
            "collabhub_loop_iteration_seconds", help: "Work per event-loop iteration (wake-up to the next wait).",
            loops.map(\.iterationTime))
        for (i, route) in routes.enumerated() {
            out += BucketHistogram.render(
                "collabhub_http_request_duration_seconds", help: "HTTP requests: complete request to response queued.",
                all.map { $0.httpDuration[i] }, labels: "route=\"\(route)\"", header: i == 0)
        }
        out += "# HELP collabhub_resumes_total Session resumes, by outcome.\n# TYPE collabhub_resumes_total counter\n"
        for o in ResumeOutcome.allCases {
            out += "collabhub_resumes_total{outcome=\"\(o.rawValue)\"} \(all.reduce(0) { $0 + $1.resumes[o]!.get })\n"
        }
        out +=
            "# HELP collabhub_ephemeral_behind_total Ephemeral updates for clients past the soft limit, by kind and "
            + "action (dropped, or coalesced: the latest kept).\n# TYPE collabhub_ephemeral_behind_total counter\n"
        for t in Traffic.allCases {
            let d = all.reduce(0) { $0 + $1.dropped[t]!.get }, c = all.reduce(0) { $0 + $1.coalesced[t]!.get }
            out += "collabhub_ephemeral_behind_total{kind=\"\(t.rawValue)\",action=\"dropped\"} \(d)\n"
            out += "collabhub_ephemeral_behind_total{kind=\"\(t.rawValue)\",action=\"coalesced\"} \(c)\n"
        }
        out +=
            "# HELP collabhub_auth_refusals_total Refused credentials and joins, by the error code sent back.\n"
            + "# TYPE collabhub_auth_refusals_total counter\n"
        for reason in Set(refusals.keys).union(["unauthorized", "forbidden"]).sorted() {
            out += "collabhub_auth_refusals_total{reason=\"\(reason)\"} \(refusals[reason] ?? 0)\n"
        }
        for (name, help, value) in extra {
            out += "# HELP collabhub_\(name) \(help)\n# TYPE collabhub_\(name) gauge\ncollabhub_\(name) \(value)\n"
        }
        return out
    }
}
