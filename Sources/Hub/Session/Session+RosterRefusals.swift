import WebSocket

/// Members this node announced again (`syncRoster`) that the cluster refused: the session filled up
/// while the node was away (declared lost, or its join could not reach Redis), or a host removed the
/// member and this node did not hear it (`SharedRoster.recordRemoval`). Their connections here close
/// as on one node: `session_full` then 4006 "session full", or 4005 "removed by the host".
extension Session {
    func refusedAgain(_ refusals: [RosterRefusal]) {
        for r in refusals {
            guard let member = members.first(where: { $0.key == r.identity && !$0.leaving }) else { continue }
            member.leaving = true
            stopTyping(member)
            members.removeAll { $0 === member }
            let connections = detachAll(member)
            if r.removed {
                // Its leave (reason `removed`) is in the log if no other node holds it: read back as the
                // reassert's other events are.
                for c in connections { c.disconnect(.removed, "removed by the host") }
                continue
            }
            let message = "session \(code) is full (\(info.maxParticipants) participants)"
            for c in connections {
                send(c, .error(code: "session_full", message: message))
                c.disconnect(.sessionFull, "session full")
            }
            // The other nodes were told its leave (`node_lost`) or never heard of it; here it goes now.
            broadcast(ServerMessage.presenceUnstored(joins: [], leaves: [member.id]).frame, .durable, except: nil)
        }
        finishIfDone()
    }
}
