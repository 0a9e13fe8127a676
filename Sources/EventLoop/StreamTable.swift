/// A loop's open streams by descriptor: a slot per descriptor number (descriptors are small and dense,
/// so this is 8 bytes a stream where a dictionary took about 50, and no rehash as connections arrive).
public struct StreamTable {
    private var slots: [Socket?] = []
    public private(set) var count = 0

    public var isEmpty: Bool { count == 0 }

    public subscript(fd: Int32) -> Socket? {
        get { fd >= 0 && Int(fd) < slots.count ? slots[Int(fd)] : nil }
        set {
            let i = Int(fd)
            guard i >= 0 else { return }
            if i >= slots.count {
                guard newValue != nil else { return }
                slots.append(contentsOf: repeatElement(nil, count: max(i + 1, slots.count * 3 / 2) - slots.count))
            }
            if slots[i] == nil && newValue != nil {
                count += 1
            } else if slots[i] != nil && newValue == nil {
                count -= 1
            }
            slots[i] = newValue
        }
    }

    /// The open streams (in descriptor order).
    public var values: [Socket] { slots.compactMap { $0 } }
}
