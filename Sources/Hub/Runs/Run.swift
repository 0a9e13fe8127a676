import WebSocket

/// One execution event from a backend (Protocol/PROTOCOL.md, "Runs"), validated.
public struct RunEvent: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case started, stepStarted = "step_started", stepCompleted = "step_completed", stepFailed = "step_failed"
        case completed, log, progress, paused, resumed
    }
    public var kind: Kind
    /// Idempotency key (the event's `id` or the request's Idempotency-Key).
    public var id: String?
    public var owner: String?
    public var session: String?
    public var name: String?
    public var step: String?
    public var outcome: RunOutcome?
    public var error: String?
    public var line: String?
    public var percent: Double?
    public var message: String?
    /// Who asked for a pause/resume (a session member's name, via run_control), if anyone.
    public var by: String?

    /// Parses one event object; errors name the field.
    public static func parse(_ obj: JSONObject) throws -> RunEvent {
        guard let typeName = obj["type"]?.string else {
            throw MessageError("missing_field", "a run event needs \"type\"", field: "type")
        }
        guard let kind = Kind(rawValue: typeName) else {
            throw MessageError(
                "invalid_field", "\"type\" must be one of \(Kind.allCases.map(\.rawValue).joined(separator: ", "))",
                field: "type")
        }
        func str(_ key: String, max: Int = 256, required: Bool = false) throws -> String? {
            guard let v = obj[key], v.kind != .null else {
                if required { throw MessageError("missing_field", "\(typeName) needs \"\(key)\"", field: key) }
                return nil
            }
            guard let s = v.string, s.fits(max) else {
                throw MessageError(
                    "invalid_field", "\"\(key)\" must be a string of at most \(max) characters", field: key)
            }
            return s
        }
        var e = RunEvent(kind: kind)
        e.id = try str("id", max: 128)
        switch kind {
        case .started:
            e.owner = try str("owner", max: 128, required: true)
            e.name = try str("name")
            if let s = try str("session", max: 32) {
                guard let code = SessionCode.normalize(s) else {
                    throw MessageError("invalid_field", "\"session\" is not a session code", field: "session")
                }
                e.session = code
            }
        case .stepStarted, .stepCompleted:
            e.step = try str("step", max: 128, required: true)
        case .stepFailed:
            e.step = try str("step", max: 128, required: true)
            e.error = try str("error", max: 4096)
        case .completed:
            guard let outcome = RunOutcome(rawValue: try str("outcome", max: 16, required: true)!) else {
                throw MessageError(
                    "invalid_field", "\"outcome\" must be succeeded, failed or cancelled", field: "outcome")
            }
            e.outcome = outcome
        case .log:
            e.line = try str("line", max: 16 * 1024, required: true)
        case .paused, .resumed:
            e.message = try str("message", max: 1024)
            e.by = try str("by", max: 128)
        case .progress:
            guard let p = obj["percent"]?.double, p >= 0, p <= 100 else {
                throw MessageError("invalid_field", "\"percent\" must be a number from 0 to 100", field: "percent")
            }
            e.percent = p
            e.message = try str("message", max: 1024)
        }
        return e
    }

    public init(kind: Kind) { self.kind = kind }

    /// The members stored and broadcast after `"type":"run_event","seq":..,"ts":..`.
    public func body(run: String) -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        w.field("run", run)
        w.field("event", kind.rawValue)
        if let id { w.field("id", id) }
        if let owner { w.field("owner", owner) }
        if let session { w.field("session", session) }
        if let name { w.field("name", name) }
        if let step { w.field("step", step) }
        if let outcome { w.field("outcome", outcome.rawValue) }
        if let error { w.field("error", error) }
        if let line { w.field("line", line) }
        if let percent { w.field("percent", percent) }
        if let message { w.field("message", message) }
        if let by { w.field("by", by) }
        return w.bytes
    }

    /// Rebuilds an event from its stored body (restart).
    public static func fromStored(_ body: [UInt8]) -> RunEvent? {
        guard let obj = try? JSONReader.readObject([UInt8(ascii: "{")] + body + [UInt8(ascii: "}")]),
            let kind = obj["event"]?.string.flatMap(Kind.init(rawValue:))
        else { return nil }
        var e = RunEvent(kind: kind)
        e.id = obj["id"]?.string; e.owner = obj["owner"]?.string; e.session = obj["session"]?.string
        e.name = obj["name"]?.string; e.step = obj["step"]?.string;
        e.outcome = obj["outcome"]?.string.flatMap(RunOutcome.init(rawValue:))
        e.error = obj["error"]?.string; e.line = obj["line"]?.string; e.percent = obj["percent"]?.double
        e.message = obj["message"]?.string; e.by = obj["by"]?.string
        return e
    }
}

/// The state of one run, driven only by legal transitions: `check` names the illegal ones (the HTTP API
/// answers them with 409), `apply` moves the state. A value type: the hub keeps the committed state
/// (what watchers are shown) and a projected one (committed plus events still being written), against
/// which new events are checked.
public struct Run {
    public let id: String
    public private(set) var owner = ""
    public private(set) var session: String?
    public private(set) var name: String?
    public private(set) var status = RunStatus.pending
    public private(set) var startedAt: Int64?
    public private(set) var endedAt: Int64?
    public private(set) var seq = 0
    public private(set) var progress: (percent: Double, message: String?)?
    public private(set) var logCount = 0
    public struct Step {
        public var name: String; public var status: StepStatus; public var startedAt: Int64; public var endedAt: Int64?;
        public var error: String?
    }
    public private(set) var steps: [Step] = []
    private var lastLogs: [String] = []
    public static let keptLogLines = 50

    public init(id: String) { self.id = id }

