import ArgumentParser
import EventLoop
import Foundation
import Histogram
import WebSocket

/// A load scenario: who connects, what each member does, for how long. Files under
/// `loadtest/scenarios/` hold these as JSON; every field can be overridden on the command line.
struct ScenarioConfig: Codable {
    var name = "custom"
    var description = ""
    var sessions = 100
    var members = 10
    /// Fraction of members that only listen (webinar audiences).
    var viewers = 0.0
    /// Ephemeral app events per second per sending member (the fan-out workload).
    var rate = 10.0
    /// Cursor updates per second per sending member.
    var cursorHz = 0.0
    /// Seconds between chat messages of a sending member (0: none); each is preceded by a typing start.
    var chatEvery = 0.0
    /// Reconnections per second across all members: a socket is dropped and the member resumes
    /// (same client_id and resume_secret, resume_from = the last seq it saw).
    var churn = 0.0
    /// Whether each chat is preceded by a typing start and followed by a stop.
    var typing = true
    /// Extra abusive members (spread over the sessions) that flood chat at `abuseRate` messages/s each.
    var abusive = 0
    var abuseRate = 200.0
    var size = 100
    var duration = 10.0
    /// Messages to send in all (0: send at `rate` for `duration`). A counted run sends them one at a time,
    /// each once every recipient has it (and its ack), so the hub does the same work whatever the timing.
    var messages = 0
    var warmup = 2.0
    /// Seconds over which members connect (0: as fast as possible).
    var ramp = 0.0
    /// collabhub, rooms (the plain Node rooms peer: app events only; a join is answered), or raw (a rooms
    /// server that publishes every message to the room's other members and answers nothing, such as the
    /// uWebSockets peer: a member counts as joined once its WebSocket is open, and sends no join).
    var peer = "collabhub"

    enum CodingKeys: String, CodingKey {
        case name, description, sessions, members, viewers, rate, cursorHz = "cursor_hz", chatEvery = "chat_every",
            churn, typing,
            abusive, abuseRate = "abuse_rate",
            size, duration, messages, warmup, ramp, peer
    }
}

extension ScenarioConfig {
    init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? name
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? description
        sessions = try c.decodeIfPresent(Int.self, forKey: .sessions) ?? sessions
        members = try c.decodeIfPresent(Int.self, forKey: .members) ?? members
        viewers = try c.decodeIfPresent(Double.self, forKey: .viewers) ?? viewers
        rate = try c.decodeIfPresent(Double.self, forKey: .rate) ?? rate
        cursorHz = try c.decodeIfPresent(Double.self, forKey: .cursorHz) ?? cursorHz
        chatEvery = try c.decodeIfPresent(Double.self, forKey: .chatEvery) ?? chatEvery
        churn = try c.decodeIfPresent(Double.self, forKey: .churn) ?? churn
        typing = try c.decodeIfPresent(Bool.self, forKey: .typing) ?? typing
        abusive = try c.decodeIfPresent(Int.self, forKey: .abusive) ?? abusive
        abuseRate = try c.decodeIfPresent(Double.self, forKey: .abuseRate) ?? abuseRate
        size = try c.decodeIfPresent(Int.self, forKey: .size) ?? size
        duration = try c.decodeIfPresent(Double.self, forKey: .duration) ?? duration
        messages = try c.decodeIfPresent(Int.self, forKey: .messages) ?? messages
        warmup = try c.decodeIfPresent(Double.self, forKey: .warmup) ?? warmup
        ramp = try c.decodeIfPresent(Double.self, forKey: .ramp) ?? ramp
        peer = try c.decodeIfPresent(String.self, forKey: .peer) ?? peer
    }
}

