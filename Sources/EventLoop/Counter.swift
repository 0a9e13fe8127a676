import Synchronization

/// A counter written by one loop thread and read by any thread (for `/metrics`). The writer does a
/// relaxed load and store (two plain moves on x86, no locked instruction on the hot path); readers see
/// a slightly stale but never torn value.
public final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    public init() {}
    @inline(__always) public func add(_ n: Int = 1) {
        value.store(value.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }
    @inline(__always) public func set(_ n: Int) { value.store(n, ordering: .relaxed) }
    @inline(__always) public var get: Int { value.load(ordering: .relaxed) }
}
