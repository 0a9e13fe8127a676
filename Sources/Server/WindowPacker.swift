import Hub
import WebSocket

/// Packs the resume windows of idle sessions (one per loop, driven by `LoopHub`'s tick): every
/// `period` ticks each session's window is deflated if nothing was committed to it since the last look,
/// so a window is packed after one to two quiet periods and unpacked by its next event or resume.
/// A session sitting idle keeps its last events (one presence event per join at least) in a third to
/// a fifth of their bytes.
final class WindowPacker {
    /// LoopHub ticks (4 per second) between looks.
    static let period = 20
    private var ticks = 0
    /// One raw deflater per loop, made on the first look (a small hash: windows are a few KB).
    private lazy var deflater = Deflater(windowBits: 15, noContextTakeover: true, memLevel: 2)

    func tick<S: Sequence>(_ sessions: S, metrics: Metrics) where S.Element == Session {
        ticks += 1
        guard ticks >= Self.period else { return }
        ticks = 0
        guard let deflater else { return }
        for s in sessions where s.packIdleWindow(deflater) > 0 { metrics.windowsPacked.add() }
    }
}
