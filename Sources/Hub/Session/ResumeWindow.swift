import WebSocket

/// The resume window: the last committed frames, bounded by count and by bytes (the oldest go first;
/// the newest one always stays). A client resuming from before its first seq gets a `reset`.
public struct ResumeWindow {
    private var items: [(seq: Int, frame: Chunk)] = []
    private var head = 0
    public private(set) var bytes = 0
    public let maxCount: Int
    public let maxBytes: Int
    public init(maxCount: Int, maxBytes: Int) { self.maxCount = maxCount; self.maxBytes = maxBytes }

    public var count: Int { items.count - head }
    public var first: (seq: Int, frame: Chunk)? { head < items.count ? items[head] : nil }
    public var last: (seq: Int, frame: Chunk)? { head < items.count ? items[items.count - 1] : nil }

    public mutating func append(_ e: (seq: Int, frame: Chunk)) {
        guard maxCount > 0 else { return }
        items.append(e)
        bytes += e.frame.count
        while count > 1 && (count > maxCount || bytes > maxBytes) {
            bytes -= items[head].frame.count
            head += 1
        }
        if head >= 64 && head * 2 >= items.count { items.removeFirst(head); head = 0 }
    }

    /// Replaces the frame of `seq` if the window holds it (a redaction).
    public mutating func replace(seq: Int, with frame: Chunk) {
        guard let first = first?.seq, seq >= first else { return }
        for i in head..<items.count where items[i].seq == seq {
            bytes += frame.count - items[i].frame.count
            items[i].frame = frame
            return
        }
    }

    /// Forgets every frame up to `seq` (resumes from before it are then read from the store).
    public mutating func dropThrough(_ seq: Int) {
        while head < items.count && items[head].seq <= seq {
            bytes -= items[head].frame.count
            head += 1
        }
    }

    /// Oldest first.
    public func forEach(_ body: ((seq: Int, frame: Chunk)) -> Void) {
        for i in head..<items.count { body(items[i]) }
    }
}

extension ResumeWindow {
    /// The frames a client that has everything up to `from` is missing, through `last` (the stream's
    /// last seq): nil when the window no longer reaches back that far (the client gets a snapshot or
    /// a reset), empty when it has everything. `from` comes from the wire: compared, never added to.
    public func missing(after from: Int, through last: Int) -> [Chunk]? {
        if from >= last { return [] }
        guard let first = self.first?.seq, from >= first - 1 else { return nil }
        var out: [Chunk] = []
        forEach { e in if e.seq > from && e.seq <= last { out.append(e.frame) } }
        return out
    }
}
