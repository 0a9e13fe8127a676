import WebSocket

/// The one delivery policy for everything the hub broadcasts (sessions, run channels, dashboards):
/// durable messages always go, and a client past the hard limit is cut off (4000) to resume from its
/// last seq; ephemeral ones for a client past the soft limit are coalesced (the latest per `key`, sent
/// when it drains) or, without a key, dropped. Counters go to `metrics`.
public struct Fanout {
    public var softLimit: Int
    public var hardLimit: Int
    public init(softLimit: Int, hardLimit: Int) { self.softLimit = softLimit; self.hardLimit = hardLimit }

    public enum Kind {
        case durable
        /// `key` names what a later update replaces (nil: drop when behind).
        case ephemeral(Traffic, key: String?)
    }

    /// Delivers `frame` to one client under the policy. `supersedes` names a coalescing key this frame
    /// makes stale (a status change overtaking the progress held back for a slow client).
    @inline(__always)
    public func deliver(_ frame: Chunk, to c: HubClient, _ kind: Kind, supersedes: String? = nil, metrics: HubMetrics?)
    {
        guard !c.isDisconnecting else { return }
        if let supersedes { c.uncoalesce(key: supersedes) }
        let queued = c.queuedBytes
        switch kind {
        case .durable:
            if queued > hardLimit {
                metrics?.slowConsumer()
                c.disconnect(.slowConsumer, "too far behind; resume from your last seq")
                return
            }
        case .ephemeral(let traffic, let key):
            if queued > softLimit {
                holdBack(frame, for: c, traffic, key: key, metrics: metrics)
                return
            }
        }
        c.deliver(frame)
    }

    /// `deliver(frame, to: c, .ephemeral(traffic, key: key()), metrics: metrics())` for the fan-out's hot
    /// loop: the client is asked once (`offerEphemeral`: disconnecting, behind, or queued), and the
    /// coalescing key and the metrics are reached only for a client that is behind (a weak load and a
    /// retain per message spared).
    @inline(__always)
    public func deliverEphemeral(
        _ frame: Chunk, to c: borrowing HubClient, _ traffic: Traffic, key: () -> String?,
        metrics: () -> HubMetrics?
    ) {
        if c.offerEphemeral(frame, softLimit: softLimit) { return }
        holdBack(frame, for: c, traffic, key: key(), metrics: metrics())
    }

    /// An ephemeral frame for a client past the soft limit: coalesced under `key` (sent when it drains),
    /// or dropped without one; counted either way.
    @inline(__always)
    func holdBack(_ frame: Chunk, for c: borrowing HubClient, _ traffic: Traffic, key: String?, metrics: HubMetrics?) {
        metrics?.behind(traffic, coalesced: key != nil)
        if let key { c.coalesce(frame, key: key) }
    }
}
