import Foundation
import Logging

/// `--log-format`: `text` for people (`2026-11-30T12:00:00.123Z warning collabhub.store: ... key=value`),
/// `json` for log shippers (one object per line: `ts`, `level`, `logger`, `msg`, then the metadata).
public enum LogFormat: String, Sendable { case text, json }

/// The hub's log handler: one line per notable event on standard error, written with one `write(2)`
/// so that lines from several threads never interleave. Never called per message (`LogSummary`
/// aggregates what can come in floods).
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String
    let format: LogFormat
    let write: @Sendable (String) -> Void

    public init(
        label: String, format: LogFormat, level: Logger.Level,
        write: @escaping @Sendable (String) -> Void = LineLogHandler.standardError
    ) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        if let error = event.error { all["error"] = .string("\(error)") }
        write(Self.line(format, Self.timestamp(), event.level, label, "\(event.message)", all))
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buf in
            var off = 0
            while off < buf.count {
                let n = Foundation.write(2, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { break }
                off += n
            }
        }
    }

    /// One line, newline included; metadata keys sorted so lines are stable.
    static func line(
        _ format: LogFormat, _ ts: String, _ level: Logger.Level, _ label: String, _ message: String,
        _ metadata: Logger.Metadata
    ) -> String {
        let keys = metadata.keys.sorted()
        switch format {
        case .text:
            var out = "\(ts) \(level) \(label): \(message)"
            for k in keys { out += " \(k)=\(text(metadata[k]!))" }
            return out + "\n"
        case .json:
            var out = "{\"ts\":\"\(ts)\",\"level\":\"\(level)\",\"logger\":\(jsonString(label)),\"msg\":"
            out += jsonString(message)
            for k in keys where !["ts", "level", "logger", "msg"].contains(k) {
                out += ",\(jsonString(k)):\(json(metadata[k]!))"
            }
            return out + "}\n"
        }
    }

    static func text(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s):
            return s.isEmpty || s.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline })
                ? jsonString(s) : s
        case .stringConvertible(let c): return text(.string(c.description))
        case .array(let a): return "[" + a.map(text).joined(separator: ",") + "]"
        case .dictionary(let d):
            return "{" + d.keys.sorted().map { "\($0)=\(text(d[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    static func json(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s): return jsonString(s)
        case .stringConvertible(let c):
            if let i = c as? Int { return String(i) }
            if let d = c as? Double, d.isFinite { return String(d) }
            if let b = c as? Bool { return b ? "true" : "false" }
            return jsonString(c.description)
        case .array(let a): return "[" + a.map(json).joined(separator: ",") + "]"
        case .dictionary(let d):
            return "{" + d.keys.sorted().map { "\(jsonString($0)):\(json(d[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    /// RFC 3339 UTC with milliseconds, from `clock_gettime` (no formatter: this runs on any thread).
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let ms = Int(ts.tv_nsec / 1_000_000)
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):"
            + "\(two(tm.tm_sec)).\(msText)Z"
    }
}

public enum Log {
    /// Installs the hub's handler for every `Logger` of the process (once, at start-up).
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: format, level: level) }
    }
}

/// Counts events that can come in floods (auth refusals, slow consumers cut, storage faults) and
/// writes one line per kind and interval with the counts, instead of a line per event. Thread-safe;
/// `flush` runs from the server's housekeeping tick.
public final class LogSummary: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: [String: Int]] = [:]
    private var lastFlush: Double
    let interval: Double
    let logger: Logger
    /// Distinct keys kept per kind between flushes (the rest are counted under "other").
    static let maxKeys = 100

    public init(interval: Double = 60, logger: Logger = Logger(label: "collabhub"), now: Double = 0) {
        self.interval = interval
        self.logger = logger
        lastFlush = now
    }

    public func count(_ kind: String, _ key: String, _ n: Int = 1) {
        lock.lock()
        defer { lock.unlock() }
        var byKey = counts[kind, default: [:]]
        let k = byKey[key] != nil || byKey.count < Self.maxKeys ? key : "other"
        byKey[k, default: 0] += n
        counts[kind] = byKey
    }

    /// Writes the lines for the interval if it is over (or `force`), and starts a new one.
    public func flush(now: Double, force: Bool = false) {
        lock.lock()
        guard force || now - lastFlush >= interval, !counts.isEmpty else {
            if now - lastFlush >= interval { lastFlush = now }
            lock.unlock()
            return
        }
        let taken = counts
        let seconds = Int((now - lastFlush).rounded())
        counts = [:]
        lastFlush = now
        lock.unlock()
        for kind in taken.keys.sorted() {
            let byKey = taken[kind]!
            var metadata: Logger.Metadata = [
                "total": .stringConvertible(byKey.values.reduce(0, +)), "seconds": .stringConvertible(seconds),
            ]
            metadata["by"] = .dictionary(byKey.mapValues { .stringConvertible($0) })
            logger.warning("\(kind)", metadata: metadata)
        }
    }
}
