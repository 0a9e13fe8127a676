import WebSocket
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Every WebSocket connection holds a protocol machine and its message reader for as long as it is open:
/// their sizes are what an idle member pays (issue 30), so a field that pushes them into a larger malloc
/// block shows up here.
final class ConnectionMachineSizeTests: XCTestCase {
    func testTheMachineFitsA112ByteBlock() throws {
        // glibc hands out 16-byte steps with an 8-byte header: 104 usable bytes in a 112-byte block (the
        // machine was 120 bytes, a 128-byte block, before its HTTP state and inflater shared a slot).
        let machine = ConnectionMachine(settings: ConnectionMachine.Settings(), now: 0)
        // (glibc's `malloc_usable_size`, looked up at run time: its header is not in the Glibc module.)
        typealias UsableSize = @convention(c) (UnsafeMutableRawPointer?) -> Int
        let symbol = try XCTUnwrap(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_usable_size"))
        let usable = unsafeBitCast(symbol, to: UsableSize.self)(Unmanaged.passUnretained(machine).toOpaque())
        XCTAssertLessThanOrEqual(usable, 104)
        withExtendedLifetime(machine) {}
    }

    func testTheReaderIsFortyEightBytes() {
        XCTAssertLessThanOrEqual(MemoryLayout<MessageReader>.size, 48)
    }

    func testTheReadersSizeLimitIsHeldIn32Bits() {
        var reader = MessageReader(role: .server, maxMessageSize: 1 << 20)
        XCTAssertEqual(reader.maxMessageSize, 1 << 20)
        reader.maxMessageSize = 1 << 40
        XCTAssertEqual(reader.maxMessageSize, Int(UInt32.max), "clamped to 4 GiB, not wrapped")
        reader.maxMessageSize = -1
        XCTAssertEqual(reader.maxMessageSize, 0)
    }

    func testACompressedMessageIsStillInflatedAfterTheUpgrade() throws {
        // The inflater now lives where the HTTP state did: the upgrade gives one up, the first compressed
        // message makes the other.
        let deflater = try XCTUnwrap(Deflater(windowBits: 15, noContextTakeover: true))
        let text = Array(repeating: UInt8(ascii: "a"), count: 300)
        let z = text.withUnsafeBytes { deflater.deflate($0) }
        let machine = ConnectionMachine(settings: ConnectionMachine.Settings(), now: 0)
        machine.accept(
            deflate: DeflateParameters(
                serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 15,
                clientMaxWindowBits: 15),
            now: 0)
        var frame: [UInt8] = [0xC1, 0x80 | 126, UInt8(z.count >> 8), UInt8(z.count & 0xFF), 1, 2, 3, 4]
        for (i, b) in z.enumerated() { frame.append(b ^ [1, 2, 3, 4][i % 4]) }
        var got: [UInt8] = []
        let used = frame.withUnsafeMutableBytes { bytes in
            machine.readWebSocket(bytes, now: 0) { action in
                if case .message(_, let payload) = action { got = Array(payload) }
                return true
            }
        }
        XCTAssertEqual(used, frame.count)
        XCTAssertEqual(got, text)
    }
}
