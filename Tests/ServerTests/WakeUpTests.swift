import Foundation
import Glibc
import Hub
@testable import Server
@testable import Store
import XCTest

/// A session wakes up (its history read) off the loop, on a read connection of its own: a long read
/// holding another connection (an export, a replay being loaded) does not delay a join.
final class WakeUpTests: XCTestCase {
    func testAJoinCompletesWhileALongReadHoldsTheReader() throws {
        let dir = NSTemporaryDirectory() + "chub-\(UUID().uuidString)"
        let store = try SQLiteStore(directory: dir)
        let info = SessionInfo(code: "WAKEUP23", title: "t", maxParticipants: 10, guestPolicy: .allow, hostKey: "k",
                               createdAt: 1)
        let saved = DispatchSemaphore(value: 0)
        store.save(info) { _ in saved.signal() }
        saved.wait()
        final class Sink: Executor { func execute(_ work: @escaping () -> Void) { work() } }
        let committed = DispatchSemaphore(value: 0)
        for i in 0..<5 {
            store.append(DurableEvent(session: info.code, type: "chat", member: "m", clientId: "c\(i)",
                                      body: Array(#""kind":"text","text":"x""#.utf8)), executor: Sink()) { _ in
                committed.signal()
            }
        }
        for _ in 0..<5 { committed.wait() }

        var config = Config()
        config.port = 0
        config.threads = 1
        config.dataDirectory = dir
        let server = try Server(config: config) { _ in store }
        let serverThread = Thread { server.run() }
        serverThread.start()
        defer {
            server.shutdown()
            while serverThread.isExecuting { usleep(1000) }
        }

        // The long read: one connection held busy until the join is done.
        let inside = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        Thread { _ = try? store.read { _ in inside.signal(); release.wait() } }.start()
        inside.wait()
        defer { release.signal() }

        let start = Date()
        let joined = try joinOverWebSocket(port: server.port, code: info.code)
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, "the join waited for the long read")
        XCTAssertTrue(joined.contains(#""type":"joined""#), joined)
        XCTAssertTrue(joined.contains(#""seq":6}"#), "the history (5 events) was read on wake-up, then the join: \(joined)")
    }

    /// A minimal blocking WebSocket client: upgrade, one masked `join`, then frames until `joined`.
    func joinOverWebSocket(port: Int, code: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(rc, 0)
        func write(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
        write(Array(("GET /ws?session=\(code) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     + "Sec-WebSocket-Protocol: collabhub.v1\r\n\r\n").utf8))
        let join = Array(#"{"type":"join","name":"probe"}"#.utf8)
        let mask: [UInt8] = [1, 2, 3, 4]
        write([0x81, 0x80 | UInt8(join.count)] + mask + join.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        var received: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while !String(decoding: received, as: UTF8.self).contains(#""type":"joined""#) {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            received += buf[..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
