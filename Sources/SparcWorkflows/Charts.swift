import Foundation

/// Small self-contained SVG charts for results: curves (sparsity sweeps, circuit curves)
/// and heatmaps (a mask's composition per layer and component).
public enum Charts {
    public struct Series: Sendable {
        public let name: String
        public let points: [(x: Double, y: Double)]
        /// A half-width per point (a standard deviation), drawn as a shaded band y ± spread.
        public let spread: [Double]?
        public init(name: String, points: [(x: Double, y: Double)], spread: [Double]? = nil) {
            self.name = name; self.points = points; self.spread = spread?.count == points.count ? spread : nil
        }

        /// The band's edges: (x, y − spread) and (x, y + spread).
        var bandEdges: [(x: Double, y: Double)] {
            guard let spread else { return [] }
            return zip(points, spread).flatMap { p, s in [(p.x, p.y - s), (p.x, p.y + s)] }
        }
    }

    static let palette = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"]

    /// A line chart, one line per series, with axes, ticks and a legend. Log axes drop
    /// non-positive values.
    public static func lines(_ series: [Series], title: String, xLabel: String, yLabel: String,
                             logX: Bool = false, logY: Bool = false) -> String {
        let width = 720.0, height = 440.0, left = 70.0, right = 170.0, top = 40.0, bottom = 55.0
        func tx(_ v: Double) -> Double? { logX ? (v > 0 ? log10(v) : nil) : (v.isFinite ? v : nil) }
        func ty(_ v: Double) -> Double? { logY ? (v > 0 ? log10(v) : nil) : (v.isFinite ? v : nil) }
        let all = series.flatMap { ($0.points + $0.bandEdges).compactMap { p in tx(p.x).flatMap { x in ty(p.y).map { (x, $0) } } } }
        var (x0, x1) = (all.map(\.0).min() ?? 0, all.map(\.0).max() ?? 1)
        var (y0, y1) = (all.map(\.1).min() ?? 0, all.map(\.1).max() ?? 1)
        // A flat axis gets some width; near 1e16 adding 1 changes nothing, so widen by
        // at least a few units of the doubles' spacing there.
        if x1 <= x0 { x1 = x0 + Swift.max(1, x0.ulp * 4) }
        if y1 <= y0 { y1 = y0 + Swift.max(1, y0.ulp * 4) }
        if !logY { let pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad }
        let pw = width - left - right, ph = height - top - bottom
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + ph - (y - y0) / (y1 - y0) * ph }

