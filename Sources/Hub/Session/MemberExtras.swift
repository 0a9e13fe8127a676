/// The state of a member that an idle one never has (issue 30: memory per member): a cursor, a
/// location, typing, a reconnect grace, the `from` of its chat messages, a colour not in the palette. One
/// object, made on first use and given back when nothing in it differs from a fresh member's, so a member
/// that joined and sits idle carries only a pointer for it.
final class MemberExtras {
    var cursor: [UInt8]?
    var location: [UInt8]?
    var cursorRecordedAt = -Double.infinity
    var typingUntil: Double?
    var graceDeadline: Double?
    var cursorDirty = false
    var cursorUnsampled = false
    var fromJSON: [UInt8]?
    /// A colour not in the palette (`Member.color`; the cluster's mark while a colour is being agreed).
    var otherColor: String?

    /// Nothing here differs from a fresh member's: the object can go.
    var isUnused: Bool {
        cursor == nil && location == nil && cursorRecordedAt == -Double.infinity && typingUntil == nil
            && graceDeadline == nil && !cursorDirty && !cursorUnsampled && fromJSON == nil
            && otherColor == nil
    }
}

extension Member {
    /// The side object, made on first use.
    private var extras: MemberExtras {
        if let e = rare { return e }
        let e = MemberExtras()
        rare = e
        return e
    }

    /// Gives the side object back once every field is at its default again.
    @inline(__always)
    private func dropIfUnused() { if let e = rare, e.isUnused { rare = nil } }

    /// `{id, name, color}`: the `from` of the member's chat messages (built on the first, then kept).
    var fromJSON: [UInt8] {
        get {
            if let bytes = rare?.fromJSON { return bytes }
            var w = JSONWriter(capacity: 64)
            w.beginObject(); w.field("id", id); w.field("name", name); w.field("color", color); w.endObject()
            extras.fromJSON = w.bytes
            return w.bytes
        }
        set { extras.fromJSON = newValue }
    }
    /// The member's colour: a palette entry (an index into `Session.palette`), or another colour kept in
    /// the side object.
    public internal(set) var color: String {
        get {
            let palette = Session.palette
            return Int(colorIndex) < palette.count ? palette[Int(colorIndex)] : rare?.otherColor ?? ""
        }
        set {
            if let i = Session.palette.firstIndex(of: newValue), i < Int(UInt8.max) {
                colorIndex = UInt8(i)
                if rare?.otherColor != nil { rare?.otherColor = nil; dropIfUnused() }
            } else {
                colorIndex = .max
                extras.otherColor = newValue
            }
        }
    }
    var cursor: [UInt8]? {
        get { rare?.cursor }
        set {
            if newValue == nil { rare?.cursor = newValue; dropIfUnused() } else { extras.cursor = newValue }
        }
    }
    /// Presence state: where the member is (JSON).
    var location: [UInt8]? {
        get { rare?.location }
        set {
            if newValue == nil { rare?.location = newValue; dropIfUnused() } else { extras.location = newValue }
        }
    }
    /// When this member's cursor was last sampled into the transcript (`--record-cursors`), and whether
    /// it moved since without being sampled (the interval had not passed): `tick` stores that position.
    var cursorRecordedAt: Double {
        get { rare?.cursorRecordedAt ?? -Double.infinity }
        set {
            if newValue == -Double.infinity {
                rare?.cursorRecordedAt = newValue; dropIfUnused()
            } else {
                extras.cursorRecordedAt = newValue
            }
        }
    }
    var typingUntil: Double? {
        get { rare?.typingUntil }
        set {
            if newValue == nil { rare?.typingUntil = newValue; dropIfUnused() } else { extras.typingUntil = newValue }
        }
    }
    var cursorDirty: Bool {
        get { rare?.cursorDirty ?? false }
        set {
            if !newValue { rare?.cursorDirty = newValue; dropIfUnused() } else { extras.cursorDirty = newValue }
        }
    }
    var cursorUnsampled: Bool {
        get { rare?.cursorUnsampled ?? false }
        set {
            if !newValue { rare?.cursorUnsampled = newValue; dropIfUnused() } else { extras.cursorUnsampled = newValue }
        }
    }
    /// A member without connections is kept until then (the reconnect grace).
    var graceDeadline: Double? {
        get { rare?.graceDeadline }
        set {
            if newValue == nil {
                rare?.graceDeadline = newValue; dropIfUnused()
            } else {
                extras.graceDeadline = newValue
            }
        }
    }
}
