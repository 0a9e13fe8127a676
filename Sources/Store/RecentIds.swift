import Foundation
import Hub

/// A bounded memory of recent client ids (insertion order, oldest forgotten first), kept as 64-bit
/// hashes of member and id (about 60 bytes an id instead of ~250 with the strings). A failed batch
/// forgets the ids it added.
final class RecentIds {
    /// Each remembered id with the stamp of its slot in `order`: a slot whose stamp no longer matches
    /// (the id was forgotten, or remembered again later) evicts nothing when its turn comes.
    private var map: [UInt64: (committed: Committed, stamp: Int)] = [:]
    /// When the writer last added an id (uptime seconds).
    var lastWrite = ProcessInfo.processInfo.systemUptime
    var count: Int { map.count }
    private var order: [(key: UInt64, stamp: Int)] = []
    private var head = 0
    private var nextStamp = 0
    let capacity: Int
    init(capacity: Int) { self.capacity = capacity }

    static func key(member: String?, clientId: String) -> UInt64 {
        var h = Hasher()
        h.combine(member ?? "")
        h.combine(clientId)
        return UInt64(bitPattern: Int64(h.finalize()))
    }

    func lookup(_ key: UInt64) -> Committed? { map[key]?.committed }
    func forget(_ key: UInt64) { map[key] = nil }

    func remember(_ key: UInt64, _ c: Committed) {
        nextStamp += 1
        let slot = (key: key, stamp: nextStamp)
        if order.count < capacity {
            order.append(slot)
        } else {
            let old = order[head]
            if map[old.key]?.stamp == old.stamp { map[old.key] = nil }
            order[head] = slot
            head = (head + 1) % capacity
        }
        map[key] = (c, nextStamp)
    }
}
