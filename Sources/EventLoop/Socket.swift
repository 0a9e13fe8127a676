import CEV
import COpenSSL
import Bytes
#if canImport(Glibc)
    import Glibc
#endif

/// A non-blocking TCP connection on a `Loop`: reads into the loop's shared buffer, hands the bytes to
/// `received` (overridden by the protocol layer), and queues output that the loop flushes with `send`
/// or `sendmsg` once per iteration (`sendQueued`). Write interest is registered only while output is
/// pending.
///
/// Timeouts follow libev's "let the timer time out, then re-arm it as required" advice: activity only
/// stores a timestamp; when the single per-stream timer fires, `timerFired` decides whether anything
/// is actually due and when to look again. No timer is touched on the hot path.
open class Socket {
    public unowned(unsafe) let loop: Loop
    public let fd: Int32
    // (The flags share a word with `fd`: every open connection carries them.)
    var isDirty = false
    /// Delivery latency counts this socket's output (WebSocket connections, not HTTP responses).
    public var measuresDelivery = false
    public private(set) var isOverLimit = false
    public private(set) var isClosed = false
    /// After a close frame: write what is queued, shut down our side, drain the peer until EOF.
    public private(set) var isClosing = false
    var lingering = false
    /// State bits: the TLS layer needs the socket writable before it can go on reading (or vice versa);
    /// the TLS session holds record buffers (`TLSBuffers`); the socket is in the loop's table of streams.
    /// (Bits of one byte, not Bools: a flag more would grow every connection by a word.)
    private var bits: UInt8 = 0
    var tlsWantsWrite: Bool {
        get { bits & 1 != 0 }
        set { bits = newValue ? bits | 1 : bits & ~1 }
    }
    var tlsHoldsBuffers: Bool {
        get { bits & 2 != 0 }
        set { bits = newValue ? bits | 2 : bits & ~2 }
    }
    /// In the loop's table of streams (started, not closed or handed off): the table holds it, so the
    /// loop's `DirtyList` need not.
    var isListed: Bool {
        get { bits & 4 != 0 }
        set { bits = newValue ? bits | 4 : bits & ~4 }
    }
    /// What the socket's one I/O watcher listens for (`EV_READ`, `EV_WRITE`): reading until paused or
    /// closed, writing only while output is pending.
    private var ioEvents: UInt8 = 0
    /// Bytes drained while lingering: a peer that keeps sending after our close is not read forever.
    private var lingerDrained: Int32 = 0
    /// Bytes offered to the last `SSL_write` that asked to be retried (at most a record).
    private var tlsRetry: Int32 = 0
    private var lingerSeconds: Float = 2
    public let peer: String

    /// The I/O watcher (reading and writing: one watcher whose events change, `ioEvents`), the loop's slot
    /// for the descriptor (`WatcherSlots`: not a malloc block of its own per socket). The timer is
    /// the loop's wheel (`SocketTimers`): `timerAt` is the deadline, `timerTick` the wheel's tick the
    /// socket waits in (-1: none).
    let ioWatcher: UnsafeMutablePointer<ev_io>
    var timerAt = Double.infinity
    var timerTick = -1
    /// Reading is on (not paused, not closed).
    var isReading: Bool { ioEvents & UInt8(EV_READ) != 0 }
    /// Waiting for the socket to become writable (output pending that it did not take).
    var isWaitingToWrite: Bool { ioEvents & UInt8(EV_WRITE) != 0 }

    /// Changes what the I/O watcher listens for (libev needs it stopped to change its events). A closed
    /// socket only stops: its descriptor, and so its watcher's slot, may be another socket's by now.
    private func listen(_ events: UInt8) {
        guard events != ioEvents, events == 0 || !isClosed else { return }
        ioEvents = events
        ev_io_stop(loop.raw, ioWatcher)
        guard events != 0 else { return }
        chub_io_set(ioWatcher, fd, Int32(events))
        ev_io_start(loop.raw, ioWatcher)
    }
    /// Listens for writability too (output is pending that the socket did not take).
    func waitToWrite() { listen(ioEvents | UInt8(EV_WRITE)) }
    /// Stops listening for writability (the output drained).
    func stopWaitingToWrite() { if isWaitingToWrite { listen(ioEvents & ~UInt8(EV_WRITE)) } }

