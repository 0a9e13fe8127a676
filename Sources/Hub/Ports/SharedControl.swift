/// Control messages between the nodes of a cluster (Redis): what one node asks of the node holding a
/// connection (a run's publisher socket, a member's sockets), the registry of which node holds each
/// run's publisher socket, and a barrier that says when this node has heard everything published
/// before it. With SQLite there is none (`Backends.control` is nil). Every `done` runs on `executor`'s
/// loop; `followControls`, `caughtUp` and the registry are used from loop 0 only.
public protocol SharedControl: AnyObject {
    /// This node's id in the cluster (what `ControlMessage`s are addressed to).
    var nodeID: String { get }
    /// Every control message any node sends (this node's own included) reaches `sink`, as sent.
    func followControls(executor: Executor, _ sink: @escaping ([UInt8]) -> Void)
    /// Sends a control message to every node; `done` gets nil once Redis took it, else why not.
    func sendControl(_ payload: [UInt8], executor: Executor, done: @escaping (StoreFailure?) -> Void)
    /// `done` gets nil once everything published to the nodes before this call (run events included)
    /// has reached this loop and been handed on, or a failure (Redis unreachable, or not within
    /// `timeout` seconds).
    func caughtUp(executor: Executor, timeout: Double, done: @escaping (StoreFailure?) -> Void)
    /// A publisher socket on this node now speaks for `run` (it published last): recorded cluster-wide.
    func publisherHere(run: String, executor: Executor)
    /// This node's publisher socket for `run` closed: the record goes if it is still this node's.
    func publisherGone(run: String, executor: Executor)
    /// The records of the runs whose publisher sockets this node holds are kept alive (they expire
    /// without it, so a dead node's records go by themselves).
    func keepPublishers(_ runs: [String], executor: Executor)
    /// The node whose publisher socket speaks for `run` (nil: none recorded).
    func publisherNode(run: String, executor: Executor, done: @escaping (Result<String?, StoreFailure>) -> Void)
    /// Records `outcome` for the control request `request` unless one was recorded first: `done` gets
    /// nil if this one was, else the one recorded before (the asked node's `sent`, the asker's `refused`).
    func settle(
        request: String, outcome: String, executor: Executor, done: @escaping (Result<String?, StoreFailure>) -> Void)
}

/// A message between nodes on the control channel (JSON). Everything read is checked: a message that
/// does not parse is nil and ignored.
public enum ControlMessage: Equatable, Sendable {
    /// Node `from` asks node `to` to hand a run control to the run's publisher socket, before `expires`
    /// (milliseconds since 1970: after it, `from` has answered its member already, and `to` drops it).
    case runControl(
        id: String, from: String, to: String, run: String, action: RunControlAction, session: String,
        byID: String, byName: String, expires: Int? = nil)
    /// Node `to`'s request `id` was handed on (`error` nil) or refused.
    case runControlReply(id: String, to: String, error: MessageError?)
    /// Every node holding member `member` of `session` removes its connections (the host removed it).
    case remove(session: String, member: String, from: String)

    public func encode() -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        switch self {
        case .runControl(let id, let from, let to, let run, let action, let session, let byID, let byName, let expires):
            w.field("op", "run_control"); w.field("id", id); w.field("from", from); w.field("to", to)
            w.field("run", run); w.field("action", action.rawValue); w.field("session", session)
            w.field("by_id", byID); w.field("by_name", byName)
            if let expires { w.field("expires", expires) }
        case .runControlReply(let id, let to, let error):
            w.field("op", "run_control_reply"); w.field("id", id); w.field("to", to)
            if let error {
                w.field("code", error.code); w.field("message", error.message); w.field("field", error.field)
            }
        case .remove(let session, let member, let from):
            w.field("op", "remove"); w.field("session", session); w.field("member", member); w.field("from", from)
        }
        w.endObject()
        return w.bytes
    }

    /// Strings of a control message are bounded (ids, codes, names); anything longer is refused.
    static let maxText = 512

    public static func decode(_ bytes: [UInt8]) -> ControlMessage? {
        guard bytes.count <= 8192, let o = try? JSONReader.readObject(bytes, maxDepth: 2) else { return nil }
        func text(_ k: String) -> String? {
            guard let s = o[k]?.string, !s.isEmpty, s.utf8.count <= maxText else { return nil }
            return s
        }
        switch o["op"]?.string {
        case "run_control":
            guard let id = text("id"), let from = text("from"), let to = text("to"), let run = text("run"),
                let action = text("action").flatMap(RunControlAction.init(rawValue:)), let session = text("session"),
                let byID = text("by_id"), let byName = o["by_name"]?.string, byName.utf8.count <= maxText
            else { return nil }
            let expires = o["expires"]?.int
            if o["expires"] != nil && expires == nil { return nil }
            return .runControl(
                id: id, from: from, to: to, run: run, action: action, session: session, byID: byID, byName: byName,
                expires: expires)
        case "run_control_reply":
            guard let id = text("id"), let to = text("to") else { return nil }
            var error: MessageError?
            if let code = text("code") {
                let message = o["message"]?.string.map { String($0.prefix(maxText)) } ?? code
                error = MessageError(code, message, field: text("field"))
            }
            return .runControlReply(id: id, to: to, error: error)
        case "remove":
            guard let session = text("session"), let member = text("member"), let from = text("from") else {
                return nil
            }
            return .remove(session: session, member: member, from: from)
        default:
            return nil
        }
    }
}
