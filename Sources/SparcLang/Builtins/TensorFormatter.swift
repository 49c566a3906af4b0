import Foundation
import SparcTensor

/// numpy-style printing: nested brackets, aligned columns, and `...` in place of the
/// middle of each axis when a tensor has more than `threshold` elements.
enum TensorFormatter {
    static let threshold = 1000
    static let edgeItems = 3

    static func format(_ t: Tensor) -> String {
        let shape = t.rank == 0 ? "" : ", shape: [\(t.shape.map(String.init).joined(separator: ", "))]"
        // Nothing to show: no per-axis work (an axis of an empty tensor may be 1e9 long).
        if t.count == 0 { return "tensor([]" + shape + ", dtype: float32)" }
        let summarize = t.count > threshold
        // Indices shown along each axis.
        let shown: [[Int?]] = t.shape.map { n in
            summarize && n > 2 * edgeItems ? Array(0..<edgeItems).map { Optional($0) } + [nil] + ((n - edgeItems)..<n).map { Optional($0) }
                                           : (0..<n).map { Optional($0) }
        }
        var strides = [Int](repeating: 1, count: t.rank)
        for d in stride(from: t.rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * t.shape[d + 1] }

        // Values that will be printed decide the number format.
        var visible: [Float] = []
        func collect(_ d: Int, _ base: Int) {
            if d == t.rank { visible.append(t[flat: base]); return }
            for i in shown[d] { if let i { collect(d + 1, base + i * strides[d]) } }
        }
        collect(0, 0)
        let fmt = numberFormat(visible)
        let width = visible.map { fmt($0).count }.max() ?? 1

        let prefix = "tensor("
        func render(_ d: Int, _ base: Int, _ indent: Int) -> String {
            if d == t.rank { let s = fmt(t[flat: base]); return String(repeating: " ", count: width - s.count) + s }
            let items = shown[d].map { i -> String in i.map { render(d + 1, base + $0 * strides[d], indent + 1) } ?? "..." }
            if d == t.rank - 1 { return "[" + items.joined(separator: ", ") + "]" }
            let newlines = String(repeating: "\n", count: t.rank - d - 1)
            return "[" + items.joined(separator: "," + newlines + String(repeating: " ", count: indent + 1)) + "]"
        }
        let body = t.rank == 0 ? fmt(t[flat: 0]) : render(0, 0, prefix.count)
        return prefix + body + shape + ", dtype: float32)"
    }

    /// Whole numbers as `3.`, ordinary magnitudes with 4 decimals, extremes in scientific notation.
    private static func numberFormat(_ values: [Float]) -> (Float) -> String {
        let finite = values.filter { $0.isFinite }
        let maxAbs = finite.map { abs($0) }.max() ?? 0
        let minAbs = finite.filter { $0 != 0 }.map { abs($0) }.min() ?? 0
        func special(_ x: Float) -> String? {
            if x.isNaN { return "nan" }
            if x.isInfinite { return x > 0 ? "inf" : "-inf" }
            return nil
        }
        if finite.allSatisfy({ $0 == $0.rounded() }) && maxAbs < 1e8 {
            return { special($0) ?? String(format: "%.0f.", $0) }
        }
        if maxAbs >= 1e5 || (minAbs > 0 && minAbs < 1e-4) {
            return { special($0) ?? String(format: "%.4e", $0) }
        }
        return { special($0) ?? String(format: "%.4f", $0) }
    }
}
