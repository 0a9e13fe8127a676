import Hub

/// The session and run logic's counters for tests: what fell behind and who was cut off; the rest is
/// ignored.
open class CountingMetrics: HubMetrics {
    public var dropped = 0, slow = 0
    public init() {}
    public func behind(_ traffic: Traffic, coalesced: Bool) { dropped += 1 }
    public func slowConsumer() { slow += 1 }
    public func durableCommitted(latency: Double) {}
    public func storeFailure() {}
    public func resumed(_ outcome: ResumeOutcome) {}
    public func refusedJoin(_ code: String, session: String, message: String, address: String) {}
}
