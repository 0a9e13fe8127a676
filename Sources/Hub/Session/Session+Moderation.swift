import WebSocket

/// What a host does to the session as a whole: removing a member, ending the session.
extension Session {
    /// Removes a member (its connections are closed with 4003 and do not come back as it).
    func remove(_ target: Member) {
        let connections = detachAll(target)
        removeMember(target, reason: "removed")
        for c in connections { c.disconnect(.removed, "removed by the host") }
    }

    /// Ends the session: a durable system event, then every member is told and disconnected (4004).
    public func end(reason: String) {
        guard !isEnded else { return }
        isEnded = true
        info.endedAt = wallClockMillis()
        info.endReason = reason
        persist(
            type: "chat", member: nil, clientId: nil,
            body: EventBody.system(text: "Session ended: \(reason)", event: "session_ended")
        ) { [weak self] _, frame in
            guard let self else { return }
            if let frame { self.broadcast(frame, .durable, except: nil) }
            let ended = ServerMessage.sessionEnded(reason: reason).frame
            for m in self.members {
                for c in self.detachAll(m) {
                    c.deliver(ended)
                    c.disconnect(.sessionEnded, "session ended: \(reason)")
                }
            }
            self.members.removeAll()
            self.finishIfDone()
        }
    }
}
