import ArgumentParser
import EventLoop
import Foundation
import Histogram
import WebSocket

/// Delivery counting and latency, on the load generator's loop. Parsing is by byte patterns, not JSON:
/// the client must stay cheaper than the server it measures.
final class Stats {
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var byKind: [String: Histogram<UInt64>] = [:]
    var window = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .two)
    var connectTime = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .two)
    var joinTime = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .two)
    var deliveries = 0, acks = 0, sent = 0, errors = 0, abuseSent = 0
    var closeCodes: [Int: Int] = [:]

    func reset() {
        latency.reset(); byKind = [:]; deliveries = 0; acks = 0; sent = 0; errors = 0; abuseSent = 0
    }

    /// Returns true for a `joined` message.
    func received(_ p: UnsafeRawBufferPointer, member: Member) -> Bool {
        guard p.count > 12 else { return false }
        let kind: String
        switch (p[9], p[10]) {
        case (UInt8(ascii: "e"), UInt8(ascii: "v")): kind = "event"
        case (UInt8(ascii: "c"), UInt8(ascii: "h")): kind = "chat"
        case (UInt8(ascii: "c"), UInt8(ascii: "u")): kind = "cursor"
        case (UInt8(ascii: "a"), _): acks += 1; noteSeq(p, member); return false
        case (UInt8(ascii: "j"), _): noteSeq(p, member); return true
        case (UInt8(ascii: "e"), UInt8(ascii: "r")): errors += 1; return false
        case (UInt8(ascii: "p"), UInt8(ascii: "r")): noteSeq(p, member); return false
        default: return false
        }
        let now = Int(monotonicNow() * 1e6)
        Stats.sendTimes(p) { t in
            let us = UInt64(max(0, now - t))
            latency.record(us); window.record(us)
            byKind[
                kind,
                default: Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            ].record(us)
            deliveries += 1
        }
        if kind == "chat" { noteSeq(p, member) }
        return false
    }

    /// Remembers the highest `"seq":N` a member saw (for resume after churn).
    private static let seqPattern: [UInt8] = Array("\"seq\":".utf8)

    private func noteSeq(_ p: UnsafeRawBufferPointer, _ m: Member) {
        let pattern = Self.seqPattern
        var i = 0
        while i + pattern.count < p.count {
            if p[i] == pattern[0] && (0..<pattern.count).allSatisfy({ p[i + $0] == pattern[$0] }) {
                var j = i + pattern.count, v = 0
                while j < p.count, p[j] >= 48, p[j] <= 57 { v = v * 10 + Int(p[j] - 48); j += 1 }
                m.lastSeq = max(m.lastSeq, v)
                return
            }
            i += 1
        }
    }

    /// Every `"t":DIGITS` or `"t=DIGITS` (a cursor batch carries several). The `t` must follow a quote,
    /// so keys like `"started_at":` do not match.
    static func sendTimes(_ p: UnsafeRawBufferPointer, _ body: (Int) -> Void) {
        var i = 1
        let n = p.count
        while i + 3 < n {
            if p[i] == UInt8(ascii: "t") && p[i - 1] == UInt8(ascii: "\"")
                && ((p[i + 1] == UInt8(ascii: "\"") && p[i + 2] == UInt8(ascii: ":")) || p[i + 1] == UInt8(ascii: "="))
            {
                var j = i + (p[i + 1] == UInt8(ascii: "=") ? 2 : 3)
                var v = 0, digits = 0
                while j < n, p[j] >= 48, p[j] <= 57 { v = v * 10 + Int(p[j] - 48); j += 1; digits += 1 }
                if digits > 6 { body(v) }
                i = j
                continue
            }
            i += 1
        }
    }

    static func percentiles(_ h: Histogram<UInt64>) -> [String: Double] {
        guard h.totalCount > 0 else { return [:] }
        return [
            "p50": Double(h.valueAtPercentile(50)) / 1000, "p90": Double(h.valueAtPercentile(90)) / 1000,
            "p99": Double(h.valueAtPercentile(99)) / 1000, "p99.9": Double(h.valueAtPercentile(99.9)) / 1000,
            "max": Double(h.max) / 1000,
        ]
    }
}

