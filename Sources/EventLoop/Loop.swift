import CEV
import Bytes
#if canImport(Glibc)
    import Glibc
#endif

/// One libev event loop, driven by one thread. Everything attached to a loop (streams, timers,
/// sessions) is touched only by that thread; other threads reach it through `post`, a locked queue
/// drained by an `ev_async` watcher (libev's async does not queue, so the callback drains everything).
///
/// Output is flushed once per loop iteration: streams that queued bytes register in `dirty`, and an
/// `ev_prepare` watcher (run just before the loop blocks) writes them all (`Socket.sendQueued`).
public final class Loop {
    public let raw: OpaquePointer
    public let index: Int
    /// Shared receive buffer: a stream reads into it and keeps only what it could not consume, so an
    /// idle connection owns no read buffer at all.
    let readBuffer: UnsafeMutableRawBufferPointer
    private let prepare: UnsafeMutablePointer<ev_prepare>
    private let async: UnsafeMutablePointer<ev_async>
    private var mutex = pthread_mutex_t()
    private var inbox: [() -> Void] = []
    var dirty = DirtyList()
    /// The flush pass is running (`flushDirty`): a socket leaving the stream table now is pinned.
    var isFlushing = false
    /// Open streams by descriptor (for shutdown and metrics).
    public internal(set) var streams = StreamTable()
    /// Bytes written by all streams of this loop.
    public let bytesWritten = Counter()
    /// Work per iteration: from waking up (libev's `ev_now`) to the flush before it blocks again.
    public let iterationTime = BucketHistogram(bounds: BucketHistogram.iterationBounds)
    /// For sockets that measure it (`Socket.measuresDelivery`): from the iteration in which output was
    /// queued (the one that received or committed its message) until all of it was written.
    public let deliveryLatency = BucketHistogram(bounds: BucketHistogram.latencyBounds)
    /// The two histograms' hot-path views (no reference counting per observation).
    let deliveryShard: BucketHistogram.Shard
    private let iterationShard: BucketHistogram.Shard
    /// The clock read at the last flush (one read per iteration).
    var flushClock = 0.0
    /// Where sockets over their output limit write what is thrown away (`Socket.reserve`): one per loop.
    var discard: Chunk?
    /// TLS sessions' record buffers, freed once a session is idle (`TLSBuffers`).
    lazy var tlsBuffers = TLSBuffers(loop: self)
    /// The sockets' timers (one wheel per loop, not a libev timer per socket).
    lazy var socketTimers = SocketTimers(loop: self)

    public static let readBufferSize = 256 * 1024

    public init(index: Int, useDefaultLoop: Bool = false) {
        self.index = index
        deliveryShard = deliveryLatency.shard
        iterationShard = iterationTime.shard
        raw = useDefaultLoop ? chub_default_loop() : ev_loop_new(UInt32(EVFLAG_AUTO))!
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
        prepare = .allocate(capacity: 1)
        async = .allocate(capacity: 1)
        pthread_mutex_init(&mutex, nil)
        let me = Unmanaged.passUnretained(self).toOpaque()
        chub_prepare_init(prepare) { _, w, _ in
            // Borrowed: the loop outlives its watchers (a retain and a release per iteration spared).
            Unmanaged<Loop>.fromOpaque(w!.pointee.data)._withUnsafeGuaranteedRef { $0.flushDirty() }
        }
        prepare.pointee.data = me
        ev_prepare_start(raw, prepare)
        chub_async_init(async) { _, w, _ in
            Unmanaged<Loop>.fromOpaque(w!.pointee.data).takeUnretainedValue().drainInbox()
        }
        async.pointee.data = me
        ev_async_start(raw, async)
        // The prepare and async watchers must not keep the loop alive on their own.
        ev_unref(raw)
        ev_unref(raw)
    }

    deinit {
        readBuffer.deallocate()
        dirty.deallocate()
        prepare.deallocate()
        async.deallocate()
    }

    /// Runs until `stop()` (or until nothing is left to watch).
    public func run() { ev_run(raw, 0) }

    /// Runs one iteration without blocking (tests).
    public func runOnce(block: Bool = false) { ev_run(raw, block ? Int32(EVRUN_ONCE) : Int32(EVRUN_NOWAIT)) }

    public func stop() { ev_break(raw, Int32(EVBREAK_ALL)) }

    /// The loop's cached time (seconds, monotonic-ish as libev keeps it).
    @inline(__always) public var now: Double { ev_now(raw) }

    /// Runs `work` on this loop's thread. Safe to call from any thread.
    public func post(_ work: @escaping () -> Void) {
        pthread_mutex_lock(&mutex)
        inbox.append(work)
        pthread_mutex_unlock(&mutex)
        ev_async_send(raw, async)
    }

    private func drainInbox() {
        pthread_mutex_lock(&mutex)
        let work = inbox
        inbox.removeAll(keepingCapacity: true)
        pthread_mutex_unlock(&mutex)
        for w in work { w() }
    }