/// Command-line overrides shared by `rooms` and `run`.
struct ScenarioOverrides: ParsableArguments {
    @Option(help: "Hub base URL (ws://host:port).") var url = "ws://127.0.0.1:8080"
    @Option(
        help: ArgumentHelp(
            "More hub nodes of one cluster (comma-separated ws://host:port): member k of every session connects "
                + "to node k mod N (sessions are made on --url)."))
    var spread: String?
    @Option(help: "Sessions.") var sessions: Int?
    @Option(help: "Members per session.") var members: Int?
    @Option(help: "Fraction of members that only listen.") var viewers: Double?
    @Option(help: "App events per second per sending member.") var rate: Double?
    @Option(help: "Cursor updates per second per sending member.") var cursorHz: Double?
    @Option(help: "Seconds between chats of a sending member (0: none).") var chatEvery: Double?
    @Option(help: "Reconnections (with resume) per second across all members.") var churn: Double?
    @Option(help: "Extra abusive members flooding chat.") var abusive: Int?
    @Option(help: "Chat messages per second each abusive member sends.") var abuseRate: Double?
    @Option(help: "Payload bytes per message.") var size: Int?
    @Option(help: "Seconds measured.") var duration: Double?
    @Option(
        help: ArgumentHelp(
            "Messages in all, sent one at a time (each once the previous has reached every recipient and been "
                + "acknowledged), instead of --rate/--chat-every for --duration: a fixed amount of work."))
    var messages: Int?
    @Flag(help: "Chats without the typing start and stop around them.") var noTyping = false
    @Option(help: "Warm-up seconds (not measured).") var warmup: Double?
    @Option(help: "Seconds over which members connect.") var ramp: Double?
    @Option(help: "collabhub, rooms (the Node rooms peer), or raw (a publish-everything rooms server).")
    var peer: String?
    @Option(help: "Server pid, for its CPU and RSS.") var serverPid: Int32?
    @Option(help: "Run `CMD start` before and `CMD end` after the measured window (sh -c; waited for).")
    var windowHook: String?
    @Option(help: "Write the JSON report here.") var json: String?
    @Option(help: "Write an SVG chart (latency over time and its distribution) here.") var svg: String?
    @Flag(help: "No per-second progress line.") var quiet = false

    func apply(to c: inout ScenarioConfig) {
        if let sessions { c.sessions = sessions }
        if let members { c.members = members }
        if let viewers { c.viewers = viewers }
        if let rate { c.rate = rate }
        if let cursorHz { c.cursorHz = cursorHz }
        if let chatEvery { c.chatEvery = chatEvery }
        if let churn { c.churn = churn }
        if let abusive { c.abusive = abusive }
        if let abuseRate { c.abuseRate = abuseRate }
        if let size { c.size = size }
        if let duration { c.duration = duration }
        if let messages { c.messages = messages }
        if noTyping { c.typing = false }
        if let warmup { c.warmup = warmup }
        if let ramp { c.ramp = ramp }
        if let peer { c.peer = peer }
    }
}

/// `loadtest rooms`: a scenario given entirely on the command line.
struct Rooms: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rooms", abstract: "Session fan-out: deliveries/s and latency percentiles.")
    @OptionGroup var options: ScenarioOverrides
    func run() throws {
        var config = ScenarioConfig()
        options.apply(to: &config)
        try ScenarioRunner(config: config, options: options).run()
    }
}

