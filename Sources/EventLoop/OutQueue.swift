import Bytes

/// A socket's queued output: the two oldest entries inline, the rest in an array that exists only while
/// more than two entries wait. An idle socket holds no buffer at all, and one that gets a message or a
/// reply and a broadcast per loop iteration (fan-out, durable chat) never allocates one; the array's
/// storage goes once the queue drains.
struct OutQueue: Sequence {
    /// A queued chunk and how much of it is written. (The offset is stored in 32 bits, so an inline entry
    /// takes 16 bytes instead of 24; a chunk is at most a whole HTTP answer, far below 4 GiB.)
    struct Entry {
        let chunk: Chunk
        private var written: UInt32
        let owned: Bool
        @inline(__always) init(chunk: Chunk, offset: Int, owned: Bool) {
            self.chunk = chunk
            written = UInt32(offset)
            self.owned = owned
        }
        @inline(__always) var offset: Int {
            get { Int(written) }
            set { written = UInt32(newValue) }
        }
        /// Where the unwritten bytes start, and how many there are.
        @inline(__always) var unwritten: (base: UnsafeMutableRawPointer, count: Int) {
            (chunk.base + Int(written), chunk.count - Int(written))
        }
    }

    private var e0: Entry?
    private var e1: Entry?
    private var rest: [Entry] = []

    @inline(__always) var isEmpty: Bool { e0 == nil }
    @inline(__always) var count: Int { e0 == nil ? 0 : e1 == nil ? 1 : 2 + rest.count }
    @inline(__always) var first: Entry? { e0 }
    @inline(__always) var last: Entry? { rest.last ?? e1 ?? e0 }

    @inline(__always) subscript(i: Int) -> Entry {
        get { i == 0 ? e0! : i == 1 ? e1! : rest[i - 2] }
        set {
            if i == 0 { e0 = newValue } else if i == 1 { e1 = newValue } else { rest[i - 2] = newValue }
        }
    }

    /// Entry `i`'s unwritten bytes, read in place (copying the entry out would retain and release its chunk:
    /// the flush reads every queued entry).
    @inline(__always) func unwritten(_ i: Int) -> (base: UnsafeMutableRawPointer, count: Int) {
        i == 0 ? e0!.unwritten : i == 1 ? e1!.unwritten : rest[i - 2].unwritten
    }

    @inline(__always) mutating func append(_ e: Entry) {
        if e0 == nil { e0 = e } else if e1 == nil { e1 = e } else { rest.append(e) }
    }

    /// Drops the first `n` entries (1 ≤ n ≤ count).
    mutating func removeFirst(_ n: Int = 1) {
        let c = count
        if n >= c { return removeAll() }
        let new0 = self[n], new1: Entry? = n + 1 < c ? self[n + 1] : nil
        if !rest.isEmpty { rest.removeFirst(Swift.min(n, rest.count)) }
        if rest.isEmpty && rest.capacity > 0 { rest = [] }
        e0 = new0
        e1 = new1
    }

    /// Empties the queue and gives back the array's storage.
    @inline(__always) mutating func removeAll() {
        e0 = nil
        e1 = nil
        if rest.capacity > 0 { rest = [] }
    }

    /// Keeps only the first entry.
    mutating func keepFirst() {
        e1 = nil
        rest = []
    }

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
