/// A `/watch` message: `subscribe {channel, resume_from?}` or `unsubscribe {channel}`. Pure: the
/// endpoint acts on what this returns, and the fuzzer feeds it any bytes.
public enum WatchMessage: Equatable {
    case subscribe(Channel, resumeFrom: Int?, token: String?)
    case unsubscribe(Channel)
    /// A fresh token for the socket, before the one it watches with expires.
    case refresh(token: String)

    /// `run:ID` or `dashboard:OWNER`.
    public enum Channel: Hashable {
        case run(String)
        case dashboard(String)

        public var name: String {
            switch self {
            case .run(let id): return "run:" + id
            case .dashboard(let owner): return "dashboard:" + owner
            }
        }

        public static func parse(_ s: String) throws -> Channel {
            if s.hasPrefix("run:") {
                let id = String(s.dropFirst(4))
                guard Run.isValidId(id) else { throw MessageError("invalid_field", "invalid run id", field: "channel") }
                return .run(id)
            }
            if s.hasPrefix("dashboard:") {
                let owner = String(s.dropFirst(10))
                guard !owner.isEmpty, owner.fits(128) else {
                    throw MessageError("invalid_field", "invalid owner", field: "channel")
                }
                return .dashboard(owner)
            }
            throw MessageError("invalid_field", "\"channel\" must be run:ID or dashboard:OWNER", field: "channel")
        }
    }

    public static func parse(_ bytes: [UInt8]) throws -> WatchMessage {
        guard let obj = try? JSONReader.readObject(bytes, maxDepth: 8), let type = obj["type"]?.string else {
            throw MessageError("bad_json", "messages are JSON objects with a \"type\"")
        }
        guard type == "subscribe" || type == "unsubscribe" || type == "refresh" else {
            throw MessageError(
                "unknown_type", "unknown message type \"\(type)\" (subscribe, unsubscribe, refresh)", field: "type")
        }
        if type == "refresh" {
            guard let s = obj["token"]?.string, !s.isEmpty, s.utf8.count <= 8192 else {
                throw MessageError(
                    "invalid_field", "refresh needs \"token\": a string of at most 8 KiB", field: "token")
            }
            return .refresh(token: s)
        }
        guard let raw = obj["channel"]?.string else {
            throw MessageError("missing_field", "\(type) needs \"channel\"", field: "channel")
        }
        let channel = try Channel.parse(raw)
        if type == "unsubscribe" { return .unsubscribe(channel) }
        var resume: Int?
        if let r = obj["resume_from"], r.kind != .null {
            guard let v = r.int, v >= 0 else {
                throw MessageError(
                    "invalid_field", "\"resume_from\" must be a non-negative integer", field: "resume_from")
            }
            resume = v
        }
        var token: String?
        if let t = obj["token"], t.kind != .null {
            guard let s = t.string, s.utf8.count <= 8192 else {
                throw MessageError("invalid_field", "\"token\" must be a string of at most 8 KiB", field: "token")
            }
            token = s
        }
        return .subscribe(channel, resumeFrom: resume, token: token)
    }
}
