import Hub
import TestSupport

/// libFuzzer entry point for the order a session applies committed events in (`LogOrder`): the bytes
/// pick an interleaving of this node's appends and their answers, other nodes' publications, gap reads
/// and their results, a lost log, retention and time (`LogOrderSimulation`). Each seq is applied once,
/// in increasing order; every append is answered once; no read is asked for while one is in flight; a
/// tick respects the backoff; and once everything has arrived, nothing the log holds is left unapplied.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLogOrder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var i = 0
    let failure = LogOrderSimulation.run {
        guard i < size else { return nil }
        defer { i += 1 }
        return data[i]
    }
    if let failure { preconditionFailure(failure) }
    return 0
}
