import EventLoop
import Hub
import WebSocket

extension Connection {
    /// The loop that owns the session named in a `/ws?session=CODE` upgrade (nil: any loop will do).
    func ownerLoop(for head: HTTPRequestHead) -> LoopContext? {
        // Runs, dashboards and publishers live on loop 0.
        if head.path == "/watch" || head.path == "/publish" { return context.server.contexts[0] }
        guard head.path == "/ws", let raw = head.query["session"], let code = SessionCode.normalize(raw) else {
            return nil
        }
        sessionCode = code
        let all = context.server.contexts
        return all[SessionCode.owner(of: code, loops: all.count)]
    }

    /// Hands the socket, and the bytes received so far, to another loop before anything was written:
    /// that loop parses the request again and upgrades it, so every member of a session lives on the
    /// session's loop and its fan-out never crosses threads.
    func handOff(to owner: LoopContext, bytes: [UInt8]) {
        let fd = self.fd, peer = self.peer
        context.metrics.connectionsOpen.add(-1)
        context.metrics.connectionsTotal.add(-1)
        let tls = super.handOff()
        let box = TLSBox(tls)
        let counted = countedAddress
        countedAddress = false  // the address stays counted: the new owner releases it
        owner.loop.post {
            let c = Connection(context: owner, fd: fd, peer: peer)
            c.countedAddress = counted
            if let session = box.session { c.adoptTLS(session) }
            c.start()
            c.feed(bytes)
        }
    }
}

/// Carries a TLS session pointer to the loop that adopts the connection.
private final class TLSBox: @unchecked Sendable {
    let session: OpaquePointer?
    init(_ s: OpaquePointer?) { session = s }
}
