import Foundation
import SparcTensor

/// The forward pass of every family, laid out by hand (shapes: n rows = the tokens of all
/// sequences stacked, d hidden, e embedding width, f intermediate):
///
///     x = E[tokens] (·s) (·W_inᵀ) (+ P[positions])
///     for each block:                         pre-norm              post-norm
///         x = x + attention(h)                h = norm₁(x)          h = x; then x = norm₁(x)
///         x = x + mlp(h)                      h = norm₂(x)          h = x; then x = norm₂(x)
///     logits = (norm(x)) (·W_outᵀ) · headᵀ
///
/// Gemma adds to the pre-norm block a norm on each sublayer's output (x = x + post(f(h))),
/// per-head norms of q and k before RoPE, the embedding scale s = √d, and per-layer
/// attention windows with their own RoPE base.
///
/// and its backward, the same op calls in reverse order, each taking the rule set
/// (`BackwardRules`). The linear layers are single large matrix products over all rows;
/// attention runs per (sequence, head) against each sequence's KV cache.
extension Model {
    /// Which rows of each sequence get logits.
    enum LogitRows { case all, last }

    func forward(_ tokens: [[Int]], caches: [KVCache], logitRows: LogitRows, trace: ActivationTrace? = nil) -> [Tensor] {
        let c = config, w = weights
        let d = c.hiddenSize, e = c.tokenEmbeddingSize
        let tracing = trace != nil
        let starts = tokens.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        let n = starts.last!
        var positions = [Int](repeating: 0, count: n)
        for (s, seq) in tokens.enumerated() { for i in 0..<seq.count { positions[starts[s] + i] = caches[s].length + i } }

        var x = Tensor(zeros: [n, d])
        let X = mutablePointer(&x)
        embed(tokens, starts: starts, positions: positions, into: X, trace: trace)

        let globalRope = w.inverseFrequencies.map { RopeTable(positions: positions, inverseFrequencies: $0) }
        let localRope = w.localInverseFrequencies.map { RopeTable(positions: positions, inverseFrequencies: $0) }
        trace?.begin(tokens: tokens, starts: starts, heads: c.numHeads, activationBytes: activationBytes(rows: n))
        trace?.positions = positions
        trace?.rope = globalRope
        trace?.localRope = localRope
        let buffers = BlockBuffers(c, rows: n)
        for l in w.blocks.indices {
            // A checkpointed trace keeps each block's input alone; the backward runs the block again.
            let checkpointed = trace?.recomputesBlocks ?? false
            if checkpointed { trace!.layers[l].residualIn = copy(X, [n, d]) }
            var saved: ActivationTrace.Layer? = checkpointed ? nil : trace?.layers[l]
            blockForward(l, X, tokens: tokens, starts: starts, caches: caches, buffers: buffers,
                         rope: ropeTable(layer: l, global: globalRope, local: localRope), saved: &saved)
            if let saved { trace!.layers[l] = saved }
        }
        for (s, seq) in tokens.enumerated() { caches[s].advance(by: seq.count) }
        trace?.finalResidual = copy(X, [n, d])

        // Output: only the rows that need logits, unless a trace wants every row's head input.
        let selected: [Int] = logitRows == .all ? Array(0..<n) : (0..<tokens.count).map { starts[$0 + 1] - 1 }
        let rows = tracing ? Array(0..<n) : selected
        var headIn = headInput(X, rows: rows, trace: trace)
        var logits = Tensor(unsafeUninitializedShape: [selected.count, c.vocabSize])
        let HI = mutablePointer(&headIn)
        if tracing && selected.count != n {
            var picked = Tensor(unsafeUninitializedShape: [selected.count, e])
            let PK = mutablePointer(&picked)
            for (j, row) in selected.enumerated() { (PK + j * e).update(from: HI + row * e, count: e) }
            w.head.withFloat32 { H in
                BLAS.linear(PK, rows: selected.count, inFeatures: e, weight: H, outFeatures: c.vocabSize, into: mutablePointer(&logits))
            }
        } else {
            w.head.withFloat32 { H in
                BLAS.linear(HI, rows: selected.count, inFeatures: e, weight: H, outFeatures: c.vocabSize, into: mutablePointer(&logits))
            }
        }
        if tokens.count == 1 { return [logits] }
        let vocab = c.vocabSize
        return logits.withUnsafeBufferPointer { all in
            var out: [Tensor] = []
            var row = 0
            for seq in tokens {
                let count = logitRows == .all ? seq.count : 1
                out.append(copy(all.baseAddress! + row * vocab, [count, vocab]))
                row += count
            }
            return out
        }
    }

