extension Member {
    /// The colour the cluster gave this member when its node announced it again and its old colour
    /// was another member's by then (`MemberScripts.reassert`): what it sends from now on says so.
    func recolor(_ newColor: String) {
        color = newColor
        var w = JSONWriter(capacity: 64)
        w.beginObject(); w.field("id", id); w.field("name", name); w.field("color", color); w.endObject()
        fromJSON = w.bytes
    }
}
