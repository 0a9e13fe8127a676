import ArgumentParser
import Foundation
import Server
import Store

struct CollabHub: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collabhub",
        abstract: "A real-time WebSocket collaboration hub.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the hub.")

    @Option(help: "Address to listen on (IPv4 or IPv6 literal).") var host = "127.0.0.1"
    @Option(help: "TCP port (0 picks a free one and prints it).") var port = 8080
    @Option(help: "Event-loop threads (default: one per core).") var threads: Int?
    @Option(help: "Directory for the SQLite transcript store.") var data = "./data"
    @Flag(help: "Enable /echo, the conformance-test endpoint.") var echo = false
    @Option(help: "Largest WebSocket message accepted, bytes (1009 beyond).") var maxMessageSize = 1 << 20
    @Option(help: "Largest HTTP request head, bytes (431 beyond).") var maxHeaderSize = 8 * 1024
    @Option(help: "Seconds a client has to complete a request or handshake.") var handshakeTimeout = 10.0
    @Option(help: "Seconds of silence before a WebSocket client is pinged (and dropped after as many more).") var pingInterval = 30.0
    @Option(help: "Browser origins allowed to open WebSockets (comma-separated; default: any).") var allowedOrigins: String?
    @Option(help: "normal: durable across a crash; full: also across power loss (fsync per group commit).") var durability = "normal"
    @Option(help: "Default maximum participants per session.") var maxParticipants = 10
    @Option(help: "Length of new session codes (at least 6).") var codeLength = 8
    @Option(help: "Seconds a member whose connection dropped stays present, so a reconnect is seamless.") var reconnectGrace = 10.0
    @Option(help: "Recent durable events per session kept in memory for resume.") var resumeWindow = 1000
    @Option(help: "Delete transcript events older than this many seconds (default: keep).") var retentionAge: Double?
    @Option(help: "Keep at most this many events per session (default: all).") var retentionEvents: Int?
    @Option(help: "Seconds between retention passes.") var retentionInterval = 60.0
    @Option(help: "Seconds a session may stay without members before it ends.") var sessionIdleTtl = 86400.0
    @Option(help: "Shared API key for publishing run events (default: publishing disabled; or COLLABHUB_PUBLISH_KEY).") var publishKey: String?
    @Option(help: "TCP congestion control for client sockets, e.g. cubic (default: the system's).") var tcpCongestion: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        if let threads, threads < 1 || threads > 256 { throw ValidationError("--threads must be 1-256") }
        guard maxMessageSize >= 125 else { throw ValidationError("--max-message-size must be at least 125") }
        guard maxHeaderSize >= 512 else { throw ValidationError("--max-header-size must be at least 512") }
        guard pingInterval > 0, handshakeTimeout > 0 else { throw ValidationError("timeouts must be positive") }
        guard Durability(rawValue: durability) != nil else { throw ValidationError("--durability must be normal or full") }
        guard codeLength >= 6, codeLength <= 32 else { throw ValidationError("--code-length must be 6-32") }
        guard maxParticipants >= 1 else { throw ValidationError("--max-participants must be at least 1") }
        if let a = retentionAge, a <= 0 { throw ValidationError("--retention-age must be positive") }
        if let e = retentionEvents, e < 1 { throw ValidationError("--retention-events must be at least 1") }
        guard sessionIdleTtl > 0 else { throw ValidationError("--session-idle-ttl must be positive") }
        guard retentionInterval > 0 else { throw ValidationError("--retention-interval must be positive") }
        guard reconnectGrace >= 0, resumeWindow >= 0 else { throw ValidationError("--reconnect-grace and --resume-window must not be negative") }
    }

    func run() throws {
        var config = Config()
        config.host = host
        config.port = port
        config.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        config.dataDirectory = data
        config.echo = echo
        config.maxMessageSize = maxMessageSize
        config.maxHeadSize = maxHeaderSize
        config.handshakeTimeout = handshakeTimeout
        config.pingInterval = pingInterval
        config.durability = Durability(rawValue: durability)!
        config.maxParticipants = maxParticipants
        config.codeLength = codeLength
        config.sessionPolicy.reconnectGrace = reconnectGrace
        config.sessionPolicy.resumeWindow = resumeWindow
        config.retention = RetentionPolicy(maxAgeMillis: retentionAge.map { Int64($0 * 1000) }, maxEventsPerSession: retentionEvents)
        config.retentionInterval = retentionInterval
        config.tcpCongestion = tcpCongestion
        config.sessionIdleTTL = sessionIdleTtl
        config.publishKey = publishKey ?? ProcessInfo.processInfo.environment["COLLABHUB_PUBLISH_KEY"]
        config.allowedOrigins = allowedOrigins?.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        let server: Server
        do {
            server = try Server(config: config)
        } catch {
            FileHandle.standardError.write(Data("collabhub: \(error)\n".utf8))
            throw ExitCode(1)
        }
        server.handleSignals()
        print("collabhub listening on \(host):\(server.port) threads=\(config.threads)\(echo ? " echo=on" : "")")
        fflush(stdout)
        server.run()
        print("collabhub stopped")
    }
}

CollabHub.main()
