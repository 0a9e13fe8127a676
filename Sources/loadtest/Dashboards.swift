import ArgumentParser
import EventLoop
import Foundation
import Histogram
import WebSocket

/// Dashboards: W watchers on `/watch` following their owners' dashboards, while run events are
/// published over HTTP (keep-alive connections on this loop) at a fixed rate; every event carries its
/// publish time in the progress message, so each delivery's publish-to-watcher latency is measured.
struct Dashboards: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboards", abstract: "Run events published over HTTP, watched on dashboards.")

    @Option(help: "Hub base URL (ws://host:port).") var url = "ws://127.0.0.1:8080"
    @Option(help: "Dashboard watchers.") var watchers = 1000
    @Option(help: "Owners; watchers and runs are spread over them (each event reaches watchers/owners dashboards).")
    var owners = 10
    @Option(help: "Runs (spread over owners).") var runs = 100
    @Option(help: "Events published per second (all runs together).") var rate = 1000.0
    @Option(help: "HTTP keep-alive connections publishing.") var publishers = 8
    @Option(
        name: [.customLong("admin-key"), .customLong("publish-key")],
        help: "The hub's admin key (publishes, and lets the watchers watch).") var publishKey =
        "load-admin-key-0123456789"
    @Option(help: "Seconds measured.") var duration = 10.0
    @Option(
        help: ArgumentHelp(
            "Events in all, published one at a time (each once the one before it is answered and has reached "
                + "every watcher of its owner), instead of --rate for --duration: a fixed amount of work."))
    var events = 0
    @Option(help: "Warm-up seconds.") var warmup = 2.0
    @Option(help: "Server pid, for its CPU.") var serverPid: Int32?
    @Option(help: "Write the JSON report here.") var json: String?

    func run() throws {
        let base = try WSURL(url)
        let loop = Loop(index: 0)
        guard events >= 0, watchers > 0, owners > 0, runs > 0 else {
            throw ValidationFailure("--events, --watchers, --owners and --runs must be positive")
        }
        // Always six digits: a counted run's requests are the same length every time.
        let prefix = "load" + String(format: "%06d", Int(monotonicNow() * 1000) % 1_000_000)
        for r in 0..<runs {
            let (status, body) = try HTTPClient.request(
                host: base.host, port: base.port, method: "POST", path: "/api/runs/\(prefix)-\(r)/events",
                body: "{\"type\":\"started\",\"owner\":\"\(prefix)-o\(r % owners)\"}",
                headers: ["X-API-Key": publishKey])
            guard status == 202 else { throw ValidationFailure("starting run failed: \(status) \(body)") }
        }
        var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var deliveries = 0, subscribed = 0, closed = 0
        let target = try WSURL("ws://\(base.host):\(base.port)/watch?key=\(publishKey)")
        let clients = try openClients(watchers, url: target, loop: loop, subprotocol: "collabhub.v1") { c, i in
            c.onOpen = { c in c.sendText("{\"type\":\"subscribe\",\"channel\":\"dashboard:\(prefix)-o\(i % owners)\"}")
            }
            c.onMessage = { _, _, p in
                if p.count > 10 && p[9] == UInt8(ascii: "d") { subscribed += 1; return }
                let now = Int(monotonicNow() * 1e6)
                Stats.sendTimes(p) { t in
                    latency.record(UInt64(max(0, now - t))); deliveries += 1
                }
            }
            c.onClose = { _, _ in closed += 1 }
        }
        runLoop(loop, timeout: 60) { subscribed + closed >= watchers }
        guard subscribed == watchers else {
            throw ValidationFailure("only \(subscribed) of \(watchers) watchers subscribed")
        }

        if events > 0 { return try runCounted(loop: loop, base: base, prefix: prefix, clients: clients) { deliveries } }
        var published = 0, failures = 0, queued = 0
        var pubs: [HTTPPublisher] = []
        for _ in 0..<publishers {
            let fd = try connectTCP(host: base.host, port: base.port)
            let p = HTTPPublisher(loop: loop, fd: fd, peer: base.host)
            p.host = base.host
            p.key = publishKey
            p.onResponse = { status in if status == 202 { published += 1 } else { failures += 1 } }
            p.start()
            pubs.append(p)
        }
        let start = monotonicNow()
        var sent = 0
        let timer = Loop.Timer(loop: loop, after: 0.001, repeat: 0.001) {
            let due = Int((monotonicNow() - start) * rate)
            while sent < due {
                let r = sent % runs
                let body =
                    "{\"type\":\"progress\",\"percent\":\(sent % 100),\"message\":\"t=\(Int(monotonicNow() * 1e6))\"}"
                // Round-robin over publishers; each keeps its own pipeline of requests.
                pubs[sent % pubs.count].post(path: "/api/runs/\(prefix)-\(r)/events", body: body)
                sent += 1
                queued += 1
            }
        }
        _ = timer
        runLoop(loop, timeout: warmup) { false }
        latency.reset(); deliveries = 0
        let p0 = published, cpu0 = serverPid.map { cpuSeconds(pid: $0) } ?? 0, c0 = cpuSeconds()
        let t0 = monotonicNow()
        runLoop(loop, timeout: duration) { false }
        let elapsed = monotonicNow() - t0
        let pct = Stats.percentiles(latency)
        let serverCPU = serverPid.map { (cpuSeconds(pid: $0) - cpu0) / elapsed * 100 } ?? -1
        let clientCPU = (cpuSeconds() - c0) / elapsed * 100
        let text =
            String(
                format: "dashboards: %d watchers over %d owners, %d runs, %.0f events/s over HTTP (%d connections)\n",
                watchers, owners, runs, rate, publishers)
            + String(
                format: "  published %.0f/s (failed %d), deliveries %.0f/s\n", Double(published - p0) / elapsed,
                failures, Double(deliveries) / elapsed)
            + "  publish-to-watcher latency ms: "
            + ["p50", "p90", "p99", "p99.9", "max"].map { String(format: "%@ %.2f", $0, pct[$0] ?? 0) }.joined(
                separator: "  ")
            + String(format: "\n  client CPU %.0f%%, server CPU %.0f%%", clientCPU, serverCPU)
        print(text)
        if let json {
            let obj =
                "{\"watchers\": \(watchers), \"owners\": \(owners), \"rate\": \(rate), \"published_per_second\": "
                + "\(Double(published - p0) / elapsed), "
                + "\"deliveries_per_second\": \(Double(deliveries) / elapsed), "
                + "\"latency_ms\": {"
                + pct.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ")
                + "}, \"server_cpu_percent\": \(serverCPU)}"
            try obj.write(toFile: json, atomically: true, encoding: .utf8)
        }
        for c in clients { c.close() }
    }

    /// `--events N`: one publisher, one event at a time, round-robin over the runs; the next is published
    /// once the last is answered (202) and every watcher of its run's owner has it. The hub then does the
    /// same work whatever the timing (the callgrind budget counts instructions per event this way).
    private func runCounted(
        loop: Loop, base: WSURL, prefix: String, clients: [WSClient], deliveries: @escaping () -> Int
    ) throws {
        // Watcher i follows owner i % owners, run r belongs to owner r % owners.
        let perOwner = (0..<owners).map { o in (0..<watchers).filter { $0 % owners == o }.count }
        let fd = try connectTCP(host: base.host, port: base.port)
        let publisher = HTTPPublisher(loop: loop, fd: fd, peer: base.host)
        publisher.host = base.host
        publisher.key = publishKey
        var sent = 0, answered = 0, expected = 0, failure: String?, done = false
        let d0 = deliveries()
        let step = {
            guard !done else { return }
            guard answered == sent, deliveries() - d0 >= expected else { return }
            guard sent < events else { done = true; return }
            let r = sent % runs
            expected += perOwner[r % owners]
            let body =
                "{\"type\":\"progress\",\"percent\":\(sent % 100),\"message\":\"t=\(Int(monotonicNow() * 1e6))\"}"
            sent += 1
            publisher.post(path: "/api/runs/\(prefix)-\(r)/events", body: body)
        }
        publisher.onResponse = { status in
            answered += 1
            if status != 202 { failure = "publishing answered \(status)"; done = true }
            step()
        }
        for c in clients {
            let inner = c.onMessage
            c.onMessage = { c, op, p in
                inner?(c, op, p); step()
            }
        }
        publisher.start()
        let t0 = monotonicNow()
        step()
        runLoop(loop, timeout: 3600) { done }
        let elapsed = monotonicNow() - t0
        if let failure { throw ValidationFailure("counted run stopped after \(sent) events: \(failure)") }
        guard done else { throw ValidationFailure("counted run: \(sent) of \(events) events in an hour") }
        print(
            "dashboards: \(watchers) watchers over \(owners) owners, \(runs) runs; counted: \(sent) events, "
                + "\(deliveries() - d0) deliveries in \(String(format: "%.1f", elapsed)) s")
        publisher.close()
        // Close handshakes, answered by the hub: it has handled every watcher's leave before this exits.
        var open = 0
        for c in clients where c.state == .open {
            open += 1
            c.onClose = { _, _ in open -= 1 }
            c.closeHandshake()
        }
        runLoop(loop, timeout: 600) { open == 0 }
        guard open == 0 else { throw ValidationFailure("\(open) watchers got no close answer") }
    }
}

/// An HTTP/1.1 keep-alive client on the loop that pipelines POST requests and counts the responses.
final class HTTPPublisher: EventLoop.Socket {
    var host = "127.0.0.1"
    var key = ""
    var onResponse: ((Int) -> Void)?

    func post(path: String, body: String) {
        let req =
            "POST \(path) HTTP/1.1\r\nHost: \(host)\r\nX-API-Key: \(key)\r\nContent-Type: "
            + "application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        send(Array(req.utf8))
    }

    override func received(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        var used = 0
        while used < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[used...])
            guard let headEnd = ResponseHeadScanner().headEnd(rest) else { break }
            let head = String(decoding: rest[..<headEnd], as: UTF8.self)
            let status = Int(head.dropFirst(9).prefix(3)) ?? 0
            var length = 0
            for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
            guard rest.count >= headEnd + length else { break }
            used += headEnd + length
            onResponse?(status)
        }
        return used
    }
}
