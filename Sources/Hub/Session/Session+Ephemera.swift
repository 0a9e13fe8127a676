import WebSocket

/// Cursors and typing indicators: state without a seq, never stored in the transcript (cursor samples
/// for playback aside), coalesced or dropped for clients that are behind.
extension Session {
    /// A member's cursor moved: kept as the latest position, flushed for the whole session at most
    /// ~60 times a second (`SessionHost.cursorsPending`, then `flushCursors`).
    func moveCursor(_ member: Member, _ body: [UInt8]) {
        guard member.announced else { return }
        member.cursor = body
        if !member.cursorDirty {
            member.cursorDirty = true
            if !hasDirtyCursors { hasDirtyCursors = true; host?.cursorsPending(self) }
        }
    }

    /// Sends the cursors that moved since the last flush, one message for the whole session.
    public func flushCursors() {
        hasDirtyCursors = false
        var updates: [[UInt8]] = []
        for m in members where m.cursorDirty {
            m.cursorDirty = false
            guard m.cursor != nil else { continue }
            updates.append(cursorUpdate(m))
            m.cursorUnsampled = policy.cursorSampleInterval != nil
        }
        if !updates.isEmpty {
            broadcast(ServerMessage.cursors(updates).frame, .ephemeral(.cursor, key: nil), except: nil)
        }
        sampleCursors()
    }

    /// `{"id":"<member>",<cursor members>}`.
    private func cursorUpdate(_ m: Member) -> [UInt8] {
        var u: [UInt8] = Array("{\"id\":\"".utf8) + Array(m.id.utf8) + Array("\",".utf8)
        u += m.cursor ?? []
        u.append(UInt8(ascii: "}"))
        return u
    }

    /// Stores (for playback) the cursors that moved since their last sample, for members whose last
    /// sample is at least the interval old. Called after each flush and from `tick`, so a cursor that
    /// stops moving within the interval still gets its final position stored.
    func sampleCursors() {
        guard let interval = policy.cursorSampleInterval else { return }
        let now = clock()
        var sample: JSONWriter?
        for m in members where m.cursorUnsampled && now - m.cursorRecordedAt >= interval {
            m.cursorUnsampled = false
            m.cursorRecordedAt = now
            if sample == nil { sample = JSONWriter(capacity: 128); sample!.beginArray() }
            sample!.rawElement(cursorUpdate(m))
        }
        if var sample {
            sample.endArray()
            store.recordCursors(session: code, ts: wallClockMillis(), updates: sample.bytes)
        }
    }

    /// `typing {state}`: a start expires after `policy.typingTimeout` unless refreshed.
    func setTyping(_ member: Member, _ start: Bool) {
        guard member.announced else { return }
        let wasTyping = member.typingUntil != nil
        member.typingUntil = start ? clock() + policy.typingTimeout : nil
        if start != wasTyping {
            broadcast(
                ServerMessage.typing(member: member.id, state: start ? .start : .stop).frame,
                .ephemeral(.typing, key: "typing:\(member.id)"), except: member)
        }
    }

    /// A member who was typing leaves: the others see the stop.
    func stopTyping(_ member: Member) {
        guard member.typingUntil != nil else { return }
        member.typingUntil = nil
        broadcast(
            ServerMessage.typing(member: member.id, state: .stop).frame, .ephemeral(.typing, key: nil), except: member)
    }

    func expireTyping(now: Double) {
        for m in members {
            if let until = m.typingUntil, until <= now { stopTyping(m) }
        }
    }
}
