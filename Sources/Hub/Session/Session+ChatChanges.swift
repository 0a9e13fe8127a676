import WebSocket

/// Editable chat: `chat_edit` (the author), `chat_delete` (the author or a host) and `redact` (a host).
/// A deletion and a redaction remove the original's content (and its edits' texts) from the store in
/// the transaction that records them, leaving a tombstone at its seq (`deleted: true` with
/// `deleted_by`, or `redacted: true`) in the transcript, exports, playback and the resume window. Each
/// is a durable event of its own that names the original by `target`, acknowledged like a chat message
/// (idempotent on its `id`).
/// The original is read from the store (off the loop): who wrote it is the stable key stored with it,
/// so the author may edit after a reconnect or a restart.
extension Session {
    func changeChat(_ client: HubClient, _ member: Member, _ change: ClientMessage.ChatChange) {
        let ref = change.id
        if change.action == .redact && member.role != .host {
            return send(client, .error(code: "forbidden", message: "only a host may redact", ref: ref))
        }
        guard change.target <= lastSeq else {
            return send(
                client,
                .error(code: "invalid_field", message: "no event with seq \(change.target) yet", ref: ref, field: "seq")
            )
        }
        guard let host else { return }
        host.readEvent(self, seq: change.target) { [weak self] result in
            guard let self, client.membership?.member === member, !self.isEnded else { return }
            let original: (event: StoredEvent, member: String?)
            switch result {
            case .failure(let f):
                return self.send(
                    client,
                    .error(code: "storage_unavailable", message: "cannot read the message: \(f.message)", ref: ref))
            case .success(nil):
                return self.send(
                    client,
                    .error(
                        code: "invalid_field", message: "no event with seq \(change.target) (retention deleted it?)",
                        ref: ref, field: "seq"))
            case .success(let found?): original = found
            }
            let body = try? JSONReader.readObject(Array("{".utf8) + original.event.body + Array("}".utf8))
            guard original.event.type == "chat", let body, body["from"]?.kind == .object else {
                return self.send(
                    client,
                    .error(
                        code: "invalid_field", message: "seq \(change.target) is not a member's chat message", ref: ref,
                        field: "seq"))
            }
            // Nothing is left of a deleted or redacted message: no edit, no second deletion, no
            // redaction (there is no content to remove), whichever came first.
            let removed =
                body["redacted"] != nil
                ? Replacement.Reason.redacted
                : body["deleted"] != nil
                    ? .deleted : self.removedTargets.last { $0.seq == change.target }?.reason
            if let removed {
                return self.send(
                    client,
                    .error(
                        code: "invalid_field",
                        message: "message \(change.target) was \(removed.rawValue): nothing is left to change",
                        ref: ref, field: "seq"))
            }
            let own = original.member == member.key
            switch change.action {
            case .edit where !own:
                return self.send(
                    client, .error(code: "forbidden", message: "only its author may edit a message", ref: ref))
            case .delete where !own && member.role != .host:
                return self.send(
                    client,
                    .error(code: "forbidden", message: "only its author or a host may delete a message", ref: ref))
            default: break
            }
            // A redaction or a deletion replaces the original's body with a tombstone in its own commit
            // (its edits' texts go too), so history, exports and playback never show the text again.
            let replaces: Replacement?
            switch change.action {
            case .redact:
                replaces = Replacement(
                    seq: change.target, type: "chat", ts: original.event.ts, body: EventBody.tombstone(of: body))
            case .delete:
                replaces = Replacement(
                    seq: change.target, type: "chat", ts: original.event.ts,
                    body: EventBody.deletedTombstone(of: body, by: own ? .author : .host), reason: .deleted)
            case .edit: replaces = nil
            }
            if let replaces { self.noteRemoved(change.target, replaces.reason) }
            let changeBody = EventBody.chatChange(
                change.action, id: change.id, from: member.fromJSON, target: change.target, text: change.text)
            self.persistAcked(
                client, type: change.action.rawValue, member: member, id: change.id, body: changeBody,
                what: change.action.rawValue, replaces: replaces,
                committed: { [weak self] c in
                    guard let self else { return }
                    switch change.action {
                    case .edit: self.rememberEdit(of: change.target, seq: c.seq, ts: c.ts, body: changeBody)
                    case .redact: self.removeEdits(of: change.target, .redacted)
                    case .delete: self.removeEdits(of: change.target, .deleted)
                    }
                },
                failed: { [weak self] in
                    // Not stored: the message may be changed again.
                    if replaces != nil { self?.removedTargets.removeAll { $0.seq == change.target } }
                })
            if change.action == .redact {
                self.host?.record(
                    "chat_redacted", session: self, actor: member, target: String(change.target), details: change.text,
                    address: client.address)
            }
        }
    }
}

extension Session {
    /// An edit the resume window holds, remembered so that a redaction of its target can replace it.
    func rememberEdit(of target: Int, seq: Int, ts: Int64, body: [UInt8]) {
        editsByTarget[target, default: []].append((seq, ts, body))
        // Edits older than the window are the store's business only.
        if editsByTarget.count > 2 * max(window.count, 16), let first = window.firstSeq {
            editsByTarget = editsByTarget.compactMapValues { list in
                let kept = list.filter { $0.seq >= first }
                return kept.isEmpty ? nil : kept
            }
        }
    }

    /// A deletion or redaction of `target` is on its way to the store: later changes of it are refused
    /// (a failed commit takes it back).
    func noteRemoved(_ target: Int, _ reason: Replacement.Reason) {
        removedTargets.append((target, reason))
        if removedTargets.count > 1024 { removedTargets.removeFirst(removedTargets.count - 1024) }
    }

    /// After a redaction or deletion of `target` committed (the store cut its edits in the same
    /// transaction): the window's copies of the edits become tombstones too, and queued webhooks of
    /// them all are dropped.
    func removeEdits(of target: Int, _ reason: Replacement.Reason) {
        var seqs: Set<Int> = [target]
        for e in editsByTarget.removeValue(forKey: target) ?? [] {
            seqs.insert(e.seq)
            guard let t = EventBody.editTombstone(e.body, reason) else { continue }
            window.replace(
                seq: e.seq, with: ServerMessage.durable(type: "chat_edit", seq: e.seq, ts: e.ts, body: t).frame)
        }
        host?.redacted(self, seqs: seqs)
    }
}
