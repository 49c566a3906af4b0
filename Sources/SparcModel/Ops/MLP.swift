import Foundation
import SparcTensor

/// The feed-forward sublayer:
///   gated (SwiGLU, GeGLU):  m = act(h·Wgᵀ) ⊙ (h·Wuᵀ),  out = m·Wdᵀ
///   plain (GPT-2, OPT):     m = act(h·Wuᵀ + bu),      out = m·Wdᵀ + bd
/// Shapes: h `[n, d]`, m `[n, f]` (f = intermediate size; m's columns are the neurons).
struct MLP: @unchecked Sendable {
    let gate: Linear?
    let up: Linear
    let down: Linear
    let activation: Activation

    struct Saved {
        var input = Tensor(zeros: [0])
        /// Pre-activations: gate (gated MLPs) and up `[n, f]`.
        var gate = Tensor(zeros: [0]), up = Tensor(zeros: [0])
        /// m, the output projection's input `[n, f]`.
        var product = Tensor(zeros: [0])
    }

    /// x += MLP(h). `G`, `U` are `[n, f]` scratch buffers.
    func forward(_ h: UnsafePointer<Float>, rows n: Int, residual X: UnsafeMutablePointer<Float>,
                 scratch G: UnsafeMutablePointer<Float>, _ U: UnsafeMutablePointer<Float>, saved: inout Saved?) {
        let f = up.outFeatures
        if saved != nil { saved!.input = copy(h, [n, up.inFeatures]) }
        let m: UnsafeMutablePointer<Float>
        if let gate {
            gate.forward(h, rows: n, into: G)
            up.forward(h, rows: n, into: U)
            if saved != nil { saved!.gate = copy(G, [n, f]); saved!.up = copy(U, [n, f]) }
            let act = activation
            Parallel.forRanges(n, minChunk: 8) { r in
                Activations.gatedProduct(act, G + r.lowerBound * f, U + r.lowerBound * f, count: r.count * f)
            }
            m = G
        } else {
            up.forward(h, rows: n, into: U)
            if saved != nil { saved!.up = copy(U, [n, f]) }
            let act = activation
            Parallel.forRanges(n, minChunk: 8) { r in Activations.apply(act, U + r.lowerBound * f, count: r.count * f) }
            m = U
        }
        if saved != nil { saved!.product = copy(m, [n, f]) }
        down.forward(m, rows: n, into: X, accumulate: true)
    }

    /// dh (+)= ∂MLP/∂h · dOut; neuron relevance (m ⊙ dm) into `grads` when wanted.
    func backward(_ dOut: UnsafePointer<Float>, saved s: Saved, rows n: Int, layer l: Int, into dH: UnsafeMutablePointer<Float>,
                  accumulate: Bool, rules: BackwardRules, grads: Gradients) {
        let f = up.outFeatures
        var dProduct = Tensor(unsafeUninitializedShape: [n, f])
        let DP = mutablePointer(&dProduct)
        down.backward(dOut, input: s.product.storage.pointer, rows: n, into: DP, grads: grads)
        if grads.wantNeurons {
            Gradients.accumulateProducts(s.product.storage.pointer, DP, rows: n, width: f, into: &grads.mlpUnits[l])
        }
        let act = activation
        if let gate {
            var dGate = Tensor(unsafeUninitializedShape: [n, f])
            let DG = mutablePointer(&dGate)
            let G = s.gate.storage.pointer, U = s.up.storage.pointer
            Parallel.forRanges(n, minChunk: 8) { r in
                let o = r.lowerBound * f
                Activations.gatedBackward(act, DP + o, gate: G + o, up: U + o, dGate: DG + o, dUp: DP + o,
                                          count: r.count * f, rules: rules)
            }
            gate.backward(DG, input: s.input.storage.pointer, rows: n, into: dH, accumulate: accumulate, grads: grads)
            up.backward(DP, input: s.input.storage.pointer, rows: n, into: dH, accumulate: true, grads: grads)
        } else {
            let U = s.up.storage.pointer
            Parallel.forRanges(n, minChunk: 8) { r in
                let o = r.lowerBound * f
                Activations.backward(act, DP + o, preActivation: U + o, count: r.count * f, rules: rules)
            }
            up.backward(DP, input: s.input.storage.pointer, rows: n, into: dH, accumulate: accumulate, grads: grads)
        }
    }
}

