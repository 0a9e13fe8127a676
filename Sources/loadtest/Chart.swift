import Foundation
import Histogram

/// A self-contained SVG: deliveries/s and p50/p99 latency per second, and the latency distribution
/// (latency by percentile, log-scaled percentile axis as HdrHistogram plots do).
enum Chart {
    static func svg(
        title: String, timeline: [(t: Double, rate: Double, p50: Double, p99: Double)], histogram: Histogram<UInt64>
    ) -> String {
        let w = 900.0, h = 300.0, pad = 50.0
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(2 * h + 40))\" "
            + "font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(pad)\" y=\"20\" font-size=\"15\" font-weight=\"bold\">\(escape(title))</text>\n"

        // 1. Latency over time.
        let maxT = max(timeline.last?.t ?? 1, 1)
        let maxL = max(timeline.map(\.p99).max() ?? 1, 0.001) * 1.1
        func x(_ t: Double) -> Double { pad + (w - 2 * pad) * t / maxT }
        func y(_ v: Double, _ top: Double, _ maxV: Double) -> Double { top + (h - 2 * pad) * (1 - v / maxV) }
        let top1 = 30.0
        out += axes(
            top: top1, w: w, h: h, pad: pad, ylabel: "latency ms (p50 blue, p99 red)", maxY: maxL, xlabel: "seconds",
            maxX: maxT)
        for (key, color) in [(\(t: Double, rate: Double, p50: Double, p99: Double).p50, "#4363d8"), (\.p99, "#e6194b")]
        {
            let pts = timeline.map { "\(x($0.t)),\(y($0[keyPath: key], top1 + pad, maxL))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(pts)\"/>\n"
        }
        // 2. Distribution: latency at percentile, x = -log10(1 - p).
        let top2 = h + 20
        let percentiles = [0.0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999]
        let values = percentiles.map { Double(histogram.valueAtPercentile($0)) / 1000 }
        let maxV = max(values.max() ?? 1, 0.001) * 1.1
        let maxX = 5.0
        func px(_ p: Double) -> Double { pad + (w - 2 * pad) * min(-log10(max(1 - p / 100, 1e-5)), maxX) / maxX }
        out += axes(
            top: top2, w: w, h: h, pad: pad, ylabel: "latency ms by percentile", maxY: maxV, xlabel: "percentile",
            maxX: nil)
        let pts = zip(percentiles, values).map { "\(px($0)),\(y($1, top2 + pad, maxV))" }.joined(separator: " ")
        out += "<polyline fill=\"none\" stroke=\"#3cb44b\" stroke-width=\"2\" points=\"\(pts)\"/>\n"
        for p in [50.0, 90, 99, 99.9, 99.99] {
            out +=
                "<text x=\"\(px(p) - 12)\" "
                + "y=\"\(top2 + h - pad + 15)\">\(p == p.rounded() ? String(Int(p)) : String(p))</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    private static func axes(
        top: Double, w: Double, h: Double, pad: Double, ylabel: String, maxY: Double, xlabel: String, maxX: Double?
    ) -> String {
        var s = "<line x1=\"\(pad)\" y1=\"\(top + pad)\" x2=\"\(pad)\" y2=\"\(top + h - pad)\" stroke=\"black\"/>\n"
        s +=
            "<line x1=\"\(pad)\" y1=\"\(top + h - pad)\" x2=\"\(w - pad)\" y2=\"\(top + h - pad)\" stroke=\"black\"/>\n"
        let maxLabel = String(format: "%.2f", maxY)
        s += "<text x=\"\(pad)\" y=\"\(top + pad - 8)\">\(escape(ylabel)) — max \(maxLabel)</text>\n"
        for i in 0...4 {
            let v = maxY * Double(i) / 4, yy = top + pad + (h - 2 * pad) * (1 - Double(i) / 4)
            s +=
                "<text x=\"5\" y=\"\(yy + 4)\">\(String(format: "%.2f", v))</text><line x1=\"\(pad)\" y1=\"\(yy)\" "
                + "x2=\"\(w - pad)\" y2=\"\(yy)\" stroke=\"#ddd\"/>\n"
        }
        if let maxX {
            s += "<text x=\"\(w - pad - 60)\" y=\"\(top + h - pad + 15)\">\(escape(xlabel)) (0-\(Int(maxX)))</text>\n"
        }
        return s
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }
}
