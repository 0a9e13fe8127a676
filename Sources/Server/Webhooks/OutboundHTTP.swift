import EventLoop
import Foundation
import Hub
import WebSocket

#if canImport(Glibc)
    import Glibc
#endif

/// A resolved address to connect to.
struct ResolvedAddress: @unchecked Sendable {
    var storage = sockaddr_storage()
    var length: socklen_t = 0
    var family: Int32 = AF_INET
    var bytes: [UInt8] = []
    var text: String = ""

    /// Every address of `host` (at most `limit`, in the resolver's order; blocking: call on a worker).
    static func resolveAll(_ host: String, port: Int, limit: Int = 3) -> Result<[ResolvedAddress], DeliveryError> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, list != nil else {
            return .failure(DeliveryError("cannot resolve \(host): \(String(cString: gai_strerror(rc)))"))
        }
        defer { freeaddrinfo(list) }
        var out: [ResolvedAddress] = []
        var next = list
        while let info = next, out.count < limit {
            next = info.pointee.ai_next
            let a = address(info)
            if !out.contains(where: { $0.bytes == a.bytes }) { out.append(a) }
        }
        return .success(out)
    }

    private static func address(_ first: UnsafeMutablePointer<addrinfo>) -> ResolvedAddress {
        var out = ResolvedAddress()
        out.family = first.pointee.ai_family
        out.length = first.pointee.ai_addrlen
        withUnsafeMutableBytes(of: &out.storage) {
            $0.copyMemory(
                from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        var text = [CChar](repeating: 0, count: 64)
        if out.family == AF_INET {
            var a = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            out.bytes = withUnsafeBytes(of: &a) { Array($0) }
            inet_ntop(AF_INET, &a, &text, 64)
        } else {
            var a = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            out.bytes = withUnsafeBytes(of: &a) { Array($0) }
            inet_ntop(AF_INET6, &a, &text, 64)
        }
        out.text = String(cString: text)
        return out
    }

    /// Starts a non-blocking connect; the socket becomes writable once connected (or failed). `label`
    /// names the address in an error.
    func connectNonBlocking(label: String) -> Result<Int32, DeliveryError> {
        let fd = socket(
            family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(DeliveryError("socket(): \(String(cString: strerror(errno)))")) }
        var s = storage
        let rc = withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        if rc != 0 && errno != EINPROGRESS {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            return .failure(DeliveryError("connect \(label): \(reason)"))
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return .success(fd)
    }
}

/// One HTTP/1.1 request on the loop (`Connection: close`): written once connected, the response's
/// status line and headers read, then the socket closes. The whole exchange has one deadline.
final class OutboundHTTP: Socket {
    typealias Answer = WebhookResponse
    private var head: [UInt8] = []
    private var finished = false
    private var onDone: ((Result<Answer, DeliveryError>) -> Void)?
    static let maxHead = 16 * 1024

    init(loop: Loop, fd: Int32, peer: String, done: @escaping (Result<Answer, DeliveryError>) -> Void) {
        onDone = done
        super.init(loop: loop, fd: fd, peer: peer)
    }

    func begin(request: [UInt8], timeout: Double) {
        start()
        send(request)
        setTimer(timeout)
    }

    private func finish(_ r: Result<Answer, DeliveryError>) {
        guard !finished else { return }
        finished = true
        let done = onDone
        onDone = nil
        close()
        done?(r)
    }

    override func received(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        head += bytes
        // Interim (1xx) responses come before the real one: skip them.
        while let end = head.firstRange(of: Array("\r\n\r\n".utf8)),
            let answer = WebhookResponse.parse(Array(head[..<end.lowerBound])), answer.status < 200
        {
            head.removeSubrange(..<end.upperBound)
        }
        if let end = head.firstRange(of: Array("\r\n\r\n".utf8)) {
            finish(
                WebhookResponse.parse(Array(head[..<end.lowerBound])).map { .success($0) }
                    ?? .failure(DeliveryError("malformed HTTP response")))
        } else if head.count > Self.maxHead {
            finish(.failure(DeliveryError("response head over \(Self.maxHead) bytes")))
        }
        return bytes.count
    }

    override func peerClosed() {
        finish(
            .failure(
                DeliveryError(
                    head.isEmpty
                        ? "connection closed without a response (refused, reset or TLS failed)"
                        : "connection closed mid-response")))
    }

    override func timerFired(now: Double) -> Double? {
        finish(.failure(DeliveryError("timed out")))
        return nil
    }

    override func didClose() {
        if !finished { finished = true; let d = onDone; onDone = nil; d?(.failure(DeliveryError("closed"))) }
    }
}

/// Why a delivery attempt failed before an HTTP status came back.
struct DeliveryError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
