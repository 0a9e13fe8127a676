import COpenSSL
import EventLoop
import Foundation

/// A minimal blocking HTTP/1.1 client for set-up calls (creating sessions, publishing), over TLS
/// (certificates not checked: it talks to the hub under test) when `tls` is set.
enum HTTPClient {
    private static let tlsContext: OpaquePointer? = {
        let ctx = SSL_CTX_new(TLS_client_method())
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        return ctx
    }()

    static func request(
        host: String, port: Int, method: String, path: String, body: String? = nil, headers: [String: String] = [:],
        tls: Bool = false
    ) throws -> (Int, String) {
        let fd = try connectTCP(host: host, port: port)
        defer { close(fd) }
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        var ssl: OpaquePointer?
        if tls {
            ssl = SSL_new(tlsContext)
            SSL_set_fd(ssl, fd)
            guard SSL_connect(ssl) == 1 else {
                SSL_free(ssl); throw ValidationFailure("TLS handshake with \(host):\(port) failed")
            }
        }
        defer { if let ssl { SSL_free(ssl) } }
        let payload = body ?? ""
        let extra = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
        let req = Array(
            ("\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(payload.utf8.count)\r\n\(extra)Connection: close\r\n\r\n\(payload)").utf8)
        if let ssl { _ = SSL_write(ssl, req, Int32(req.count)) } else { _ = send(fd, req, req.count, 0) }
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = ssl.map { Int(SSL_read($0, &buf, Int32(buf.count))) } ?? recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            data += buf[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let sp = text.firstIndex(of: " "), let status = Int(text[text.index(after: sp)...].prefix(3)) else {
            throw ValidationFailure("bad HTTP response: \(text.prefix(100))")
        }
        let bodyStart = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, bodyStart)
    }
}