    /// One block: x ← block_l(x) in place over the n stacked rows, with what its backward
    /// needs saved into `saved` when that is non-nil (`saved.attention.probabilities` already
    /// allocated when P is kept).
    private func blockForward(_ l: Int, _ X: UnsafeMutablePointer<Float>, tokens: [[Int]], starts: [Int], caches: [KVCache],
                              buffers: BlockBuffers, rope: RopeTable?, saved: inout ActivationTrace.Layer?) {
        let c = config, w = weights, b = w.blocks[l]
        let n = starts.last!, d = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        let H = buffers.h, Q = buffers.q, K = buffers.k, V = buffers.v, A = buffers.attention
        let G = buffers.gate, U = buffers.up, S = buffers.sublayer
        let pre = c.normBeforeSublayers, tracing = saved != nil
        saved?.residualIn = copy(X, [n, d])
        // Attention sublayer.
        if pre {
            let normSaved = b.attentionNorm.forward(X, rows: n, into: H, save: tracing)
            saved?.attentionNorm = normSaved
        }
        let hIn = pre ? UnsafePointer(H) : UnsafePointer(X)
        saved?.attentionInput = copy(hIn, [n, d])
        b.query.forward(hIn, rows: n, into: Q)
        b.key.forward(hIn, rows: n, into: K)
        b.value.forward(hIn, rows: n, into: V)
        // QK-norm: each head's row of q and k, through A (free until attention writes it).
        if let qn = b.queryNorm, let kn = b.keyNorm {
            // (Evaluated before the optional assignment, which would skip it untraced.)
            let qSaved = normInPlace(qn, Q, A, rows: n * c.numHeads, width: c.headDim, save: tracing)
            let kSaved = normInPlace(kn, K, A, rows: n * c.numKVHeads, width: c.headDim, save: tracing)
            saved?.queryNorm = qSaved
            saved?.keyNorm = kSaved
        }
        rope?.apply(Q, rows: n, heads: c.numHeads, headDim: c.headDim)
        rope?.apply(K, rows: n, heads: c.numKVHeads, headDim: c.headDim)
        if tracing {
            saved!.attention.queries = copy(Q, [n, qDim])
            saved!.attention.keys = copy(K, [n, kvDim])
            saved!.attention.values = copy(V, [n, kvDim])
        }
        w.attention.forward(Q, K, V, tokens: tokens, starts: starts, caches: caches, layer: l, into: A,
                            probabilities: saved?.attention.probabilities)
        if tracing { saved!.attention.output = copy(A, [n, qDim]) }
        if let post = b.attentionPostNorm {
            b.output.forward(A, rows: n, into: S)
            let postSaved = post.forward(S, rows: n, into: H, save: tracing)
            saved?.attentionPostNorm = postSaved
            Kernels.add(X, H, count: n * d)
        } else {
            b.output.forward(A, rows: n, into: X, accumulate: true)
        }
        if !pre {
            let normSaved = normInPlace(b.attentionNorm, X, H, rows: n, width: d, save: tracing)
            saved?.attentionNorm = normSaved
        }

        // MLP sublayer.
        if pre {
            let normSaved = b.mlpNorm.forward(X, rows: n, into: H, save: tracing)
            saved?.mlpNorm = normSaved
        }
        var mlpSaved: MLP.Saved? = tracing ? MLP.Saved() : nil
        if let post = b.mlpPostNorm {
            S.update(repeating: 0, count: n * d)
            b.mlp.forward(H, rows: n, residual: S, scratch: G, U, saved: &mlpSaved)
            let postSaved = post.forward(S, rows: n, into: H, save: tracing)
            saved?.mlpPostNorm = postSaved
            Kernels.add(X, H, count: n * d)
        } else {
            b.mlp.forward(pre ? H : X, rows: n, residual: X, scratch: G, U, saved: &mlpSaved)
        }
        if !pre {
            let normSaved = normInPlace(b.mlpNorm, X, H, rows: n, width: d, save: tracing)
            saved?.mlpNorm = normSaved
        }
        if let mlpSaved { saved!.mlp = mlpSaved }
    }

