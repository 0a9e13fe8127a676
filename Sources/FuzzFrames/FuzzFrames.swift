import WebSocket

/// libFuzzer entry point for the frame reader: any bytes, fed in two pieces at a fuzzer-chosen split,
/// must either be consumed or fail with a close code, never crash, hang or read out of bounds.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let split = Int(data[0]) % size
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var reader = MessageReader(role: .server, maxMessageSize: 4096, compressionNegotiated: data[0] & 1 == 1)
    var pending: [UInt8] = []
    for piece in [bytes[..<min(split, bytes.count)], bytes[min(split, bytes.count)...]] {
        pending += piece
        let outcome = pending.withUnsafeMutableBytes { buf in
            reader.read(buf) { event in
                if case .message(let op, let payload, let compressed) = event, op == .text, !compressed {
                    precondition(UTF8Validator.isValid(payload), "reader delivered invalid UTF-8")
                }
                return true
            }
        }
        switch outcome {
        case .failed(let violation):
            precondition(
                violation.code == .protocolError || violation.code == .invalidPayload
                    || violation.code == .messageTooBig)
            return 0
        case .consumed(let n):
            precondition(n <= pending.count)
            pending.removeFirst(n)
        }
    }
    return 0
}
