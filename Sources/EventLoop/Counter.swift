import CEV
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

/// A Prometheus histogram with fixed bucket bounds (seconds). One shard per loop, written only by its
/// loop's thread with relaxed atomic stores (no lock, no locked instruction); `/metrics` adds the
/// shards up (`merge`). Bounds and cells are one plain allocation each (no array bounds checks, no
/// reference counting on the hot path): an observation is a short scan and two stores.
public final class BucketHistogram: @unchecked Sendable {
    public let bounds: [Double]
    /// The hot path's view of the histogram: raw pointers only, so that holding and using it costs no
    /// reference counting (the histogram owns the memory and outlives every shard copy).
    public let shard: Shard
    private var n: Int { shard.n }

    public struct Shard: @unchecked Sendable {
        let limits: UnsafeMutablePointer<Double>
        /// `n + 1` bucket counts (not cumulative; the last is +Inf), then the sum in nanoseconds.
        let cells: UnsafeMutablePointer<Int>
        let n: Int

        @inline(__always) public func observe(_ seconds: Double) {
            var i = 0
            while i < n && seconds > limits[i] { i &+= 1 }
            chub_relaxed_add(cells + i, 1)
            // Clamped so that a clock step (or NaN) cannot trap the conversion.
            if seconds > 0 { chub_relaxed_add(cells + n + 1, seconds < 1e6 ? Int(seconds * 1e9) : Int(1e15)) }
        }
    }

    public init(bounds: [Double]) {
        self.bounds = bounds
        let limits = UnsafeMutablePointer<Double>.allocate(capacity: max(bounds.count, 1))
        limits.initialize(from: bounds, count: bounds.count)
        let cells = UnsafeMutablePointer<Int>.allocate(capacity: bounds.count + 2)
        cells.initialize(repeating: 0, count: bounds.count + 2)
        shard = Shard(limits: limits, cells: cells, n: bounds.count)
    }

    deinit {
        shard.limits.deallocate()
        shard.cells.deallocate()
    }

    @inline(__always) public func observe(_ seconds: Double) { shard.observe(seconds) }

    func count(_ i: Int) -> Int { chub_relaxed_load(shard.cells + i) }

    /// The sum of several shards: cumulative bucket counts, the sum in seconds and the count.
    public static func merge(_ shards: [BucketHistogram]) -> (cumulative: [Int], sum: Double, count: Int) {
        guard let first = shards.first else { return ([], 0, 0) }
        var cumulative = [Int](repeating: 0, count: first.n + 1)
        var sum = 0
        for h in shards {
            for i in 0..<cumulative.count { cumulative[i] += h.count(i) }
            sum += h.count(h.n + 1)
        }
        for i in 1..<cumulative.count { cumulative[i] += cumulative[i - 1] }
        return (cumulative, Double(sum) / 1e9, cumulative.last ?? 0)
    }

    /// Prometheus text for the shards: `# HELP`/`# TYPE` unless `header` is false (further label sets
    /// of one family), `labels` like `route="sessions"`.
    public static func render(
        _ name: String, help: String, _ shards: [BucketHistogram], labels: String = "", header: Bool = true
    ) -> String {
        guard let bounds = shards.first?.bounds else { return "" }
        let (cumulative, sum, count) = merge(shards)
        let sep = labels.isEmpty ? "" : ","
        var out = header ? "# HELP \(name) \(help)\n# TYPE \(name) histogram\n" : ""
        for (i, b) in bounds.enumerated() {
            out += "\(name)_bucket{\(labels)\(sep)le=\"\(b)\"} \(cumulative[i])\n"
        }
        out += "\(name)_bucket{\(labels)\(sep)le=\"+Inf\"} \(count)\n"
        let l = labels.isEmpty ? "" : "{\(labels)}"
        out += "\(name)_sum\(l) \(sum)\n\(name)_count\(l) \(count)\n"
        return out
    }

    /// 100 µs to 10 s: commits, deliveries, HTTP requests.
    public static let latencyBounds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    /// 10 µs to 1 s: one loop iteration's work.
    public static let iterationBounds: [Double] = [
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
    ]
    /// 5 ms to 30 s: webhook deliveries (a round trip to another server).
    public static let remoteBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
}
