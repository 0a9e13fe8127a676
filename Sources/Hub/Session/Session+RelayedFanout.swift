import WebSocket

/// The fan-out of ephemeral traffic another node relayed (cross-node fan-out's receiving end).
extension Session {
    /// Delivers a relayed item to every announced member here under the fan-out policy; its coalescing
    /// key stays in the publication's bytes unless a recipient is behind.
    func deliverRelayed(_ frame: Chunk, _ traffic: Traffic, key: RelayedKey) {
        deliverEphemeral(frame, traffic, except: nil) { key.isEmpty ? nil : key.string }
    }
}
