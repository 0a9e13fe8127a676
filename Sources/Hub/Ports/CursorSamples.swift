/// Cursor positions sampled for playback (`--record-cursors`): kept where the node keeps its own data,
/// beside the log rather than in it.
public protocol CursorSamples: AnyObject {
    /// Stores sampled cursor positions (a JSON array of cursor updates) for playback. Not part of the
    /// seq order and never acknowledged: losing a sample loses nothing anyone was promised.
    func recordCursors(session: String, ts: Int64, updates: [UInt8])
    /// Cursor samples of a session with `from <= ts <= to`, oldest first, at most `limit` (blocking:
    /// off the loops).
    func cursorSamples(session: String, from: Int64, to: Int64, limit: Int) throws -> [CursorSample]
}
