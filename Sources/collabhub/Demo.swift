import ArgumentParser
import Bytes
import Foundation
import Hub
import Logging
import Server
import Store
import WebSocket

/// `collabhub demo`: a hub on loopback with something to look at. A session with the history of three
/// people (text, code, a file, an edit), a run that a built-in publisher advances step by step (and starts
/// again when it ends), and a share link of the session's playback; it prints the URLs of the room, the
/// dashboard, the replay and the console. Open mode, on loopback only, in a data folder of its own.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a hub with a seeded session, a live run and a share link, and print their URLs.")
    @Option(help: "TCP port (0 picks a free one).") var port = 8080
    @Option(help: "Data folder (default: a new temporary one).") var data: String?

    func run() throws {
        Log.bootstrap(format: .text, level: .warning)
        var c = Config()
        c.host = "127.0.0.1"
        c.port = port
        c.threads = 1
        c.authMode = .open
        c.dataDirectory = data ?? NSTemporaryDirectory() + "collabhub-demo-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: c.dataDirectory, withIntermediateDirectories: true)
        c.sessionPolicy.cursorSampleInterval = 0.2
        // A signing key of its own, for the share link (tokens stay optional: open mode admits guests).
        var sources = TokenKeySources()
        sources.secrets["default"] = Crypto.randomBytes(32)
        c.tokenKeySources = sources
        c.sessionPolicy.tokens = TokenVerifier(keyring: TokenKeyring(try sources.load()))
        let server: Server
        do {
            server = try Server(config: c) { config in
                try SQLiteStore(directory: config.dataDirectory, durability: config.durability)
            }
        } catch {
            FileHandle.standardError.write(Data("collabhub demo: \(error)\n".utf8))
            throw ExitCode(1)
        }
        server.handleSignals()
        print("collabhub listening on 127.0.0.1:\(server.port) (demo; data in \(c.dataDirectory))")
        fflush(stdout)
        let seeder = DemoSeeder(port: server.port)
        Thread.detachNewThread {
            do {
                let urls = try seeder.seed()
                print(urls)
                fflush(stdout)
                seeder.publishForever()
            } catch {
                FileHandle.standardError.write(Data("collabhub demo: seeding failed: \(error)\n".utf8))
            }
        }
        server.run()
    }
}

/// Seeds the demo through the hub's own API and protocol, as any client would.
struct DemoSeeder {
    let port: Int
    struct Failure: Error, CustomStringConvertible { let description: String }

