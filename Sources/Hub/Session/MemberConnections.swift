/// A member's connections (its tabs). Almost every member has one: it is held inline, and only a second
/// one makes an array (an array of one was a 64-byte block per joined member).
/// Invariant: `more` is empty while `one` is nil.
public struct MemberConnections: RandomAccessCollection {
    private var one: HubClient?
    private var more: [HubClient] = []

    public init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { one == nil ? 0 : 1 + more.count }
    public subscript(position: Int) -> HubClient {
        guard position > 0 else { return one! }
        return more[position - 1]
    }

    /// Both slots, borrowed (for `forEachGuaranteed`).
    @inline(__always)
    func withSlots(_ body: (borrowing HubClient?, borrowing [HubClient]) -> Void) { body(one, more) }

    public mutating func append(_ client: HubClient) {
        if one == nil { one = client } else { more.append(client) }
    }

    public mutating func removeAll() {
        one = nil
        more = []
    }

    public mutating func removeAll(where drop: (HubClient) throws -> Bool) rethrows {
        guard let first = one else { return }
        if more.isEmpty {
            if try drop(first) { one = nil }
            return
        }
        let kept = try filter { try !drop($0) }
        one = kept.first
        more = kept.count > 1 ? Array(kept[1...]) : []
    }
}
