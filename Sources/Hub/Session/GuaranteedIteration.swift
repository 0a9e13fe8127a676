/// Iteration of the fan-out's members and connections by guaranteed (unretained) references: the hot
/// broadcast loop reads each element in place instead of copying it out (a copy is a retain and a
/// release per element). The caller must keep the collection unchanged while `body` runs.
extension Array where Element == Member {
    @inline(__always)
    func forEachGuaranteed(_ body: (Member) -> Void) {
        withUnsafeBufferPointer { all in
            for i in 0..<all.count {
                Unmanaged.passUnretained(all[i])._withUnsafeGuaranteedRef { body($0) }
            }
        }
    }
}

extension MemberConnections {
    /// Calls `body` with each connection, read in place. (`mutating` though it changes nothing: reached
    /// through the member as an in-place access, the slots are read where they are instead of the struct
    /// being copied out of the member first, about 67 instructions less per delivery by callgrind. The
    /// first slot is passed borrowed, unwrapped where it is: binding it with `guard let` copied it, a
    /// retain and a release of the connection per delivery. `body` must not touch the member's
    /// `connections`.)
    @inline(__always)
    mutating func forEachGuaranteed(_ body: (borrowing HubClient) -> Void) {
        withSlots { one, more in
            guard one != nil else { return }
            body(one!)
            if more.isEmpty { return }
            more.withUnsafeBufferPointer { rest in
                for i in 0..<rest.count { body(rest[i]) }
            }
        }
    }
}

extension Member {
    /// Calls `body` with each of the member's connections, read in place in the member (not a copy of its
    /// `connections`, which retained both slots). `body` must not read or change the member's connections.
    @inline(__always)
    func forEachConnectionGuaranteed(_ body: (borrowing HubClient) -> Void) {
        connections.forEachGuaranteed(body)
    }
}
