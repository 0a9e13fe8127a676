import Hub
import XCTest

@testable import Cluster

/// The relayed items' bytes on the wire, pinned: a session's batch (`ChannelMessage.ephemeral`, which a node
/// of an older build still sends) and a node's publication (`NodeBatch`) write each item the same way
/// (`<traffic> <keylen> <framelen>\n<key><frame>`). The expected bytes were taken from the encoders as they
/// were before they shared the item encoding: if the format moves, nodes of different builds stop reading
/// each other, and these fail.
final class RelayedItemBytesTests: XCTestCase {
    /// Whole server text frames, written out byte by byte (a 7-bit length, and a 16-bit one).
    private let cursorFrame: [UInt8] = [0x81, 23] + Array(#"{"type":"cursor","x":1}"#.utf8)
    private let longFrame: [UInt8] = [0x81, 126, 0x00, 130] + Array(repeating: UInt8(ascii: "a"), count: 130)
    private let emptyObject: [UInt8] = [0x81, 2] + Array("{}".utf8)

    private var items: [Relayed] {
        [
            Relayed(.cursor, key: "cursor:m1", frame: cursorFrame),
            Relayed(.event, key: "", frame: longFrame),
            Relayed(.presence, key: "presence:\u{FC}", frame: emptyObject),
        ]
    }

    /// The three items as both encoders write them.
    private var itemBytes: [UInt8] {
        Array("cursor 9 25\ncursor:m1".utf8) + cursorFrame
            + Array("event 0 134\n".utf8) + longFrame
            + Array("presence 11 4\npresence:".utf8) + [0xC3, 0xBC] + emptyObject
    }

    func testASessionBatchIsPinned() {
        let bytes = ChannelMessage.ephemeral(origin: "n1.0", items).encode()
        XCTAssertEqual(bytes, Array("en1.0 3\n".utf8) + itemBytes)
        XCTAssertEqual(bytes.count, 229)
        XCTAssertEqual(ChannelMessage.decode(bytes), .ephemeral(origin: "n1.0", items))
    }

    func testANodePublicationIsPinned() {
        let a = Array("{ABC}:ch".utf8), b = Array("{XYZ}:ch".utf8)
        let bytes = NodeBatch.encode(origin: "n1.0", [(a, items), (b, [items[2]])])
        let expected =
            Array("En1.0\n8 3\n{ABC}:ch".utf8) + itemBytes
            + Array("8 1\n{XYZ}:ch".utf8) + Array("presence 11 4\npresence:".utf8) + [0xC3, 0xBC] + emptyObject
        XCTAssertEqual(bytes, expected)
        XCTAssertEqual(bytes.count, 280)
        XCTAssertNotNil(NodeBatch.read(bytes))
    }
}
