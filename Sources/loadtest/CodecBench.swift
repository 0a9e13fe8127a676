import ArgumentParser
import Foundation
import WebSocket

/// Codec throughput on one core: parse + unmask + UTF-8 validation of masked client text frames, as
/// the server's read path does them, over a buffer of back-to-back frames.
struct CodecBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec", abstract: "Frame parse + unmask + UTF-8 validation throughput.")

    @Option(help: "Payload bytes per frame.") var size = 16384
    @Option(help: "Total payload bytes per pass.") var total = 64 << 20
    @Option(help: "Passes (the median is reported).") var passes = 7
    @Flag(help: "Use multi-byte UTF-8 text instead of ASCII.") var unicode = false

    func run() throws {
        let unit = unicode ? Array("κόσμε€".utf8) : Array("abcdefghij".utf8)
        let payload = (0..<size).map { unit[$0 % unit.count] }
        let frames = max(1, total / size)
        // Mask key 0 keeps the buffer identical after in-place unmasking, so every pass does the same
        // work on the same bytes (the XOR is executed regardless of the key value).
        var buffer: [UInt8] = []
        buffer.reserveCapacity(frames * (size + 14))
        for _ in 0..<frames { FrameEncoder.append(to: &buffer, opcode: .text, payload: payload, maskKey: 0) }
        var rates: [Double] = []
        var messages = 0
        for _ in 0..<passes {
            var reader = MessageReader(role: .server, maxMessageSize: 1 << 30)
            let start = monotonicNow()
            let outcome = buffer.withUnsafeMutableBytes { b in
                reader.read(b) { _ in
                    messages += 1; return true
                }
            }
            let elapsed = monotonicNow() - start
            guard case .consumed(let n) = outcome, n == buffer.count else {
                throw ValidationFailure("codec failed: \(outcome)")
            }
            rates.append(Double(frames * size) / elapsed / 1e9)
        }
        rates.sort()
        print(
            String(
                format: "codec: %.2f GB/s payload (median of %d passes; %d-byte %@ frames, parse+unmask+UTF-8)",
                rates[rates.count / 2], passes, size, unicode ? "UTF-8" : "ASCII"))
    }
}
