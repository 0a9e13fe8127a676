/// The member list a `joined` message carries.
extension Session {
    /// Every announced member's presence JSON, then the members other nodes hold, in one array made at
    /// its final size (a filter, two maps and a concatenation made and dropped four growing arrays per
    /// `joined`, while the join's commit had other connections' objects allocated around them).
    func presenceSnapshot() -> [[UInt8]] {
        var out: [[UInt8]] = []
        out.reserveCapacity(members.count + remoteMembers.count)
        for m in members where m.announced { out.append(m.json) }
        for r in remoteMembers { out.append(r.json) }
        return out
    }
}