    typealias Entry = OutQueue.Entry
    var out = OutQueue()
    /// Bytes queued and not yet written (the backpressure measure).
    public internal(set) var outBytes = 0
    /// Loop time when the oldest unwritten output was queued (0: nothing queued).
    public var queuedSince = 0.0

    /// All output is written: one delivery-latency observation.
    @inline(__always) func drained() {
        if measuresDelivery && queuedSince > 0 {
            // `ev_now(loop.raw)`, not `loop.now`: the computed property costs a retain and a release here.
            loop.deliveryShard.observe(max(loop.flushClock, ev_now(loop.raw)) - queuedSince)
        }
        queuedSince = 0
    }
    /// Bytes received but not consumed yet (a partial frame header or HTTP head).
    private var pending: [UInt8] = []

    /// The hard cap on queued output (redis's `client-output-buffer-limit`): every byte queued for the
    /// peer counts, whatever produced it. Past it, further output is thrown away, and at the next flush
    /// the queue is dropped and `outputLimitExceeded` decides how the stream goes (once).
    public var outputLimit = Int.max
    /// The cap on received bytes held unconsumed (a request head and body, a frame header): past it
    /// `inputLimitExceeded` is called. (Overridden, not stored: it is the same for every connection of a
    /// server, and only read when input is held back.)
    open var inputLimit: Int { .max }

    /// Loop time of the last bytes received.
    public var lastActivity: Double
    /// The loop's cached time (`Loop.now`), read without retaining the loop: through the unowned(unsafe)
    /// reference, `loop.now` costs a retain and a release, and the message path reads it three times.
    @inline(__always) public var loopNow: Double { ev_now(loop.raw) }
    /// Loop time of the last bytes written.
    public internal(set) var lastWriteAt = 0.0
    static let maxLingerDrain: Int32 = 1 << 20
    /// The TLS session when the stream is encrypted (OpenSSL `SSL*`), nil for plain TCP.
    var ssl: OpaquePointer?
    /// Bytes offered to the last `SSL_write` that asked to be retried: a retry must offer the same bytes.
    var tlsRetryLength: Int {
        get { Int(tlsRetry) }
        set { tlsRetry = Int32(newValue) }
    }
    /// Owned chunks are at least this big, so many small frames share one allocation and one iovec.
    static let ownedChunkSize = 4096
    static let maxIOVecs = 64

    /// The libev callbacks below hold the stream for the duration of the call: a callback may close
    /// the stream, which drops the loop's reference, and the method must not outlive its object.
    public init(loop: Loop, fd: Int32, peer: String) {
        self.loop = loop
        self.fd = fd
        self.peer = peer
        lastActivity = loop.now
        ioWatcher = WatcherSlots.slot(fd: fd)
        // The socket that had this descriptor before was closed (or handed off), which stopped the watcher.
        precondition(chub_is_active(ioWatcher) == 0, "descriptor \(fd) still watched by another socket")
        let me = Unmanaged.passUnretained(self).toOpaque()
        chub_io_init(
            ioWatcher,
            { _, w, revents in
                let s = Unmanaged<Socket>.fromOpaque(w!.pointee.data).takeUnretainedValue()
                withExtendedLifetime(s) {
                    if revents & Int32(EV_READ) != 0 { s.handleReadable() }
                    if revents & Int32(EV_WRITE) != 0 && s.isWaitingToWrite { s.flush() }
                }
            }, fd, Int32(EV_READ))
        ioWatcher.pointee.data = me
    }

    deinit {
        if let ssl { SSL_free(ssl) }
        if timerTick >= 0 { loop.socketTimers.cancel(self) }
    }

    /// Makes the stream encrypted (before `start`): the TLS handshake runs as the first bytes move.
    public func enableTLS(_ context: TLSContext, serverName: String? = nil) {
        ssl = context.session(fd: fd, serverName: serverName)
        if !context.isServer { markDirty() }  // a client speaks first
    }

    public var isTLS: Bool { ssl != nil }

    /// Registers with the loop and starts reading. Call once, on the loop's thread.
    open func start() {
        guard !isClosed else { return }  // (a closed socket in the table would be listed but never unlisted)
        loop.streams[fd] = self
        isListed = true
        startReading()
    }

    /// Listens for input (`start` without joining the loop's table of streams: `startUnlisted`).
    func startReading() { listen(ioEvents | UInt8(EV_READ)) }