    public var isFinished: Bool { status.isFinished }

    /// Steps running, in the order they started (what a shared log keeps of them to check transitions).
    public var runningSteps: [String] { steps.filter { $0.status == .running }.map(\.name) }

    /// What a shared log starts this run from if it lost its state.
    public var seed: RunSeed { RunSeed(seq: seq, status: status, owner: owner, running: runningSteps) }

    /// The shared log lost the run's events and numbers on from `seq` (its state goes on as it was).
    public mutating func continueAt(_ seq: Int) { self.seq = seq }

    /// Why `event` cannot happen now, or nil when it can.
    public func check(_ e: RunEvent) -> String? {
        if isFinished { return "run \(id) is already completed (\(status)); no \(e.kind.rawValue) after that" }
        switch e.kind {
        case .started:
            return status == .pending ? nil : "run \(id) has already started"
        case .resumed:
            return status == .paused ? nil : "run \(id) is not paused (\(status))"
        case .completed, .log, .progress, .stepCompleted, .stepFailed:
            // Finishing work, logging and cancelling stay possible while paused.
            guard status == .running || status == .paused else {
                return "run \(id) has not started; send started first"
            }
        default:
            if status == .paused { return "run \(id) is paused; no \(e.kind.rawValue) until it is resumed" }
            guard status == .running else { return "run \(id) has not started; send started first" }
        }
        switch e.kind {
        case .stepStarted:
            if let s = steps.last(where: { $0.name == e.step }), s.status == .running {
                return "step \(e.step!) is already running"
            }
        case .stepCompleted, .stepFailed:
            guard let s = steps.last(where: { $0.name == e.step }), s.status == .running else {
                return "step \(e.step!) \(e.kind == .stepCompleted ? "completed" : "failed") but never started"
            }
        case .completed:
            if e.outcome == .succeeded, status == .paused { return "a paused run cannot succeed; resume it first" }
            if e.outcome == .succeeded, let s = steps.first(where: { $0.status == .running }) {
                return "run cannot succeed while step \(s.name) is still running"
            }
        default: break
        }
        return nil
    }

    public mutating func apply(_ e: RunEvent, seq: Int, ts: Int64) {
        self.seq = seq
        switch e.kind {
        case .started:
            status = .running; startedAt = ts; owner = e.owner ?? ""; session = e.session; name = e.name
        case .stepStarted:
            steps.append(Step(name: e.step!, status: .running, startedAt: ts))
        case .stepCompleted, .stepFailed:
            if let i = steps.lastIndex(where: { $0.name == e.step && $0.status == .running }) {
                steps[i].status = e.kind == .stepCompleted ? .completed : .failed
                steps[i].endedAt = ts
                steps[i].error = e.error
            }
        case .completed:
            status = (e.outcome ?? .succeeded).status; endedAt = ts
            for i in steps.indices where steps[i].status == .running {
                steps[i].status = .cancelled; steps[i].endedAt = ts
            }
        case .log:
            logCount += 1
            lastLogs.append(e.line ?? "")
            if lastLogs.count > Self.keptLogLines { lastLogs.removeFirst(lastLogs.count - Self.keptLogLines) }
        case .progress:
            progress = (e.percent ?? 0, e.message)
        case .paused:
            status = .paused
        case .resumed:
            status = .running
        }
    }

    /// Whether the event changes what a dashboard shows as the run's status.
    public static func isStatusChange(_ k: RunEvent.Kind) -> Bool { k != .log && k != .progress }

    /// Summary for dashboards and lists.
    public var summaryJSON: [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.field("id", id); w.field("owner", owner); w.field("name", name); w.field("status", status.rawValue)
        if let session { w.field("session", session) }
        if let s = startedAt { w.field("started_at", Int(s)) }
        if let e = endedAt { w.field("ended_at", Int(e)); if let s = startedAt { w.field("duration_ms", Int(e - s)) } }
        w.field("steps_total", steps.count)
        w.field("steps_completed", steps.filter { $0.status == .completed }.count)
        w.field("steps_failed", steps.filter { $0.status == .failed }.count)
        if let p = progress { w.field("percent", p.percent); if let m = p.message { w.field("message", m) } }
        w.field("seq", seq)
        w.endObject()
        return w.bytes
    }

    /// Full state for a watcher's snapshot and `GET /api/runs/{id}`.
    public var stateJSON: [UInt8] {
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        w.field("id", id); w.field("owner", owner); w.field("name", name); w.field("status", status.rawValue);
        w.field("seq", seq)
        if let session { w.field("session", session) }
        if let s = startedAt { w.field("started_at", Int(s)) }
        if let e = endedAt { w.field("ended_at", Int(e)); if let s = startedAt { w.field("duration_ms", Int(e - s)) } }
        w.beginArray("steps")
        for s in steps {
            w.beginObject()
            w.field("name", s.name); w.field("status", s.status.rawValue); w.field("started_at", Int(s.startedAt))
            if let e = s.endedAt { w.field("ended_at", Int(e)); w.field("duration_ms", Int(e - s.startedAt)) }
            if let err = s.error { w.field("error", err) }
            w.endObject()
        }
        w.endArray()
        if let p = progress {
            w.beginObject("progress"); w.field("percent", p.percent); if let m = p.message { w.field("message", m) };
            w.endObject()
        }
        w.field("log_count", logCount)
        w.beginArray("last_logs"); for l in lastLogs { w.element(l) }; w.endArray()
        w.endObject()
        return w.bytes
    }
}

extension Run {
    /// Run ids: 1-128 characters of [A-Za-z0-9._-].
    public static func isValidId(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 128
            && s.utf8.allSatisfy {
                ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95
                    || $0 == 46
            }
    }
}
