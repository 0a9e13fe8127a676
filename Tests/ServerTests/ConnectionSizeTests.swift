import XCTest

@testable import Server

/// Every open connection is one `Connection` object for as long as it lives, so its size is what an idle
/// member pays (issue 30): glibc hands out 16-byte steps with an 8-byte header, so an object of up to 312
/// bytes takes a 320-byte block, one byte more a 336-byte one.
final class ConnectionSizeTests: XCTestCase {
    /// A class's instance size as the Swift runtime keeps it in the class's metadata (on Linux, without
    /// Objective-C interop: the kind, the superclass, the flags and address point, then the instance size
    /// as a 32-bit field at byte 24).
    private func instanceSize(_ type: AnyClass) -> Int {
        let metadata = unsafeBitCast(type, to: UnsafeRawPointer.self)
        return Int(metadata.load(fromByteOffset: 24, as: UInt32.self))
    }

    private final class Probe {
        var word = 0
        var byte: UInt8 = 0
    }

    func testTheRuntimeReadsAKnownSize() {
        // The object header (16 bytes), a word and a byte: the reading above is the runtime's.
        XCTAssertEqual(instanceSize(Probe.self), 25)
        withExtendedLifetime(Probe()) {}
    }

    func testAConnectionFitsA320ByteBlock() {
        XCTAssertLessThanOrEqual(instanceSize(Connection.self), 312, "a field more puts it in a 336-byte block")
    }
}
