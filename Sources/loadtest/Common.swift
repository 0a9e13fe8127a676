import EventLoop
import Foundation
import WebSocket

/// A parsed ws:// URL.
struct WSURL {
    var host: String
    var port: Int
    var path: String
    var tls = false
    init(_ s: String) throws {
        guard s.hasPrefix("ws://") || s.hasPrefix("wss://") else {
            throw ValidationFailure("only ws:// and wss:// URLs are supported: \(s)")
        }
        tls = s.hasPrefix("wss://")
        let rest = s.dropFirst(tls ? 6 : 5)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let hostPort = rest[..<slash]
        path = slash == rest.endIndex ? "/" : String(rest[slash...])
        if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon]); port = Int(hostPort[hostPort.index(after: colon)...]) ?? 80
        } else {
            host = String(hostPort); port = 80
        }
    }
}

struct ValidationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// CPU seconds (user+system) used by a process, from /proc.
func cpuSeconds(pid: Int32? = nil) -> Double {
    let path = pid.map { "/proc/\($0)/stat" } ?? "/proc/self/stat"
    guard let stat = try? String(contentsOfFile: path, encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Resident set size of a process in KiB, from /proc.
func rssKiB(pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
    }
    return 0
}

func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Source addresses for many connections: 127.0.0.1, .2, ... each good for ~28k connections.
func sourceAddress(for index: Int, perAddress: Int = 25_000) -> String? {
    let n = index / perAddress
    return n == 0 ? nil : "127.0.0.\(n + 1)"
}

/// Opens `count` WebSocket clients on `loop`, calling `configure` on each before its handshake.
func openClients(
    _ count: Int, url: WSURL, loop: Loop, subprotocol: String? = nil, path: ((Int) -> String)? = nil,
    configure: (WSClient, Int) -> Void
) throws -> [WSClient] {
    var clients: [WSClient] = []
    clients.reserveCapacity(count)
    for i in 0..<count {
        let fd = try connectTCP(host: url.host, port: url.port, source: sourceAddress(for: i))
        let c = WSClient(loop: loop, fd: fd, peer: url.host)
        configure(c, i)
        if url.tls { c.enableTLS(try clientTLS(), serverName: url.host) }
        c.start()
        c.handshake(host: url.host, path: path?(i) ?? url.path, subprotocol: subprotocol)
        clients.append(c)
        if i % 200 == 199 { loop.runOnce() }  // let handshakes progress while connecting
    }
    return clients
}

/// Runs the loop until `until` returns true or `timeout` seconds pass, checking every 10 ms.
func runLoop(_ loop: Loop, timeout: Double, until: @escaping () -> Bool) {
    let deadline = monotonicNow() + timeout
    var timer: Loop.Timer?
    timer = Loop.Timer(loop: loop, after: 0.01, repeat: 0.01) {
        if until() || monotonicNow() >= deadline { timer?.cancel(); loop.stop() }
    }
    loop.run()
    timer = nil
}

private var sharedClientTLS: TLSContext?
/// One client TLS context for the whole load generator.
func clientTLS() throws -> TLSContext {
    if let c = sharedClientTLS { return c }
    let c = try TLSContext()
    sharedClientTLS = c
    return c
}
