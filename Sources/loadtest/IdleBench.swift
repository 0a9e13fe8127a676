import ArgumentParser
import EventLoop
import Foundation
import WebSocket

/// Memory per idle connection: opens N WebSocket connections, holds them, and reports the server's
/// RSS growth per connection (from /proc, given the server's pid).
struct IdleBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idle", abstract: "Server RSS per idle open connection.")

    @Option(help: "WebSocket URL to hold connections on.") var url = "ws://127.0.0.1:8080/echo"
    @Option(help: "Connections.") var connections = 10000
    @Option(help: "Server process id (for RSS).") var pid: Int32
    @Option(help: "Text message each client sends once after opening (e.g. a join), if any.") var hello: String?

    func run() throws {
        let target = try WSURL(url)
        let loop = Loop(index: 0)
        runLoop(loop, timeout: 0.5) { false }
        let before = rssKiB(pid: pid)
        var opened = 0, replies = 0, closed = 0
        let clients = try openClients(connections, url: target, loop: loop) { c, _ in
            c.onOpen = { c in
                opened += 1; if let hello { c.sendText(hello) }
            }
            c.onMessage = { _, _, _ in replies += 1 }
            c.onClose = { _, _ in closed += 1 }
        }
        runLoop(loop, timeout: 60) { opened + closed >= connections && (hello == nil || replies >= opened) }
        runLoop(loop, timeout: 2) { false }
        let after = rssKiB(pid: pid)
        let perConnection = Double(after - before) * 1024 / Double(max(opened, 1))
        print(
            String(
                format: "idle: %d connections open; server RSS %d KiB -> %d KiB; %.0f bytes per connection",
                opened, before, after, perConnection))
        for c in clients { c.close() }
    }
}
