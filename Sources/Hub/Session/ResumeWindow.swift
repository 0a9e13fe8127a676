import WebSocket

/// The resume window: the last committed frames, bounded by count and by bytes (the oldest go first;
/// the newest one always stays). A client resuming from before its first seq gets a `reset`.
///
/// The frames are copied into one byte buffer per window, not kept as the broadcast's chunks: every
/// session holds its last events for as long as it lives, mostly idle, and a chunk per event (an object,
/// a separate block for its bytes, two allocator headers) cost ~80 B more per event than its bytes, one
/// event per member at least (its join). A resume (rare) gets fresh chunks of the frames it misses.
public struct ResumeWindow {
    /// Each frame's seq and where its bytes end in `storage` (an offset counted from the window's start,
    /// `dropped` included: evicting a frame moves no offset). Oldest first from `head`.
    private var entries: [(seq: Int, end: Int)] = []
    private var head = 0
    /// The frames back to back, each as a record (`WindowRecord`); its first `dead` bytes belong to evicted
    /// frames.
    private var storage: [UInt8] = []
    private var dead = 0
    /// Bytes removed from the front of `storage` so far (the offset of `storage[0]`).
    private var dropped = 0
    /// Where `entries[0]`'s bytes start (the end of the last entry removed from `entries`).
    private var origin = 0
    public private(set) var bytes = 0
    /// While the window sits idle: `storage` raw-deflated (`pack`), `storage` itself empty. Any change
    /// inflates it first; a read inflates a copy.
    private var packed: [UInt8]?
    /// `packIfIdle` looks since the last append or change.
    private var quietLooks: UInt8 = 0
    public let maxCount: Int
    public let maxBytes: Int
    public init(maxCount: Int, maxBytes: Int) { self.maxCount = maxCount; self.maxBytes = maxBytes }

    public var count: Int { entries.count - head }
    /// The oldest and newest seq held (nil: empty).
    public var firstSeq: Int? { head < entries.count ? entries[head].seq : nil }
    public var lastSeq: Int? { head < entries.count ? entries[entries.count - 1].seq : nil }
    /// The oldest and newest frame (a fresh chunk: use `firstSeq` / `lastSeq` for the seq alone).
    public var first: (seq: Int, frame: Chunk)? { head < entries.count ? item(head) : nil }
    public var last: (seq: Int, frame: Chunk)? { head < entries.count ? item(entries.count - 1) : nil }

    /// Where frame `i`'s bytes lie in `storage`.
    private func range(_ i: Int) -> Range<Int> {
        let start = i == 0 ? origin : entries[i - 1].end
        return (start - dropped)..<(entries[i].end - dropped)
    }

    private func item(_ i: Int) -> (seq: Int, frame: Chunk) {
        let r = range(i)
        let frame = withStorage { WindowRecord.frame(UnsafeRawBufferPointer(rebasing: $0[r])) }
        return (entries[i].seq, frame)
    }

    /// The length of the frame record `i` holds (`storage` unpacked).
    private func frameLength(_ i: Int) -> Int {
        let r = range(i)
        return storage.withUnsafeBytes { WindowRecord.frameLength(UnsafeRawBufferPointer(rebasing: $0[r])) }
    }

