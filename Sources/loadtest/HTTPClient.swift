import EventLoop
import Foundation

/// A minimal blocking HTTP/1.1 client for set-up calls (creating sessions, publishing).
enum HTTPClient {
    static func request(host: String, port: Int, method: String, path: String, body: String? = nil, headers: [String: String] = [:]) throws -> (Int, String) {
        let fd = try connectTCP(host: host, port: port)
        defer { close(fd) }
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        let payload = body ?? ""
        let req = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\nContent-Length: \(payload.utf8.count)\r\n\(headers.map { "\($0.key): \($0.value)\r\n" }.joined())Connection: close\r\n\r\n\(payload)"
        _ = req.withCString { send(fd, $0, strlen($0), 0) }
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
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
