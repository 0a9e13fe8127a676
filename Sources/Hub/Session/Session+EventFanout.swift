import WebSocket

/// The fan-out of ephemeral app events, the hub's most frequent broadcast.
extension Session {
    /// Sends an ephemeral app event to every other announced member under the fan-out policy, like
    /// `broadcast(frame, .ephemeral(.event, key: "event:<member>:<name>"), except: member)`. The
    /// coalescing key is only read for a recipient that is behind (or by the cluster's relay), so it is
    /// made only then, not for every event (building the string cost ~1,200 instructions per message).
    func broadcastEvent(_ frame: Chunk, from member: Member, name: String) {
        if relays {
            return broadcast(frame, .ephemeral(.event, key: Self.eventKey(member, name)), except: member)
        }
        deliverEphemeral(frame, .event, except: member) { Self.eventKey(member, name) }
    }

    /// Delivers ephemeral traffic to every announced member here but `except` under the fan-out policy
    /// (app events, and what another node relayed). The coalescing key matters only to a recipient that
    /// is behind, so `key` is called only for the first such recipient, not for every item.
    @inline(__always)
    func deliverEphemeral(_ frame: Chunk, _ traffic: Traffic, except: Member?, key: () -> String?) {
        let skipping = !catchingUp.isEmpty
        var made: String?
        var asked = false
        // Asked of the first recipient that is behind, then the same for the rest.
        func keyOnce() -> String? {
            if !asked { (made, asked) = (key(), true) }
            return made
        }
        // Members and connections are reached without retaining them (`forEachGuaranteed`): nothing here
        // adds or removes either (an ephemeral delivery only queues, coalesces or drops), and the copied
        // `members` array keeps every member, so its connections, alive. Iterating them as values cost
        // four retain/release pairs per delivery (the member, its connection slots, the connection).
        members.forEachGuaranteed { m in
            guard m.announced && m !== except else { return }
            m.forEachConnectionGuaranteed { c in
                if skipping && catchingUp.contains(ObjectIdentifier(c)) { return }
                fanout.deliverEphemeral(frame, to: c, traffic, key: keyOnce, metrics: { host?.metrics })
            }
        }
    }

    /// What a member's later event of the same name replaces for a client that is behind.
    static func eventKey(_ member: Member, _ name: String) -> String { "event:\(member.id):\(name)" }
}
