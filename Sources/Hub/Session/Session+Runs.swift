import WebSocket

/// Runs attached to a session (collaborative testing: everyone in the room sees the run).
extension Session {
    /// A run attached to the session changed: status changes are durable events; progress is ephemeral,
    /// and a member who is behind gets only the latest (held until it catches up, and forgotten when a
    /// status change, which carries the whole state, overtakes it).
    public func runUpdate(run: String, summary: [UInt8], event: String, durable: Bool) {
        guard !isEnded else { return }
        let body = EventBody.run(event: event, summary: summary), key = "run:" + run
        if durable {
            persist(type: "run", member: nil, clientId: nil, body: body) { [weak self] _, frame in
                if let frame { self?.broadcast(frame, .durable, except: nil, supersedes: key) }
            }
        } else {
            broadcast(ServerMessage.runUpdate(body: body).frame, .ephemeral(.run, key: key), except: nil)
        }
    }
}
