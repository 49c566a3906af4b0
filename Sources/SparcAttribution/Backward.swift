import Foundation
import SparcModel
import SparcTensor

/// The hand-written backward pass of the Llama forward, in Gradient×Input form.
///
/// With `rules == .attnLRP` it carries AttnLRP's modified gradient (Achtibat et al., ICML
/// 2024; LXT's efficient implementation):
/// - linear layers: the plain gradient (ε-LRP);
/// - SiLU: identity rule, the gradient times f(x)/(x + 1e-10) instead of f'(x) (Eq. 9);
/// - RMSNorm: identity rule on the normalisation, 1/rms held constant (the learned scale
///   stays an ordinary product);
/// - SwiGLU product act·up: uniform rule, the gradient halved (Eq. 7);
/// - attention: the gradient at the values halved and at queries and keys divided by 4
///   (uniform rule on the two bilinear products), softmax with its ordinary Jacobian;
///   RoPE is linear.
/// With `rules == .gradient` every step is the true derivative (finite-difference tested).
struct LlamaBackward {
    enum Rules { case attnLRP, gradient }

    /// What one backward pass produces; weight gradients accumulate across calls.
    final class Accumulators {
        /// Σ over tokens of dyᵀ·x per linear weight, keyed by parameter name.
        var weightGradients: [String: Tensor] = [:]
        /// Gradient at the input embeddings `[n, d]` and at each layer's residual input.
        var embeddingGradient = Tensor(zeros: [0])
        var residualGradients: [Tensor] = []
        /// Σ over tokens of activation ⊙ gradient at down_proj's input `[layers][intermediate]`
        /// and at o_proj's input `[layers][heads·headDim]` (neuron relevances).
        var mlpNeuronRelevance: [Tensor] = []
        var attentionChannelRelevance: [Tensor] = []
        let wantWeights: Bool
        /// Neuron/head relevances and per-layer residual gradients cost passes over the
        /// activations: kept only when a level needs them.
        let wantNeurons: Bool
        let wantResiduals: Bool
        /// Gradients of the RMSNorm scales too (weight maps that include the norms).
        let wantNorms: Bool
        init(wantWeights: Bool, wantNeurons: Bool = false, wantResiduals: Bool = false, wantNorms: Bool = false) {
            self.wantWeights = wantWeights
            self.wantNeurons = wantNeurons
            self.wantResiduals = wantResiduals
            self.wantNorms = wantNorms && wantWeights
        }
    }

    let model: Model
    let rules: Rules

