import WebSocket

extension Session {
    /// Deflates the resume window if nothing was committed since the last call (`WindowPacker`, every
    /// few seconds). Returns the bytes given back.
    @discardableResult
    public func packIdleWindow(_ deflater: Deflater) -> Int { window.packIfIdle(deflater) }

    /// The resume window's packed bytes (0: not packed).
    public var packedWindowBytes: Int { window.packedBytes }
}
