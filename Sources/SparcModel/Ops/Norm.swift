import SparcTensor

/// RMSNorm  y = w ⊙ x·r,            r = 1/√(mean(x²) + ε)
/// LayerNorm y = w ⊙ (x − μ)·r + b,  r = 1/√(var(x) + ε)
/// over the last axis of x `[n, width]`.
struct Norm: @unchecked Sendable {
    let kind: NormKind
    /// The scale w applies: the parameter itself, or offset + w where the family scales by
    /// that (Gemma's 1 + w); `key` names the parameter, whose gradient dy ⊙ x̂ is the same.
    let weight: Tensor
    let bias: Tensor?
    let eps: Float
    let key: ParameterKey

    /// What the backward needs: the input rows, each row's r, and (LayerNorm) its mean.
    struct Saved {
        var input = Tensor(zeros: [0])
        var inverseScale: [Float] = []
        var mean: [Float] = []
    }

    /// y = norm(x); returns what the backward needs when `save` (the input is copied).
    func forward(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, save: Bool) -> Saved? {
        let width = weight.count, w = weight.storage.pointer, b = bias?.storage.pointer
        var scales = [Float](repeating: 0, count: rows), means = [Float](repeating: 0, count: kind == .layer ? rows : 0)
        scales.withUnsafeMutableBufferPointer { sc in
            means.withUnsafeMutableBufferPointer { mu in
                Parallel.forRanges(rows, minChunk: 32) { r in
                    for i in r {
                        let xi = x + i * width, yi = y + i * width
                        switch kind {
                        case .rms:
                            sc[i] = Kernels.rmsNorm(xi, weight: w, eps: eps, into: yi, count: width)
                        case .layer:
                            var mean: Float = 0
                            for j in 0..<width { mean += xi[j] }
                            mean /= Float(width)
                            var variance: Float = 0
                            for j in 0..<width { let c = xi[j] - mean; variance += c * c }
                            let inv = 1 / (variance / Float(width) + eps).squareRoot()
                            for j in 0..<width { yi[j] = (xi[j] - mean) * inv * w[j] + (b?[j] ?? 0) }
                            sc[i] = inv
                            mu[i] = mean
                        }
                    }
                }
            }
        }
        guard save else { return nil }
        return Saved(input: Tensor(shape: [rows, width]) { $0.baseAddress!.update(from: x, count: rows * width) },
                     inverseScale: scales, mean: means)
    }

    /// dx (+)= ∂y/∂x · dy with g = w ⊙ dy and x̂ = (x − μ)·r:
    ///   gradient, RMSNorm:   dx = r·g − x̂·r·mean(g ⊙ x̂)
    ///   gradient, LayerNorm: dx = r·(g − mean(g) − x̂·mean(g ⊙ x̂))
    ///   AttnLRP (r held constant): RMSNorm dx = r·g; LayerNorm dx = r·(g − mean(g)).
    /// Scale and shift gradients are the same under both rules: dw = Σ dy ⊙ x̂, db = Σ dy.
    func backward(_ dy: UnsafePointer<Float>, saved s: Saved, rows: Int, into dx: UnsafeMutablePointer<Float>,
                  accumulate: Bool, rules: BackwardRules, grads: Gradients) {
        let width = weight.count, W = weight.storage.pointer, X = s.input.storage.pointer
        let constant = rules.normalizerIsConstant, layer = kind == .layer
        s.inverseScale.withUnsafeBufferPointer { r in
            s.mean.withUnsafeBufferPointer { mu in
                if grads.wants(key) {
                    let (G, _) = grads.buffer(key, shape: weight.shape)
                    Parallel.forRanges(width, minChunk: 64) { cols in
                        for i in 0..<rows {
                            let m = layer ? mu[i] : 0
                            for j in cols { G[j] += dy[i * width + j] * (X[i * width + j] - m) * r[i] }
                        }
                    }
                }
                if let bias, let biasRole = key.role.biasRole, grads.wants(ParameterKey(biasRole, layer: key.layer)) {
                    let (B, _) = grads.buffer(ParameterKey(biasRole, layer: key.layer), shape: bias.shape)
                    Parallel.forRanges(width, minChunk: 64) { cols in
                        for i in 0..<rows { for j in cols { B[j] += dy[i * width + j] } }
                    }
                }
                Parallel.forRanges(rows, minChunk: 16) { range in
                    for i in range {
                        let dyr = dy + i * width, xr = X + i * width, out = dx + i * width
                        let ri = r[i], m = layer ? mu[i] : 0
                        var meanG: Float = 0, meanGX: Float = 0
                        if layer || !constant {
                            for j in 0..<width {
                                let g = W[j] * dyr[j]
                                meanG += g
                                meanGX += g * (xr[j] - m) * ri
                            }
                            meanG /= Float(width)
                            meanGX /= Float(width)
                        }
                        let shift = layer ? meanG : 0, tilt = constant ? 0 : meanGX
                        for j in 0..<width {
                            let v = ri * (W[j] * dyr[j] - shift - (xr[j] - m) * ri * tilt)
                            out[j] = accumulate ? out[j] + v : v
                        }
                    }
                }
            }
        }
    }
}
