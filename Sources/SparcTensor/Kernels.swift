import Foundation

/// Vectorised element-wise kernels over raw buffers, used by the model runtime's hot
/// loops. Each works on SIMD16 lanes with a scalar tail.
public enum Kernels {
    public typealias V = SIMD16<Float>

    /// e^x on 16 lanes: Cody–Waite range reduction x = n·ln2 + r, a degree-6 polynomial
    /// for e^r on |r| ≤ ln2/2, then scaling by 2^n through the exponent bits.
    /// Relative error about 2 ulp; inputs below -87.3 give 0, above 88.7 give +inf.
    @inline(__always)
    public static func exp(_ x: V) -> V {
        let lo = V(repeating: -87.33654), hi = V(repeating: 88.72283)
        var xc = x.replacing(with: lo, where: x .< lo)
        xc = xc.replacing(with: hi, where: xc .> hi)
        let n = (xc * V(repeating: 1.442695041)).rounded(.toNearestOrEven)
        var r = xc - n * V(repeating: 0.693359375)
        r = r - n * V(repeating: -2.12194440e-4)
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + V(repeating: 1.3981999507e-3)
        p = p * r + V(repeating: 8.3334519073e-3)
        p = p * r + V(repeating: 4.1665795894e-2)
        p = p * r + V(repeating: 1.6666665459e-1)
        p = p * r + V(repeating: 5.0000001201e-1)
        p = p * r * r + r + V(repeating: 1)
        // 2^n: n + 127 into the exponent field; n is in [-126, 128] after clamping.
        let ni = SIMD16<Int32>(n)
        let clampedExp = (ni &+ 127).clamped(lowerBound: SIMD16(repeating: 1), upperBound: SIMD16(repeating: 254))
        let scale = unsafeBitCast(clampedExp &<< 23, to: V.self)
        var result = p * scale
        // n = 128 (x near 88.7) overflows the exponent field: finish with a second factor.
        result = result.replacing(with: p * V(repeating: 2) * unsafeBitCast(SIMD16<Int32>(repeating: 254) &<< 23, to: V.self),
                                  where: ni .== 128)
        result = result.replacing(with: V(repeating: 0), where: x .< lo)
        result = result.replacing(with: V(repeating: .infinity), where: x .> hi)
        return result
    }

    @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(V(repeating: x))[0] }

    /// In place: x ← x · σ(x)  (SiLU).
    public static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            let s = v / (V(repeating: 1) + exp(-v))
            UnsafeMutableRawPointer(x + i).storeBytes(of: s, as: V.self)
            i += 16
        }
        while i < count { x[i] = x[i] / (1 + exp(-x[i])); i += 1 }
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
        var m = -Float.infinity
        for i in 0..<valid { m = max(m, x[i]) }
        var sum = V(repeating: 0)
        let vm = V(repeating: m)
        var i = 0
        while i + 16 <= valid {
            let e = exp(UnsafeRawPointer(x + i).loadUnaligned(as: V.self) - vm)
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: V.self)
            sum += e
            i += 16
        }
        var s = sum.sum()
        while i < valid { let e = exp(x[i] - m); x[i] = e; s += e; i += 1 }
        let inv = 1 / s
        for j in 0..<valid { x[j] *= inv }
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
