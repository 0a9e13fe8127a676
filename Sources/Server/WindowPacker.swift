import CEV
import Hub
import WebSocket

/// Packs the resume windows of idle sessions (one per loop, driven by `LoopHub`'s tick): every
/// `period` ticks each session's window (up to 64 KB) is deflated if nothing was committed to it for
/// the last five looks, so a window is packed after five to six quiet seconds (a session with events
/// now and then is not packed and unpacked in turn) and unpacked by its next event or change; a resume
/// reads an inflated copy. A session sitting idle keeps its last events (one presence
/// event per join at least) in a third to a fifth of their bytes. A look that gave back much hands
/// the free pages to the system (`malloc_trim`), as the store's writer does with its cache.
final class WindowPacker {
    /// LoopHub ticks (4 per second) between looks.
    static let period = 4
    /// Bytes given back by one look past which the heap is trimmed.
    static let trimAfter = 256 * 1024
    private var ticks = 0
    /// One raw deflater per loop, made on the first look (a small hash: windows are a few KB).
    private lazy var deflater = Deflater(windowBits: 15, noContextTakeover: true, memLevel: 2)

    func tick<S: Sequence>(_ sessions: S, metrics: Metrics) where S.Element == Session {
        ticks += 1
        guard ticks >= Self.period else { return }
        ticks = 0
        guard let deflater else { return }
        var freed = 0
        for s in sessions {
            let n = s.packIdleWindow(deflater)
            if n > 0 {
                freed += n
                metrics.windowsPacked.add()
            }
        }
        if freed >= Self.trimAfter { _ = malloc_trim(0) }
    }
}
