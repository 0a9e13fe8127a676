import CHiredis

/// A Redis reply, copied out of hiredis's.
public enum RedisReply: Equatable, Sendable {
    case string([UInt8])
    case integer(Int)
    case array([RedisReply])
    case null
    case status(String)
    case error(String)

    init(_ r: UnsafePointer<redisReply>) {
        let p = r.pointee
        switch p.type {
        case REDIS_REPLY_STRING:
            self = .string(p.str.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(p.len))) } ?? [])
        case REDIS_REPLY_INTEGER: self = .integer(Int(p.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(Int(p.elements))
            for i in 0..<Int(p.elements) {
                if let e = p.element[i] { items.append(RedisReply(e)) } else { items.append(.null) }
            }
            self = .array(items)
        case REDIS_REPLY_STATUS: self = .status(p.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_ERROR: self = .error(p.str.map { String(cString: $0) } ?? "error")
        default: self = .null
        }
    }

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

/// Calls hiredis with binary-safe arguments.
func withArgv<R>(
    _ args: [[UInt8]], _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
)
    -> R
{
    let total = args.reduce(0) { $0 + $1.count }
    let storage = UnsafeMutablePointer<CChar>.allocate(capacity: max(total, 1))
    defer { storage.deallocate() }
    var ptrs = [UnsafePointer<CChar>?](repeating: nil, count: args.count)
    var lens = [Int](repeating: 0, count: args.count)
    var at = 0
    for (i, a) in args.enumerated() {
        a.withUnsafeBytes { src in
            if let base = src.baseAddress {
                (storage + at).withMemoryRebound(to: UInt8.self, capacity: a.count) {
                    $0.update(from: base.assumingMemoryBound(to: UInt8.self), count: a.count)
                }
            }
        }
        ptrs[i] = UnsafePointer(storage + at)
        lens[i] = a.count
        at += a.count
    }
    return ptrs.withUnsafeMutableBufferPointer { p in
        lens.withUnsafeBufferPointer { l in body(Int32(args.count), p.baseAddress!, l.baseAddress!) }
    }
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
