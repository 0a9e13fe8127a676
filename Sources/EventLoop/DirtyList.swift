/// The sockets with output to flush this iteration, held without reference counting: appending one is a
/// store, and the pass ends without a release per socket. (A `[Socket]` cost a retain on append, the
/// array's uniqueness and capacity check, and a release through the array's destroy witness at the end:
/// ~95 instructions per recipient at fixed load by callgrind, about 8% of the hub's user space per message.)
///
/// What keeps each socket alive until the pass ends: a socket that is in its loop's table of streams is
/// held by the table; one that is not (never started, started unlisted, or closed or handed off since it
/// was marked) is held by `pinned` (`Socket.markDirty`, `Socket.close`, `Socket.handOff` put it there); so
/// is one that leaves the table while the pass runs (its own flush may close it: a peer gone, a cut-off).
/// The loop thread alone touches it.
struct DirtyList {
    private var base: UnsafeMutablePointer<Unmanaged<Socket>>
    private var capacity: Int
    private(set) var count = 0
    /// Strong references to marked sockets the stream table does not hold, until the pass ends.
    var pinned: [Socket] = []

    init() {
        capacity = 64
        base = .allocate(capacity: capacity)
    }

    /// Frees the storage (the loop's deinit; the list is not used after).
    func deallocate() { base.deallocate() }

    @inline(__always)
    mutating func append(_ socket: Socket) {
        if count == capacity { grow() }
        (base + count).initialize(to: Unmanaged.passUnretained(socket))
        count += 1
    }

    private mutating func grow() {
        let bigger = UnsafeMutablePointer<Unmanaged<Socket>>.allocate(capacity: capacity * 2)
        bigger.moveInitialize(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity *= 2
    }

    @inline(__always)
    subscript(i: Int) -> Unmanaged<Socket> { base[i] }

    /// Forgets every entry (the pass is over) and hands back the pins, for the caller to drop once its
    /// access to the list has ended (a socket's deinit may then reach the loop's list again).
    @inline(__always)
    mutating func removeAll() -> [Socket] {
        count = 0
        if pinned.isEmpty { return [] }
        var dropped: [Socket] = []
        swap(&dropped, &pinned)
        return dropped
    }
}