    // MARK: - Overridable protocol hooks

    /// New bytes. Return how many were consumed; the rest is offered again, with more, next time.
    open func received(_ bytes: UnsafeMutableRawBufferPointer) -> Int { bytes.count }
    /// The peer closed or the connection failed; `close()` follows.
    open func peerClosed() { close() }
    /// The stream is closed and removed from its loop (exactly once).
    open func didClose() {}
    /// All queued output was written (after having been pending): a good time to send what was held back.
    open func outputDrained() {}
    /// The stream's timer fired. Return seconds until it should fire again, or nil to leave it off.
    open func timerFired(now: Double) -> Double? { nil }
    /// Output passed `outputLimit`: the queue has been dropped. The default closes the stream.
    open func outputLimitExceeded() { close() }
    /// Unconsumed input passed `inputLimit`. The default closes the stream.
    open func inputLimitExceeded() { close() }

    /// Arms the stream's timer to fire in `seconds` (at most a wheel tick late: `SocketTimers`).
    public func setTimer(_ seconds: Double) {
        loop.socketTimers.set(self, deadline: loop.now + seconds)
    }

    func handleTimer() {
        // Closing after a flush: the timer set then is the deadline, whether or not the peer ever read
        // what was queued or answered our close.
        if isClosing && !lingering {
            // Still writing its last output: a peer that reads on gets more time, up to twice the linger
            // (a trickle of reads does not keep a closing socket); one that stopped reading gets none.
            let now = loop.now, idle = now - lastWriteAt
            let linger = Double(lingerSeconds)
            if idle < linger && now < closeDeadline {
                setTimer(min(linger - idle, closeDeadline - now)); return
            }
        }
        if lingering || isClosing { close(); return }
        let now = loop.now
        if let next = timerFired(now: now), !isClosed { setTimer(max(next, 0.001)) }
    }

    // MARK: - Reading

    /// Reads from the socket, or decrypts from the TLS session (`readTLS`).
    private func readSome(_ buf: UnsafeMutableRawBufferPointer) -> Int {
        guard let ssl else { return chub_recv(fd, buf.baseAddress, buf.count, 0) }
        return readTLS(ssl, buf)
    }