    /// `storage`'s bytes (inflated into a copy while packed).
    private func withStorage<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let packed, let bytes = Self.inflate(packed, count: storageCount) {
            return bytes.withUnsafeBytes(body)
        }
        return storage.withUnsafeBytes(body)
    }

    /// What `storage.count` is (also while packed): the newest frame's end.
    private var storageCount: Int { entries.last.map { $0.end - dropped } ?? 0 }

    private static func inflate(_ packed: [UInt8], count: Int) -> [UInt8]? {
        guard let inflater = Inflater(windowBits: 15, noContextTakeover: true) else { return nil }
        let result = packed.withUnsafeBytes { inflater.inflate($0, limit: count) }
        guard case .ok(let bytes) = result, bytes.count == count else { return nil }
        return bytes
    }

    /// Back from `pack`: the bytes inflated into `storage` again. (Should that ever fail, the window
    /// forgets its frames: resumes are then served from the store, which holds every event.)
    private mutating func unpack() {
        guard let p = packed else { return }
        packed = nil
        if let raw = Self.inflate(p, count: storageCount) {
            storage = raw
        } else {
            empty()
        }
    }

    /// No frames, no storage.
    private mutating func empty() {
        entries = []
        head = 0
        storage = []
        dropped = 0
        origin = 0
        dead = 0
        bytes = 0
    }

    /// Deflates the frames if nothing changed for the last `looks` calls (called every second: a window
    /// is packed after `looks` to `looks + 1` quiet seconds, so a session with events now and then does
    /// not pack and unpack in turn) and they are at most `limit` bytes (a pack and the next event's unpack
    /// stay cheap). A session that sits idle keeps its last events in a third to a fifth of the bytes
    /// (its members' joins, one each, are much alike). Returns the bytes given back.
    @discardableResult
    public mutating func packIfIdle(_ deflater: Deflater, looks: Int = 5, limit: Int = 64 * 1024) -> Int {
        guard packed == nil else { return 0 }
        if quietLooks < looks {
            quietLooks += 1
            return 0
        }
        compact()
        guard storage.count >= 256 && storage.count <= limit else { return 0 }
        let z = storage.withUnsafeBytes { deflater.deflate($0) }
        guard z.count < storage.count - storage.count / 4 else { return 0 }
        let saved = storage.capacity - z.count
        // The frames' buffer goes first: the exact copy (the deflater's array has slack) may then take its
        // place in the heap rather than a fresh page, leaving no hole among the members' objects.
        storage = []
        packed = z.withUnsafeBytes { [UInt8]($0) }
        return saved
    }

    /// Packed bytes (0: not packed), for tests and metrics.
    public var packedBytes: Int { packed?.count ?? 0 }
    /// The frames' buffer's and the entries' capacities (tests: how the window grows).
    var capacities: (bytes: Int, entries: Int) { (storage.capacity, entries.capacity) }

    /// Grows `storage` when it is full: by one more frame of that size while small, then by a quarter
    /// (`LongLivedCapacity.windowBytes`). A window mostly sits idle, and slack is kept for as long.
    private mutating func reserve(_ n: Int) {
        let needed = storage.count + n
        guard needed > storage.capacity else { return }
        storage.reserveCapacity(LongLivedCapacity.windowBytes(holding: storage.count, adding: n))
    }

    /// Makes room for a record of `size` bytes (compacting or growing `storage`), then has `write` append it.
    private mutating func store(size: Int, _ write: (inout [UInt8]) -> Void) {
        if dead > 0 && storage.count + size > storage.capacity { compact() }
        reserve(size)
        write(&storage)
    }

    public mutating func append(_ e: (seq: Int, frame: Chunk)) {
        guard maxCount > 0 else { return }
        unpack()
        quietLooks = 0
        let frame = e.frame.bytes
        // Held as a record (`WindowRecord`: a join's frame as what differs from a template); `bytes` and
        // the limits count the frames as sent.
        if let start = WindowRecord.presenceStart(frame) {
            // Written on the stack first: the record's length decides how the buffer grows.
            let held = withUnsafeTemporaryAllocation(byteCount: frame.count, alignment: 1) { out -> Bool in
                guard let n = WindowRecord.encodePresence(frame, start, out), let base = out.baseAddress else {
                    return false
                }
                let record = UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: n)
                store(size: n) { $0.append(contentsOf: record) }
                return true
            }
            if !held { store(size: WindowRecord.plainSize(frame)) { WindowRecord.appendPlain(frame, to: &$0) } }
        } else {
            store(size: WindowRecord.plainSize(frame)) { WindowRecord.appendPlain(frame, to: &$0) }
        }
        if entries.count == entries.capacity {
            entries.reserveCapacity(
                LongLivedCapacity.next(
                    count: entries.count, first: LongLivedCapacity.firstWindowEntries, limit: maxCount))
        }
        entries.append((e.seq, dropped + storage.count))
        bytes += frame.count
        while count > 1 && (count > maxCount || bytes > maxBytes) { evictOldest() }
        if dead >= 4096 && dead * 2 >= storage.count { compact() }
        if head >= 64 && head * 2 >= entries.count {
            // Entries before `head` are gone: their last end is where the first kept frame starts.
            origin = entries[head - 1].end
            entries.removeFirst(head)
            head = 0
        }
    }

    private mutating func evictOldest() {
        let r = range(head)
        bytes -= frameLength(head)
        dead = r.upperBound
        head += 1
    }

    /// Gives back the bytes of evicted frames.
    private mutating func compact() {
        guard dead > 0 else { return }
        storage.removeFirst(dead)
        dropped += dead
        dead = 0
    }

    /// Replaces the frame of `seq` if the window holds it (a redaction).
    public mutating func replace(seq: Int, with frame: Chunk) {
        guard let first = firstSeq, seq >= first else { return }
        unpack()
        quietLooks = 0
        for i in head..<entries.count where entries[i].seq == seq {
            let r = range(i)
            let old = frameLength(i)
            let record = WindowRecord.record(frame.bytes)
            let delta = record.count - r.count
            storage.replaceSubrange(r, with: record)
            for j in i..<entries.count { entries[j].end += delta }
            bytes += frame.count - old
            return
        }
    }

    /// Forgets every frame up to `seq` (resumes from before it are then read from the store).
    public mutating func dropThrough(_ seq: Int) {
        unpack()
        while head < entries.count && entries[head].seq <= seq { evictOldest() }
        // Nothing left: give the storage back.
        if head == entries.count { empty() }
    }

    /// Oldest first (each frame a fresh chunk).
    public func forEach(_ body: ((seq: Int, frame: Chunk)) -> Void) {
        withStorage { bytes in
            for i in head..<entries.count {
                body((entries[i].seq, WindowRecord.frame(UnsafeRawBufferPointer(rebasing: bytes[range(i)]))))
            }
        }
    }
}

extension ResumeWindow {
    /// The frames a client that has everything up to `from` is missing, through `last` (the stream's
    /// last seq): nil when the window no longer reaches back that far (the client gets a snapshot or
    /// a reset), empty when it has everything. `from` comes from the wire: compared, never added to.
    public func missing(after from: Int, through last: Int) -> [Chunk]? {
        if from >= last { return [] }
        guard let first = firstSeq, from >= first - 1 else { return nil }
        return withStorage { bytes in
            var out: [Chunk] = []
            for i in head..<entries.count where entries[i].seq > from && entries[i].seq <= last {
                out.append(WindowRecord.frame(UnsafeRawBufferPointer(rebasing: bytes[range(i)])))
            }
            return out
        }
    }
}
