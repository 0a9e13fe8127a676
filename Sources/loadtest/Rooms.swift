import ArgumentParser
import EventLoop
import Foundation
import Histogram
import WebSocket

/// Fan-out load: S sessions x K members; every member sends app events (ephemeral) or chat (durable)
/// at a fixed rate, each carrying its send time; every delivery's latency goes into an HdrHistogram.
struct Rooms: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rooms", abstract: "Session fan-out: deliveries/s and latency percentiles.")

    @Option(help: "Hub base URL (ws://host:port).") var url = "ws://127.0.0.1:8080"
    @Option(help: "Sessions.") var sessions = 100
    @Option(help: "Members per session.") var members = 10
    @Option(help: "Messages per second each member sends.") var rate = 10.0
    @Option(help: "Payload bytes per message (padding included).") var size = 100
    @Option(help: "Seconds measured.") var duration = 10.0
    @Option(help: "Warm-up seconds (not measured).") var warmup = 2.0
    @Option(help: "event (ephemeral fan-out) or chat (durable: stored, acked).") var kind = "event"
    @Option(help: "Peer type: collabhub (creates sessions over HTTP) or rooms (plain rooms server).") var peer = "collabhub"
    @Option(help: "Server pid, for its CPU and RSS.") var serverPid: Int32?
    @Option(help: "Write the JSON report here.") var json: String?
    @Flag(help: "Quiet: no per-second progress line.") var quiet = false

    func run() throws {
        let base = try WSURL(url)
        let loop = Loop(index: 0)
        var codes: [String] = []
        for i in 0..<sessions {
            if peer == "collabhub" {
                let (status, body) = try HTTPClient.request(host: base.host, port: base.port, method: "POST", path: "/api/sessions",
                                                            body: "{\"title\":\"load \(i)\",\"max_participants\":\(members)}")
                guard status == 201, let r = body.range(of: "\"code\":\""), let end = body[r.upperBound...].firstIndex(of: "\"") else {
                    throw ValidationFailure("creating a session failed: \(status) \(body)")
                }
                codes.append(String(body[r.upperBound..<end]))
            } else {
                codes.append("room\(i)")
            }
        }
        let stats = Stats()
        var joined = 0, closed = 0
        var clients: [WSClient] = []
        let padding = String(repeating: "x", count: max(0, size - 60))
        for (s, code) in codes.enumerated() {
            let target = try WSURL("ws://\(base.host):\(base.port)/ws?session=\(code)")
            let group = try openClients(members, url: target, loop: loop, subprotocol: peer == "collabhub" ? "collabhub.v1" : nil) { c, m in
                c.onOpen = { c in c.sendText("{\"type\":\"join\",\"name\":\"u\(s)-\(m)\",\"client_id\":\"c\(s)-\(m)\"}") }
                c.onMessage = { c, _, payload in stats.received(payload, joined: &joined) }
                c.onClose = { _, code in closed += 1; stats.closeCodes[Int(code ?? 1006), default: 0] += 1 }
            }
            clients += group
        }
        runLoop(loop, timeout: 60) { joined + closed >= clients.count }
        guard joined == clients.count else { throw ValidationFailure("only \(joined) of \(clients.count) members joined (\(closed) closed)") }

        // Sending: a 1 ms timer; each member sends what its rate says is due, spread by a per-member phase.
        let interval = 1.0 / rate
        var next = clients.indices.map { Double($0 % 97) / 97.0 * interval }
        var counter = 0
        let start = monotonicNow()
        let sendTimer = Loop.Timer(loop: loop, after: 0.001, repeat: 0.001) {
            let t = monotonicNow() - start
            for (i, c) in clients.enumerated() where c.state == .open {
                while next[i] <= t {
                    next[i] += interval
                    counter += 1
                    let micros = Int(monotonicNow() * 1e6)
                    if kind == "chat" {
                        c.sendText("{\"type\":\"chat\",\"id\":\"\(counter)\",\"text\":\"t=\(micros);\(padding)\"}")
                    } else {
                        c.sendText("{\"type\":\"event\",\"name\":\"load\",\"data\":{\"t\":\(micros),\"p\":\"\(padding)\"}}")
                    }
                    stats.sent += 1
                }
            }
        }
        _ = sendTimer
        var lastReport = monotonicNow(), lastCount = 0
        let progress = Loop.Timer(loop: loop, after: 1, repeat: 1) {
            let now = monotonicNow()
            if !quiet {
                let rate = Double(stats.deliveries - lastCount) / (now - lastReport)
                FileHandle.standardError.write(Data(String(format: "[%4.0fs] %9.0f deliveries/s  p99 %7.2f ms  closed %d\n",
                    now - start, rate, Double(stats.window.valueAtPercentile(99)) / 1000, closed).utf8))
                stats.window.reset()
            }
            lastReport = now; lastCount = stats.deliveries
        }
        _ = progress
        runLoop(loop, timeout: warmup) { false }
        stats.reset()
        let cpu0 = cpuSeconds(), scpu0 = serverPid.map { cpuSeconds(pid: $0) } ?? 0
        let t0 = monotonicNow()
        runLoop(loop, timeout: duration) { false }
        let elapsed = monotonicNow() - t0
        let clientCPU = (cpuSeconds() - cpu0) / elapsed * 100
        let serverCPU = serverPid.map { (cpuSeconds(pid: $0) - scpu0) / elapsed * 100 }
        // Chat is echoed to its author too; app events go to the others only.
        let expected = Double(clients.count) * rate * Double(kind == "chat" ? members : members - 1)
        let report = Report(peer: peer, kind: kind, sessions: sessions, members: members, rate: rate, size: size, seconds: elapsed,
                            deliveriesPerSecond: Double(stats.deliveries) / elapsed, expectedPerSecond: expected,
                            acksPerSecond: Double(stats.acks) / elapsed, sentPerSecond: Double(stats.sent) / elapsed,
                            latency: stats.percentiles(stats.latency), ackLatency: stats.percentiles(stats.ackLatency),
                            clientCPU: clientCPU, serverCPU: serverCPU, serverRSSKiB: serverPid.map { rssKiB(pid: $0) },
                            closed: closed, errors: stats.errors)
        print(report.text)
        if clientCPU > 80 { FileHandle.standardError.write(Data("warning: load generator used \(Int(clientCPU))% of a core; it may be the bottleneck\n".utf8)) }
        if let json { try report.json.write(toFile: json, atomically: true, encoding: .utf8) }
        for c in clients { c.close() }
    }
}

