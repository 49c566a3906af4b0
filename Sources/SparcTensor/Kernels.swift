import Foundation

/// Vectorised element-wise kernels over raw buffers, used by the model runtime's hot
/// loops. Each works on SIMD16 lanes with a scalar tail.
public enum Kernels {
    public typealias V = SIMD16<Float>

    /// e^x on 16 lanes: Cody–Waite range reduction x = n·ln2 + r, a degree-6 polynomial
    /// for e^r on |r| ≤ ln2/2, then scaling by 2^n through the exponent bits.
    /// Relative error about 2 ulp; inputs below -87.3 give 0, above 88.7 give +inf, NaN
    /// gives NaN (a NaN must not reach the float → integer conversion, which traps).
    @inline(__always)
    public static func exp(_ x: V) -> V {
        let lo = V(repeating: -87.33654), hi = V(repeating: 88.72283)
        let isNaN = x .!= x
        var xc = x.replacing(with: 0, where: isNaN)
        xc = xc.replacing(with: lo, where: xc .< lo)
        xc = xc.replacing(with: hi, where: xc .> hi)
        // Round to nearest by adding 1.5·2²³: the integer lands in the low mantissa bits.
        let magic = V(repeating: 12_582_912)
        let shifted = xc * V(repeating: 1.442695041) + magic
        let n = shifted - magic
        var r = xc - n * V(repeating: 0.693359375)
        r = r - n * V(repeating: -2.12194440e-4)
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + V(repeating: 1.3981999507e-3)
        p = p * r + V(repeating: 8.3334519073e-3)
        p = p * r + V(repeating: 4.1665795894e-2)
        p = p * r + V(repeating: 1.6666665459e-1)
        p = p * r + V(repeating: 5.0000001201e-1)
        p = p * r * r + r + V(repeating: 1)
        // 2^n from the integer bits: n + 127 into the exponent field; n ∈ [-126, 128] after
        // clamping, and n = 128 (x near 88.7) is finished with a second factor of 2.
        let ni = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
        let top = ni .== 128
        let e = (ni &+ 127).replacing(with: 254, where: top)
        var result = p * unsafeBitCast(e &<< 23, to: V.self)
        result = result.replacing(with: result * V(repeating: 2), where: top)
        result = result.replacing(with: V(repeating: 0), where: x .< lo)
        result = result.replacing(with: V(repeating: .infinity), where: x .> hi)
        return result.replacing(with: V(repeating: .nan), where: isNaN)
    }

    @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(V(repeating: x))[0] }

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// The first `n` < 16 floats at `p`, the other lanes set to `fill`.
    @inline(__always) static func loadPartial(_ p: UnsafePointer<Float>, _ n: Int, fill: Float) -> V {
        var v = V(repeating: fill)
        for j in 0..<n { v[j] = p[j] }
        return v
    }

    @inline(__always) static func storePartial(_ v: V, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        for j in 0..<n { p[j] = v[j] }
    }

    /// In place: x ← x · σ(x)  (SiLU).
    public static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let v = load(x + i)
            store(v / (V(repeating: 1) + exp(-v)), x + i)
            i += 16
        }
        if i < count {
            let v = loadPartial(x + i, count - i, fill: 0)
            storePartial(v / (V(repeating: 1) + exp(-v)), x + i, count - i)
        }
    }

    /// In place: gate ← SiLU(gate) ⊙ up, the SwiGLU product, in one pass.
    public static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let g = load(gate + i)
            store(g / (V(repeating: 1) + exp(-g)) * load(up + i), gate + i)
            i += 16
        }
        if i < count {
            let g = loadPartial(gate + i, count - i, fill: 0), u = loadPartial(up + i, count - i, fill: 0)
            storePartial(g / (V(repeating: 1) + exp(-g)) * u, gate + i, count - i)
        }
    }

    /// In place: a ← a ⊙ b.
    public static func multiply(_ a: UnsafeMutablePointer<Float>, by b: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let va = UnsafeRawPointer(a + i).loadUnaligned(as: V.self)
            let vb = UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(a + i).storeBytes(of: va * vb, as: V.self)
            i += 16
        }
        while i < count { a[i] *= b[i]; i += 1 }
    }

    /// In place: a ← a + b.
    public static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let va = UnsafeRawPointer(a + i).loadUnaligned(as: V.self)
            let vb = UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(a + i).storeBytes(of: va + vb, as: V.self)
            i += 16
        }
        while i < count { a[i] += b[i]; i += 1 }
    }

    /// Σ x².
    @inline(__always)
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            acc += v * v
            i += 16
        }
        var s = acc.sum()
        while i < count { s += x[i] * x[i]; i += 1 }
        return s
    }

    /// RMSNorm of one row: y = x · (1/√(mean(x²) + ε)) ⊙ w. Returns the factor 1/rms.
    @discardableResult
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, eps: Float,
                               into y: UnsafeMutablePointer<Float>, count: Int) -> Float {
        let inv = 1 / (sumOfSquares(x, count: count) / Float(count) + eps).squareRoot()
        let vinv = V(repeating: inv)
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            let vw = UnsafeRawPointer(w + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: vw * (v * vinv), as: V.self)
            i += 16
        }
        while i < count { y[i] = w[i] * (x[i] * inv); i += 1 }
        return inv
    }

    /// In place softmax of one row; entries at index ≥ `valid` become 0 (causal mask).
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int, valid: Int) {
        guard valid > 0 else { x.update(repeating: 0, count: count); return }
        let full = valid / 16 * 16, tail = valid - full
        var vmax = V(repeating: -.infinity)
        var i = 0
        while i < full { vmax = pointwiseMax(vmax, load(x + i)); i += 16 }
        if tail > 0 { vmax = pointwiseMax(vmax, loadPartial(x + full, tail, fill: -.infinity)) }
        let m = V(repeating: vmax.max())
        var sum = V(repeating: 0)
        i = 0
        while i < full {
            let e = exp(load(x + i) - m)
            store(e, x + i)
            sum += e
            i += 16
        }
        var tailValues = V(repeating: 0)
        if tail > 0 {
            // Padding lanes hold -inf, whose exponential is 0: they add nothing to the sum.
            tailValues = exp(loadPartial(x + full, tail, fill: -.infinity) - m)
            sum += tailValues
        }
        let inv = V(repeating: 1 / sum.sum())
        i = 0
        while i < full { store(load(x + i) * inv, x + i); i += 16 }
        if tail > 0 { storePartial(tailValues * inv, x + full, tail) }
        if valid < count { (x + valid).update(repeating: 0, count: count - valid) }
    }

    /// log Σ exp(x) of one row, computed stably.
    public static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var m = -Float.infinity
        for i in 0..<count { m = max(m, x[i]) }
        var s: Double = 0
        let vm = V(repeating: m)
        var i = 0
        while i + 16 <= count {
            s += Double(exp(UnsafeRawPointer(x + i).loadUnaligned(as: V.self) - vm).sum())
            i += 16
        }
        while i < count { s += Double(exp(x[i] - m)); i += 1 }
        return Double(m) + Foundation.log(s)
    }
}