/// A copy of the floats at `p` as a tensor of `shape` (one allocation, no zeroing pass).
func copy(_ p: UnsafePointer<Float>, _ shape: [Int]) -> Tensor {
    var t = Tensor(unsafeUninitializedShape: shape)
    t.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: p, count: $0.count) }
    return t
}

/// Element-wise non-linearities, forward and backward, vectorised 16 lanes at a time.
enum Activations {
    typealias V = SIMD16<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// Runs `body` on 16-lane chunks; the tail goes through a zero-padded chunk.
    @inline(__always)
    static func chunks(_ count: Int, _ body: (Int, Int) -> Void) {
        var i = 0
        while i + 16 <= count { body(i, 16); i += 16 }
        if i < count { body(i, count - i) }
    }

    @inline(__always) static func load(_ p: UnsafePointer<Float>, _ n: Int) -> V {
        if n == 16 { return load(p) }
        var v = V(repeating: 0)
        for j in 0..<n { v[j] = p[j] }
        return v
    }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        if n == 16 { store(v, p); return }
        for j in 0..<n { p[j] = v[j] }
    }

    /// f(x) and f'(x) for 16 lanes.
    @inline(__always)
    static func value(_ a: Activation, _ x: V) -> (f: V, df: V) {
        let one = V(repeating: 1), half = V(repeating: 0.5)
        switch a {
        case .silu:
            let sig = one / (one + Kernels.exp(-x))
            return (x * sig, sig * (one + x * (one - sig)))
        case .geluTanh:
            // 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³); tanh(u) = 1 − 2/(e^{2u} + 1).
            let c = V(repeating: 0.7978845608028654), k = V(repeating: 0.044715)
            let u = c * (x + k * x * x * x)
            let t = one - V(repeating: 2) / (Kernels.exp(V(repeating: 2) * u) + one)
            let du = c * (one + V(repeating: 3) * k * x * x)
            return (half * x * (one + t), half * (one + t) + half * x * (one - t * t) * du)
        case .gelu:
            var f = V(), df = V()
            for j in 0..<16 {
                let cdf: Float = 0.5 * (1 + erff(x[j] / Float(2).squareRoot()))
                let pdf = Foundation.exp(-0.5 * x[j] * x[j]) / (2 * Float.pi).squareRoot()
                f[j] = x[j] * cdf
                df[j] = cdf + x[j] * pdf
            }
            return (f, df)
        case .relu:
            let zero = V(repeating: 0)
            return (x.replacing(with: zero, where: x .< zero), V(repeating: 0).replacing(with: one, where: x .> zero))
        }
    }

    /// x ← f(x).
    static func apply(_ a: Activation, _ x: UnsafeMutablePointer<Float>, count: Int) {
        chunks(count) { i, n in store(value(a, load(x + i, n)).f, x + i, n) }
    }

    /// gate ← f(gate) ⊙ up, the gated product, in one pass.
    static func gatedProduct(_ a: Activation, _ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        chunks(count) { i, n in store(value(a, load(gate + i, n)).f * load(up + i, n), gate + i, n) }
    }

    /// The derivative f passes back: f'(x), or under the identity rule (Eq. 9) f(x)/(x + ε).
    @inline(__always)
    static func passed(_ a: Activation, _ x: V, rules: BackwardRules) -> (f: V, pass: V) {
        let (f, df) = value(a, x)
        return (f, rules.identityAtActivations ? f / (x + V(repeating: BackwardRules.identityEpsilon)) : df)
    }

    /// In place: d ← d ⊙ (what f passes back at the pre-activation x).
    static func backward(_ a: Activation, _ d: UnsafeMutablePointer<Float>, preActivation x: UnsafePointer<Float>,
                         count: Int, rules: BackwardRules) {
        chunks(count) { i, n in store(load(d + i, n) * passed(a, load(x + i, n), rules: rules).pass, d + i, n) }
    }

    /// Backward of m = f(gate) ⊙ up: the product's gradient (× the uniform rule's share,
    /// Eq. 7) goes to up as f(gate) and to gate as up·(what f passes back). `dUp` may
    /// alias `dProduct`.
    static func gatedBackward(_ a: Activation, _ dProduct: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                              dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int, rules: BackwardRules) {
        let share = V(repeating: rules.productShare)
        chunks(count) { i, n in
            let dp = load(dProduct + i, n) * share, g = load(gate + i, n), u = load(up + i, n)
            let (f, pass) = passed(a, g, rules: rules)
            store(dp * u * pass, dGate + i, n)
            store(dp * f, dUp + i, n)
        }
    }
}