    /// The scratch buffers of a block's forward over n rows, allocated once per pass.
    final class BlockBuffers {
        let h, q, k, v, attention, gate, up, sublayer: UnsafeMutablePointer<Float>
        private let storage: [Tensor]

        init(_ c: ModelConfig, rows n: Int) {
            let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
            let widths = [c.hiddenSize, qDim, kvDim, kvDim, qDim, c.intermediateSize, c.intermediateSize,
                          c.postSublayerNorms ? c.hiddenSize : 0]  // sublayer outputs before their post-norm (Gemma)
            var tensors = widths.map { Tensor(unsafeUninitializedShape: [n, $0]) }
            let p = tensors.indices.map { mutablePointer(&tensors[$0]) }
            (h, q, k, v, attention, gate, up, sublayer) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7])
            storage = tensors
        }
    }

    /// The bytes a trace keeps per pass besides attention probabilities: every block's saved
    /// activations (inputs, q/k/v, attention output, MLP input, pre-activations, product).
    func activationBytes(rows n: Int) -> Double {
        let c = config
        let perRow = 4 * c.hiddenSize + 2 * c.numHeads * c.headDim + 2 * c.numKVHeads * c.headDim + 3 * c.intermediateSize
        return Double(c.numLayers) * Double(n) * Double(perRow) * 4
    }

    /// Block `l`'s saved activations, recomputed from its input (checkpointed traces):
    /// the same calls on the same input as the forward, so the same values. `buffers` is
    /// scratch shared by the recomputes of one backward (sized for the trace's rows).
    func recomputedLayer(_ l: Int, _ trace: ActivationTrace, buffers: BlockBuffers) -> ActivationTrace.Layer {
        let n = trace.starts.last!, d = config.hiddenSize
        var x = trace.layers[l].residualIn
        var saved: ActivationTrace.Layer? = ActivationTrace.Layer()
        saved!.attention.probabilities = trace.keepsProbabilities(of: config.numHeads, layers: 1)
            ? trace.tokens.map { Tensor(unsafeUninitializedShape: [config.numHeads, $0.count, $0.count]) } : []
        let caches = trace.tokens.map { KVCache(config: config, capacity: $0.count, layers: l..<(l + 1)) }
        let X = mutablePointer(&x)
        precondition(x.count == n * d)
        blockForward(l, X, tokens: trace.tokens, starts: trace.starts, caches: caches, buffers: buffers,
                     rope: ropeTable(layer: l, global: trace.rope, local: trace.localRope), saved: &saved)
        return saved!
    }

    /// x = E[tokens] (·W_inᵀ) (+ P[position + offset]).
    private func embed(_ tokens: [[Int]], starts: [Int], positions: [Int], into X: UnsafeMutablePointer<Float>, trace: ActivationTrace?) {
        let w = weights, d = config.hiddenSize, e = config.tokenEmbeddingSize, n = starts.last!
        var emb = Tensor(unsafeUninitializedShape: [w.projectIn == nil ? 0 : n, e])
        let target = w.projectIn == nil ? X : mutablePointer(&emb)
        // Row by row: a half-precision table is widened only where a token reads it.
        for (s, seq) in tokens.enumerated() {
            for (i, id) in seq.enumerated() { w.tokenEmbedding.copyElements(id * e ..< (id + 1) * e, into: target + (starts[s] + i) * e) }
        }
        // Gemma: E[tokens]·√d (a constant factor; its backward scales the embedding gradient).
        if let scale = w.embeddingScale { for j in 0..<(n * e) { target[j] *= scale } }
        trace?.tokenEmbeddings = copy(target, [n, e])
        if let projectIn = w.projectIn {
            trace?.projectInInput = emb
            projectIn.forward(target, rows: n, into: X)
        }
        if let P = w.positionEmbedding, case .learned(let offset) = config.positions {
            var rows = Tensor(unsafeUninitializedShape: [n, d])
            let R = mutablePointer(&rows)
            for (i, p) in positions.enumerated() {
                P.copyElements((p + offset) * d ..< (p + offset + 1) * d, into: R + i * d)
                Kernels.add(X + i * d, R + i * d, count: d)
            }
            trace?.positionEmbeddings = rows
        }
    }

    /// The RoPE table of layer `l`: sliding-window layers have their own (Gemma 3).
    private func ropeTable(layer l: Int, global: RopeTable?, local: RopeTable?) -> RopeTable? {
        if let local, l < config.slidingLayers.count, config.slidingLayers[l] { return local }
        return global
    }

    /// norm(x) → x (post-norm blocks), through `scratch`.
    private func normInPlace(_ norm: Norm, _ X: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>,
                             rows n: Int, width d: Int, save: Bool) -> Norm.Saved? {
        let saved = norm.forward(X, rows: n, into: scratch, save: save)
        X.update(from: scratch, count: n * d)
        return saved
    }

    /// The head's input for the given rows of the final residual: norm, then project_out.
    private func headInput(_ X: UnsafeMutablePointer<Float>, rows: [Int], trace: ActivationTrace?) -> Tensor {
        let w = weights, d = config.hiddenSize, m = rows.count
        var picked = Tensor(unsafeUninitializedShape: [m, d])
        let PK = mutablePointer(&picked)
        for (j, row) in rows.enumerated() { (PK + j * d).update(from: X + row * d, count: d) }
        if let norm = w.finalNorm {
            var normed = Tensor(unsafeUninitializedShape: [m, d])
            let saved = norm.forward(PK, rows: m, into: mutablePointer(&normed), save: trace != nil)
            trace?.finalNorm = saved
            picked = normed
        }
        if let projectOut = w.projectOut {
            trace?.projectOutInput = picked
            var out = Tensor(unsafeUninitializedShape: [m, config.tokenEmbeddingSize])
            projectOut.forward(picked.storage.pointer, rows: m, into: mutablePointer(&out))
            picked = out
        }
        if let trace { trace.headInput = picked }
        return picked
    }

    // MARK: backward

    /// Runs the backward pass from `seed`, the gradient of the explained quantity w.r.t. the
    /// head's input rows `[n, embedding]`, accumulating what `grads` asks for. A checkpointed
    /// trace's blocks are run again from their inputs, one at a time, as the pass reaches them.
    public func backward(_ trace: ActivationTrace, seed: Tensor, rules: BackwardRules, into grads: Gradients) {
        let c = config, w = weights
        let n = trace.starts.last!, d = c.hiddenSize, e = c.tokenEmbeddingSize
        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        if grads.wantNeurons && grads.mlpUnits.isEmpty {
            grads.mlpUnits = (0..<c.numLayers).map { _ in Tensor(zeros: [c.intermediateSize]) }
            grads.attentionChannels = (0..<c.numLayers).map { _ in Tensor(zeros: [qDim]) }
        }
        if grads.wantResiduals { grads.residuals = [Tensor](repeating: Tensor(zeros: [0]), count: c.numLayers) }

        // Output: head input ← project_out ← final norm.
        var dY = seed
        if let projectOut = w.projectOut {
            var dIn = Tensor(unsafeUninitializedShape: [n, d])
            projectOut.backward(seed.storage.pointer, input: trace.projectOutInput.storage.pointer, rows: n,
                                into: mutablePointer(&dIn), grads: grads)
            dY = dIn
        }
        var dX = Tensor(unsafeUninitializedShape: [n, d])
        let DX = mutablePointer(&dX)
        if let norm = w.finalNorm, let saved = trace.finalNorm {
            norm.backward(dY.storage.pointer, saved: saved, rows: n, into: DX, accumulate: false, rules: rules, grads: grads)
        } else {
            DX.update(from: dY.storage.pointer, count: n * d)
        }

        var dH = Tensor(unsafeUninitializedShape: [n, d]), dA = Tensor(unsafeUninitializedShape: [n, qDim])
        var dQ = Tensor(unsafeUninitializedShape: [n, qDim])
        var dK = Tensor(unsafeUninitializedShape: [n, kvDim]), dV = Tensor(unsafeUninitializedShape: [n, kvDim])
        let DH = mutablePointer(&dH), DA = mutablePointer(&dA), DQ = mutablePointer(&dQ), DK = mutablePointer(&dK), DV = mutablePointer(&dV)
        let pre = c.normBeforeSublayers
        var dSub = Tensor(unsafeUninitializedShape: [c.postSublayerNorms ? n : 0, d])
        let DS = mutablePointer(&dSub)

        let recomputeBuffers = trace.recomputesBlocks ? BlockBuffers(c, rows: n) : nil
        for l in stride(from: c.numLayers - 1, through: 0, by: -1) {
            let b = w.blocks[l], a = recomputeBuffers.map { recomputedLayer(l, trace, buffers: $0) } ?? trace.layers[l]
            // MLP sublayer, reversed.
            if !pre { normBackwardInPlace(b.mlpNorm, a.mlpNorm!, DX, DH, rows: n, width: d, rules: rules, grads: grads) }
            var dMLP = UnsafePointer(DX)
            if let post = b.mlpPostNorm {
                post.backward(DX, saved: a.mlpPostNorm!, rows: n, into: DS, accumulate: false, rules: rules, grads: grads)
                dMLP = UnsafePointer(DS)
            }
            b.mlp.backward(dMLP, saved: a.mlp, rows: n, layer: l, into: DH, accumulate: false, rules: rules, grads: grads)
            if pre {
                b.mlpNorm.backward(DH, saved: a.mlpNorm!, rows: n, into: DX, accumulate: true, rules: rules, grads: grads)
            } else {
                Kernels.add(DX, DH, count: n * d)
            }

            // Attention sublayer, reversed.
            if !pre { normBackwardInPlace(b.attentionNorm, a.attentionNorm!, DX, DH, rows: n, width: d, rules: rules, grads: grads) }
            var dOut = UnsafePointer(DX)
            if let post = b.attentionPostNorm {
                post.backward(DX, saved: a.attentionPostNorm!, rows: n, into: DS, accumulate: false, rules: rules, grads: grads)
                dOut = UnsafePointer(DS)
            }
            b.output.backward(dOut, input: a.attention.output.storage.pointer, rows: n, into: DA, grads: grads)
            if grads.wantNeurons {
                Gradients.accumulateProducts(a.attention.output.storage.pointer, DA, rows: n, width: qDim, into: &grads.attentionChannels[l])
            }
            w.attention.backward(DA, saved: a.attention, tokens: trace.tokens, starts: trace.starts, layer: l, rules: rules, dQ: DQ, dK: DK, dV: DV)
            let rope = ropeTable(layer: l, global: trace.rope, local: trace.localRope)
            rope?.apply(DQ, rows: n, heads: c.numHeads, headDim: c.headDim, inverse: true)
            rope?.apply(DK, rows: n, heads: c.numKVHeads, headDim: c.headDim, inverse: true)
            if let qn = b.queryNorm, let kn = b.keyNorm {
                // DA is free again (the attention backward has consumed it).
                normBackwardInPlace(qn, a.queryNorm!, DQ, DA, rows: n * c.numHeads, width: c.headDim, rules: rules, grads: grads)
                normBackwardInPlace(kn, a.keyNorm!, DK, DA, rows: n * c.numKVHeads, width: c.headDim, rules: rules, grads: grads)
            }
            let hIn = a.attentionInput.storage.pointer
            b.query.backward(DQ, input: hIn, rows: n, into: DH, grads: grads)
            b.key.backward(DK, input: hIn, rows: n, into: DH, accumulate: true, grads: grads)
            b.value.backward(DV, input: hIn, rows: n, into: DH, accumulate: true, grads: grads)
            if pre {
                b.attentionNorm.backward(DH, saved: a.attentionNorm!, rows: n, into: DX, accumulate: true, rules: rules, grads: grads)
            } else {
                Kernels.add(DX, DH, count: n * d)
            }
            if grads.wantResiduals { grads.residuals[l] = copy(DX, [n, d]) }
        }

        // Inputs: positions, project_in, token embeddings.
        grads.blockInput = dX
        let positionsKey = ParameterKey(.positions)
        if let P = w.positionEmbedding, grads.wants(positionsKey), case .learned(let offset) = c.positions {
            let (G, _) = grads.buffer(positionsKey, shape: P.shape)
            for (row, p) in trace.positions.enumerated() { Kernels.add(G + (p + offset) * d, DX + row * d, count: d) }
        }
        var dEmb = dX
        if let projectIn = w.projectIn {
            var dIn = Tensor(unsafeUninitializedShape: [n, e])
            projectIn.backward(DX, input: trace.projectInInput.storage.pointer, rows: n, into: mutablePointer(&dIn), grads: grads)
            dEmb = dIn
        }
        grads.tokenEmbeddings = dEmb
        let embeddingKey = ParameterKey(.embedding)
        if grads.wants(embeddingKey) {
            let (G, _) = grads.buffer(embeddingKey, shape: w.tokenEmbedding.shape)
            let DE = dEmb.storage.pointer
            for (s, ids) in trace.tokens.enumerated() {
                for (i, id) in ids.enumerated() {
                    let row = DE + (trace.starts[s] + i) * e
                    if let scale = w.embeddingScale {
                        for j in 0..<e { G[id * e + j] += scale * row[j] }
                    } else {
                        Kernels.add(G + id * e, row, count: e)
                    }
                }
            }
        }
    }

    /// dx ← ∂norm/∂x · dx (post-norm blocks), through `scratch`.
    private func normBackwardInPlace(_ norm: Norm, _ saved: Norm.Saved, _ DX: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>,
                                     rows n: Int, width d: Int, rules: BackwardRules, grads: Gradients) {
        norm.backward(DX, saved: saved, rows: n, into: scratch, accumulate: false, rules: rules, grads: grads)
        DX.update(from: scratch, count: n * d)
    }

    /// One seeded logit: the gradient of the explained quantity w.r.t. logit[row, token].
    public struct LogitSeed: Sendable {
        public let row: Int, token: Int, coefficient: Float
        public init(row: Int, token: Int, coefficient: Float) { self.row = row; self.token = token; self.coefficient = coefficient }
    }

    /// The seed of `backward`: Σ coefficient · head[token] on each seeded row.
    public func headInputSeed(_ seeds: [LogitSeed], rows: Int) -> Tensor {
        let e = config.tokenEmbeddingSize
        var seed = Tensor(zeros: [rows, e])
        let S = mutablePointer(&seed)
        var w = [Float](repeating: 0, count: e)
        for s in seeds {
            let out = S + s.row * e
            w.withUnsafeMutableBufferPointer { weights.head.copyElements(s.token * e ..< (s.token + 1) * e, into: $0.baseAddress!) }
            for j in 0..<e { out[j] += s.coefficient * w[j] }
        }
        return seed
    }

    /// The output head's gradient ∂W[v] = Σ_t seed[t, v] · headInput_t (the token
    /// embeddings' gradient when tied), when `grads` wants it.
    public func accumulateHeadGradient(_ trace: ActivationTrace, _ seeds: [LogitSeed], into grads: Gradients) {
        let key = ParameterKey(config.tieWordEmbeddings ? .embedding : .head)
        guard grads.wants(key) else { return }
        let e = config.tokenEmbeddingSize
        let (G, _) = grads.buffer(key, shape: weights.head.shape)
        let X = trace.headInput.storage.pointer
        for s in seeds {
            let x = X + s.row * e, out = G + s.token * e
            for j in 0..<e { out[j] += s.coefficient * x[j] }
        }
    }
}
