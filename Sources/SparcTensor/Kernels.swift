import CKernels
import Foundation

/// Vectorised element-wise kernels over raw buffers, used by the model runtime's hot
/// loops: sums and products on SIMD16 lanes with a scalar tail here, the exp-based ones in C.
public enum Kernels {
    public typealias V = SIMD16<Float>

    /// e^x (Cody–Waite range reduction x = n·ln2 + r, a degree-6 polynomial for e^r,
    /// scaling by 2^n through the exponent bits; relative error about 2 ulp). Inputs below
    /// -87.3 give 0, above 88.7 give +inf, NaN gives NaN. The array kernels are in C
    /// (Sources/CKernels: Swift's SIMD mask operations compile to scalar code).
    public static func exp(_ x: Float) -> Float {
        var y = x
        sparc_exp(&y, 1)
        return y
    }

    /// The instruction set the C kernels run with: "AVX-512", "AVX2" or "baseline".
    public static var instructionSet: String { String(cString: sparc_kernels_variant()) }

    /// Switches the C kernels to another instruction set's copy (0 baseline, 1 AVX2, 2
    /// AVX-512); false, changing nothing, when this CPU cannot run it. For tests and benchmarks.
    @discardableResult
    public static func useInstructionSet(_ level: Int) -> Bool { sparc_kernels_use(Int32(level)) != 0 }

    /// In place: x ← e^x.
    public static func exp(_ x: UnsafeMutablePointer<Float>, count: Int) { sparc_exp(x, count) }

    /// The element-wise non-linearities of the MLPs (their C numbering).
    public enum Activation: Int32, Sendable {
        case silu = 0, geluTanh = 1, gelu = 2, relu = 3
    }

    /// x ← f(x).
    public static func activation(_ f: Activation, _ x: UnsafeMutablePointer<Float>, count: Int) {
        sparc_activation(f.rawValue, x, count)
    }

    /// gate ← f(gate) ⊙ up, the gated product (SwiGLU, GeGLU), in one pass.
    public static func gatedActivation(_ f: Activation, _ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        sparc_activation_gated(f.rawValue, gate, up, count)
    }

    /// d ← d ⊙ (what f passes back at the pre-activation x): f'(x), or under the identity
    /// rule (AttnLRP Eq. 9, `identityEpsilon` given) f(x)/(x + ε).
    public static func activationBackward(_ f: Activation, _ d: UnsafeMutablePointer<Float>, preActivation x: UnsafePointer<Float>,
                                          count: Int, identityEpsilon: Float?) {
        sparc_activation_backward(f.rawValue, d, x, count, identityEpsilon == nil ? 0 : 1, identityEpsilon ?? 0)
    }

    /// Backward of m = f(gate) ⊙ up: dp = dProduct · share; dGate ← dp · up · (what f passes
    /// back at gate), dUp ← dp · f(gate). `dUp` may alias `dProduct`.
    public static func gatedActivationBackward(_ f: Activation, _ dProduct: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                               up: UnsafePointer<Float>, dGate: UnsafeMutablePointer<Float>,
                                               dUp: UnsafeMutablePointer<Float>, count: Int, share: Float, identityEpsilon: Float?) {
        sparc_activation_gated_backward(f.rawValue, dProduct, gate, up, dGate, dUp, count, share,
                                        identityEpsilon == nil ? 0 : 1, identityEpsilon ?? 0)
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

    /// acc (+)= scale · f(d) for each d in `ds` in turn, over `count` values, spread over the
    /// cores, where f(d) is d, w ⊙ d (with `w`), or the absolute value of either (`absolute`);
    /// `assign` writes a fresh accumulator with the first d instead of adding. The product is
    /// formed before scaling, as (w·d)·scale, and the d's are added one after another, so
    /// several d's at once give the bits of one call per d; they go through acc a few
    /// thousand values at a time, so acc is read and written once for all of them.
    public static func fold(_ ds: [UnsafePointer<Float>], times w: UnsafePointer<Float>?, absolute: Bool, scale: Float,
                            into acc: UnsafeMutablePointer<Float>, count: Int, assign: Bool) {
        let absoluteFlag: Int32 = absolute ? 1 : 0
        Parallel.forRanges(count, minChunk: 1 << 14) { range in
            if assign && ds.count == 1 {
                // A fresh accumulator written once: stream it past the cache.
                sparc_fold(ds[0] + range.lowerBound, w.map { $0 + range.lowerBound }, absoluteFlag, scale, acc + range.lowerBound,
                           range.count, Int32(SPARC_FOLD_ASSIGN_STREAMING))
                return
            }
            for lo in stride(from: range.lowerBound, to: range.upperBound, by: 4096) {
                let n = min(4096, range.upperBound - lo)
                for (k, d) in ds.enumerated() {
                    sparc_fold(d + lo, w.map { $0 + lo }, absoluteFlag, scale, acc + lo, n,
                               Int32(assign && k == 0 ? SPARC_FOLD_ASSIGN : SPARC_FOLD_ADD))
                }
            }
        }
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
        sparc_softmax(x, count, valid)
    }

    /// The softmax Jacobian on `rows` rows of causal attention starting at query `offset`
    /// (so `offset + rows` columns), in place: dP[i, j] ← scale · P[i, j] · (dP[i, j] −
    /// Σ_{j' ≤ c} P[i, j'] dP[i, j']) for j ≤ c = offset + i, else 0.
    public static func softmaxBackwardCausal(_ p: UnsafePointer<Float>, stride pStride: Int, _ dp: UnsafeMutablePointer<Float>,
                                             stride dpStride: Int, rows: Int, offset: Int = 0, scale: Float) {
        sparc_softmax_backward_causal(p, pStride, dp, dpStride, rows, offset, scale)
    }

    /// log Σ exp(x) of one row, computed stably.
    public static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double {
        sparc_log_sum_exp(x, count)
    }
}
