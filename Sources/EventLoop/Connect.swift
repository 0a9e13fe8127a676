import CEV
#if canImport(Glibc)
    import Glibc
#endif

/// Opens a TCP connection to an IPv4 address (blocking connect, then non-blocking), optionally from a
/// given local address: load generators spread connections over 127.0.0.x sources to pass the
/// ~28k ephemeral ports one source address allows.
public func connectTCP(host: String, port: Int, source: String? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw ListenError(description: "socket(): \(String(cString: strerror(errno)))") }
    if let source {
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_IP), 24 /* IP_BIND_ADDRESS_NO_PORT */, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ListenError(description: "bind \(source): \(reason)")
        }
    }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    if rc != 0 {
        let reason = String(cString: strerror(errno))
        Glibc.close(fd)
        throw ListenError(description: "connect \(host):\(port): \(reason)")
    }
    _ = chub_set_nonblocking(fd)
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    return fd
}

/// Raises the open-file soft limit to the hard limit (servers and load generators hold one descriptor
/// per connection; the default soft limit of 1024 is far too low). Returns the new limit.
@discardableResult
public func raiseFileLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
    return Int(limit.rlim_cur)
}
