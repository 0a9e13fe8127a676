import Hub
import WebSocket

/// What a WebSocket path does with the messages of the connections upgraded on it.
protocol Endpoint: AnyObject {
    var handshakeOptions: Handshake.Options { get }
    func opened(_ connection: Connection)
    func received(_ connection: Connection, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer)
    func closed(_ connection: Connection)
}