/// Delivery counting and latency, on the load generator's loop.
final class Stats {
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var ackLatency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var window = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .two)
    var deliveries = 0, acks = 0, sent = 0, errors = 0
    var closeCodes: [Int: Int] = [:]
    var pendingAcks: [String: Int] = [:]

    func reset() {
        latency.reset(); ackLatency.reset(); deliveries = 0; acks = 0; sent = 0; errors = 0
    }

    /// Reads the type and the embedded send time without a JSON parser (the client must stay cheap).
    func received(_ p: UnsafeRawBufferPointer, joined: inout Int) {
        guard p.count > 12 else { return }
        let type = p[9]  // {"type":"X...
        switch type {
        case UInt8(ascii: "e") where p[10] == UInt8(ascii: "v"), UInt8(ascii: "c") where p[10] == UInt8(ascii: "h"):
            if let t = Stats.sendTime(p) {
                let now = Int(monotonicNow() * 1e6)
                let us = UInt64(max(0, now - t))
                latency.record(us); window.record(us)
            }
            deliveries += 1
        case UInt8(ascii: "a"):  // ack: latency of the author's own message is measured from its chat copy
            acks += 1
        case UInt8(ascii: "j"): joined += 1
        case UInt8(ascii: "e") where p[10] == UInt8(ascii: "r"): errors += 1
        default: break
        }
    }

    /// Finds `"t":DIGITS` or `t=DIGITS`.
    static func sendTime(_ p: UnsafeRawBufferPointer) -> Int? {
        var i = 0
        let n = p.count
        while i + 3 < n {
            if p[i] == UInt8(ascii: "t") && ((p[i + 1] == UInt8(ascii: "\"") && p[i + 2] == UInt8(ascii: ":")) || p[i + 1] == UInt8(ascii: "=")) {
                var j = i + (p[i + 1] == UInt8(ascii: "=") ? 2 : 3)
                var v = 0
                var digits = 0
                while j < n, p[j] >= 48, p[j] <= 57 { v = v * 10 + Int(p[j] - 48); j += 1; digits += 1 }
                if digits > 6 { return v }
            }
            i += 1
        }
        return nil
    }

    func percentiles(_ h: Histogram<UInt64>) -> [String: Double] {
        guard h.totalCount > 0 else { return [:] }
        return ["p50": Double(h.valueAtPercentile(50)) / 1000, "p90": Double(h.valueAtPercentile(90)) / 1000,
                "p99": Double(h.valueAtPercentile(99)) / 1000, "p99.9": Double(h.valueAtPercentile(99.9)) / 1000,
                "max": Double(h.max) / 1000]
    }
}

struct Report {
    let peer: String, kind: String
    let sessions: Int, members: Int
    let rate: Double
    let size: Int
    let seconds: Double
    let deliveriesPerSecond: Double, expectedPerSecond: Double, acksPerSecond: Double, sentPerSecond: Double
    let latency: [String: Double], ackLatency: [String: Double]
    let clientCPU: Double
    let serverCPU: Double?
    let serverRSSKiB: Int?
    let closed: Int, errors: Int

    var text: String {
        func pct(_ l: [String: Double]) -> String {
            ["p50", "p90", "p99", "p99.9", "max"].map { String(format: "%@ %.2f", $0, l[$0] ?? 0) }.joined(separator: "  ")
        }
        var s = String(format: "%@ %@: %d sessions x %d members at %.0f msg/s each, %d B\n", peer, kind, sessions, members, rate, size)
        s += String(format: "  deliveries %.0f/s (offered %.0f/s, %.1f%%), sent %.0f/s\n", deliveriesPerSecond, expectedPerSecond,
                    deliveriesPerSecond / max(expectedPerSecond, 1) * 100, sentPerSecond)
        s += "  latency ms: \(pct(latency))\n"
        if kind == "chat" { s += String(format: "  acks %.0f/s\n", acksPerSecond) }
        s += String(format: "  client CPU %.0f%%", clientCPU)
        if let serverCPU { s += String(format: ", server CPU %.0f%%", serverCPU) }
        if let rss = serverRSSKiB { s += ", server RSS \(rss / 1024) MiB" }
        s += ", closed \(closed), errors \(errors)"
        return s
    }

    var json: String {
        func obj(_ d: [String: Double]) -> String { "{" + d.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}" }
        return """
        {"peer": "\(peer)", "kind": "\(kind)", "sessions": \(sessions), "members": \(members), "rate": \(rate), "size": \(size),
         "seconds": \(seconds), "deliveries_per_second": \(deliveriesPerSecond), "offered_per_second": \(expectedPerSecond),
         "acks_per_second": \(acksPerSecond), "sent_per_second": \(sentPerSecond), "latency_ms": \(obj(latency)),
         "client_cpu_percent": \(clientCPU), "server_cpu_percent": \(serverCPU ?? -1), "server_rss_kib": \(serverRSSKiB ?? -1),
         "closed": \(closed), "errors": \(errors)}
        """
    }
}
