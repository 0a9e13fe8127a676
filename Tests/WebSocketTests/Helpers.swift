import WebSocket
import XCTest

/// Builds a client (masked) frame with explicit control over every header bit.
func clientFrame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0,
                 mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D], lengthForm: Int? = nil) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
    let m: UInt8 = mask == nil ? 0 : 0x80
    let form = lengthForm ?? (payload.count < 126 ? 7 : payload.count <= 0xFFFF ? 16 : 64)
    switch form {
    case 7: out.append(m | UInt8(payload.count))
    case 16: out.append(m | 126); out += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    default: out.append(m | 127); out += (0..<8).reversed().map { UInt8((UInt64(payload.count) >> (8 * UInt64($0))) & 0xFF) }
    }
    if let mask {
        out += mask
        out += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    } else {
        out += payload
    }
    return out
}

enum Event: Equatable {
    case text(String), binary([UInt8]), ping([UInt8]), pong([UInt8]), close(UInt16?, String)
}

/// Drives a reader with `input` split into pieces of `chunk` bytes, as a socket might deliver it.
func drive(_ input: [UInt8], chunk: Int = .max, maxMessageSize: Int = 1 << 20,
           compression: Bool = false) -> (events: [Event], failure: ProtocolViolation?) {
    var reader = MessageReader(role: .server, maxMessageSize: maxMessageSize, compressionNegotiated: compression)
    var events: [Event] = []
    var pending: [UInt8] = []
    var offset = 0
    while offset < input.count {
        let end = min(input.count, offset + chunk)
        pending += input[offset..<end]
        offset = end
        let outcome = pending.withUnsafeMutableBytes { buf in
            reader.read(buf) { event in
                switch event {
                case .message(let op, let p, _):
                    events.append(op == .text ? .text(String(decoding: p, as: UTF8.self)) : .binary(Array(p)))
                case .ping(let p): events.append(.ping(Array(p)))
                case .pong(let p): events.append(.pong(Array(p)))
                case .close(let code, let reason): events.append(.close(code?.rawValue, String(decoding: reason, as: UTF8.self)))
                }
                return true
            }
        }
        switch outcome {
        case .failed(let v): return (events, v)
        case .consumed(let n): pending.removeFirst(n)
        }
    }
    return (events, nil)
}
