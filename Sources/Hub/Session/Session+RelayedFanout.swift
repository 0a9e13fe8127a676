import WebSocket

/// The fan-out of ephemeral traffic another node relayed (cross-node fan-out's receiving end).
extension Session {
    /// Delivers a relayed item to every announced member here under the fan-out policy, like
    /// `deliverHere(frame, .ephemeral(traffic, key: key.string or nil), except: nil)`. The coalescing
    /// key is only read for a recipient that is behind, so its string is made only then (as
    /// `broadcastEvent` does), not for every relayed item on every node.
    func deliverRelayed(_ frame: Chunk, _ traffic: Traffic, key: RelayedKey) {
        let metrics = host?.metrics
        let skipping = !catchingUp.isEmpty
        var made: String?
        for m in members where m.announced {
            for c in m.connections {
                if skipping && catchingUp.contains(ObjectIdentifier(c)) { continue }
                if made == nil && !key.isEmpty && c.queuedBytes > fanout.softLimit { made = key.string }
                fanout.deliver(frame, to: c, .ephemeral(traffic, key: made), metrics: metrics)
            }
        }
    }
}
