import XCTest
@testable import WebSocket

/// permessage-deflate negotiation (RFC 7692 §5, §7.1) over hostile and ordinary offers, and the
/// inflater's limits.
final class DeflateTests: XCTestCase {
    private func negotiate(_ offer: String, _ mode: CompressionMode = .shared) -> DeflateParameters? {
        DeflateNegotiation.negotiate([offer], mode: mode)
    }

    func testMalformedParametersDeclineTheOfferWithoutTrapping() {
        // C1: "=" and blank parameters once indexed an empty array.
        for offer in ["permessage-deflate;=", "permessage-deflate; ;x", "permessage-deflate;", "permessage-deflate; =1",
                      "permessage-deflate;;;", "permessage-deflate; =", "permessage-deflate; \"\"", "permessage-deflate; server_max_window_bits=",
                      "permessage-deflate; server_max_window_bits=\"\"", "permessage-deflate; x=\"", "permessage-deflate; server_no_context_takeover=1"] {
            XCTAssertNil(negotiate(offer), offer)
            XCTAssertNil(negotiate(offer, .context), offer)
        }
    }

    func testWindowBitsAre1To2DigitsWithoutALeadingZero() {
        // RFC 7692 §7.1.2.1: 1*DIGIT, 8-15, no leading zero; a client cannot ask for 8 from zlib.
        for v in ["010", "09", "+9", "-9", "9.0", "1e1", "16", "7", "0", "8", " 9x", "١٠"] {
            XCTAssertNil(negotiate("permessage-deflate; server_max_window_bits=\(v)"), v)
        }
        XCTAssertNil(negotiate("permessage-deflate; client_max_window_bits=08"))
        XCTAssertEqual(negotiate("permessage-deflate; client_max_window_bits=8")?.clientMaxWindowBits, 8)
        XCTAssertEqual(negotiate("permessage-deflate; server_max_window_bits=\"10\"")?.serverMaxWindowBits, 10)
    }

    func testAnAcceptedServerMaxWindowBitsIsEchoed() {
        // RFC 7692 §7.1.2.1: the response carries the parameter when the offer did, 15 included.
        XCTAssertEqual(negotiate("permessage-deflate; server_max_window_bits=10")?.responseHeader,
                       "permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
        XCTAssertEqual(negotiate("permessage-deflate; server_max_window_bits=15")?.responseHeader,
                       "permessage-deflate; server_no_context_takeover; server_max_window_bits=15")
        XCTAssertEqual(negotiate("permessage-deflate")?.responseHeader, "permessage-deflate; server_no_context_takeover")
        XCTAssertEqual(negotiate("permessage-deflate", .context)?.responseHeader, "permessage-deflate")
    }

    func testRepeatedOrUnknownParametersDeclineAndTheNextOfferIsTried() {
        XCTAssertNil(negotiate("permessage-deflate; server_no_context_takeover; server_no_context_takeover"))
        XCTAssertNil(negotiate("permessage-deflate; foo"))
        let p = DeflateNegotiation.negotiate(["permessage-deflate; server_max_window_bits=010", "x-webkit-deflate-frame",
                                              "permessage-deflate; client_max_window_bits"], mode: .shared)
        XCTAssertEqual(p?.serverMaxWindowBits, 15)
        XCTAssertEqual(p?.serverMaxWindowBitsOffered, false)
        XCTAssertNil(DeflateNegotiation.negotiate(["permessage-deflate"], mode: .off))
    }

    func testInflaterStopsAtTheLimitAndRecovers() {
        let deflater = Deflater(windowBits: 15, noContextTakeover: true)!
        let big = [UInt8](repeating: 97, count: 200_000)
        let packed = big.withUnsafeBytes { deflater.deflate($0) }
        let inflater = Inflater(windowBits: 15, noContextTakeover: true)!
        guard case .tooBig = packed.withUnsafeBytes({ inflater.inflate($0, limit: 64 * 1024) }) else { return XCTFail("bomb not stopped") }
        let small = Array("hello".utf8)
        let packedSmall = small.withUnsafeBytes { deflater.deflate($0) }
        guard case .ok(let out) = packedSmall.withUnsafeBytes({ inflater.inflate($0, limit: 64 * 1024) }) else { return XCTFail() }
        XCTAssertEqual(out, small)
        guard case .corrupt = [UInt8]([0xff, 0xff, 0xff]).withUnsafeBytes({ inflater.inflate($0, limit: 1024) }) else { return XCTFail() }
    }

    func testSmallWindowCompressionRoundTrips() {
        // Shared mode: a client that asked for a 9-bit window gets the loop's 9-bit compressor.
        var text = [UInt8]()
        for i in 0..<4000 { text.append(UInt8(97 + (i * 7919) % 26)) }
        text += text  // a repeat 4,000 bytes back: beyond a 512-byte window
        let d = Deflater(windowBits: 9, noContextTakeover: true)!
        let packed = text.withUnsafeBytes { d.deflate($0) }
        let i = Inflater(windowBits: 9, noContextTakeover: true)!
        guard case .ok(let out) = packed.withUnsafeBytes({ i.inflate($0, limit: 1 << 20) }) else { return XCTFail() }
        XCTAssertEqual(out, text)
    }
}
