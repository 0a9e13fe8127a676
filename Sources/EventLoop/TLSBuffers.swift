import CEV
import COpenSSL

/// TLS record buffers kept while a connection is busy and given back once it has been idle.
///
/// With `SSL_MODE_RELEASE_BUFFERS` OpenSSL frees a session's read buffer after every read that empties
/// it and its write buffer after every write: an idle connection holds no 17 KB buffers, but a busy one
/// allocates and frees (and touches fresh memory for) two of them per read and write, on every message.
/// Instead, a session keeps its buffers while it is busy, and this sweep (a libev timer per loop, running
/// only while some session holds buffers) frees them (`SSL_free_buffers`) once it has moved nothing for
/// `idleAfter` seconds: an idle connection still holds none, a second or two after its last message.
final class TLSBuffers {
    private let raw: OpaquePointer
    /// Sessions that may hold buffers (each at most once: `Socket.tlsHoldsBuffers`).
    private var holding: [Socket] = []
    private let timer: UnsafeMutablePointer<ev_timer>
    /// A session that moved nothing for this long gives its buffers back.
    static let idleAfter = 1.0

    init(loop: Loop) {
        raw = loop.raw
        timer = .allocate(capacity: 1)
        chub_timer_init(
            timer,
            { _, w, _ in Unmanaged<TLSBuffers>.fromOpaque(w!.pointee.data).takeUnretainedValue().sweep() },
            Self.idleAfter, Self.idleAfter)
        timer.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        if chub_is_active(timer) != 0 { ev_ref(raw); ev_timer_stop(raw, timer) }
        timer.deallocate()
    }

    /// `socket` read or wrote through its session: its buffers exist now.
    func hold(_ socket: Socket) {
        socket.tlsHoldsBuffers = true
        holding.append(socket)
        if holding.count == 1 {
            ev_timer_again(raw, timer)
            ev_unref(raw)  // the sweep alone does not keep the loop running
        }
    }

    /// Frees the buffers of the sessions idle long enough; forgets closed ones.
    func sweep() {
        let now = ev_now(raw)
        var i = 0
        while i < holding.count {
            let s = holding[i]
            var done = s.isClosed
            if !done, let ssl = s.ssl, now - max(s.lastActivity, s.lastWriteAt) >= Self.idleAfter,
                s.out.isEmpty, s.tlsRetryLength == 0
            {
                done = SSL_free_buffers(ssl) == 1  // 0: records are buffered still (read-ahead)
            }
            if done {
                s.tlsHoldsBuffers = false
                holding.swapAt(i, holding.count - 1)
                holding.removeLast()
            } else {
                i += 1
            }
        }
        if holding.isEmpty {
            ev_ref(raw)
            ev_timer_stop(raw, timer)
            holding = []
        }
    }

    /// Sessions holding buffers now (tests, metrics).
    var count: Int { holding.count }
}
