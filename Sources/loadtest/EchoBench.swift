import ArgumentParser
import EventLoop
import Foundation
import WebSocket

/// Echo throughput: N connections each keep `pipeline` messages in flight against an echo endpoint.
struct EchoBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo", abstract: "Echo throughput against /echo (or any echo server).")

    @Option(help: "Echo endpoint URL.") var url = "ws://127.0.0.1:8080/echo"
    @Option(help: "Connections.") var connections = 1000
    @Option(help: "Payload bytes per message (ASCII text).") var size = 100
    @Option(help: "Messages in flight per connection.") var pipeline = 1
    @Option(help: "Seconds measured (after warm-up).") var duration = 10.0
    @Option(help: "Warm-up seconds, not measured.") var warmup = 2.0
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @Option(help: "Server process id: report its CPU use from /proc.") var serverPid: Int32?

    func run() throws {
        let target = try WSURL(url)
        let loop = Loop(index: 0)
        var received = 0
        var opened = 0
        var failed = 0
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        let clients = try openClients(connections, url: target, loop: loop) { c, _ in
            c.onOpen = { c in
                opened += 1
                payload.withUnsafeBytes { p in for _ in 0..<pipeline { c.sendFrame(.text, p) } }
            }
            c.onMessage = { c, _, _ in
                received += 1
                payload.withUnsafeBytes { c.sendFrame(.text, $0) }
            }
            c.onClose = { _, _ in failed += 1 }
        }
        runLoop(loop, timeout: 30) { opened + failed >= connections }
        guard opened == connections else {
            throw ValidationFailure("only \(opened) of \(connections) connections opened")
        }
        runLoop(loop, timeout: warmup) { false }
        let start = monotonicNow(), startCount = received, cpu0 = cpuSeconds()
        let serverCPU0 = serverPid.map { cpuSeconds(pid: $0) } ?? 0
        runLoop(loop, timeout: duration) { false }
        let elapsed = monotonicNow() - start
        let rate = Double(received - startCount) / elapsed
        let cpu = (cpuSeconds() - cpu0) / elapsed * 100
        let serverCPU = serverPid.map { (cpuSeconds(pid: $0) - serverCPU0) / elapsed * 100 } ?? -1
        if json {
            print(
                "{\"messages_per_second\": \(Int(rate)), \"client_cpu_percent\": \(Int(cpu)), "
                    + "\"server_cpu_percent\": \(Int(serverCPU)), \"connections\": \(connections), \"size\": \(size), "
                    + "\"pipeline\": \(pipeline), \"closed\": \(failed)}"
            )
        } else {
            print(
                String(
                    format:
                        "echo: %.0f msg/s over %d connections (%d B, pipeline %d); client CPU %.0f%%, server CPU "
                        + "%.0f%%%@",
                    rate, connections, size, pipeline, cpu, serverCPU, failed > 0 ? " (\(failed) closed)" : ""))
        }
        if cpu > 80 {
            FileHandle.standardError.write(
                Data("warning: load generator used \(Int(cpu))% of a core; it may be the bottleneck\n".utf8))
        }
        for c in clients { c.close() }
    }
}