struct Report {
    let config: ScenarioConfig
    let seconds: Double
    let stats: Stats
    let clientCPU: Double
    let serverCPU: Double?
    let serverRSSKiB: Int?
    let closed: Int, reconnects: Int

    var deliveriesPerSecond: Double { Double(stats.deliveries) / seconds }
    /// What full delivery would be: events go to the others, chats to everyone; cursors are coalesced,
    /// so they are not counted as offered.
    var offeredPerSecond: Double {
        let senders = Double(config.sessions) * (Double(config.members) * (1 - config.viewers)).rounded()
        return senders
            * (config.rate * Double(config.members - 1)
                + (config.chatEvery > 0 ? Double(config.members) / config.chatEvery : 0))
    }

    var text: String {
        func pct(_ l: [String: Double]) -> String {
            ["p50", "p90", "p99", "p99.9", "max"].map { String(format: "%@ %.2f", $0, l[$0] ?? 0) }.joined(
                separator: "  ")
        }
        let c = config
        var s = String(
            format:
                "%@ (%@): %d sessions x %d members, %.0f%% viewers, events %.1f/s, cursors %.0f Hz, chat every %.1f "
                + "s, churn %.1f/s\n",
            c.name, c.peer, c.sessions, c.members, c.viewers * 100, c.rate, c.cursorHz, c.chatEvery, c.churn)
        s += String(
            format: "  deliveries %.0f/s (offered %.0f/s excluding cursors), sent %.0f/s, acks %.0f/s\n",
            deliveriesPerSecond, offeredPerSecond, Double(stats.sent) / seconds, Double(stats.acks) / seconds)
        s += "  latency ms, all:    \(pct(Stats.percentiles(stats.latency)))\n"
        for (kind, h) in stats.byKind.sorted(by: { $0.key < $1.key }) {
            s +=
                "  latency ms, \(kind.padding(toLength: 7, withPad: " ", startingAt: 0)): "
                + "\(pct(Stats.percentiles(h)))\n"
        }
        s +=
            "  connect ms: \(pct(Stats.percentiles(stats.connectTime)))\n  join ms:    "
            + "\(pct(Stats.percentiles(stats.joinTime)))\n"
        s += String(format: "  client CPU %.0f%%", clientCPU)
        if let serverCPU { s += String(format: ", server CPU %.0f%%", serverCPU) }
        if let rss = serverRSSKiB { s += ", server RSS \(rss / 1024) MiB" }
        if config.abusive > 0 { s += String(format: ", abusive sent %.0f/s", Double(stats.abuseSent) / seconds) }
        s += ", reconnects \(reconnects), closed \(closed), errors \(stats.errors)"
        if !stats.closeCodes.isEmpty { s += ", close codes \(stats.closeCodes.sorted { $0.key < $1.key })" }
        return s
    }

    var json: String {
        func obj(_ d: [String: Double]) -> String {
            "{" + d.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
        }
        let kinds = stats.byKind.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \(obj(Stats.percentiles($0.value)))" }
            .joined(separator: ", ")
        let scenario = String(decoding: (try? JSONEncoder().encode(config)) ?? Data("{}".utf8), as: UTF8.self)
        return """
            {"scenario": \(scenario), "seconds": \(seconds), "deliveries_per_second": \(deliveriesPerSecond),
             "offered_per_second": \(offeredPerSecond), "sent_per_second": \(Double(stats.sent) / seconds),
             "acks_per_second": \(Double(stats.acks) / seconds), "latency_ms": \(obj(Stats.percentiles(stats.latency))),
             "latency_ms_by_kind": {\(kinds)}, "connect_ms": \(obj(Stats.percentiles(stats.connectTime))),
             "join_ms": \(obj(Stats.percentiles(stats.joinTime))), "client_cpu_percent": \(clientCPU),
             "server_cpu_percent": \(serverCPU ?? -1), "server_rss_kib": \(serverRSSKiB ?? -1),
             "reconnects": \(reconnects), "closed": \(closed), "errors": \(stats.errors)}
            """
    }
}
