import EventLoop
import Foundation
import Logging
@testable import Server
import XCTest

/// The operator's kit without a server: configuration layers, log lines and their summaries, the
/// histograms behind `/metrics`, and the route labels.
final class OperatorTests: XCTestCase {
    func file(_ json: String) throws -> String {
        let path = NSTemporaryDirectory() + "collabhub-config-\(UUID().uuidString).json"
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testFlagsWinOverTheEnvironmentWhichWinsOverTheFileWhichWinsOverDefaults() throws {
        let path = try file(#"{"port": 7000, "host": "::1", "threads": 3, "echo": true}"#)
        let L = try ConfigLayers(filePath: path, environment: ["COLLABHUB_PORT": "7100", "COLLABHUB_HOST": "0.0.0.0"])
        XCTAssertEqual(try L.value("port", flag: 7200, default: 8080), 7200)
        XCTAssertEqual(try L.value("host", flag: nil as String?, default: "127.0.0.1"), "0.0.0.0")
        XCTAssertEqual(try L.value("threads", flag: nil as Int?, default: 1), 3)
        XCTAssertEqual(try L.value("echo", flag: nil as Bool?, default: false), true)
        XCTAssertEqual(try L.value("code-length", flag: nil as Int?, default: 8), 8)
        XCTAssertNil(try L.optional("tls-cert", flag: nil as String?))
        let origins = Dictionary(uniqueKeysWithValues: L.entries.map { ($0.key, $0.origin) })
        XCTAssertEqual(origins["port"], .flag)
        XCTAssertEqual(origins["host"], .environment)
        XCTAssertEqual(origins["threads"], .file)
        XCTAssertEqual(origins["code-length"], .default)
        XCTAssertNoThrow(try L.checkUnknownKeys())
        let text = L.render()
        XCTAssertTrue(text.contains("port"))
        XCTAssertTrue(text.contains("# COLLABHUB_HOST"), text)
    }

    func testBadValuesAreNamedAsTheOperatorGaveThem() throws {
        let env = try ConfigLayers(filePath: nil, environment: ["COLLABHUB_MAX_MESSAGE_SIZE": "big"])
        XCTAssertThrowsError(try env.value("max-message-size", flag: nil as Int?, default: 1)) {
            XCTAssertEqual("\($0)", "COLLABHUB_MAX_MESSAGE_SIZE must be an integer (got \"big\")")
        }
        let path = try file(#"{"port": "7000", "echo": 1, "ping-interval": 2.5, "data": 5}"#)
        let f = try ConfigLayers(filePath: path, environment: [:])
        XCTAssertThrowsError(try f.value("port", flag: nil as Int?, default: 1)) {
            XCTAssertEqual("\($0)", "\"port\" in \(path) must be an integer")
        }
        XCTAssertThrowsError(try f.value("echo", flag: nil as Bool?, default: false)) {
            XCTAssertTrue("\($0)".contains("must be true or false"))
        }
        XCTAssertEqual(try f.value("ping-interval", flag: nil as Double?, default: 30), 2.5)
        XCTAssertThrowsError(try f.value("data", flag: nil as String?, default: "x"))
        // A misspelt key is refused, with the likely intended one.
        let typo = try ConfigLayers(filePath: try file(#"{"max-mesage-size": 5}"#), environment: [:])
        _ = try typo.value("max-message-size", flag: nil as Int?, default: 1)
        XCTAssertThrowsError(try typo.checkUnknownKeys()) {
            XCTAssertTrue("\($0)".contains("did you mean \"max-message-size\""), "\($0)")
        }
        XCTAssertThrowsError(try ConfigLayers(filePath: try file("{\"port\": 1"), environment: [:])) {
            XCTAssertTrue("\($0)".contains("not valid JSON"), "\($0)")
        }
        XCTAssertThrowsError(try ConfigLayers(filePath: try file("[1]"), environment: [:]))
        XCTAssertThrowsError(try ConfigLayers(filePath: "/nonexistent/hub.json", environment: [:]))
    }

    func testSecretsAreMaskedAndOldVariableNamesStillRead() throws {
        let L = try ConfigLayers(
            filePath: nil, environment: ["COLLABHUB_PUBLISH_KEY": "s3cret-s3cret-s3cret", "COLLABHUB_NOPE": "1"],
            aliases: ["COLLABHUB_ADMIN_KEY": "COLLABHUB_PUBLISH_KEY"])
        XCTAssertEqual(try L.optional("admin-key", flag: nil as String?, secret: true), "s3cret-s3cret-s3cret")
        XCTAssertEqual(try L.value("jwt-secret", flag: nil as [String]?, default: [], secret: true), [])
        XCTAssertEqual(L.name("admin-key"), "COLLABHUB_PUBLISH_KEY")
        let text = L.render()
        XCTAssertFalse(text.contains("s3cret"), text)
        XCTAssertTrue(text.contains("admin-key"))
        XCTAssertEqual(L.unknownVariables, ["COLLABHUB_NOPE"])
        if case .string(let v)? = L.summary["admin-key"] { XCTAssertEqual(v, "********") } else { XCTFail() }
    }

    func testListsFromTheEnvironmentAndTheFile() throws {
        let path = try file(#"{"trusted-proxies": ["10.0.0.1", "10.0.0.2"], "allowed-origins": "https://a, https://b"}"#)
        let L = try ConfigLayers(filePath: path, environment: ["COLLABHUB_JWT_PUBLIC_KEY": "a=x.pem, b=y.pem"])
        XCTAssertEqual(try L.value("trusted-proxies", flag: nil as [String]?, default: []), ["10.0.0.1", "10.0.0.2"])
        XCTAssertEqual(try L.optional("allowed-origins", flag: nil as [String]?), ["https://a", "https://b"])
        XCTAssertEqual(try L.value("jwt-public-key", flag: nil as [String]?, default: []), ["a=x.pem", "b=y.pem"])
    }

    func testLogLinesAreTextOrOneJSONObject() throws {
        let meta: Logger.Metadata = [
            "port": .stringConvertible(8080), "msg": "shadowed", "who": "a b",
            "config": .dictionary(["x": .stringConvertible(true)]),
        ]
        let json = LineLogHandler.line(.json, "2026-11-30T00:00:00.000Z", .warning, "collabhub", "said \"hi\"", meta)
        XCTAssertTrue(json.hasSuffix("}\n"))
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        XCTAssertEqual(object["msg"] as? String, "said \"hi\"")
        XCTAssertEqual(object["level"] as? String, "warning")
        XCTAssertEqual(object["port"] as? Int, 8080)
        XCTAssertEqual((object["config"] as? [String: Any])?["x"] as? Bool, true)
        let text = LineLogHandler.line(.text, "T", .info, "collabhub", "started", meta)
        XCTAssertEqual(text, "T info collabhub: started config={x=true} msg=shadowed port=8080 who=\"a b\"\n")
        XCTAssertEqual(LineLogHandler.timestamp().count, 24)
    }

    func testFloodsBecomeOneLinePerKindAndInterval() {
        final class Lines: @unchecked Sendable {
            var all: [String] = []
        }
        let lines = Lines()
        let logger = Logger(label: "t") { LineLogHandler(label: $0, format: .json, level: .info) { lines.all.append($0) } }
        let summary = LogSummary(interval: 60, logger: logger, now: 0)
        for i in 0..<1000 { summary.count("auth refusals", i % 2 == 0 ? "unauthorized" : "forbidden") }
        for i in 0..<500 { summary.count("slow consumers cut (4000)", "k\(i)") }
        summary.flush(now: 30)
        XCTAssertEqual(lines.all.count, 0, "nothing before the interval is over")
        summary.flush(now: 61)
        XCTAssertEqual(lines.all.count, 2)
        let auth = try! JSONSerialization.jsonObject(with: Data(lines.all[0].utf8)) as! [String: Any]
        XCTAssertEqual(auth["msg"] as? String, "auth refusals")
        XCTAssertEqual(auth["total"] as? Int, 1000)
        XCTAssertEqual((auth["by"] as? [String: Any])?["forbidden"] as? Int, 500)
        let slow = try! JSONSerialization.jsonObject(with: Data(lines.all[1].utf8)) as! [String: Any]
        XCTAssertEqual(slow["total"] as? Int, 500)
        XCTAssertEqual((slow["by"] as? [String: Any])?.count, LogSummary.maxKeys + 1, "keys are bounded")
        summary.flush(now: 200)
        XCTAssertEqual(lines.all.count, 2, "a quiet interval writes nothing")
    }

    func testHistogramShardsMergeIntoPrometheusBuckets() {
        let a = BucketHistogram(bounds: [0.001, 0.01, 0.1]), b = BucketHistogram(bounds: [0.001, 0.01, 0.1])
        a.observe(0.0005)
        a.observe(0.001)  // on a bound: counted in that bucket (le)
        b.observe(0.05)
        b.observe(3)
        b.observe(.nan)
        b.observe(.infinity)
        b.observe(-1)
        let (cumulative, sum, count) = BucketHistogram.merge([a, b])
        // NaN and negative durations (a clock step) land in the first bucket and add nothing to the sum.
        XCTAssertEqual(cumulative, [4, 4, 5, 7])
        XCTAssertEqual(count, 7)
        XCTAssertGreaterThan(sum, 3.05)
        let text = BucketHistogram.render("x_seconds", help: "X.", [a, b], labels: "route=\"r\"")
        XCTAssertTrue(text.contains("# TYPE x_seconds histogram\n"))
        XCTAssertTrue(text.contains("x_seconds_bucket{route=\"r\",le=\"0.01\"} 4\n"))
        XCTAssertTrue(text.contains("x_seconds_bucket{route=\"r\",le=\"+Inf\"} 7\n"))
        XCTAssertTrue(text.contains("x_seconds_count{route=\"r\"} 7\n"))
    }

    func testRouteLabelsAreAFixedSet() {
        let paths = [
            "/healthz", "/metrics", "/api/mode", "/", "/admin", "/api/sessions", "/api/sessions/ABC",
            "/api/sessions/ABC/transcript", "/api/sessions/ABC/messages", "/api/sessions/ABC/members/m1",
            "/api/sessions/ABC/end", "/api/sessions/ABC/zzz", "/api/runs", "/api/runs/r/events", "/api/keys/k/usage",
            "/api/webhooks/w/deliveries", "/api/activity", "/api/whatever", "/api/",
        ]
        func label(_ p: String) -> String { Metrics.routes[Metrics.route(p)] }
        XCTAssertEqual(
            paths.map(label),
            [
                "healthz", "metrics", "mode", "static", "static", "sessions", "session", "session_transcript",
                "session_messages", "session_members", "session_end", "other", "runs", "run_events", "keys",
                "webhooks", "activity", "other", "other",
            ])
        XCTAssertEqual(label("/api/sessions/ABC/transcript?after=5&limit=10"), "session_transcript")
        XCTAssertEqual(label("/replay/ABC"), "static")
        XCTAssertEqual(label("/healthz?x=1"), "healthz")
        XCTAssertEqual(label("/api/sessions/%00/end/x/y/z"), "session_end")
        XCTAssertEqual(label("/api/sessions/\u{1F600}/x\u{0301}"), "other")
    }
}
