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
/// loop's thread with the same relaxed stores as `Counter` (no lock, no locked instruction); `/metrics`
/// adds the shards up (`merge`). An observation is a short linear scan and two stores.
public final class BucketHistogram: Sendable {
    public let bounds: [Double]
    /// Per bucket (not cumulative); the last is +Inf.
    private let counts: [Counter]
    private let sumNanos = Counter()

    public init(bounds: [Double]) {
        self.bounds = bounds
        counts = (0...bounds.count).map { _ in Counter() }
    }

    @inline(__always) public func observe(_ seconds: Double) {
        var i = 0
        while i < bounds.count && seconds > bounds[i] { i &+= 1 }
        counts[i].add()
        // Clamped so that a clock step (or NaN) cannot trap the conversion.
        if seconds > 0 { sumNanos.add(seconds < 1e6 ? Int(seconds * 1e9) : Int(1e15)) }
    }

    /// The sum of several shards: cumulative bucket counts, the sum in seconds and the count.
    public static func merge(_ shards: [BucketHistogram]) -> (cumulative: [Int], sum: Double, count: Int) {
        guard let first = shards.first else { return ([], 0, 0) }
        var cumulative = [Int](repeating: 0, count: first.counts.count)
        var sum = 0
        for h in shards {
            for i in 0..<cumulative.count { cumulative[i] += h.counts[i].get }
            sum += h.sumNanos.get
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
