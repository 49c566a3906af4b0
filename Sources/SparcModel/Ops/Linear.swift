import SparcTensor

/// y = x·Wᵀ + b, W stored `[out, in]` (PyTorch's `nn.Linear`).
///
/// A half-precision W (an F16/BF16 checkpoint) is widened to Float32 for each multiply
/// (`withFloat32`): the model keeps 2 bytes per weight and only one widened matrix
/// exists at a time.
///
/// Shapes: x `[n, in]`, y `[n, out]`. Backward: dx = dy·W; dW = dyᵀ·x; db = Σ_rows dy.
/// Under AttnLRP a linear layer is ε-LRP, which in Gradient×Input form is the plain
/// gradient; the bias absorbs its share of relevance (b ⊙ db).
struct Linear: @unchecked Sendable {
    let weight: Tensor
    let bias: Tensor?
    let key: ParameterKey
    var outFeatures: Int { weight.shape[0] }
    var inFeatures: Int { weight.shape[1] }

    /// y (+)= x·Wᵀ + b.
    func forward(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        weight.withFloat32 { w in
            BLAS.linear(x, rows: rows, inFeatures: inFeatures, weight: w, outFeatures: outFeatures,
                        into: y, accumulate: accumulate)
        }
        guard let bias else { return }
        let b = bias.storage.pointer, n = outFeatures
        Parallel.forRanges(rows, minChunk: 64) { r in
            for i in r { Kernels.add(y + i * n, b, count: n) }
        }
    }

    /// dx (+)= dy·W when `dx` is given; weight and bias gradients into `grads` when it wants them.
    func backward(_ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, rows: Int,
                  into dx: UnsafeMutablePointer<Float>?, accumulate: Bool = false, grads: Gradients) {
        let wantsWeight = grads.wants(key)
        if dx == nil && !wantsWeight { return biasBackward(dy, rows: rows, grads: grads) }
        weight.withFloat32 { w in
            if let dx {
                BLAS.linearInputGradient(dy, rows: rows, outFeatures: outFeatures, weight: w,
                                         inFeatures: inFeatures, into: dx, accumulate: accumulate)
            }
            guard wantsWeight else { return }
            // The first batch writes the accumulator (no zeroing pass over it); later ones add.
            let (acc, first) = grads.buffer(key, shape: weight.shape, uninitialized: true)
            let fold = grads.linearFold
            guard fold.needsScratch else {
                BLAS.linearWeightGradient(dy, x, rows: rows, outFeatures: outFeatures, inFeatures: inFeatures,
                                          into: acc, alpha: fold.scale, accumulate: !first)
                return
            }
            // |·| is per sample: one ∂W per sample of the batch, folded in a few at a time.
            let samples = fold.absolute ? grads.sampleRows(rows) : [0..<rows]
            let count = weight.count, perGroup = max(1, min(samples.count, Gradients.scratchBytes / (4 * count)))
            let scratch = grads.scratch(perGroup * count)
            for group in stride(from: 0, to: samples.count, by: perGroup) {
                let members = samples[group..<min(group + perGroup, samples.count)]
                for (k, r) in members.enumerated() {
                    BLAS.linearWeightGradient(dy + r.lowerBound * outFeatures, x + r.lowerBound * inFeatures, rows: r.count,
                                              outFeatures: outFeatures, inFeatures: inFeatures,
                                              into: scratch + k * count, accumulate: false)
                }
                Kernels.fold(members.indices.map { UnsafePointer(scratch + ($0 - group) * count) },
                             times: fold.timesWeight ? w : nil, absolute: fold.absolute, scale: fold.scale,
                             into: acc, count: count, assign: first && group == 0)
            }
        }
        biasBackward(dy, rows: rows, grads: grads)
    }

    /// db += Σ_rows dy, when `grads` wants the bias.
    private func biasBackward(_ dy: UnsafePointer<Float>, rows: Int, grads: Gradients) {
        if let bias, let role = key.role.biasRole, grads.wants(ParameterKey(role, layer: key.layer)) {
            let (db, _) = grads.buffer(ParameterKey(role, layer: key.layer), shape: bias.shape)
            let n = outFeatures
            Parallel.forRanges(n, minChunk: 64) { cols in
                for i in 0..<rows { for j in cols { db[j] += dy[i * n + j] } }
            }
        }
    }
}

extension ParameterRole {
    /// The bias that goes with a weight.
    public var biasRole: ParameterRole? {
        switch self {
        case .query: return .queryBias
        case .key: return .keyBias
        case .value: return .valueBias
        case .output: return .outputBias
        case .gate: return .gateBias
        case .up: return .upBias
        case .down: return .downBias
        case .attentionNorm: return .attentionNormBias
        case .mlpNorm: return .mlpNormBias
        case .finalNorm: return .finalNormBias
        default: return nil
        }
    }
}
