import Foundation
import SparcAttribution
import SparcTensor

/// Turning relevance maps into masks: the k most or least relevant elements, in a scope.
public enum Selection {
    public enum Scope: String, Sendable, CaseIterable {
        /// One ranking over every element of the map.
        case global
        /// A separate ranking inside each tensor (each parameter, or each layer's components).
        case layer
        /// A separate ranking inside each row of a 2-D tensor (1-D tensors: the whole tensor).
        case row
    }

    /// The `k` largest (`largest: true`) or smallest values in each scope. `k` below 1 is a
    /// fraction of the scope's size (rounded), 1 or more a count. Ties are broken by
    /// position (key order, then flat index), so exactly k elements are chosen. NaN never
    /// counts as large or small: it is chosen last.
    public static func extreme(_ map: RelevanceMap, k: Double, largest: Bool, per scope: Scope = .global) throws -> Mask {
        guard k >= 0, k.isFinite else { throw MaskError.invalid("k must be a count ≥ 1 or a fraction in [0, 1)") }
        var mask = try Mask(like: map)
        mask.provenance["selection"] = "\(largest ? "top" : "bottom") \(k < 1 ? String(k) : String(format: "%.0f", k)) per \(scope.rawValue)"
        // Keys ordered so that "larger" means "chosen first": NaN lowest either way.
        func key(_ v: Float) -> Float { v.isNaN ? -.infinity : (largest ? v : -v) }
        // k ≥ size selects everything (compared as doubles: k may exceed Int's range).
        func wanted(_ size: Int) -> Int { k < 1 ? Int((k * Double(size)).rounded()) : (k >= Double(size) ? size : Int(k)) }
        switch scope {
        case .global, .layer:
            for names in scope == .global ? [map.names] : map.names.map({ [$0] }) {
                let size = names.reduce(0) { $0 + map[$1]!.count }, want = wanted(size)
                guard want > 0 else { continue }
                var keys = [Float](unsafeUninitializedCapacity: size) { out, filled in
                    for n in names { map[n]!.withUnsafeBufferPointer { p in for v in p { out[filled] = key(v); filled += 1 } } }
                }
                var c = keys.withUnsafeMutableBufferPointer { Cut($0, want: want) }
                for n in names { map[n]!.withUnsafeBufferPointer { p in c.mark(&mask.bits[n]!, p, 0..<p.count, key: key) } }
            }
        case .row:
            // Rows of 2-D tensors; a 1-D tensor is one row. One scratch row per tensor.
            for n in map.names {
                let t = map[n]!
                let cols = t.rank == 2 ? t.shape[1] : t.count, want = wanted(cols)
                guard want > 0 else { continue }
                var keys = [Float](repeating: 0, count: cols)
                t.withUnsafeBufferPointer { p in
                    keys.withUnsafeMutableBufferPointer { row in
                        for start in stride(from: 0, to: p.count, by: cols) {
                            for j in 0..<cols { row[j] = key(p[start + j]) }
                            var c = Cut(row, want: want)
                            c.mark(&mask.bits[n]!, p, start..<(start + cols), key: key)
                        }
                    }
                }
            }
        }
        return mask
    }

    /// Where one ranking is cut: every key above `threshold` is chosen, then keys equal to
    /// it in position order while `ties` lasts, so that exactly the wanted number are.
    private struct Cut {
        let threshold: Float
        var ties: Int

        /// Reorders `keys`.
        init(_ keys: UnsafeMutableBufferPointer<Float>, want: Int) {
            let t = kthLargest(keys, want)
            threshold = t
            ties = want - keys.reduce(0) { $0 + ($1 > t ? 1 : 0) }
        }

        /// Marks the chosen elements of `range` (values `p`, in position order) in `bits`.
        mutating func mark(_ bits: inout BitSet, _ p: UnsafeBufferPointer<Float>, _ range: Range<Int>, key: (Float) -> Float) {
            let t = threshold
            var ties = self.ties
            bits.set(range) { i in
                let v = key(p[i])
                if v > t { return true }
                if v == t && ties > 0 { ties -= 1; return true }
                return false
            }
            self.ties = ties
        }
    }

    /// Elements whose value is above `value`.
    public static func above(_ map: RelevanceMap, _ value: Float) throws -> Mask {
        var mask = try Mask(like: map)
        mask.provenance["selection"] = "above \(value)"
        for n in map.names {
            map[n]!.withUnsafeBufferPointer { p in mask.bits[n]!.set(0..<p.count) { p[$0] > value } }
        }
        return mask
    }

    /// The k-th largest value (1-based) by quickselect; reorders `values`.
    static func kthLargest(_ values: UnsafeMutableBufferPointer<Float>, _ k: Int) -> Float {
        var lo = 0, hi = values.count - 1
        let target = k - 1
        while lo < hi {
            // Median of three as the pivot; Hoare partition into ≥ pivot | ≤ pivot.
            let mid = lo + (hi - lo) / 2
            let pivot = median(values[lo], values[mid], values[hi])
            var i = lo, j = hi
            while i <= j {
                while values[i] > pivot { i += 1 }
                while values[j] < pivot { j -= 1 }
                if i <= j { values.swapAt(i, j); i += 1; j -= 1 }
            }
            if target <= j { hi = j } else if target >= i { lo = i } else { return values[target] }
        }
        return values[target]
    }

    private static func median(_ a: Float, _ b: Float, _ c: Float) -> Float { max(min(a, b), min(max(a, b), c)) }

    /// Each tensor divided by its largest |value| (`layer`), or all by the map's (`global`),
    /// so maps from different sample sets can be compared and subtracted.
    public static func normalize(_ map: RelevanceMap, per scope: Scope = .layer) -> RelevanceMap {
        func peak(_ t: Tensor) -> Float { t.withUnsafeBufferPointer { p in p.reduce(0) { max($0, abs($1)) } } }
        let global = map.names.reduce(Float(0)) { max($0, peak(map[$1]!)) }
        var out = map
        for n in map.names {
            let t = map[n]!
            let s = scope == .global ? global : peak(t)
            let inv: Float = s > 0 ? 1 / s : 0
            out.tensors[n] = t.withUnsafeBufferPointer { p in Tensor(shape: t.shape) { for i in 0..<p.count { $0[i] = p[i] * inv } } }
        }
        return out
    }
}