    func handleReadable() {
        let buf = loop.readBuffer
        let n = readSome(buf)
        // A TLS write may have been waiting for the handshake that this read advanced.
        if ssl != nil && !out.isEmpty && !isClosed { markDirty() }
        if n == -2 { return }  // TLS wants more bytes (or the socket writable) before there is data
        if n > 0 {
            lastActivity = loopNow
            if lingering {
                // Draining after our close, so the peer reads our last bytes rather than a reset; a
                // peer that keeps sending past a mebibyte is not worth waiting for.
                lingerDrained += Int32(clamping: n)
                if lingerDrained > Self.maxLingerDrain { close() }
                return
            }
            if pending.isEmpty {
                let used = received(UnsafeMutableRawBufferPointer(start: buf.baseAddress, count: n))
                if !isClosed && used < n {
                    pending.append(contentsOf: UnsafeRawBufferPointer(start: buf.baseAddress! + used, count: n - used))
                }
            } else if pending.count + n > inputLimit {
                pending = []
                inputLimitExceeded()
                return
            } else {
                pending.append(contentsOf: UnsafeRawBufferPointer(start: buf.baseAddress, count: n))
                // Process from a copy of the pending bytes in the shared buffer, so `received` can keep
                // pointers into it for the duration of the call.
                let total = pending.count
                if total <= buf.count {
                    pending.withUnsafeBytes { buf.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: total) }
                    let used = received(UnsafeMutableRawBufferPointer(start: buf.baseAddress, count: total))
                    if isClosed { return }
                    if used == total { pending = [] } else if used > 0 { pending.removeFirst(used) }
                } else {
                    var local = pending
                    pending = []
                    let used = local.withUnsafeMutableBytes { received($0) }
                    if isClosed { return }
                    if used > 0 { local.removeFirst(used) }
                    pending = local
                }
            }
        } else if n == 0 {
            if lingering { close() } else { peerClosed() }
        } else {
            let e = chub_errno()
            if ssl == nil && (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) { return }
            if lingering { close() } else { peerClosed() }
        }
    }

    /// Stops reading (used while a stream is handed to another loop or paused).
    public func pauseReading() { listen(ioEvents & ~UInt8(EV_READ)) }
    public func resumeReading() { if !isClosed { listen(ioEvents | UInt8(EV_READ)) } }

    /// Bytes received but not consumed, taken away (when handing the stream to another owner).
    public func takePending() -> [UInt8] { defer { pending = [] }; return pending }

    // MARK: - Writing

    /// Queues a shared chunk (a broadcast frame): no copy.
    @inline(__always)
    public func send(_ chunk: Chunk) {
        guard !isClosed, !isClosing, !isOverLimit, chunk.count > 0 else { return }
        out.append(Entry(chunk: chunk, offset: 0, owned: false))
        outBytes += chunk.count
        markDirty()
        if outBytes > outputLimit { isOverLimit = true }
    }

    /// Reserves `n` bytes in the stream's own output chunk and returns where to write them.
    @inline(__always)
    public func reserve(_ n: Int) -> UnsafeMutableRawPointer {
        if isOverLimit {
            // Thrown away: the caller writes into a scratch chunk that is never queued.
            // (One scratch chunk per loop: what is written there is never read.)
            if let d = loop.discard, d.capacity >= n { d.removeAll(); return d.extend(by: n) }
            let d = Chunk(capacity: max(n, Self.ownedChunkSize))
            loop.discard = d
            return d.extend(by: n)
        }
        defer { if outBytes > outputLimit { isOverLimit = true } }
        if let last = out.last, last.owned, last.chunk.free >= n {
            outBytes += n
            markDirty()
            return last.chunk.extend(by: n)
        }
        let chunk = Chunk(capacity: max(n, Self.ownedChunkSize))
        out.append(Entry(chunk: chunk, offset: 0, owned: true))
        outBytes += n
        markDirty()
        return chunk.extend(by: n)
    }

    /// Drops the queued output of a stream over its limit and lets the subclass decide how it goes.
    private func cutOff() {
        isOverLimit = false
        outputLimit = .max  // what follows is the goodbye (a close frame), which must get through
        dropQueuedOutput()
        if !isClosed { outputLimitExceeded() }
    }

    /// Lifts the output limit (a client being cut off gets its close frame through).
    public func liftOutputLimit() {
        isOverLimit = false
        outputLimit = .max
    }

    /// Throws away everything queued (a client cut off for not reading), so a close frame goes next.
    /// A TLS write waiting to be retried must be offered the same bytes again: then the stream closes.
    public func dropQueuedOutput() {
        if tlsRetryLength > 0 { close(); return }
        // What is dropped was never delivered: no latency sample for it.
        measuresDelivery = false
        // A chunk partly written already is kept whole (its frames must end before another begins).
        if let first = out.first, first.offset > 0 {
            out.keepFirst()
            outBytes = first.chunk.count - first.offset
        } else {
            out.removeAll()
            outBytes = 0
        }
    }

    /// Queues a copy of `bytes`.
    public func send(copying bytes: UnsafeRawBufferPointer) {
        guard !isClosed, !isClosing, bytes.count > 0 else { return }
        if bytes.count > Self.ownedChunkSize {
            send(Chunk(bytes))
        } else {
            reserve(bytes.count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
    }

    public func send(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { send(copying: $0) }
    }

    @inline(__always) func markDirty() {
        if queuedSince == 0 { queuedSince = ev_now(loop.raw) }
        if !isDirty {
            isDirty = true
            // Through a guaranteed reference: `loop` is unowned(unsafe), and reaching its array directly
            // retained and released the loop around every append.
            Unmanaged.passUnretained(loop)._withUnsafeGuaranteedRef {
                $0.dirty.append(self)
                // Not held by the stream table: the list's pin keeps it until the flush (`DirtyList`).
                if !isListed { $0.dirty.pinned.append(self) }
            }
        }
    }

    /// Writes as much queued output as the socket takes. Called by the loop once per iteration.
    func flush() {
        guard !isClosed else { return }
        if isOverLimit { cutOff(); if isClosed { return } }
        if ssl != nil { flushTLS(); return }
        while !out.isEmpty {
            let n = min(out.count, Self.maxIOVecs)
            let written = sendQueued(n)
            if written < 0 {
                let e = chub_errno()
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK { break }
                // EPIPE, ECONNRESET: the peer is gone; drop everything.
                out.removeAll()
                outBytes = 0
                peerClosed()
                return
            }
            outBytes -= written
            if written > 0 { lastWriteAt = ev_now(loop.raw) }  // (`loop.now` costs a retain and a release)
            loop.bytesWritten.add(written)
            // The one queued entry went out whole (a delivery at fixed load: one frame, one `send`).
            if n == 1 && out.count == 1 && written == out.unwritten(0).count {
                out.removeAll()
                break
            }
            var left = written
            var done = 0
            while done < out.count {
                let remaining = out.unwritten(done).count
                if left >= remaining { left -= remaining; done += 1 } else { out[done].offset += left; break }
            }
            if done == out.count {
                out.removeAll()
            } else if done > 0 {
                out.removeFirst(done)
            }
            if done < n && !out.isEmpty { break }  // the socket took less than offered: it is full
        }
        if out.isEmpty {
            drained()
            if isWaitingToWrite { stopWaitingToWrite() }
            if isClosing && !lingering { beginLinger() } else if !isClosing { outputDrained() }
        } else if !isWaitingToWrite {
            waitToWrite()
        }
    }

    // MARK: - Closing

    /// Closes after the queued output is written: our side is shut down and the peer drained until
    /// EOF (at most `lingerSeconds`), so the peer reads our last bytes instead of a reset.
    /// The peer gets `lingerSeconds` to read what is queued and as long again to close: after that the
    /// socket is closed whatever it did.
    public func closeAfterFlush(lingerSeconds: Double = 2) {
        guard !isClosed, !isClosing else { return }
        isClosing = true
        self.lingerSeconds = Float(lingerSeconds)
        closeDeadline = loop.now + 2 * lingerSeconds
        if out.isEmpty { beginLinger() } else { markDirty(); setTimer(lingerSeconds) }
    }
    private var closeDeadline = Double.infinity

    func beginLinger() {
        lingering = true
        if let ssl { ERR_clear_error(); _ = SSL_shutdown(ssl) }  // close_notify, best effort
        shutdown(fd, Int32(SHUT_WR))
        setTimer(Double(lingerSeconds))
    }

    /// Closes the socket now and unregisters everything.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        listen(0)
        loop.socketTimers.cancel(self)
        out.removeAll()
        outBytes = 0
        pending = []
        unlist()  // before the number is free for another socket
        Glibc.close(fd)
        didClose()
    }

    /// Gives up the descriptor without closing it, so another loop can adopt it (a connection handed to
    /// the loop that owns its session). Only valid while nothing is queued for output.
    @discardableResult
    public func handOff() -> OpaquePointer? {
        precondition(out.isEmpty, "cannot hand off a stream with queued output")
        isClosed = true
        let session = ssl
        ssl = nil  // the new owner frees it
        listen(0)
        loop.socketTimers.cancel(self)
        pending = []
        unlist()
        return session
    }

    /// Leaves the loop's table of streams. A socket still marked for this iteration's flush, or closed
    /// during the flush pass (maybe from inside its own `flush`, which the pass calls without retaining
    /// it), is pinned until the pass ends: the table's reference was what kept it alive.
    private func unlist() {
        guard isListed else { return }
        if isDirty || loop.isFlushing { loop.dirty.pinned.append(self) }
        isListed = false
        loop.streams[fd] = nil
    }

    /// Takes over the TLS session of a stream handed off by another loop (same socket).
    public func adoptTLS(_ session: OpaquePointer) { ssl = session }

    /// Processes bytes that arrived before this stream existed (received by the loop that handed it
    /// over), or that were held back while the stream waited.
    public func feed(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, !isClosed else { return }
        let buf = loop.readBuffer
        if bytes.count <= buf.count {
            bytes.withUnsafeBytes { buf.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            let used = received(UnsafeMutableRawBufferPointer(start: buf.baseAddress, count: bytes.count))
            if !isClosed && used < bytes.count {
                pending = Array(UnsafeRawBufferPointer(start: buf.baseAddress! + used, count: bytes.count - used))
            }
        } else {
            var local = bytes
            let used = local.withUnsafeMutableBytes { received($0) }
            if !isClosed { local.removeFirst(used); pending = local }
        }
    }
}