        var svg = header(width, height, title)
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#444\"/>\n"
        for (v, label) in ticks(x0, x1, log: logX) {
            svg += "<line x1=\"\(f(px(v)))\" y1=\"\(f(top))\" x2=\"\(f(px(v)))\" y2=\"\(f(top + ph))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"\(f(px(v)))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\">\(label)</text>\n"
        }
        for (v, label) in ticks(y0, y1, log: logY) {
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(v)))\" x2=\"\(f(left + pw))\" y2=\"\(f(py(v)))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(v) + 4))\" text-anchor=\"end\">\(label)</text>\n"
        }
        svg += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg += "<text transform=\"translate(16,\(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (i, s) in series.enumerated() {
            let colour = palette[i % palette.count]
            let pts = s.points.compactMap { p in tx(p.x).flatMap { x in ty(p.y).map { (px(x), py($0)) } } }
            if let spread = s.spread {
                // Lower edge left to right, upper edge back: one closed, translucent polygon.
                func edge(_ sign: Double) -> [(Double, Double)] {
                    zip(s.points, spread).compactMap { p, d in tx(p.x).flatMap { x in ty(p.y + sign * d).map { (px(x), py($0)) } } }
                }
                let outline = edge(-1) + edge(1).reversed()
                if outline.count >= 3 {
                    svg += "<polygon fill=\"\(colour)\" fill-opacity=\"0.18\" stroke=\"none\" points=\"\(outline.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " "))\"/>\n"
                }
            }
            if !pts.isEmpty {
                svg += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(pts.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " "))\"/>\n"
                for p in pts { svg += "<circle cx=\"\(f(p.0))\" cy=\"\(f(p.1))\" r=\"3\" fill=\"\(colour)\"/>" }
            }
            let ly = top + 14 + Double(i) * 20
            svg += "<line x1=\"\(f(left + pw + 14))\" y1=\"\(f(ly - 4))\" x2=\"\(f(left + pw + 38))\" y2=\"\(f(ly - 4))\" stroke=\"\(colour)\" stroke-width=\"3\"/>"
            svg += "<text x=\"\(f(left + pw + 44))\" y=\"\(f(ly))\">\(escape(s.name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// A heatmap: rows × columns of values, lightest at the smallest value and darkest at
    /// the largest (white → dark red), labelled; the key gives both ends.
    public static func heatmap(_ values: [[Double]], rowLabels: [String], columnLabels: [String], title: String,
                               valueLabel: String = "fraction selected") -> String {
        let cell = 22.0, left = 90.0, top = 70.0
        let columns = values.map(\.count).max() ?? 0
        let width = left + Double(columns) * cell + 40, height = top + Double(values.count) * cell + 50
        let flat = values.flatMap { $0 }
        let peak = flat.max() ?? 1
        // Stretch the scale over [min, max] when the values differ enough to show a pattern;
        // otherwise start at 0, so rounding noise is not drawn as structure.
        let low = flat.min().map { peak - $0 > 0.05 * abs(peak) ? $0 : min($0, 0) } ?? 0, span = peak - low
        let key = "colour: \(valueLabel), from \(String(format: "%.3g", low)) (white) to \(String(format: "%.3g", peak)) (dark)"
        var svg = header(max(width, Double(title.count) * 8 + 40, left + Double(key.count) * 6.5 + 20), height, title)
        for (j, label) in columnLabels.enumerated() {
            svg += "<text x=\"\(f(left + (Double(j) + 0.5) * cell))\" y=\"\(f(top - 6))\" text-anchor=\"middle\" font-size=\"10\">\(escape(label))</text>"
        }
        for (i, row) in values.enumerated() {
            let label = i < rowLabels.count ? rowLabels[i] : ""
            svg += "\n<text x=\"\(f(left - 6))\" y=\"\(f(top + (Double(i) + 0.7) * cell))\" text-anchor=\"end\" font-size=\"11\">\(escape(label))</text>"
            for (j, v) in row.enumerated() {
                let q = (v - low) / span
                let t = span > 0 && q.isFinite ? max(0, min(1, q)) : 1  // NaN or inf would trap in Int() below
                let r = Int(255 - 100 * t), gb = Int(255 * (1 - t))  // white → dark red
                svg += "<rect x=\"\(f(left + Double(j) * cell))\" y=\"\(f(top + Double(i) * cell))\" width=\"\(f(cell - 1))\" height=\"\(f(cell - 1))\" fill=\"rgb(\(r),\(gb),\(gb))\"><title>\(escape(label)) \(escape(j < columnLabels.count ? columnLabels[j] : "")): \(String(format: "%.4g", v))</title></rect>"
            }
        }
        svg += "\n<text x=\"\(f(left))\" y=\"\(f(height - 16))\">\(escape(key))</text>\n"
        return svg + "</svg>\n"
    }

    // MARK: helpers

    static func header(_ w: Double, _ h: Double, _ title: String) -> String {
        """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(f(w))" height="\(f(h))" viewBox="0 0 \(f(w)) \(f(h))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(w / 2))" y="22" text-anchor="middle" font-size="15">\(escape(title))</text>\n
        """
    }

    /// About five round ticks over [a, b] (in log10 units on a log axis: decades).
    static func ticks(_ a: Double, _ b: Double, log: Bool) -> [(Double, String)] {
        if log {
            // Decades, and 2× and 5× steps when the axis spans few decades.
            // Log axes span at most about ±324 decades (the doubles' range).
            guard a.isFinite, b.isFinite, a <= b else { return [] }
            let lo = Int(floor(a)), hi = Int(ceil(b))
            let steps: [Double] = b - a <= 3 ? [1, 2, 5] : [1]
            var out: [(Double, String)] = []
            for e in lo...hi {
                for m in steps {
                    let v = log10(m) + Double(e)
                    if v >= a - 1e-9 && v <= b + 1e-9 { out.append((v, label(pow(10, v)))) }
                }
            }
            return out
        }
        guard a.isFinite, b.isFinite, b > a else { return a.isFinite ? [(a, label(a))] : [] }
        let raw = (b - a) / 5, mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
        // Ticks are k·step for whole k, counted rather than accumulated: near 1e16 a step
        // below the spacing of doubles would leave `v += step` stuck forever. When the
        // steps are that fine, the axis ends are the only distinguishable ticks.
        let first = ceil(a / step), last = floor(b / step + 1e-9)
        guard step.isFinite, step > 0, first.isFinite, last.isFinite, last - first <= 50,
              (first + 1) * step != first * step else { return [(a, label(a)), (b, label(b))] }
        var out: [(Double, String)] = []
        var k = first
        while k <= last { out.append((k * step, label(k * step))); k += 1 }
        return out
    }

    static func label(_ v: Double) -> String {
        if abs(v - v.rounded()) <= 1e-9 * max(1, abs(v)) && abs(v) < 1e7 { return String(Int(v.rounded())) }
        return String(format: "%.3g", v)
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
