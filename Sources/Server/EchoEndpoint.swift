import WebSocket

/// `/echo` (enabled with `--echo`): every message comes back as it was sent, text as text and binary
/// as binary. It is the endpoint conformance suites (Autobahn-style) and the echo benchmark drive.
final class EchoEndpoint: Endpoint {
    let handshakeOptions: Handshake.Options
    init(allowedOrigins: [String]?) {
        handshakeOptions = Handshake.Options(subprotocols: [], allowedOrigins: allowedOrigins)
    }
    func opened(_ connection: Connection) {}
    @inline(__always)
    func received(_ connection: Connection, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer) {
        connection.sendFrame(opcode, payload)
    }
    func closed(_ connection: Connection) {}
}
