/// A WebSocket frame opcode (RFC 6455 §5.2). Only the six defined values can be constructed;
/// reserved opcodes (3-7, 11-15) fail the initialiser so a parser can never carry one onwards.
public struct Opcode: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    public static let continuation = Opcode(unchecked: 0x0)
    public static let text = Opcode(unchecked: 0x1)
    public static let binary = Opcode(unchecked: 0x2)
    public static let close = Opcode(unchecked: 0x8)
    public static let ping = Opcode(unchecked: 0x9)
    public static let pong = Opcode(unchecked: 0xA)

    private init(unchecked value: UInt8) { rawValue = value }

    public init?(rawValue: UInt8) {
        switch rawValue {
        case 0x0, 0x1, 0x2, 0x8, 0x9, 0xA: self.rawValue = rawValue
        default: return nil
        }
    }

    /// Control frames (close, ping, pong) have the high bit of the opcode set.
    public var isControl: Bool { rawValue & 0x8 != 0 }

    public var description: String {
        switch rawValue {
        case 0x0: return "continuation"
        case 0x1: return "text"
        case 0x2: return "binary"
        case 0x8: return "close"
        case 0x9: return "ping"
        default: return "pong"
        }
    }
}
