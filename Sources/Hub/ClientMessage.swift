/// A validated message from a client (Protocol/PROTOCOL.md, "Client messages").
public enum ClientMessage {
    case join(Join)
    case leave
    case chat(Chat)
    case cursor(Cursor)
    case typing(start: Bool)
    case event(AppEvent)
    case end(reason: String?)
    case ping(ref: String?)
    /// Host: remove a member.
    case remove(member: String)
    /// A fresh token for a connection whose token is about to expire.
    case refresh(token: String)
    /// Ask the publisher of a run attached to the session to pause or resume it.
    case runControl(run: String, action: RunControlAction, ref: String?)
    /// Change a chat message (its author: new text), delete it (its author or a host), or redact it (a
    /// host: its content is removed from the store for good). `target` is the message's seq.
    case chatChange(ChatChange)
    /// The member's presence state: active, idle or away, and where it is (any JSON, at most 1 KiB).
    case presence(status: PresenceStatus, location: [UInt8]?)

    public struct ChatChange {
        public enum Action: String, Sendable { case edit = "chat_edit", delete = "chat_delete", redact }
        public var action: Action
        public var id: String
        public var target: Int
        /// The new text (edit) or the reason (redact, optional).
        public var text: String?
    }

    public struct Join {
        public var session: String?
        public var name: String
        /// A stable id the client keeps (localStorage): two tabs with one id are one member.
        public var clientId: String?
        public var resumeFrom: Int?
        /// Proves the host role (returned by POST /api/sessions).
        public var hostKey: String?
        /// An HS256 access token (sub, name, session, role, exp).
        public var token: String?
        /// A newcomer's request for the session's recent history: up to this many durable events
        /// (at most 1,000) before `joined`, as if it resumed from that far back.
        public var history: Int? = nil
        /// With `client_id` and no token: the secret the member's key is derived from (returned in
        /// `joined.resume_secret` when the hub made it up). Without it, a client id is a new member.
        public var resumeSecret: String? = nil
    }

    public struct Chat {
        public var id: String
        public var kind: ChatKind
        /// The JSON members stored and broadcast after `from`: text, file, code, meta (validated).
        public var body: [UInt8]
    }

    public struct Cursor {
        /// `"x":..,"y":..[,"el":..][,"sel":..]` as validated JSON, spliced into the broadcast.
        public var body: [UInt8]
    }

    public struct AppEvent {
        public var name: String
        public var data: ArraySlice<UInt8>
        public var durable: Bool
        public var id: String?
    }
}

/// A client error: the code and the field it names (sent as an `error` message).
public struct MessageError: Error, Equatable {
    public let code: String
    public let message: String
    public let field: String?
    public let ref: String?
    public init(_ code: String, _ message: String, field: String? = nil, ref: String? = nil) {
        self.code = code; self.message = message; self.field = field; self.ref = ref
    }
}

public struct MessageLimits: Sendable {
    /// Chat and app events: 64 KiB each, as the product spec sets.
    public var maxChatBytes = 64 * 1024
    public var maxEventBytes = 64 * 1024
    public var maxNameLength = 64
    public var maxIdLength = 128
    public var maxJSONDepth = 16
    public init() {}
}

extension ClientMessage {
    /// Parses and validates one text message. Errors name the offending field.
    public static func parse(_ bytes: [UInt8], limits: MessageLimits = MessageLimits()) throws -> ClientMessage {
        // An app event the full path would accept is read in one pass (`scanEvent`); anything else,
        // refusals included, is read below.
        if let event = scanEvent(bytes, limits: limits) { return event }
        return try parseFully(bytes, limits: limits)
    }

