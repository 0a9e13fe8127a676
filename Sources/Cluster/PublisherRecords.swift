import EventLoop

/// What this node told the registry of run publisher sockets (`chub:pub:{RUN}`, `RedisControl`): the
/// runs whose publisher socket here published last, and of those the ones whose `take` Redis did not
/// answer (Redis unreachable when it was sent). Those are taken again when the control subscription is
/// made again after Redis comes back, and at each renewal, so a record written while Redis was down is
/// not lost. Loop 0 only.
struct PublisherRecords {
    private(set) var held: Set<String> = []
    private var unconfirmed: Set<String> = []
    /// The re-assertion tried again while Redis does not answer it, and its back-off.
    var retry: Loop.Timer?
    var wait = 0.0

    /// A publisher socket here published: the record is being taken.
    mutating func taken(_ run: String) {
        held.insert(run)
        unconfirmed.insert(run)
    }

    /// Redis answered a `take` (`took`: the record is this node's) or it could not be sent or answered.
    mutating func answered(_ run: String, took: Bool) {
        guard held.contains(run) else { return }
        if took { unconfirmed.remove(run) } else { unconfirmed.insert(run) }
    }

    /// This node's last publisher socket for the run closed.
    mutating func gone(_ run: String) {
        held.remove(run)
        unconfirmed.remove(run)
    }

    /// The registry operation that renews the run's record: `take` if its last one was not answered,
    /// else `keep`.
    func op(_ run: String) -> String { unconfirmed.contains(run) ? "take" : "keep" }
}
