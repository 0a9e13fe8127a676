import WebSocket

/// Every message the hub sends a client, one case per schema in `Protocol/schemas/server`, each with
/// one encoder. Nothing else in Hub or Server writes a message by hand: `frame` is the one way a
/// message becomes bytes on the wire (encoded once; a broadcast shares the chunk).
///
/// JSON members that are already JSON (a member object, a run summary, a stored event's body) are
/// carried as bytes and copied in, never parsed again.
/// What a resume sent before `joined`: the events `from...to`, `count` of them.
public struct Recovered: Sendable, Equatable {
    public let from: Int, to: Int, count: Int
    public init(from: Int, to: Int, count: Int) { self.from = from; self.to = to; self.count = count }
}

public enum ServerMessage {
    /// A durable event as stored and as everyone receives it: `{"type","seq","ts",<body>}` (chat,
    /// presence, event, run in sessions; run_event on run channels).
    case durable(type: String, seq: Int, ts: Int64, body: [UInt8])
    case ack(id: String, seq: Int, ts: Int64, duplicate: Bool)
    /// To a publisher: its run events were committed with these seqs.
    case runAck(run: String, id: String?, seqs: [Int])
    case error(code: String, message: String, ref: String? = nil, field: String? = nil)
    /// The answer to `join`: `you` and `members` are member objects (`Member.json`).
    case joined(
        session: String, title: String, you: [UInt8], members: [[UInt8]], seq: Int, recovered: Recovered? = nil,
        resumeSecret: String? = nil)
    case reset(reason: String, message: String, seq: Int)
    case pong(id: String?)
    case tokenRefreshed(exp: Int64)
    case tokenExpiring(exp: Int64)
    case typing(member: String, state: TypingState)
    /// Members whose role or connection count changed (ephemeral, no seq).
    case presenceUpdates([[UInt8]])
    /// Joins and leaves that could not be stored (storage down): no seq, `stored: false`.
    case presenceUnstored(joins: [[UInt8]], leaves: [String])
    /// An ephemeral app event: `body` is its members (`name`, `from`, `id`, `data`).
    case event(body: [UInt8])
    /// An attached run's progress in a session (ephemeral): `body` is `event` and `run`.
    case runUpdate(body: [UInt8])
    /// Cursor updates, each `{"id",...}`.
    case cursors([[UInt8]])
    /// Cursor samples played back (`updates` is a JSON array).
    case replayedCursors(ts: Int64, updates: [UInt8])
    case sessionEnded(reason: String)
    case runControlSent(run: String, action: RunControlAction, id: String?)
    /// To a run's publisher: a session member asks to pause, resume or cancel it.
    case control(run: String, action: RunControlAction, session: String?, by: (id: String, name: String)?)
    case subscribed(channel: String, seq: Int)
    case runSnapshot(channel: String, seq: Int, run: [UInt8])
    case runStatus(run: [UInt8])
    case runProgress(run: [UInt8])
    /// A dashboard's runs (a JSON array of run summaries).
    case dashboard(owner: String, runs: [UInt8])
    case replayStarted(from: Int, to: Int, count: Int, speed: Double, durationMillis: Int64)
    case replayState(ReplayState, seq: Int, speed: Double)
    case replayFinished

    public static func error(_ e: MessageError) -> ServerMessage {
        .error(code: e.code, message: e.message, ref: e.ref, field: e.field)
    }

    /// The frame: one unmasked text frame holding `json`. A durable event's frame (one per committed
    /// message, shared by its recipients and the resume window) is written straight into its chunk: built
    /// as `json` first, it cost one more allocation, copy and free per event on the loop.
    public var frame: Chunk {
        if case .durable(let type, let seq, let ts, let body) = self {
            return Self.durableFrame(type: type, seq: seq, ts: ts, body: body)
        }
        return Chunk.text(json)
    }