    /// Runs backward from `seed`, the gradient of the explained quantity w.r.t. the final
    /// norm's output rows: `[n, d]` (see `seedFromLogits`).
    func run(_ trace: ActivationTrace, seed: Tensor, into acc: Accumulators) {
        let c = model.config
        let n = trace.starts.last!, d = c.hiddenSize, hd = c.headDim
        let nH = c.numHeads, nKV = c.numKVHeads, qDim = nH * hd, kvDim = nKV * hd, inter = c.intermediateSize
        let group = nH / nKV
        let scale = 1 / Float(hd).squareRoot()
        let lrp = rules == .attnLRP
        let p = model.parameters

        // d(final residual) from the seed through the final RMSNorm.
        var dX = Tensor(zeros: [n, d])
        normBackward(seed, weight: p["model.norm.weight"]!, name: "model.norm.weight", scales: trace.finalNormScale, input: trace.finalResidual,
                     into: &dX, acc: acc, accumulate: false)

        var dProd = Tensor(zeros: [n, inter]), dGate = Tensor(zeros: [n, inter]), dUp = Tensor(zeros: [n, inter])
        var dH = Tensor(zeros: [n, d])
        var dAtt = Tensor(zeros: [n, qDim]), dQ = Tensor(zeros: [n, qDim])
        var dKPerHead = Tensor(zeros: [n, qDim]), dVPerHead = Tensor(zeros: [n, qDim])
        var dK = Tensor(zeros: [n, kvDim]), dV = Tensor(zeros: [n, kvDim])
        if acc.residualGradients.count != c.numLayers { acc.residualGradients = [Tensor](repeating: Tensor(zeros: [0]), count: c.numLayers) }
        if acc.mlpNeuronRelevance.isEmpty {
            acc.mlpNeuronRelevance = (0..<c.numLayers).map { _ in Tensor(zeros: [inter]) }
            acc.attentionChannelRelevance = (0..<c.numLayers).map { _ in Tensor(zeros: [qDim]) }
        }

        for l in stride(from: c.numLayers - 1, through: 0, by: -1) {
            let a = trace.layers[l]
            let pre = "model.layers.\(l)."
            let wDown = p[pre + "mlp.down_proj.weight"]!, wGate = p[pre + "mlp.gate_proj.weight"]!, wUp = p[pre + "mlp.up_proj.weight"]!
            let wQ = p[pre + "self_attn.q_proj.weight"]!, wK = p[pre + "self_attn.k_proj.weight"]!
            let wV = p[pre + "self_attn.v_proj.weight"]!, wO = p[pre + "self_attn.o_proj.weight"]!

            // MLP: x += down(act(gate(h)) · up(h)), h = RMSNorm(x).
            linearBackward(dX, input: a.product, weight: wDown, name: pre + "mlp.down_proj.weight", into: &dProd, acc: acc)
            if acc.wantNeurons { accumulateRelevance(a.product, dProd, into: &acc.mlpNeuronRelevance[l]) }
            swiGLUBackward(dProd, gate: a.gate, up: a.up, product: a.product, dGate: &dGate, dUp: &dUp, lrp: lrp)
            linearBackward(dGate, input: a.mlpNormOut, weight: wGate, name: pre + "mlp.gate_proj.weight", into: &dH, acc: acc)
            linearBackward(dUp, input: a.mlpNormOut, weight: wUp, name: pre + "mlp.up_proj.weight", into: &dH, acc: acc, accumulate: true)
            normBackward(dH, weight: p[pre + "post_attention_layernorm.weight"]!, name: pre + "post_attention_layernorm.weight", scales: a.mlpNormScale,
                         input: a.residualMid, into: &dX, acc: acc, accumulate: true)

            // Attention: x += o(softmax(q kᵀ/√d) v), q, k, v from h = RMSNorm(x).
            linearBackward(dX, input: a.attentionOut, weight: wO, name: pre + "self_attn.o_proj.weight", into: &dAtt, acc: acc)
            if acc.wantNeurons { accumulateRelevance(a.attentionOut, dAtt, into: &acc.attentionChannelRelevance[l]) }
            let DA = dAtt.storage.pointer, DQ = mutablePointer(&dQ), DK = mutablePointer(&dK), DV = mutablePointer(&dV)
            let DKH = mutablePointer(&dKPerHead), DVH = mutablePointer(&dVPerHead)
            let Q = a.queries.storage.pointer, K = a.keys.storage.pointer, V = a.values.storage.pointer
            let (qkFactor, vFactor): (Float, Float) = lrp ? (0.25, 0.5) : (1, 1)
            // One job per (sequence, head); each head writes its own key/value gradient
            // columns, summed over the GQA group afterwards.
            Parallel.forEach(trace.tokens.count * nH) { job in
                let s = job / nH, head = job % nH, kvHead = head / group
                let rows = trace.tokens[s].count, r0 = trace.starts[s]
                let dP = UnsafeMutablePointer<Float>.allocate(capacity: rows * rows)
                defer { dP.deallocate() }
                let P = trace.layers[l].probabilities[s].storage.pointer + head * rows * rows
                let dOut = DA + r0 * qDim + head * hd
                let keys = K + r0 * kvDim + kvHead * hd, values = V + r0 * kvDim + kvHead * hd
                // out = P·V:  dP = dOut·Vᵀ,  dV = Pᵀ·dOut (value path, halved under AttnLRP)
                BLAS.sgemm(transB: true, m: rows, n: rows, k: hd, a: dOut, lda: qDim, b: values, ldb: kvDim, c: dP, ldc: rows)
                BLAS.sgemm(transA: true, m: rows, n: hd, k: rows, alpha: vFactor, a: P, lda: rows, b: dOut, ldb: qDim,
                           c: DVH + r0 * qDim + head * hd, ldc: qDim)
                // softmax Jacobian: dS = P ⊙ (dP − Σ_j dP·P), then S = scale·q·kᵀ
                for i in 0..<rows {
                    let pr = P + i * rows, dr = dP + i * rows
                    var dot: Float = 0
                    for j in 0...i { dot += pr[j] * dr[j] }
                    for j in 0..<rows { dr[j] = j <= i ? pr[j] * (dr[j] - dot) * scale : 0 }
                }
                // dQ = dS·K, dK = dSᵀ·Q (each divided by 4 under AttnLRP)
                BLAS.sgemm(m: rows, n: hd, k: rows, alpha: qkFactor, a: dP, lda: rows, b: keys, ldb: kvDim,
                           c: DQ + r0 * qDim + head * hd, ldc: qDim)
                BLAS.sgemm(transA: true, m: rows, n: hd, k: rows, alpha: qkFactor, a: dP, lda: rows,
                           b: Q + r0 * qDim + head * hd, ldb: qDim, c: DKH + r0 * qDim + head * hd, ldc: qDim)
            }
            Parallel.forRanges(n, minChunk: 16) { r in
                for row in r {
                    for kvHead in 0..<nKV {
                        let outK = DK + row * kvDim + kvHead * hd, outV = DV + row * kvDim + kvHead * hd
                        for j in 0..<hd { outK[j] = 0; outV[j] = 0 }
                        for head in (kvHead * group)..<((kvHead + 1) * group) {
                            let k = DKH + row * qDim + head * hd, v = DVH + row * qDim + head * hd
                            for j in 0..<hd { outK[j] += k[j]; outV[j] += v[j] }
                        }
                    }
                }
            }
            trace.rope!.apply(DQ, rows: n, heads: nH, headDim: hd, inverse: true)
            trace.rope!.apply(DK, rows: n, heads: nKV, headDim: hd, inverse: true)
            linearBackward(dQ, input: a.attentionNormOut, weight: wQ, name: pre + "self_attn.q_proj.weight", into: &dH, acc: acc)
            linearBackward(dK, input: a.attentionNormOut, weight: wK, name: pre + "self_attn.k_proj.weight", into: &dH, acc: acc, accumulate: true)
            linearBackward(dV, input: a.attentionNormOut, weight: wV, name: pre + "self_attn.v_proj.weight", into: &dH, acc: acc, accumulate: true)
            normBackward(dH, weight: p[pre + "input_layernorm.weight"]!, name: pre + "input_layernorm.weight", scales: a.attentionNormScale,
                         input: a.residualIn, into: &dX, acc: acc, accumulate: true)
            if acc.wantResiduals { acc.residualGradients[l] = dX }
        }
        acc.embeddingGradient = dX
    }

