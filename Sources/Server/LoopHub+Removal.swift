import Hub

/// A host's removal in a cluster reaches every node (`Session+ClusterRemoval`): the request goes out on
/// the control channel from this loop's own Redis connection; each node that holds the member removes
/// its connections (`ClusterControl`).
extension LoopHub {
    func removeElsewhere(_ session: Session, memberID: String, done: @escaping (MessageError?) -> Void) {
        guard let control = context.server.backends.control else { return done(nil) }
        let message = ControlMessage.remove(session: session.code, member: memberID, from: control.nodeID)
        control.sendControl(message.encode(), executor: executor) { failure in
            done(failure.map { MessageError("storage_unavailable", "the other nodes cannot be asked: \($0.message)") })
        }
    }
}
