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
    let out = mutablePointer(&t)
    // Split over the cores: the traces' copies (~8 MB per layer at 256 tokens) ran on one
    // core while the other waited; from 64 KB, since at 64 tokens a layer's copies are
    // 0.1–0.4 MB each (a profile put their serial memcpy at 1.6 % of the main thread).
    Parallel.forRanges(t.count, minChunk: 1 << 14) { r in (out + r.lowerBound).update(from: p + r.lowerBound, count: r.count) }
    return t
}

/// Element-wise non-linearities, forward and backward (the kernels are in SparcTensor).
enum Activations {
    /// x ← f(x).
    static func apply(_ a: Activation, _ x: UnsafeMutablePointer<Float>, count: Int) {
        Kernels.activation(a.kernel, x, count: count)
    }

    /// gate ← f(gate) ⊙ up, the gated product, in one pass.
    static func gatedProduct(_ a: Activation, _ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        Kernels.gatedActivation(a.kernel, gate, up, count: count)
    }

    /// In place: d ← d ⊙ (what f passes back at the pre-activation x): f'(x), or under the
    /// identity rule (Eq. 9) f(x)/(x + ε).
    static func backward(_ a: Activation, _ d: UnsafeMutablePointer<Float>, preActivation x: UnsafePointer<Float>,
                         count: Int, rules: BackwardRules) {
        Kernels.activationBackward(a.kernel, d, preActivation: x, count: count, identityEpsilon: identityEpsilon(rules))
    }

    /// Backward of m = f(gate) ⊙ up: the product's gradient (× the uniform rule's share,
    /// Eq. 7) goes to up as f(gate) and to gate as up·(what f passes back). `dUp` may
    /// alias `dProduct`.
    static func gatedBackward(_ a: Activation, _ dProduct: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                              dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int, rules: BackwardRules) {
        Kernels.gatedActivationBackward(a.kernel, dProduct, gate: gate, up: up, dGate: dGate, dUp: dUp, count: count,
                                        share: rules.productShare, identityEpsilon: identityEpsilon(rules))
    }

    private static func identityEpsilon(_ rules: BackwardRules) -> Float? {
        rules.identityAtActivations ? BackwardRules.identityEpsilon : nil
    }
}

extension Activation {
    /// The kernel computing it.
    var kernel: Kernels.Activation {
        switch self {
        case .silu: .silu
        case .geluTanh: .geluTanh
        case .gelu: .gelu
        case .relu: .relu
        }
    }
}