    // MARK: steps

    /// y = x·Wᵀ: dx (+)= dy·W, and dW += dyᵀ·x when weights are wanted.
    private func linearBackward(_ dy: Tensor, input x: Tensor, weight w: Tensor, name: String, into dx: inout Tensor,
                                acc: Accumulators, accumulate: Bool = false) {
        let rows = dy.shape[0], outF = w.shape[0], inF = w.shape[1]
        BLAS.linearInputGradient(dy.storage.pointer, rows: rows, outFeatures: outF, weight: w.storage.pointer, inFeatures: inF,
                                 into: mutablePointer(&dx), accumulate: accumulate)
        guard acc.wantWeights else { return }
        // The first batch writes the accumulator (no zeroing pass over it); later ones add.
        let first = acc.weightGradients[name] == nil
        if first { acc.weightGradients[name] = Tensor(unsafeUninitializedShape: w.shape) }
        BLAS.linearWeightGradient(dy.storage.pointer, x.storage.pointer, rows: rows, outFeatures: outF, inFeatures: inF,
                                  into: mutablePointer(&acc.weightGradients[name]!), accumulate: !first)
    }

    /// y = w ⊙ x · r, r = 1/√(mean(x²) + ε). AttnLRP: r constant, dx = w ⊙ dy · r.
    /// Gradient: dx = r·g − x·r³·(Σ g⊙x)/D with g = w ⊙ dy. The scale's gradient is the
    /// same under both rules: dw = Σ_rows dy ⊙ x · r.
    private func normBackward(_ dy: Tensor, weight: Tensor, name: String, scales: [Float], input x: Tensor, into dx: inout Tensor,
                              acc: Accumulators, accumulate: Bool) {
        let rows = dy.shape[0], width = dy.shape[1]
        let DY = dy.storage.pointer, W = weight.storage.pointer, X = x.storage.pointer, DX = mutablePointer(&dx)
        let lrp = rules == .attnLRP
        if acc.wantNorms {
            if acc.weightGradients[name] == nil { acc.weightGradients[name] = Tensor(zeros: [width]) }
            let G = mutablePointer(&acc.weightGradients[name]!)
            scales.withUnsafeBufferPointer { r in
                Parallel.forRanges(width, minChunk: 64) { cols in
                    for i in 0..<rows { for j in cols { G[j] += DY[i * width + j] * X[i * width + j] * r[i] } }
                }
            }
        }
        scales.withUnsafeBufferPointer { r in
            Parallel.forRanges(rows, minChunk: 16) { range in
                for i in range {
                    let dyr = DY + i * width, xr = X + i * width, out = DX + i * width
                    let ri = r[i]
                    var correction: Float = 0
                    if !lrp {
                        var dot: Float = 0
                        for j in 0..<width { dot += W[j] * dyr[j] * xr[j] }
                        correction = ri * ri * ri * dot / Float(width)
                    }
                    for j in 0..<width {
                        let g = W[j] * dyr[j] * ri - xr[j] * correction
                        out[j] = accumulate ? out[j] + g : g
                    }
                }
            }
        }
    }

