import Bytes

/// A socket's queued output: the oldest entry inline, the rest in an array that exists only while
/// more than one entry waits. An idle socket, or one that gets a message per loop iteration (the
/// usual fan-out), holds no buffer at all; the array's storage goes once the queue drains.
struct OutQueue: Sequence {
    struct Entry { let chunk: Chunk; var offset: Int; let owned: Bool }

    private var head: Entry?
    private var rest: [Entry] = []

    @inline(__always) var isEmpty: Bool { head == nil }
    @inline(__always) var count: Int { head == nil ? 0 : 1 + rest.count }
    @inline(__always) var first: Entry? { head }
    @inline(__always) var last: Entry? { rest.last ?? head }

    @inline(__always) subscript(i: Int) -> Entry {
        get { i == 0 ? head! : rest[i - 1] }
        set { if i == 0 { head = newValue } else { rest[i - 1] = newValue } }
    }

    @inline(__always) mutating func append(_ e: Entry) {
        if head == nil { head = e } else { rest.append(e) }
    }

    /// Drops the first `n` entries (1 ≤ n ≤ count).
    mutating func removeFirst(_ n: Int = 1) {
        if n >= count { return removeAll() }
        head = rest[n - 1]
        rest.removeFirst(n)
        if rest.isEmpty { rest = [] }
    }

    /// Empties the queue and gives back the array's storage.
    @inline(__always) mutating func removeAll() {
        head = nil
        if !rest.isEmpty || rest.capacity > 0 { rest = [] }
    }

    /// Keeps only the first entry.
    mutating func keepFirst() { rest = [] }

    struct Iterator: IteratorProtocol {
        let queue: OutQueue
        var i = 0
        mutating func next() -> Entry? {
            guard i < queue.count else { return nil }
            defer { i += 1 }
            return queue[i]
        }
    }
    func makeIterator() -> Iterator { Iterator(queue: self) }
}
