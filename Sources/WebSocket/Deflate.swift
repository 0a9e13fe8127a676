import CZlib

/// permessage-deflate (RFC 7692): what was agreed for one connection.
public struct DeflateParameters: Equatable, Sendable {
    /// The server resets its compressor after every message (no context takeover): one compressed
    /// broadcast frame then fits every recipient, and no per-connection compressor memory is kept.
    public var serverNoContextTakeover: Bool
    public var clientNoContextTakeover: Bool
    public var serverMaxWindowBits: Int
    public var clientMaxWindowBits: Int
    /// The offer named `server_max_window_bits`: an accepted offer echoes it (RFC 7692 §7.1.2.1).
    public var serverMaxWindowBitsOffered = false

    public init(
        serverNoContextTakeover: Bool, clientNoContextTakeover: Bool, serverMaxWindowBits: Int,
        clientMaxWindowBits: Int, serverMaxWindowBitsOffered: Bool = false
    ) {
        self.serverNoContextTakeover = serverNoContextTakeover; self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits; self.clientMaxWindowBits = clientMaxWindowBits
        self.serverMaxWindowBitsOffered = serverMaxWindowBitsOffered
    }

    /// The `Sec-WebSocket-Extensions` response value.
    public var responseHeader: String {
        var s = "permessage-deflate"
        if serverNoContextTakeover { s += "; server_no_context_takeover" }
        if clientNoContextTakeover { s += "; client_no_context_takeover" }
        if serverMaxWindowBits < 15 || serverMaxWindowBitsOffered {
            s += "; server_max_window_bits=\(serverMaxWindowBits)"
        }
        if clientMaxWindowBits < 15 { s += "; client_max_window_bits=\(clientMaxWindowBits)" }
        return s
    }
}

/// How the server compresses (`--compression`).
public enum CompressionMode: String, Sendable {
    /// Never negotiate permessage-deflate.
    case off
    /// Always answer with `server_no_context_takeover`: a broadcast is compressed once and the same
    /// frame goes to every recipient; no compressor state per connection.
    case shared
    /// Keep the compression context across messages (better ratio, a zlib deflate stream per connection).
    case context
}

public enum DeflateNegotiation {
    /// Picks the first permessage-deflate offer the server can honour (RFC 7692 §5, §7.1), or nil.
    /// Offers with unknown, empty or repeated parameters, bad values (anything but 1-2 digits without a
    /// leading zero, optionally quoted), or `server_max_window_bits=8` (zlib's raw deflate cannot produce
    /// 256-byte windows) are declined. Every value here comes from the wire: nothing is indexed
    /// without a check.
    public static func negotiate(_ offers: [String], mode: CompressionMode) -> DeflateParameters? {
        guard mode != .off else { return nil }
        for offer in offers {
            let parts = offer.split(separator: ";", omittingEmptySubsequences: false).map {
                $0.trimmingHTTPWhitespace()
            }
            guard parts.first?.lowercased() == "permessage-deflate" else { continue }
            if let p = parameters(parts.dropFirst(), mode: mode) { return p }
        }
        return nil
    }

    private static func parameters(_ params: ArraySlice<String>, mode: CompressionMode) -> DeflateParameters? {
        var p = DeflateParameters(
            serverNoContextTakeover: mode == .shared, clientNoContextTakeover: false,
            serverMaxWindowBits: 15, clientMaxWindowBits: 15)
        var seen = Set<String>()
        for param in params {
            let name: String, value: String?
            if let eq = param.firstIndex(of: "=") {
                name = String(param[..<eq]).trimmingHTTPWhitespace().lowercased()
                var v = String(param[param.index(after: eq)...]).trimmingHTTPWhitespace()
                if v.utf8.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
                value = v
            } else {
                name = param.lowercased()
                value = nil
            }
            guard !name.isEmpty, seen.insert(name).inserted else { return nil }
            switch name {
            case "server_no_context_takeover":
                guard value == nil else { return nil }
                p.serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard value == nil else { return nil }
                p.clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let b = windowBits(value), b >= 9 else { return nil }
                p.serverMaxWindowBits = b
                p.serverMaxWindowBitsOffered = true
            case "client_max_window_bits":
                guard let value else { break }  // the client supports a limit; we do not need one
                guard let b = windowBits(value) else { return nil }
                p.clientMaxWindowBits = b
            default:
                return nil
            }
        }
        return p
    }

