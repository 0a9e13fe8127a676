/// Removing a member in a cluster: the member may hold connections on this node, on others, or on
/// both (one member per identity across the nodes). The removal is sent to every node on the control
/// channel (`SessionHost.removeElsewhere`); each node that holds the member closes its connections
/// with 4005 (removed) and lets go of the identity through the roster, and the node that lets go last
/// commits the leave (reason `removed`), as on one node.
extension Session {
    /// The member `id` as this node knows it: its name, and whether this node holds it.
    func anyMember(_ id: String) -> (name: String, local: Member?)? {
        if let m = members.first(where: { $0.id == id && !$0.leaving }) { return (m.name, m) }
        guard roster != nil, let json = remoteMembers.first(where: { $0.id == id })?.json else { return nil }
        return ((try? JSONReader.readObject(json))?["name"]?.string ?? "", nil)
    }

    /// Removes member `id` wherever it is connected. Returns false (nothing done) when the session has
    /// no such member; else `done` gets nil once it is removed here and asked of the other nodes, or
    /// `storage_unavailable` (nothing done) when the other nodes cannot be asked.
    public func removeAnywhere(id: String, done: @escaping (MessageError?) -> Void) -> Bool {
        guard let found = anyMember(id) else { return false }
        guard let roster, host != nil else {
            if let m = found.local { remove(m) }
            done(nil)
            return true
        }
        // Kept in Redis first, so that a node that does not hear the removal refuses the member when it
        // says again who it holds (`SharedRoster.recordRemoval`).
        roster.recordRemoval(session: code, memberID: id, executor: executor) { [weak self] failure in
            if let failure {
                return done(MessageError("storage_unavailable", "the removal cannot be kept: \(failure.message)"))
            }
            guard let self, let host = self.host else { return done(nil) }
            host.removeElsewhere(self, memberID: id) { [weak self] error in
                if error == nil, let self, let m = self.members.first(where: { $0.id == id }) { self.remove(m) }
                done(error)
            }
        }
        return true
    }

    /// The host's `remove` in a cluster: refused as on one node (`invalid_field` for no other member).
    func hostRemoves(_ id: String, by member: Member, client: HubClient) {
        guard id != member.id, let found = anyMember(id) else {
            return send(
                client,
                .error(code: "invalid_field", message: "no other member \(id) in this session", field: "member"))
        }
        _ = removeAnywhere(id: id) { [weak self] error in
            guard let self else { return }
            if let error {
                return self.send(client, .error(code: error.code, message: error.message, field: error.field))
            }
            self.host?.record(
                "member_removed", session: self, actor: member, target: id, details: found.name,
                address: client.address)
        }
    }

    /// Another node's host or API removed member `id`: this node's connections of it go (4005, removed).
    public func removedElsewhere(id: String) {
        if let m = members.first(where: { $0.id == id && !$0.leaving }) { remove(m) }
    }
}

extension SessionHost {
    public func removeElsewhere(_ session: Session, memberID: String, done: @escaping (MessageError?) -> Void) {
        done(nil)
    }
}
