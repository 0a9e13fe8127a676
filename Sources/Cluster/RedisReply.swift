/// A Redis reply (`RESPParser` makes them; RESP3 maps come as arrays of keys and values, booleans as
/// integers, doubles and big numbers as their text).
public enum RedisReply: Equatable, Sendable {
    case string([UInt8])
    case integer(Int)
    case array([RedisReply])
    case null
    case status(String)
    case error(String)

    public var int: Int? {
        switch self {
        case .integer(let n): return n
        case .string(let b): return Int(String(decoding: b, as: UTF8.self))
        default: return nil
        }
    }
    public var bytes: [UInt8]? { if case .string(let b) = self { return b } else { return nil } }
    public var text: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }
    public var items: [RedisReply] { if case .array(let a) = self { return a } else { return [] } }
    public var errorMessage: String? { if case .error(let e) = self { return e } else { return nil } }
}

extension Array where Element == [UInt8] {
    /// A command line from strings and byte arrays.
    static func command(_ parts: RedisArg...) -> [[UInt8]] { parts.map(\.bytes) }
}

/// One argument of a command.
public protocol RedisArg { var bytes: [UInt8] { get } }
extension String: RedisArg { public var bytes: [UInt8] { Array(utf8) } }
extension Int: RedisArg { public var bytes: [UInt8] { Array(String(self).utf8) } }
extension Array: RedisArg where Element == UInt8 { public var bytes: [UInt8] { self } }
