/// Why a peer's bytes broke the protocol, and the close code RFC 6455 names for it. This is the one
/// mapping from protocol error to close code: parsers only ever produce these.
public struct ProtocolViolation: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: CloseCode
    public let reason: String
    public init(_ code: CloseCode, _ reason: String) { self.code = code; self.reason = reason }

    public var description: String { "\(code.rawValue) \(reason)" }
}
