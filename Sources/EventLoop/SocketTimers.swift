import CEV

/// The sockets' timers of one loop: a timer wheel of `slots` ticks of `tick` seconds, driven by one
/// libev timer, instead of a libev timer per socket (an `ev_timer` is 48 bytes in every socket's watcher
/// block plus a 16-byte entry in libev's heap; here a socket keeps its deadline and its tick, and its
/// slot holds one reference).
///
/// A socket sits in the slot of the first tick at or after its deadline (`Socket.timerTick`, an
/// absolute tick number; -1: none). Moving a deadline later leaves it there: when that tick comes it
/// is put in the slot of its new deadline (the usual case, a ping or idle deadline pushed back by
/// activity, costs nothing until then). Moving it earlier moves it at once. Deadlines beyond the
/// wheel's span share a slot with nearer ones and stay until their own tick comes round.
/// A timer fires at most one tick late, never early. The references are unretained: a socket leaves
/// its slot when it closes, is handed off, or goes away. The libev timer is set for the next occupied
/// slot, not for every tick: a loop with a few sockets whose deadlines are seconds away sleeps until then.
final class SocketTimers {
    /// Seconds per tick: how late a timer may fire (the sockets' timeouts are seconds long).
    static let tick = 1.0 / 32
    /// Ticks on the wheel (64 s at 1/32 s).
    static let slots = 2048

    private unowned(unsafe) let loop: Loop
    private var wheel: [[Unmanaged<Socket>]]
    /// The next tick to look at.
    private var next: Int
    /// Sockets in a slot.
    private var armed = 0
    private let watcher: UnsafeMutablePointer<ev_timer>
    /// The tick the libev timer is set for (`Int.max`: not set).
    private var wakeTick = Int.max

    init(loop: Loop) {
        self.loop = loop
        wheel = Array(repeating: [], count: Self.slots)
        next = Self.tick(atOrAfter: loop.now)
        watcher = .allocate(capacity: 1)
        chub_timer_init(
            watcher,
            { _, w, _ in
                Unmanaged<SocketTimers>.fromOpaque(w!.pointee.data).takeUnretainedValue().advance()
            }, 0, 0)
        watcher.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        ev_timer_stop(loop.raw, watcher)
        watcher.deallocate()
    }

    static func tick(atOrAfter t: Double) -> Int {
        let x = (t / tick).rounded(.up)
        return x < Double(Int.max / 2) ? Int(x) : Int.max / 2
    }

    /// Arms `socket`'s timer for `deadline` (loop time).
    func set(_ socket: Socket, deadline: Double) {
        socket.timerAt = deadline
        let t = max(Self.tick(atOrAfter: deadline), next)
        if socket.timerTick >= 0 {
            // Already in a slot at or before its new tick: it is moved on when that tick comes.
            if socket.timerTick <= t { return }
            remove(socket)
        }
        insert(socket, tick: t)
    }

    /// Disarms `socket`'s timer (it closed or moves to another loop).
    func cancel(_ socket: Socket) {
        socket.timerAt = .infinity
        if socket.timerTick >= 0 { remove(socket) }
    }

    private func insert(_ socket: Socket, tick t: Int) {
        socket.timerTick = t
        wheel[t % Self.slots].append(.passUnretained(socket))
        armed += 1
        if t < wakeTick { wake(at: t) }
    }

    /// Sets the libev timer for tick `t`.
    private func wake(at t: Int) {
        wakeTick = t
        ev_timer_stop(loop.raw, watcher)
        chub_timer_set(watcher, max(Double(t) * Self.tick - loop.now, 0), 0)
        ev_timer_start(loop.raw, watcher)
    }

    private func remove(_ socket: Socket) {
        let s = socket.timerTick % Self.slots
        socket.timerTick = -1
        if let i = wheel[s].firstIndex(where: { $0.toOpaque() == Unmanaged.passUnretained(socket).toOpaque() }) {
            wheel[s].swapAt(i, wheel[s].count - 1)
            wheel[s].removeLast()
            if wheel[s].isEmpty { wheel[s] = [] }
            armed -= 1
        }
        if armed == 0 { stop() }
    }

    private func stop() {
        guard wakeTick != Int.max else { return }
        wakeTick = Int.max
        ev_timer_stop(loop.raw, watcher)
    }

    /// The libev timer fired: every slot up to now is looked at, its due sockets called back, and the
    /// timer set for the next occupied slot.
    private func advance() {
        wakeTick = Int.max  // (a one-shot timer: it is no longer set)
        let now = loop.now
        var t = next
        // A loop that was blocked longer than the wheel's span looks at each slot once.
        let last = min(Int(now / Self.tick), t + Self.slots - 1)
        while t <= last {
            visit(t, now: now)
            t += 1
        }
        next = max(next, last + 1)
        guard armed > 0 else { return stop() }
        var t2 = next
        while t2 < next + Self.slots && wheel[t2 % Self.slots].isEmpty { t2 += 1 }
        if t2 < wakeTick { wake(at: t2) }
    }

    private func visit(_ t: Int, now: Double) {
        let s = t % Self.slots
        guard !wheel[s].isEmpty else { return }
        next = t + 1
        let entries = wheel[s]
        wheel[s] = []
        var due: [Socket] = []
        for e in entries {
            let socket = e.takeUnretainedValue()
            if socket.timerTick > t {
                wheel[s].append(e)  // a later round of the wheel
                continue
            }
            armed -= 1
            socket.timerTick = -1
            if socket.timerAt <= now {
                due.append(socket)  // held: an earlier callback may close and release it
            } else {
                // Pushed back since it was put here.
                insert(socket, tick: max(Self.tick(atOrAfter: socket.timerAt), t + 1))
            }
        }
        for socket in due {
            // Called back only if nothing re-armed or cancelled it meanwhile (an earlier callback may).
            guard socket.timerTick < 0 && socket.timerAt <= now else { continue }
            socket.timerAt = .infinity
            socket.handleTimer()
        }
    }
}