    /// `parse` without the app event's one-pass read: every message, every refusal.
    static func parseFully(_ bytes: [UInt8], limits: MessageLimits = MessageLimits()) throws -> ClientMessage {
        let obj: JSONObject
        do { obj = try JSONReader.readObject(bytes, maxDepth: limits.maxJSONDepth) } catch let e as JSONError {
            throw MessageError("bad_json", e.message)
        }
        guard let typeValue = obj.value("type") else {
            throw MessageError("missing_field", "every message needs a \"type\"", field: "type")
        }
        // An app event, the most frequent message, is told by the type's bytes, before any decoding.
        if typeValue.isString(written: "event") {
            return try parseEvent(obj, size: bytes.count, limits: limits, ref: obj.value("id")?.string)
        }
        guard let type = typeValue.string else {
            throw MessageError("invalid_field", "\"type\" must be a string", field: "type")
        }
        let ref = obj["id"]?.string

        func string(_ key: String, required: Bool = true, max: Int = 1024) throws -> String? {
            guard let v = obj[key], v.kind != .null else {
                if required { throw MessageError("missing_field", "\(type) needs \"\(key)\"", field: key, ref: ref) }
                return nil
            }
            guard let s = v.string else {
                throw MessageError("invalid_field", "\"\(key)\" must be a string", field: key, ref: ref)
            }
            guard s.fits(max) else {
                throw MessageError(
                    "too_large", "\"\(key)\" is longer than \(max) characters (\(4 * max) bytes)", field: key, ref: ref)
            }
            return s
        }

        switch type {
        // The cases are tried in order: the most frequent first (an app event, then a cursor).
        case "event":
            return try parseEvent(obj, size: bytes.count, limits: limits, ref: ref)
        case "cursor":
            var w = JSONWriter()
            for key in ["x", "y"] {
                guard let v = obj[key] else {
                    throw MessageError("missing_field", "cursor needs \"\(key)\"", field: key)
                }
                guard v.double?.isFinite == true, v.bytes.count <= 32 else {
                    throw MessageError(
                        "invalid_field", "\"\(key)\" must be a number of at most 32 characters", field: key)
                }
                w.raw(key, v.bytes)
            }
            if let el = obj["el"], el.kind != .null {
                guard el.kind == .string, el.bytes.count <= 256 else {
                    throw MessageError("invalid_field", "\"el\" must be a string of at most 256 bytes", field: "el")
                }
                w.raw("el", el.bytes)
            }
            if let sel = obj["sel"], sel.kind != .null {
                guard sel.bytes.count <= 1024 else {
                    throw MessageError("too_large", "\"sel\" is larger than 1 KiB", field: "sel")
                }
                w.raw("sel", sel.bytes)
            }
            return .cursor(Cursor(body: w.bytes))
        case "join":
            let hasToken = obj["token"] != nil
            guard
                let name = try string("name", required: !hasToken, max: limits.maxNameLength)
                    ?? (hasToken ? "user" : nil),
                !name.trimmingCharacters().isEmpty
            else {
                throw MessageError("invalid_field", "\"name\" must not be empty", field: "name")
            }
            var resume: Int?
            if let r = obj["resume_from"], r.kind != .null {
                guard let v = r.int, v >= 0 else {
                    throw MessageError(
                        "invalid_field", "\"resume_from\" must be a non-negative integer", field: "resume_from")
                }
                resume = v
            }
            var history: Int?
            if let hv = obj["history"], hv.kind != .null {
                guard let v = hv.int, v >= 0, v <= 1000 else {
                    throw MessageError(
                        "invalid_field", "\"history\" must be an integer from 0 to 1000", field: "history")
                }
                history = v
            }
            let secret = try string("resume_secret", required: false, max: Admission.resumeSecretLength.upperBound)
            if let secret, !Admission.isValidResumeSecret(secret) {
                throw MessageError(
                    "invalid_field",
                    "\"resume_secret\" must be \(Admission.resumeSecretLength.lowerBound) to "
                        + "\(Admission.resumeSecretLength.upperBound) characters of A-Z, a-z, 0-9, _ and -",
                    field: "resume_secret")
            }
            return .join(
                Join(
                    session: try string("session", required: false, max: 32), name: name.trimmingCharacters(),
                    clientId: try string("client_id", required: false, max: limits.maxIdLength),
                    resumeFrom: resume, hostKey: try string("host_key", required: false, max: 128),
                    token: try string("token", required: false, max: 8192), history: history,
                    resumeSecret: secret))
        case "leave":
            return .leave
        case "refresh":
            guard let t = try string("token", max: 8192) else {
                throw MessageError("missing_field", "refresh needs \"token\"", field: "token")
            }
            return .refresh(token: t)
        case "remove":
            guard let id = try string("member", max: 64) else {
                throw MessageError("missing_field", "remove needs \"member\"", field: "member")
            }
            return .remove(member: id)
        case "run_control":
            guard let run = try string("run", max: 128) else {
                throw MessageError("missing_field", "run_control needs \"run\"", field: "run")
            }
            guard let action = try string("action", max: 16).flatMap(RunControlAction.init(rawValue:)) else {
                throw MessageError("invalid_field", "\"action\" must be pause, resume or cancel", field: "action")
            }
            return .runControl(run: run, action: action, ref: ref)
        case "presence":
            guard let state = obj["state"]?.object else {
                throw MessageError("missing_field", "presence needs a \"state\" object", field: "state")
            }
            guard let status = state["status"]?.string.flatMap(PresenceStatus.init(rawValue:)) else {
                throw MessageError(
                    "invalid_field", "\"state.status\" must be active, idle or away", field: "state.status")
            }
            var location: [UInt8]?
            if let l = state["location"], l.kind != .null {
                guard l.bytes.count <= 1024 else {
                    throw MessageError("too_large", "\"state.location\" is larger than 1 KiB", field: "state.location")
                }
                location = Array(l.bytes)
            }
            return .presence(status: status, location: location)
        case "chat_edit", "chat_delete", "redact":
            let action = ClientMessage.ChatChange.Action(rawValue: type)!
            guard let id = try string("id", max: limits.maxIdLength), !id.isEmpty else {
                throw MessageError("missing_field", "\(type) needs an \"id\"", field: "id")
            }
            guard let target = obj["seq"]?.int, target >= 1 else {
                throw MessageError(
                    "invalid_field", "\"seq\" must be the positive seq of a chat message", field: "seq", ref: id)
            }
            var text: String?
            switch action {
            case .edit:
                guard bytes.count <= limits.maxChatBytes else {
                    throw MessageError("too_large", "chat_edit is larger than \(limits.maxChatBytes) bytes", ref: id)
                }
                guard let t = try string("text", max: limits.maxChatBytes), !t.isEmpty else {
                    throw MessageError("invalid_field", "\"text\" must not be empty", field: "text", ref: id)
                }
                text = t
            case .redact: text = try string("reason", required: false, max: 200)
            case .delete: break
            }
            return .chatChange(ClientMessage.ChatChange(action: action, id: id, target: target, text: text))
        case "ping":
            return .ping(ref: ref)
        case "end":
            return .end(reason: try string("reason", required: false, max: 200))
        case "typing":
            guard let state = try string("state") else {
                throw MessageError("missing_field", "typing needs \"state\"", field: "state")
            }
            guard state == "start" || state == "stop" else {
                throw MessageError("invalid_field", "\"state\" must be \"start\" or \"stop\"", field: "state")
            }
            return .typing(start: state == "start")
        case "chat":
            guard bytes.count <= limits.maxChatBytes else {
                throw MessageError("too_large", "chat message is larger than \(limits.maxChatBytes) bytes", ref: ref)
            }
            guard let id = try string("id", max: limits.maxIdLength), !id.isEmpty else {
                throw MessageError("invalid_field", "\"id\" must not be empty", field: "id")
            }
            guard let kind = ChatKind(rawValue: try string("kind", required: false, max: 16) ?? "text") else {
                throw MessageError(
                    "invalid_field", "\"kind\" must be text, file, code or system", field: "kind", ref: id)
            }
            var w = JSONWriter()
            w.field("kind", kind.rawValue)
            switch kind {
            case .text, .system:
                guard let text = try string("text", max: limits.maxChatBytes), !text.isEmpty else {
                    throw MessageError("invalid_field", "\"text\" must not be empty", field: "text", ref: id)
                }
                w.field("text", text)
            case .file:
                guard let file = obj["file"]?.object else {
                    throw MessageError(
                        "missing_field", "a file message needs a \"file\" object", field: "file", ref: id)
                }
                guard let name = file["name"]?.string, !name.isEmpty else {
                    throw MessageError(
                        "invalid_field", "\"file.name\" must be a non-empty string", field: "file.name", ref: id)
                }
                guard let size = file["size"]?.int, size >= 0 else {
                    throw MessageError(
                        "invalid_field", "\"file.size\" must be a non-negative integer", field: "file.size", ref: id)
                }
                guard let url = file["url"]?.string,
                    url.hasPrefix("https://") || url.hasPrefix("http://") || url.hasPrefix("/")
                else {
                    throw MessageError(
                        "invalid_field", "\"file.url\" must be an http(s) URL or a path", field: "file.url", ref: id)
                }
                w.beginObject("file")
                w.field("name", name); w.field("size", size);
                w.field("type", file["type"]?.string ?? "application/octet-stream"); w.field("url", url)
                w.endObject()
                if let text = try string("text", required: false, max: limits.maxChatBytes) { w.field("text", text) }
            case .code:
                guard let code = obj["code"]?.object else {
                    throw MessageError(
                        "missing_field", "a code message needs a \"code\" object", field: "code", ref: id)
                }
                guard let source = code["source"]?.string else {
                    throw MessageError(
                        "invalid_field", "\"code.source\" must be a string", field: "code.source", ref: id)
                }
                w.beginObject("code")
                w.field("language", code["language"]?.string ?? "text"); w.field("source", source)
                w.endObject()
                if let text = try string("text", required: false, max: limits.maxChatBytes) { w.field("text", text) }
            }
            if let meta = obj["meta"], meta.kind != .null {
                guard meta.kind == .object else {
                    throw MessageError("invalid_field", "\"meta\" must be an object", field: "meta", ref: id)
                }
                w.raw("meta", meta.bytes)
            }
            return .chat(Chat(id: id, kind: kind, body: w.bytes))
        default:
            throw MessageError("unknown_type", "unknown message type \"\(type)\"", field: "type", ref: ref)
        }
    }

    public static func isValidEventName(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { isValidEventName(bytes: $0) }
    }

    /// `isValidEventName` on the name's UTF-8 bytes (the one-pass event read checks them in place).
    @inline(__always)
    static func isValidEventName(bytes b: UnsafeBufferPointer<UInt8>) -> Bool {
        !b.isEmpty && b.count <= 64
            && b.allSatisfy {
                ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 46 || $0 == 58
                    || $0 == 45 || ($0 >= 65 && $0 <= 90)
            }
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

extension String {
    /// A length limit that bounds memory: at most `characters` Unicode scalars and so at most
    /// 4 x `characters` UTF-8 bytes. (Swift's `count` counts grapheme clusters, and one cluster can be
    /// a megabyte of combining marks.)
    public func fits(_ characters: Int) -> Bool {
        let bytes = utf8.count
        if bytes <= characters { return true }
        return bytes <= 4 * characters && unicodeScalars.count <= characters
    }
}