    /// `Chunk.text(ServerMessage.durable(...).json)`, without the intermediate array.
    static func durableFrame(type: String, seq: Int, ts: Int64, body: [UInt8]) -> Chunk {
        let open: StaticString = #"{"type":""#, seqKey: StaticString = #"","seq":"#, tsKey: StaticString = #","ts":"#
        let seqDigits = DecimalDigits(seq), tsDigits = DecimalDigits(Int(ts))
        var type = type
        return type.withUTF8 { t in
            let n =
                open.utf8CodeUnitCount + t.count + seqKey.utf8CodeUnitCount + seqDigits.count
                + tsKey.utf8CodeUnitCount + tsDigits.count + (body.isEmpty ? 0 : 1 + body.count) + 1
            let h = FrameEncoder.headerLength(payload: n, masked: false)
            let chunk = Chunk(capacity: h + n)
            let p = chunk.extend(by: h + n)
            var at = FrameEncoder.writeHeader(p, opcode: .text, length: n)
            func put(_ b: UnsafeRawBufferPointer) {
                if let src = b.baseAddress { (p + at).copyMemory(from: src, byteCount: b.count) }
                at += b.count
            }
            func put(_ s: StaticString) { put(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)) }
            put(open); put(UnsafeRawBufferPointer(t)); put(seqKey)
            seqDigits.withBytes { put($0) }
            put(tsKey)
            tsDigits.withBytes { put($0) }
            if !body.isEmpty {
                p.storeBytes(of: UInt8(ascii: ","), toByteOffset: at, as: UInt8.self); at += 1
                body.withUnsafeBytes { put($0) }
            }
            p.storeBytes(of: UInt8(ascii: "}"), toByteOffset: at, as: UInt8.self); at += 1
            // The lengths above and the bytes written must agree, or the frame would carry garbage.
            precondition(at == h + n, "durable frame length")
            return chunk
        }
    }

    /// The message as JSON bytes.
    public var json: [UInt8] {
        switch self {
        case .durable(let type, let seq, let ts, let body):
            var out: [UInt8] = []
            out.reserveCapacity(body.count + type.utf8.count + 48)
            out.append(contentsOf: "{\"type\":\"".utf8); out.append(contentsOf: type.utf8)
            out.append(contentsOf: "\",\"seq\":".utf8); out.appendDecimal(seq)
            out.append(contentsOf: ",\"ts\":".utf8); out.appendDecimal(Int(ts))
            if !body.isEmpty { out.append(UInt8(ascii: ",")); out += body }
            out.append(UInt8(ascii: "}"))
            return out
        case .event(let body): return Self.wrap("event", body)
        case .runUpdate(let body): return Self.wrap("run", body)
        case .ack(let id, let seq, let ts, let duplicate):
            // One per durable message: its constant keys are copied whole, only the id is escaped (through
            // the writer, field by field, an ack cost ~2,700 instructions). Same bytes as the writer's.
            var w = JSONWriter(capacity: id.utf8.count + 64)
            w.bytes.append(contentsOf: #"{"type":"ack","id":"#.utf8)
            w.appendString(id)
            w.bytes.append(contentsOf: #","seq":"#.utf8); w.bytes.appendDecimal(seq)
            w.bytes.append(contentsOf: #","ts":"#.utf8); w.bytes.appendDecimal(Int(ts))
            if duplicate { w.bytes.append(contentsOf: #","duplicate":true"#.utf8) }
            w.bytes.append(UInt8(ascii: "}"))
            return w.bytes
        default: break
        }
        var w = JSONWriter(capacity: 96)
        w.beginObject()
        switch self {
        case .durable, .event, .runUpdate, .ack: break
        case .runAck(let run, let id, let seqs):
            w.field("type", "ack"); w.field("run", run)
            if let id { w.field("id", id) }
            w.beginArray("seqs"); for s in seqs { w.rawElement(Array(String(s).utf8)) }; w.endArray()
        case .error(let code, let message, let ref, let field):
            w.field("type", "error"); w.field("code", code); w.field("message", message)
            if let ref { w.field("ref", ref) }
            if let field { w.field("field", field) }
        case .joined(let session, let title, let you, let members, let seq, let recovered, let resumeSecret):
            w.field("type", "joined"); w.field("session", session); w.field("title", title); w.raw("you", you)
            w.beginArray("members"); for m in members { w.rawElement(m) }; w.endArray()
            w.field("seq", seq)
            if let r = recovered {
                w.beginObject("recovered"); w.field("from", r.from); w.field("to", r.to); w.field("count", r.count)
                w.endObject()
            }
            if let resumeSecret { w.field("resume_secret", resumeSecret) }
        case .reset(let reason, let message, let seq):
            w.field("type", "reset"); w.field("reason", reason); w.field("message", message); w.field("seq", seq)
        case .pong(let id):
            w.field("type", "pong"); if let id { w.field("id", id) }
        case .tokenRefreshed(let exp):
            w.field("type", "token_refreshed"); w.field("exp", Int(exp))
        case .tokenExpiring(let exp):
            w.field("type", "token_expiring"); w.field("exp", Int(exp))
        case .typing(let member, let state):
            w.field("type", "typing"); w.field("member", member); w.field("state", state.rawValue)
        case .presenceUpdates(let members):
            w.field("type", "presence")
            w.beginArray("updates"); for m in members { w.rawElement(m) }; w.endArray()
        case .presenceUnstored(let joins, let leaves):
            w.field("type", "presence"); w.field("stored", false)
            w.beginArray("joins"); for j in joins { w.rawElement(j) }; w.endArray()
            w.beginArray("leaves"); for l in leaves { w.beginObject(); w.field("id", l); w.endObject() }; w.endArray()
        case .cursors(let updates):
            w.field("type", "cursors")
            w.beginArray("updates"); for u in updates { w.rawElement(u) }; w.endArray()
        case .replayedCursors(let ts, let updates):
            w.field("type", "cursors"); w.field("replayed", true); w.field("ts", Int(ts)); w.raw("updates", updates)
        case .sessionEnded(let reason):
            w.field("type", "session_ended"); w.field("reason", reason)
        case .runControlSent(let run, let action, let id):
            w.field("type", "run_control_sent"); w.field("run", run); w.field("action", action.rawValue)
            if let id { w.field("id", id) }
        case .control(let run, let action, let session, let by):
            w.field("type", "control"); w.field("run", run); w.field("action", action.rawValue)
            if let session { w.field("session", session) }
            if let by { w.beginObject("by"); w.field("id", by.id); w.field("name", by.name); w.endObject() }
        case .subscribed(let channel, let seq):
            w.field("type", "subscribed"); w.field("channel", channel); w.field("seq", seq)
        case .runSnapshot(let channel, let seq, let run):
            w.field("type", "run_snapshot"); w.field("channel", channel); w.field("seq", seq); w.raw("run", run)
        case .runStatus(let run):
            w.field("type", "run_status"); w.raw("run", run)
        case .runProgress(let run):
            w.field("type", "run_progress"); w.raw("run", run)
        case .dashboard(let owner, let runs):
            w.field("type", "dashboard"); w.field("owner", owner); w.raw("runs", runs)
        case .replayStarted(let from, let to, let count, let speed, let duration):
            w.field("type", "replay_started"); w.field("from", from); w.field("to", to); w.field("count", count)
            w.field("speed", speed); w.field("duration_ms", Int(duration))
        case .replayState(let state, let seq, let speed):
            w.field("type", "replay_state"); w.field("state", state.rawValue); w.field("seq", seq)
            w.field("speed", speed)
        case .replayFinished:
            w.field("type", "replay_finished")
        }
        w.endObject()
        return w.bytes
    }

    /// `{"type":"<type>",<members>}`.
    private static func wrap(_ type: String, _ members: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(members.count + type.utf8.count + 12)
        out.append(contentsOf: "{\"type\":\"".utf8); out.append(contentsOf: type.utf8)
        out.append(UInt8(ascii: "\""))
        if !members.isEmpty { out.append(UInt8(ascii: ",")); out += members }
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// The bodies of durable events: the JSON members that follow `"type"`, `"seq"` and `"ts"`, as stored.
public enum EventBody {
    /// A chat message: `id`, `from` (the author's `{id, name, color}`), then the client's own members
    /// (`kind`, `text`, ... as validated by `ClientMessage`).
    public static func chat(id: String, from: [UInt8], message: [UInt8]) -> [UInt8] {
        // Sized for all of it (`"id":"…","from":…,` and the message; an id needing escapes only grows it).
        var w = JSONWriter(capacity: id.utf8.count + from.count + message.count + 24)
        w.field("id", id)
        w.raw("from", from)
        // Appended in the writer's own storage: a copy taken first (`var body = w.bytes`) shared it, so
        // the first append copied the whole buffer into a new allocation.
        w.bytes.append(UInt8(ascii: ","))
        w.bytes += message
        return w.bytes
    }

    /// A change to chat message `target` (`chat_edit`, `chat_delete`, `redact`): the change's own `id`,
    /// who made it, and the new text (edit) or the reason (redact).
    public static func chatChange(
        _ action: ClientMessage.ChatChange.Action, id: String, from: [UInt8], target: Int, text: String?
    ) -> [UInt8] {
        var w = JSONWriter(capacity: 160 + (text?.utf8.count ?? 0))
        w.field("id", id)
        w.raw("from", from)
        w.field("target", target)
        if let text { w.field(action == .edit ? "text" : "reason", text) }
        return w.bytes
    }

    /// What is left of an edit of a redacted (or deleted) message: its id, author and target, and
    /// `redacted: true` (`deleted: true`): the bytes of `chatChange(.edit, ...)` up to the target, so
    /// every store cuts a stored one the same way.
    public static func editTombstone(_ edit: [UInt8], _ reason: Replacement.Reason = .redacted) -> [UInt8]? {
        guard let r = edit.firstRange(of: Array(",\"text\":".utf8)) else { return nil }
        return Array(edit[..<r.lowerBound]) + Array(",\"\(reason.rawValue)\":true".utf8)
    }

    /// What is left of a redacted chat message: its id, author and kind, and `redacted: true`.
    public static func tombstone(of original: JSONObject?) -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        keptFields(of: original, &w)
        w.field("redacted", true)
        return w.bytes
    }

    /// Who deleted a chat message, in its tombstone's `deleted_by`.
    public enum Deleter: String, Sendable { case author, host }

    /// What is left of a deleted chat message: its id, author and kind, `deleted: true` and
    /// `deleted_by` (`author`, or `host` when a host deleted someone else's).
    public static func deletedTombstone(of original: JSONObject?, by: Deleter) -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        keptFields(of: original, &w)
        w.field("deleted", true)
        w.field("deleted_by", by.rawValue)
        return w.bytes
    }

    private static func keptFields(of original: JSONObject?, _ w: inout JSONWriter) {
        if let id = original?["id"]?.string { w.field("id", id) }
        if let from = original?["from"], from.kind == .object { w.raw("from", from.bytes) }
        w.field("kind", original?["kind"]?.string ?? "text")
    }

    /// A system chat message (no author), e.g. `Session ended: ...`.
    public static func system(text: String, event: String?) -> [UInt8] {
        var w = JSONWriter()
        w.field("kind", ChatKind.system.rawValue); w.field("text", text)
        if let event { w.field("event", event) }
        return w.bytes
    }

    /// Presence changes: joined members (member objects) and leaves (`{id, reason}`).
    public static func presence(joins: [[UInt8]], leaves: [(id: String, reason: String, name: String?)]) -> [UInt8] {
        var w = JSONWriter()
        w.beginArray("joins"); for j in joins { w.rawElement(j) }; w.endArray()
        w.beginArray("leaves")
        for l in leaves {
            w.beginObject(); w.field("id", l.id); w.field("reason", l.reason)
            if let name = l.name { w.field("name", name) }
            w.endObject()
        }
        w.endArray()
        return w.bytes
    }

    /// An app event: `name`, `from` (member id), `id`, `data` (raw JSON).
    public static func event(name: String, from: String, id: String?, data: [UInt8]) -> [UInt8] {
        var w = JSONWriter(capacity: data.count + 96)
        w.field("name", name)
        w.field("from", from)
        if let id { w.field("id", id) }
        w.raw("data", data)
        return w.bytes
    }

    /// A run attached to a session changed: `event` and the run's summary.
    public static func run(event: String, summary: [UInt8]) -> [UInt8] {
        var w = JSONWriter(capacity: summary.count + 32)
        w.field("event", event)
        w.raw("run", summary)
        return w.bytes
    }
}
