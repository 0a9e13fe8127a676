/// The protocol's closed vocabularies as types, so that a misspelt role or status is a compile error
/// rather than a silent mismatch. Raw values are the wire spellings (Protocol/PROTOCOL.md).

/// What a member may do in a session.
public enum MemberRole: String, Sendable, CaseIterable {
    case host, editor, viewer
    /// Backends only: a token with this role publishes runs and joins no session.
    case publisher
    /// Read-only: chat, cursors, typing, events and run control are refused.
    public var isReadOnly: Bool { self == .viewer }
    public var mayControlRuns: Bool { self == .host || self == .editor }
}

/// Who may join a session without a token or the host key.
public enum GuestPolicy: String, Sendable, CaseIterable {
    /// Anyone with the code joins as an editor.
    case allow
    /// Only token holders and the host key.
    case deny
}

public enum ChatKind: String, Sendable, CaseIterable { case text, file, code, system }

/// A run's status as dashboards show it.
public enum RunStatus: String, Sendable {
    case pending, running, paused, succeeded, failed, cancelled
    public var isFinished: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// How a run ended (`completed {outcome}`).
public enum RunOutcome: String, Sendable, CaseIterable {
    case succeeded, failed, cancelled
    public var status: RunStatus { RunStatus(rawValue: rawValue)! }
}

public enum StepStatus: String, Sendable { case running, completed, failed, cancelled }

/// What a session member may ask of a run's publisher (`run_control`).
public enum RunControlAction: String, Sendable, CaseIterable { case pause, resume, cancel }

public enum TypingState: String, Sendable { case start, stop }

public enum ReplayState: String, Sendable { case playing, paused, finished }

/// What a member says of itself (`presence {state: {status}}`); `stale` is the hub's word for a
/// member whose connection dropped, within the reconnect grace.
public enum PresenceStatus: String, Sendable { case active, idle, away }
