import ArgumentParser
import EventLoop
import Foundation
import WebSocket

/// Memory per idle connection: opens N WebSocket connections, holds them, and reports the server's
/// RSS growth per connection (from /proc, given the server's pid). With `--sessions S`, the connections
/// are joined members of S sessions the bench creates (the hub's /ws protocol), not bare sockets.
struct IdleBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idle", abstract: "Server RSS per idle open connection.")

    @Option(help: "WebSocket URL to hold connections on.") var url = "ws://127.0.0.1:8080/echo"
    @Option(help: "Connections.") var connections = 10000
    @Option(help: "Server process id (for RSS).") var pid: Int32
    @Option(help: "Text message each client sends once after opening (e.g. a join), if any.") var hello: String?
    @Option(help: "Sessions to create and join (0: bare connections on --url).") var sessions = 0
    @Option(help: "Seconds to hold the connections open after measuring (for a heap profiler's snapshot).")
    var hold = 0.0

    func run() throws {
        let target = try WSURL(url)
        let loop = Loop(index: 0)
        runLoop(loop, timeout: 0.5) { false }
        let codes = try (0..<sessions).map { _ in try createSession(target) }
        let before = rssKiB(pid: pid)
        var opened = 0, answered = 0, closed = 0
        let join = sessions > 0
        let clients = try openClients(
            connections, url: target, loop: loop, subprotocol: join ? "collabhub.v1" : nil,
            path: join ? { "/ws?session=\(codes[$0 % codes.count])" } : nil
        ) { c, i in
            var first = true
            c.onOpen = { c in
                opened += 1
                if join {
                    c.sendText(#"{"type":"join","name":"m\#(i)","client_id":"idle-\#(i)"}"#)
                } else if let hello {
                    c.sendText(hello)
                }
            }
            c.onMessage = { _, _, _ in
                if first { first = false; answered += 1 }
            }
            c.onClose = { _, _ in closed += 1 }
        }
        runLoop(loop, timeout: 120) {
            opened + closed >= connections && ((hello == nil && !join) || answered >= opened)
        }
        runLoop(loop, timeout: 2) { false }
        let after = rssKiB(pid: pid)
        let perConnection = Double(after - before) * 1024 / Double(max(opened, 1))
        let what = join ? "joined members (\(sessions) sessions)" : "connections"
        print(
            "idle: \(opened) \(what) open; server RSS \(before) KiB -> \(after) KiB; "
                + "\(Int(perConnection.rounded())) bytes per \(join ? "member" : "connection")")
        if hold > 0 {
            print("holding \(opened) connections for \(hold) s")
            fflush(stdout)
            runLoop(loop, timeout: hold) { false }
        }
        // Close handshakes, each answered by the hub: it has handled every leave before this process exits
        // (so an instruction count of the hub, `loadtest/callgrind_budget.py`, has the same work each time).
        var open = 0
        for c in clients where c.state == .open {
            open += 1
            c.onClose = { _, _ in open -= 1 }
            c.closeHandshake()
        }
        runLoop(loop, timeout: 600) { open == 0 }
        for c in clients where c.state != .closed { c.close() }
    }

    private func createSession(_ target: WSURL) throws -> String {
        let (status, body) = try HTTPClient.request(
            host: target.host, port: target.port, method: "POST", path: "/api/sessions", body: "{}", tls: target.tls)
        guard status == 201 || status == 200,
            let r = body.range(of: #""code":""#), let end = body[r.upperBound...].firstIndex(of: "\"")
        else { throw ValidationFailure("creating a session: \(status) \(body.prefix(200))") }
        return String(body[r.upperBound..<end])
    }
}