/// `loadtest run FILE`: a scenario file, with command-line overrides.
struct RunScenario: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a scenario file (loadtest/scenarios/*.json).")
    @Argument(help: "Scenario file.") var file: String
    @OptionGroup var options: ScenarioOverrides
    func run() throws {
        var config = try JSONDecoder().decode(ScenarioConfig.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        options.apply(to: &config)
        try ScenarioRunner(config: config, options: options).run()
    }
}

/// One simulated member.
final class Member {
    let session: Int, index: Int
    let code: String
    let sends: Bool
    var abusive = false
    var nextAbuse = 0.0
    var client: WSClient?
    var lastSeq = 0
    var nextEvent = 0.0, nextCursor = 0.0, nextChat = 0.0
    var connectStart = 0.0
    var joined = false
    /// Sent with the client_id on every join: a guest's client_id is the same member only with the same
    /// secret. Chosen here (the hub takes any valid one) rather than read from the first `joined`.
    let resumeSecret = String(
        format: "%016llx%016llx", UInt64.random(in: .min ... .max), UInt64.random(in: .min ... .max))
    init(session: Int, index: Int, code: String, sends: Bool) {
        self.session = session; self.index = index; self.code = code; self.sends = sends
    }
}

final class ScenarioRunner {
    let config: ScenarioConfig
    let options: ScenarioOverrides
    let stats = Stats()
    var members: [Member] = []
    var rng = Xorshift(seed: 0x5EED)
    var closed = 0, joins = 0, reconnects = 0
    var timeline: [(t: Double, rate: Double, p50: Double, p99: Double)] = []

    init(config: ScenarioConfig, options: ScenarioOverrides) { self.config = config; self.options = options }

    func run() throws {
        let c = config
        let base = try WSURL(options.url)
        let nodes = try [base] + (options.spread?.split(separator: ",").map { try WSURL(String($0)) } ?? [])
        let loop = Loop(index: 0)
        var codes: [String] = []
        for i in 0..<c.sessions {
            if c.peer == "collabhub" {
                let (status, body) = try HTTPClient.request(
                    host: base.host, port: base.port, method: "POST", path: "/api/sessions",
                    body:
                        "{\"title\":\"\(c.name) "
                        + "\(i)\",\"max_participants\":\(c.members + (c.abusive + c.sessions - 1) / c.sessions)}",
                    tls: base.tls)
                guard status == 201, let r = body.range(of: "\"code\":\""),
                    let end = body[r.upperBound...].firstIndex(of: "\"")
                else {
                    throw ValidationFailure("creating a session failed: \(status) \(body)")
                }
                codes.append(String(body[r.upperBound..<end]))
            } else {
                codes.append("room\(i)")
            }
        }
        let senders = max(1, Int((Double(c.members) * (1 - c.viewers)).rounded()))
        for (s, code) in codes.enumerated() {
            for m in 0..<c.members { members.append(Member(session: s, index: m, code: code, sends: m < senders)) }
        }
        for a in 0..<c.abusive {
            let s = a % codes.count
            let m = Member(session: s, index: c.members + a / codes.count, code: codes[s], sends: false)
            m.abusive = true
            members.append(m)
        }
        // Connect (optionally ramped), each member joining as soon as its socket opens.
        let t0 = monotonicNow()
        for (i, m) in members.enumerated() {
            if c.ramp > 0 {
                let due = t0 + c.ramp * Double(i) / Double(members.count)
                if monotonicNow() < due { runLoop(loop, timeout: due - monotonicNow()) { false } }
            }
            try connect(m, number: i, base: nodes[m.index % nodes.count], loop: loop, resume: false)
            if i % 200 == 199 { loop.runOnce() }
        }
        runLoop(loop, timeout: 60) { self.joins + self.closed >= self.members.count }
        guard joins >= members.count else {
            throw ValidationFailure("only \(joins) of \(members.count) members joined (\(closed) closed)")
        }

        let padding = String(repeating: "x", count: max(0, c.size - 60))
        if c.messages > 0 { return try runCounted(loop: loop, padding: padding) }
        let start = monotonicNow()
        var counter = 0
        var churnDue = 0.0
        let sendTimer = Loop.Timer(loop: loop, after: 0.001, repeat: 0.001) { [self] in
            let t = monotonicNow() - start
            for m in members where m.abusive && m.joined {
                guard let client = m.client, client.state == .open else { continue }
                while m.nextAbuse <= t {
                    m.nextAbuse += 1 / c.abuseRate
                    counter += 1
                    client.sendText("{\"type\":\"chat\",\"id\":\"a\(counter)\",\"text\":\"flood\"}")
                    stats.abuseSent += 1
                }
            }
            for m in members where m.sends && m.joined {
                guard let client = m.client, client.state == .open else { continue }
                if c.rate > 0 {
                    while m.nextEvent <= t {
                        m.nextEvent += 1 / c.rate
                        let t = Int(monotonicNow() * 1e6)
                        client.sendText(
                            "{\"type\":\"event\",\"name\":\"load\",\"data\":{\"t\":\(t),\"p\":\"\(padding)\"}}")
                        stats.sent += 1
                    }
                }
                if c.cursorHz > 0 {
                    while m.nextCursor <= t {
                        m.nextCursor += 1 / c.cursorHz
                        let (x, y, t) = (Int.random(in: 0..<1920), Int.random(in: 0..<1080), Int(monotonicNow() * 1e6))
                        client.sendText("{\"type\":\"cursor\",\"x\":\(x),\"y\":\(y),\"el\":\"t=\(t)\"}")
                        stats.sent += 1
                    }
                }
                if c.chatEvery > 0 {
                    while m.nextChat <= t {
                        m.nextChat += c.chatEvery
                        counter += 1
                        if c.typing { client.sendText("{\"type\":\"typing\",\"state\":\"start\"}") }
                        let (id, t) = ("\(m.session)-\(m.index)-\(counter)", Int(monotonicNow() * 1e6))
                        client.sendText("{\"type\":\"chat\",\"id\":\"\(id)\",\"text\":\"t=\(t);\(padding)\"}")
                        if c.typing { client.sendText("{\"type\":\"typing\",\"state\":\"stop\"}") }
                        stats.sent += c.typing ? 3 : 1
                    }
                }
            }
            if c.churn > 0 {
                churnDue += c.churn * 0.001
                while churnDue >= 1 {
                    churnDue -= 1
                    let m = members[Int(rng.next() % UInt64(members.count))]
                    if let client = m.client, client.state == .open {
                        m.joined = false
                        client.onClose = nil
                        client.close()
                        reconnects += 1
                        try? connect(
                            m, number: Int(rng.next() % 1000), base: nodes[m.index % nodes.count], loop: loop,
                            resume: true)
                    }
                }
            }
        }
        // Spread the members' phases: independent clients do not send in step. Abusers start flooding
        // at a random moment of the first second: they join within a few milliseconds of each other,
        // so starting together would drain their token buckets together, and the hub's rate limiter
        // would then admit one chat from every abuser in the same millisecond, five times a second
        // (a batch of ~1,100 deliveries, ~8 ms of socket writes on this machine).
        for m in members {
            let phase = Double(rng.next() % 1000) / 1000
            m.nextAbuse = Double(rng.next() % 1000) / 1000
            m.nextEvent = c.rate > 0 ? phase / c.rate : 0
            m.nextCursor = c.cursorHz > 0 ? phase / c.cursorHz : 0
            m.nextChat = phase * c.chatEvery
        }
        var lastReport = monotonicNow(), lastCount = 0
        let progress = Loop.Timer(loop: loop, after: 1, repeat: 1) { [self] in
            let now = monotonicNow()
            let rate = Double(stats.deliveries - lastCount) / (now - lastReport)
            let p50 = Double(stats.window.valueAtPercentile(50)) / 1000,
                p99 = Double(stats.window.valueAtPercentile(99)) / 1000
            timeline.append((now - start, rate, p50, p99))
            if !options.quiet {
                FileHandle.standardError.write(
                    Data(
                        String(
                            format:
                                "[%4.0fs] %9.0f deliveries/s  p50 %7.2f ms  p99 %7.2f ms  reconnects %d  closed %d\n",
                            now - start, rate, p50, p99, reconnects, closed
                        ).utf8))
            }
            stats.window.reset()
            lastReport = now; lastCount = stats.deliveries
        }
        runLoop(loop, timeout: c.warmup) { false }
        WindowHook.run(options.windowHook, "start")
        stats.reset()
        let cpu0 = cpuSeconds(), scpu0 = options.serverPid.map { cpuSeconds(pid: $0) } ?? 0
        let m0 = monotonicNow()
        runLoop(loop, timeout: c.duration) { false }
        let elapsed = monotonicNow() - m0
        WindowHook.run(options.windowHook, "end")
        sendTimer.cancel(); progress.cancel()
        let clientCPU = (cpuSeconds() - cpu0) / elapsed * 100
        let serverCPU = options.serverPid.map { (cpuSeconds(pid: $0) - scpu0) / elapsed * 100 }
        let report = Report(
            config: c, seconds: elapsed, stats: stats, clientCPU: clientCPU, serverCPU: serverCPU,
            serverRSSKiB: options.serverPid.map { rssKiB(pid: $0) }, closed: closed, reconnects: reconnects)
        print(report.text)
        if clientCPU > 80 {
            FileHandle.standardError.write(
                Data("warning: load generator used \(Int(clientCPU))% of a core; it may be the bottleneck\n".utf8))
        }
        if let path = options.json { try report.json.write(toFile: path, atomically: true, encoding: .utf8) }
        if let path = options.svg {
            try Chart.svg(
                title: "\(c.name): \(c.sessions) x \(c.members)", timeline: timeline, histogram: stats.latency
            )
            .write(toFile: path, atomically: true, encoding: .utf8)
        }
        for m in members { m.client?.onClose = nil; m.client?.close() }
    }

    /// Called after every message a member receives (a counted run's next step).
    private var onReceived: (() -> Void)?

    /// A counted run (`messages` > 0): the sending members take turns, one session after another, and
    /// each message goes out once the one before it has reached every recipient (an event: the others;
    /// a chat: everyone) and, for a chat, its author has the ack. One message at a time means the hub
    /// reads, commits and writes each on its own, so its work does not depend on timing (the callgrind
    /// budget, `loadtest/callgrind_budget.py`, counts instructions per message this way).
    private func runCounted(loop: Loop, padding: String) throws {
        let c = config
        guard c.cursorHz == 0, c.churn == 0, c.abusive == 0, c.rate > 0 || c.chatEvery > 0 else {
            throw ValidationFailure("--messages needs --rate or --chat-every, and no cursors, churn or abusive members")
        }
        let chat = c.chatEvery > 0
        let senders = members.filter(\.sends).sorted { ($0.index, $0.session) < ($1.index, $1.session) }
        let perMessage = chat ? c.members : c.members - 1
        stats.reset()
        var sent = 0, done = false, failure: String?
        let step = { [self] in
            guard !done else { return }
            if stats.errors > 0 || closed > 0 {
                failure = "the hub refused a message (errors \(stats.errors), closed \(closed))"
                done = true
                return
            }
            guard stats.deliveries >= sent * perMessage, !chat || stats.acks >= sent else { return }
            guard sent < c.messages else { done = true; return }
            let m = senders[sent % senders.count]
            sent += 1
            guard let client = m.client, client.state == .open else {
                failure = "member \(m.session)-\(m.index) is not connected"
                done = true
                return
            }
            let t = Int(monotonicNow() * 1e6)
            if chat {
                if c.typing { client.sendText("{\"type\":\"typing\",\"state\":\"start\"}") }
                client.sendText(
                    "{\"type\":\"chat\",\"id\":\"\(m.session)-\(m.index)-\(sent)\",\"text\":\"t=\(t);\(padding)\"}")
                if c.typing { client.sendText("{\"type\":\"typing\",\"state\":\"stop\"}") }
                stats.sent += c.typing ? 3 : 1
            } else {
                client.sendText("{\"type\":\"event\",\"name\":\"load\",\"data\":{\"t\":\(t),\"p\":\"\(padding)\"}}")
                stats.sent += 1
            }
        }
        onReceived = step
        let cpu0 = cpuSeconds(), m0 = monotonicNow()
        step()
        runLoop(loop, timeout: 3600) { done }
        onReceived = nil
        let elapsed = monotonicNow() - m0
        if let failure { throw ValidationFailure("counted run stopped after \(sent) messages: \(failure)") }
        guard done else { throw ValidationFailure("counted run: \(sent) of \(c.messages) messages sent in an hour") }
        let report = Report(
            config: c, seconds: elapsed, stats: stats, clientCPU: (cpuSeconds() - cpu0) / elapsed * 100,
            serverCPU: nil, serverRSSKiB: nil, closed: closed, reconnects: reconnects)
        print(report.text)
        print("counted: \(sent) messages, \(stats.deliveries) deliveries, \(stats.acks) acks")
        if let path = options.json { try report.json.write(toFile: path, atomically: true, encoding: .utf8) }
        try closeAll(loop: loop)
    }

    /// Closes every member with a close handshake and waits for the hub's answers, so the hub has handled
    /// every leave before this process exits (a fixed amount of work, whatever the timing).
    private func closeAll(loop: Loop) throws {
        var open = 0
        for m in members {
            guard let client = m.client, client.state == .open else { continue }
            open += 1
            client.onClose = { _, _ in open -= 1 }
            client.closeHandshake()
        }
        runLoop(loop, timeout: 600) { open == 0 }
        guard open == 0 else { throw ValidationFailure("\(open) members got no close answer") }
    }

    private func connect(_ m: Member, number: Int, base: WSURL, loop: Loop, resume: Bool) throws {
        let target = try WSURL("\(base.tls ? "wss" : "ws")://\(base.host):\(base.port)/ws?session=\(m.code)")
        m.connectStart = monotonicNow()
        let fd = try connectTCP(host: target.host, port: target.port, source: sourceAddress(for: number))
        let client = WSClient(loop: loop, fd: fd, peer: target.host)
        if target.tls { client.enableTLS(try clientTLS(), serverName: target.host) }
        m.client = client
        client.onOpen = { [self] c in
            stats.connectTime.record(UInt64((monotonicNow() - m.connectStart) * 1e6))
            if config.peer == "raw" {  // no join to send or answer: open is joined
                if !m.joined { m.joined = true; joins += 1 }
                stats.joinTime.record(UInt64((monotonicNow() - m.connectStart) * 1e6))
                return
            }
            let resumeField = resume && m.lastSeq > 0 ? ",\"resume_from\":\(m.lastSeq)" : ""
            let who = "\(m.session)-\(m.index)"
            c.sendText(
                "{\"type\":\"join\",\"name\":\"u\(who)\",\"client_id\":\"c\(who)\","
                    + "\"resume_secret\":\"\(m.resumeSecret)\"\(resumeField)}")
        }
        client.onMessage = { [self] _, _, payload in
            if stats.received(payload, member: m) {
                if !m.joined {
                    m.joined = true
                    joins += 1
                    stats.joinTime.record(UInt64((monotonicNow() - m.connectStart) * 1e6))
                }
            }
            onReceived?()
        }
        client.onClose = { [self] _, code in
            closed += 1; stats.closeCodes[Int(code ?? 1006), default: 0] += 1
        }
        client.start()
        client.handshake(
            host: target.host, path: target.path, subprotocol: config.peer == "collabhub" ? "collabhub.v1" : nil)
    }
}