    func seed() throws -> String {
        let session = try json(request("POST", "/api/sessions", #"{"title": "Launch review (demo)"}"#))
        guard let code = session["code"]?.string else { throw Failure(description: "no session was created") }
        let people: [(String, [String])] = [
            (
                "Ann",
                [
                    #"{"type":"chat","id":"a1","kind":"text","text":"Morning! The release candidate is up."}"#,
                    #"{"type":"chat","id":"a2","kind":"code","code":{"language":"swift","#
                        + #""source":"let ok = checks.allSatisfy(\\.passed)"}}"#,
                ]
            ),
            (
                "Bob",
                [
                    #"{"type":"chat","id":"b1","kind":"text","text":"Running the load test against it now."}"#,
                    #"{"type":"chat","id":"b2","kind":"file","file":{"name":"results.csv","#
                        + #""url":"https://example.com/results.csv","size":2048,"type":"text/csv"}}"#,
                ]
            ),
            (
                "Cara",
                [
                    #"{"type":"chat","id":"c1","kind":"text","#
                        + #""text":"The dashboard shows the deploy run moving: see the link."}"#,
                    #"{"type":"cursor","x":0.4,"y":0.3}"#,
                ]
            ),
        ]
        for (name, messages) in people {
            let ws = try DemoSocket(port: port, path: "/ws?session=\(code)")
            ws.send(#"{"type":"join","name":"\#(name)","client_id":"demo-\#(name.lowercased())"}"#)
            for m in messages {
                Thread.sleep(forTimeInterval: 0.3)
                ws.send(m)
            }
            Thread.sleep(forTimeInterval: 0.4)
            ws.close()
        }
        try publish(["type": "started", "owner": "demo", "name": "Deploy 42"], run: runId)
        let share = try json(request("POST", "/api/sessions/\(code)/share", #"{"ttl_s": 604800}"#))
        let base = "http://127.0.0.1:\(port)"
        return """
            room:      \(base)/?code=\(code)&name=You
            dashboard: \(base)/dashboard?owner=demo
            replay:    \(base)\(share["url"]?.string ?? "/replay/\(code)")
            console:   \(base)/admin
            """
    }

    private var runId: String { "demo-deploy-\(port)" }

    /// Advances the demo run a step every 2 s, and starts it again (a new run id) when it ends.
    func publishForever() {
        let steps = ["checkout", "build", "test", "package", "deploy"]
        var round = 0, id = runId
        while true {
            for (i, step) in steps.enumerated() {
                _ = try? publish(["type": "step_started", "step": step], run: id)
                Thread.sleep(forTimeInterval: 1)
                _ = try? publish(["type": "log", "line": "\(step): ok"], run: id)
                _ = try? publish(["type": "progress", "percent": (i + 1) * 100 / steps.count], run: id)
                _ = try? publish(["type": "step_completed", "step": step], run: id)
                Thread.sleep(forTimeInterval: 1)
            }
            _ = try? publish(["type": "completed", "outcome": "succeeded"], run: id)
            round += 1
            id = "\(runId)-\(round)"
            _ = try? publish(["type": "started", "owner": "demo", "name": "Deploy \(42 + round)"], run: id)
        }
    }

    private func publish(_ event: [String: Any], run: String) throws {
        var w = JSONWriter()
        w.beginObject()
        for (k, v) in event.sorted(by: { $0.key < $1.key }) {
            if let s = v as? String { w.field(k, s) } else if let n = v as? Int { w.field(k, n) }
        }
        w.endObject()
        let (status, body) = try request("POST", "/api/runs/\(run)/events", String(decoding: w.bytes, as: UTF8.self))
        guard status == 202 else { throw Failure(description: "publishing to \(run): \(status) \(body)") }
    }

    private func json(_ answer: (Int, String)) throws -> JSONObject {
        guard (200..<300).contains(answer.0), let o = try? JSONReader.readObject(Array(answer.1.utf8)) else {
            throw Failure(description: "the hub answered \(answer.0): \(answer.1.prefix(200))")
        }
        return o
    }

    /// One blocking HTTP/1.1 request to the hub (Connection: close).
    func request(_ method: String, _ path: String, _ body: String) throws -> (Int, String) {
        let fd = try DemoSocket.connect(port: port)
        defer { Glibc.close(fd) }
        let req = Array(
            ("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)").utf8)
        _ = req.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            data += buf[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        let answer = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, answer)
    }
}

/// A blocking WebSocket client of the demo: it sends masked text frames and drains what comes back.
final class DemoSocket {
    let fd: Int32

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard fd >= 0, ok == 0 else {
            if fd >= 0 { Glibc.close(fd) }
            throw DemoSeeder.Failure(description: "cannot connect to 127.0.0.1:\(port)")
        }
        return fd
    }

    init(port: Int, path: String) throws {
        fd = try Self.connect(port: port)
        let key = Base64.encode(Crypto.randomBytes(16))
        let head = Array(
            ("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
                + "Sec-WebSocket-Protocol: collabhub.v1\r\n\r\n")
                .utf8)
        _ = head.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buf, buf.count, 0)
        guard n > 12, String(decoding: buf[0..<n], as: UTF8.self).hasPrefix("HTTP/1.1 101") else {
            Glibc.close(fd)
            throw DemoSeeder.Failure(description: "the hub refused the demo's WebSocket")
        }
    }

    func send(_ text: String) {
        let mask = UInt32.random(in: 1...UInt32.max)
        let frame = FrameEncoder.frame(.text, Array(text.utf8), maskKey: mask)
        _ = frame.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        drain()
    }

    /// Reads whatever the hub sent so far (the demo does not need it), without waiting.
    private func drain() {
        var buf = [UInt8](repeating: 0, count: 65536)
        while recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT)) > 0 {}
    }

    func close() {
        let payload = FrameEncoder.closePayload(.normal, reason: "demo done")
        let frame = FrameEncoder.frame(.close, payload, maskKey: UInt32.random(in: 1...UInt32.max))
        _ = frame.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        Thread.sleep(forTimeInterval: 0.1)
        Glibc.close(fd)
    }
}
