import CEV
#if canImport(Glibc)
    import Glibc
#endif

/// Errors from setting up a listening socket, with the system's reason.
public struct ListenError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// A listening TCP socket on one loop. Each loop has its own, bound with SO_REUSEPORT to the same
/// address, so the kernel spreads new connections over the loops without a shared accept lock.
public final class Listener {
    public let fd: Int32
    public let port: Int
    private let loop: Loop
    private let watcher: UnsafeMutablePointer<ev_io>
    private let accepted: (Loop, Int32, String) -> Void
    /// Kept open so that when descriptors run out (EMFILE) one can be freed to accept and close the
    /// pending connection, instead of leaving it in the backlog and spinning on readiness.
    private var spareFD: Int32
    public private(set) var acceptErrors = 0
    /// TCP congestion control for accepted sockets (nil: the system default).
    public var congestionControl: String?
    private var backoff: Loop.Timer?

    /// Fails when another process already listens on host:port. The loops' listeners share the port with
    /// SO_REUSEPORT, which would also let a second hub process bind it and silently take half of the
    /// connections; a probe without SO_REUSEPORT cannot bind beside any listener, so it tells.
    public static func ensureAvailable(host: String, port: Int) throws {
        guard port != 0 else { return }
        var addr4 = sockaddr_in(), addr6 = sockaddr_in6()
        let v6 = inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr4.sin_addr) != 1
        if v6 && inet_pton(AF_INET6, host, &addr6.sin6_addr) != 1 { return }  // the real bind reports it
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { Glibc.close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc: Int32
        if v6 {
            addr6.sin6_family = sa_family_t(AF_INET6); addr6.sin6_port = in_port_t(UInt16(port).bigEndian)
            rc = withUnsafePointer(to: &addr6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            addr4.sin_family = sa_family_t(AF_INET); addr4.sin_port = in_port_t(UInt16(port).bigEndian)
            rc = withUnsafePointer(to: &addr4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        if rc != 0 && errno == EADDRINUSE {
            throw ListenError(
                description: "cannot bind \(host):\(port): address already in use (is another hub running?)")
        }
    }

    public init(
        loop: Loop, host: String, port: Int, backlog: Int32 = 1024,
        accepted: @escaping (Loop, Int32, String) -> Void
    ) throws {
        self.loop = loop
        self.accepted = accepted
        var v6 = false
        var addr4 = sockaddr_in()
        var addr6 = sockaddr_in6()
        if inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr4.sin_addr) == 1 {
            addr4.sin_family = sa_family_t(AF_INET)
            addr4.sin_port = in_port_t(UInt16(port).bigEndian)
        } else if inet_pton(AF_INET6, host, &addr6.sin6_addr) == 1 {
            v6 = true
            addr6.sin6_family = sa_family_t(AF_INET6)
            addr6.sin6_port = in_port_t(UInt16(port).bigEndian)
        } else {
            throw ListenError(description: "cannot parse host address '\(host)' (give an IPv4 or IPv6 literal)")
        }
        let fd = socket(
            v6 ? AF_INET6 : AF_INET,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ListenError(description: "socket(): \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc: Int32 =
            v6
            ? withUnsafePointer(to: &addr6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
            : withUnsafePointer(to: &addr4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ListenError(description: "cannot bind \(host):\(port): \(reason)")
        }
        guard listen(fd, backlog) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ListenError(description: "cannot listen on \(host):\(port): \(reason)")
        }
        var bound = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let boundPort = withUnsafePointer(to: &bound) { p -> UInt16 in
            v6
                ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
                : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        self.fd = fd
        self.port = Int(boundPort)
        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        watcher = .allocate(capacity: 1)
        chub_io_init(
            watcher,
            { _, w, _ in
                Unmanaged<Listener>.fromOpaque(w!.pointee.data).takeUnretainedValue().acceptPending()
            }, fd, Int32(EV_READ))
        watcher.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        ev_io_start(loop.raw, watcher)
    }

    /// Stops accepting (graceful shutdown) and closes the socket.
    public func stop() {
        ev_io_stop(loop.raw, watcher)
        backoff = nil
        Glibc.close(fd)
        if spareFD >= 0 { Glibc.close(spareFD); spareFD = -1 }
    }

    deinit { watcher.deallocate() }

    /// Accepts up to 64 connections per wake-up so one busy listener cannot starve its loop's clients.
    private func acceptPending() {
        for _ in 0..<64 {
            var addr = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    chub_accept(fd, $0, &len)
                }
            }
            if client < 0 {
                let e = chub_errno()
                if e == EAGAIN || e == EWOULDBLOCK { return }
                if e == EINTR || e == ECONNABORTED { continue }
                acceptErrors += 1
                if e == EMFILE || e == ENFILE {
                    // Out of descriptors: accept with the spare one and close at once, so the client
                    // sees a clean close instead of hanging, and the listener does not spin.
                    if spareFD >= 0 {
                        Glibc.close(spareFD)
                        let victim = accept(fd, nil, nil)
                        if victim >= 0 { Glibc.close(victim) }
                        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
                    }
                    if spareFD < 0 { pauseAccepting(for: 0.1) }
                }
                return
            }
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if let cc = congestionControl {
                _ = cc.withCString {
                    setsockopt(client, Int32(IPPROTO_TCP), 13 /* TCP_CONGESTION */, $0, socklen_t(strlen($0)))
                }
            }
            accepted(loop, client, Self.describe(&addr))
        }
    }

    private func pauseAccepting(for seconds: Double) {
        ev_io_stop(loop.raw, watcher)
        backoff = Loop.Timer(loop: loop, after: seconds) { [weak self] in
            guard let self else { return }
            self.backoff = nil
            if self.spareFD < 0 { self.spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC) }
            ev_io_start(self.loop.raw, self.watcher)
        }
    }

    static func describe(_ addr: inout sockaddr_storage) -> String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        if addr.ss_family == sa_family_t(AF_INET) {
            return withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var a = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
                    return String(cString: buf)
                }
            }
        } else {
            return withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                    var a = sin.pointee.sin6_addr
                    inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
                    return String(cString: buf)
                }
            }
        }
    }
}