    /// prod = SiLU(gate) · up: uniform rule and identity rule under AttnLRP (see `Kernels.swiGLUBackward`).
    private func swiGLUBackward(_ dProd: Tensor, gate: Tensor, up: Tensor, product: Tensor,
                                dGate: inout Tensor, dUp: inout Tensor, lrp: Bool) {
        let DP = dProd.storage.pointer, G = gate.storage.pointer, U = up.storage.pointer
        let DG = mutablePointer(&dGate), DU = mutablePointer(&dUp)
        Parallel.forRanges(dProd.count / 16, minChunk: 256) { r in
            let lo = r.lowerBound * 16, hi = r.upperBound == dProd.count / 16 ? dProd.count : r.upperBound * 16
            Kernels.swiGLUBackward(DP + lo, gate: G + lo, up: U + lo, dGate: DG + lo, dUp: DU + lo, count: hi - lo, lrp: lrp)
        }
    }

    /// r[j] += Σ_rows a[row, j] · g[row, j].
    private func accumulateRelevance(_ a: Tensor, _ g: Tensor, into r: inout Tensor) {
        let rows = a.shape[0], width = a.shape[1]
        let A = a.storage.pointer, G = g.storage.pointer, R = mutablePointer(&r)
        Parallel.forRanges(width, minChunk: 64) { cols in
            for i in 0..<rows { for j in cols { R[j] += A[i * width + j] * G[i * width + j] } }
        }
    }
}

/// The buffer of a tensor this code owns uniquely (made unique first, so the pointer is stable).
@inline(__always)
func mutablePointer(_ t: inout Tensor) -> UnsafeMutablePointer<Float> {
    t.withUnsafeMutableBufferPointer { $0.baseAddress! }
}