    /// Work to run once at the end of this iteration, before its output is flushed (batching what the
    /// iteration produced: a cluster node's relays).
    public func atEndOfIteration(_ work: @escaping () -> Void) { endOfIteration.append(work) }
    private var endOfIteration: [() -> Void] = []

    private func flushDirty() {
        if !endOfIteration.isEmpty {
            let work = endOfIteration
            endOfIteration.removeAll(keepingCapacity: true)
            for w in work { w() }
        }
        let t = ev_time()
        // The first flush follows set-up, not an iteration's work.
        if flushClock > 0 { iterationShard.observe(t - ev_now(raw)) }
        flushClock = t
        var i = 0
        // A socket closed during the pass (the one being flushed, or another that its flush closed) is
        // pinned until the pass ends: nothing else may hold it by then (`Socket.unlist`).
        isFlushing = true
        // flush() may queue more (a close frame after an error); new entries are flushed in this pass too.
        while i < dirty.count {
            // Unretained: every marked socket stays alive until the pass ends (`DirtyList`: the stream table
            // or the list's pins hold it; a socket that flush() queues again is appended, never removed).
            dirty[i]._withUnsafeGuaranteedRef { s in
                s.isDirty = false
                s.flush()
            }
            i += 1
        }
        isFlushing = false
        _ = dirty.removeAll()  // the pins are released once the access to `dirty` has ended
    }

    /// A repeating or one-shot timer owned by the caller.
    public final class Timer {
        private let w: UnsafeMutablePointer<ev_timer>
        private let loop: Loop
        private let action: () -> Void

        public init(loop: Loop, after: Double, repeat interval: Double = 0, _ action: @escaping () -> Void) {
            self.loop = loop
            self.action = action
            w = .allocate(capacity: 1)
            chub_timer_init(
                w,
                { _, w, _ in
                    Unmanaged<Timer>.fromOpaque(w!.pointee.data).takeUnretainedValue().action()
                }, after, interval)
            w.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            ev_timer_start(loop.raw, w)
        }

        /// Timers of housekeeping nature should not keep a loop running.
        public func unref() { ev_unref(loop.raw) }

        /// Stops the timer, clearing a pending (expired, not yet called back) state too.
        public func cancel() { ev_timer_stop(loop.raw, w) }

        deinit {
            cancel()
            w.deallocate()
        }
    }

    /// Watches a POSIX signal (only one loop may watch a given signal: the default loop).
    public final class Signal {
        private let w: UnsafeMutablePointer<ev_signal>
        private let loop: Loop
        private let action: () -> Void

        public init(loop: Loop, signal: Int32, _ action: @escaping () -> Void) {
            self.loop = loop
            self.action = action
            w = .allocate(capacity: 1)
            chub_signal_init(
                w,
                { _, w, _ in
                    Unmanaged<Signal>.fromOpaque(w!.pointee.data).takeUnretainedValue().action()
                }, signal)
            w.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            ev_signal_start(loop.raw, w)
            ev_unref(loop.raw)
        }

        deinit {
            ev_ref(loop.raw)
            ev_signal_stop(loop.raw, w)
            w.deallocate()
        }
    }
}

/// Ignore SIGPIPE: a write to a closed socket must come back as EPIPE, not kill the process.
public func ignoreSIGPIPE() { chub_ignore_sigpipe() }

/// The sockets' I/O watchers: one 48-byte slot per descriptor, in pages of 256 that never move (libev keeps
/// the addresses) and are never freed. A socket's watcher was a malloc of its own, a 64-byte block in every
/// open connection (issue 30: memory per member).
///
/// One table for the process, not one per loop: descriptor numbers are the process's, every loop accepts,
/// and a connection handed to its session's loop is made again there, so a table per loop came to hold a
/// slot for nearly every number on every loop (loops x 48 bytes per descriptor: more than the malloc it
/// replaced as soon as there are two). Sharing is safe because a descriptor is watched by one socket at a
/// time: a socket stops its watcher before it closes the descriptor or hands it off (`Socket.close`,
/// `Socket.handOff`), and the next socket with that number comes after, through the kernel (an `accept` or
/// `connect` that could only give the number out again once it was closed) or through the loop's post queue
/// (a handoff); a closed socket only ever stops its slot (`Socket.listen`). The lock is taken once per socket
/// made, never on the I/O path.
enum WatcherSlots {
    static let perPage = 256
    private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    nonisolated(unsafe) private static var pages: [UnsafeMutablePointer<ev_io>?] = []

    /// Descriptor `fd`'s slot (any thread).
    static func slot(fd: Int32) -> UnsafeMutablePointer<ev_io> {
        precondition(fd >= 0, "a socket's descriptor")
        let page = Int(fd) / perPage
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if page >= pages.count { pages.append(contentsOf: repeatElement(nil, count: page + 1 - pages.count)) }
        if let p = pages[page] { return p + Int(fd) % perPage }
        let p = UnsafeMutablePointer<ev_io>.allocate(capacity: perPage)
        p.initialize(repeating: ev_io(), count: perPage)
        pages[page] = p
        return p + Int(fd) % perPage
    }
}
