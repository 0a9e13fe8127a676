import Hub
import WebSocket

/// libFuzzer entry point for what `/watch` and `/publish` clients send: watch messages (with resume
/// positions checked against a run's window), and run events or batches applied to a run's state
/// machine in order, as the hub does before it stores them. Any bytes must give a value or a
/// `MessageError`, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWatch(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // A run with a window of events 3...9.
    var window = ResumeWindow(maxCount: 5, maxBytes: 64)
    for seq in 1...9 { window.append((seq, Chunk.text(Array("{\"seq\":\(seq)}".utf8)))) }
    do {
        if case .subscribe(_, let from?, _) = try WatchMessage.parse(bytes) {
            if let missed = window.missing(after: from, through: 9) {
                precondition(missed.count <= 9 && (from < 9 || missed.isEmpty))
            }
        }
    } catch is MessageError {
    } catch {
        fatalError("unexpected error type \(error)")
    }
    // The publisher's view: a run event, a `run_event` wrapper or a batch, then the state machine.
    guard let obj = try? JSONReader.readObject(bytes, maxDepth: 8) else { return 0 }
    var events: [RunEvent] = []
    if let list = obj["events"]?.array {
        for e in list.prefix(1000) { if let o = e.object, let ev = try? RunEvent.parse(o) { events.append(ev) } }
    } else if let ev = try? RunEvent.parse(obj) {
        events.append(ev)
    }
    var run = Run(id: "r")
    for (i, e) in events.enumerated() where run.check(e) == nil {
        run.apply(e, seq: i + 1, ts: Int64(i))
    }
    _ = run.stateJSON
    _ = run.summaryJSON
    return 0
}
