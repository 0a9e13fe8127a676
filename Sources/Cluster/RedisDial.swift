#if canImport(Glibc)
    import Glibc
#endif

/// Opening TCP connections to Redis: to a numeric address only (names are resolved by `RedisAddress`,
/// off the loops), IPv4 or IPv6, with TCP_NODELAY and keepalive (a Redis host that vanished is noticed
/// by the kernel on an idle link).
enum RedisDial {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A non-blocking socket whose connection is under way (a loop's link: the loop learns the outcome
    /// when the socket becomes writable or readable).
    static func start(address: String, port: Int) throws -> Int32 {
        try open(address: address, port: port) { fd, addr, length in
            if Glibc.connect(fd, addr, length) == 0 || errno == EINPROGRESS { return nil }
            return String(cString: strerror(errno))
        }
    }

    /// A blocking socket, connected within `timeout` seconds, whose reads and writes give up after
    /// `timeout` seconds (a worker thread's call).
    static func connect(address: String, port: Int, timeout: Double) throws -> Int32 {
        let fd = try open(address: address, port: port) { fd, addr, length in
            if Glibc.connect(fd, addr, length) == 0 { return nil }
            guard errno == EINPROGRESS else { return String(cString: strerror(errno)) }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&p, 1, Int32(timeout * 1000))
            if ready == 0 { return "no answer in \(timeout) s" }
            if ready < 0 { return String(cString: strerror(errno)) }
            var error: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
            return error == 0 ? nil : String(cString: strerror(error))
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// A non-blocking TCP socket for `address`, handed to `connect` (which returns nil on success, else
    /// why it failed).
    private static func open(
        address: String, port: Int,
        connect: (Int32, UnsafePointer<sockaddr>, socklen_t) -> String?
    ) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address, String(port), &hints, &list) == 0, let info = list else {
            throw Failure(description: "\(address) is not a numeric address")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(
            info.pointee.ai_family,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket(): \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
        var idle: Int32 = 15
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, socklen_t(MemoryLayout<Int32>.size))
        if let why = connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) {
            Glibc.close(fd)
            let shown = address.contains(":") ? "[\(address)]" : address
            throw Failure(description: "cannot connect to \(shown):\(port): \(why)")
        }
        return fd
    }
}