    /// A window size: `1*DIGIT` with no leading zero (RFC 7692 §7.1.2.1), 8 to 15.
    static func windowBits(_ v: String?) -> Int? {
        guard let v, let first = v.utf8.first, first != UInt8(ascii: "0"), v.utf8.count <= 2,
            v.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(v), (8...15).contains(n)
        else { return nil }
        return n
    }
}

/// A raw-deflate decompressor for one connection's incoming messages, bounded by a size limit so a
/// small message that inflates to gigabytes ("zip bomb") fails as soon as it passes the limit.
public final class Inflater {
    private var stream = z_stream()
    private let resetEachMessage: Bool

    public init?(windowBits: Int, noContextTakeover: Bool) {
        resetEachMessage = noContextTakeover
        // zlib's inflate accepts every window up to 15 for raw data; always allow 15 (a smaller peer window is a
        // subset).
        guard chub_inflate_init2(&stream, -15) == Z_OK else { return nil }
    }

    deinit { inflateEnd(&stream) }

    public enum Result { case ok([UInt8]), tooBig, corrupt }

    /// Inflates one message (its payload, RSV1 frames concatenated).
    public func inflate(_ input: UnsafeRawBufferPointer, limit: Int) -> Result {
        var out = [UInt8]()
        out.reserveCapacity(min(limit, max(256, input.count * 4)))
        let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]
        var failed = false, tooBig = false
        func run(_ bytes: UnsafeRawBufferPointer) {
            stream.next_in = UnsafeMutablePointer(mutating: bytes.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(bytes.count)
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            repeat {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { buf in
                    stream.next_out = buf.baseAddress
                    stream.avail_out = uInt(buf.count)
                    let rc = CZlib.inflate(&stream, Z_SYNC_FLUSH)
                    if rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END { failed = true }
                    return buf.count - Int(stream.avail_out)
                }
                if failed { return }
                if out.count + produced > limit { tooBig = true; return }
                out.append(contentsOf: chunk[0..<produced])
                if produced == 0 { break }
            } while stream.avail_out == 0 || stream.avail_in > 0
        }
        if input.count > 0 { run(input) }
        if !failed && !tooBig { tail.withUnsafeBytes { run($0) } }
        if resetEachMessage || failed || tooBig { inflateReset(&stream) }
        if tooBig { return .tooBig }
        if failed { return .corrupt }
        return .ok(out)
    }
}

/// A raw-deflate compressor. With `noContextTakeover` it is reset before every message, so it can be
/// shared by all connections of a loop (and its output by all recipients of a broadcast).
public final class Deflater {
    private var stream = z_stream()
    private let resetEachMessage: Bool

    /// memLevel 8 and a 15-bit window cost ~256 KiB; a shared deflater pays it once per loop.
    public init?(windowBits: Int, noContextTakeover: Bool, memLevel: Int = 8) {
        resetEachMessage = noContextTakeover
        guard chub_deflate_init2(&stream, Z_DEFAULT_COMPRESSION, -Int32(max(9, windowBits)), Int32(memLevel)) == Z_OK
        else { return nil }
    }

    deinit { deflateEnd(&stream) }

    /// Compresses one message; the trailing 0x00 0x00 0xFF 0xFF of the sync flush is removed (§7.2.1).
    public func deflate(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        if resetEachMessage { deflateReset(&stream) }
        var out = [UInt8]()
        out.reserveCapacity(input.count / 2 + 64)
        stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
        stream.avail_in = uInt(input.count)
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        repeat {
            let produced: Int = chunk.withUnsafeMutableBufferPointer { buf in
                stream.next_out = buf.baseAddress
                stream.avail_out = uInt(buf.count)
                _ = CZlib.deflate(&stream, Z_SYNC_FLUSH)
                return buf.count - Int(stream.avail_out)
            }
            out.append(contentsOf: chunk[0..<produced])
        } while stream.avail_out == 0
        if out.count >= 4 && out.suffix(4) == [0x00, 0x00, 0xFF, 0xFF] { out.removeLast(4) }
        return out
    }
}
