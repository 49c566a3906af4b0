import Foundation
import SparcTensor

/// The Llama forward pass, laid out by hand in the order of transformers'
/// `LlamaForCausalLM.forward`:
///
///     x = embed(tokens)
///     for each layer:
///         h = RMSNorm(x) ⊙ w₁
///         q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ;  q, k ← RoPE(q, k)
///         x += softmax(q·kᵀ/√d + causal mask)·v · Woᵀ        (GQA: kv head = head / group)
///         h = RMSNorm(x) ⊙ w₂
///         x += (SiLU(h·Wgᵀ) ⊙ h·Wuᵀ) · Wdᵀ
///     logits = RMSNorm(x) ⊙ w · Eᵀ
///
/// All sequences of a batch share the row-stacked activation matrices, so the linear
/// layers are single large matrix products; attention runs per (sequence, head).
/// Every sequence writes its keys/values into its own `KVCache` and attends to the
/// cache, so batch inference, single sequences and incremental decoding are one path.
extension Model {
    /// Which rows of each sequence get logits.
    enum LogitRows { case all, last }

    func forward(_ tokens: [[Int]], caches: [KVCache], logitRows: LogitRows, trace: ActivationTrace? = nil) -> [Tensor] {
        let c = config, w = weights
        let d = c.hiddenSize, hd = c.headDim, nH = c.numHeads, nKV = c.numKVHeads
        let qDim = nH * hd, kvDim = nKV * hd, inter = c.intermediateSize
        let group = nH / nKV
        let starts = tokens.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        let n = starts.last!

        var x = Tensor(zeros: [n, d])
        var h = Tensor(zeros: [n, d])
        var q = Tensor(zeros: [n, qDim]), k = Tensor(zeros: [n, kvDim]), v = Tensor(zeros: [n, kvDim])
        var att = Tensor(zeros: [n, qDim])
        var gate = Tensor(zeros: [n, inter]), up = Tensor(zeros: [n, inter])
        let X = ptr(&x), H = ptr(&h), Q = ptr(&q), K = ptr(&k), V = ptr(&v), A = ptr(&att)
        let G = ptr(&gate), U = ptr(&up)

        // Embedding lookup.
        let E = w.embed.storage.pointer
        for (s, seq) in tokens.enumerated() {
            for (i, id) in seq.enumerated() { (X + (starts[s] + i) * d).update(from: E + id * d, count: d) }
        }

        // RoPE tables for each row's absolute position.
        var positions = [Int](repeating: 0, count: n)
        for (s, seq) in tokens.enumerated() { for i in 0..<seq.count { positions[starts[s] + i] = caches[s].length + i } }
        let rope = RopeTable(positions: positions, inverseFrequencies: w.inverseFrequencies)
        trace?.begin(tokens: tokens, starts: starts, rope: rope, heads: nH)

        let eps = Float(c.rmsNormEps)
        let scale = 1 / Float(hd).squareRoot()
        for (l, layer) in w.layers.enumerated() {
            // Attention block.
            trace?.record(l, \.residualIn, X, [n, d])
            let inv1 = rmsNormRows(X, layer.inputNorm, eps: eps, into: H, rows: n, width: d)
            trace?.record(l, \.attentionNormOut, H, [n, d])
            trace?.layers[l].attentionNormScale = inv1
            BLAS.linear(H, rows: n, inFeatures: d, weight: layer.q.storage.pointer, outFeatures: qDim, into: Q)
            BLAS.linear(H, rows: n, inFeatures: d, weight: layer.k.storage.pointer, outFeatures: kvDim, into: K)
            BLAS.linear(H, rows: n, inFeatures: d, weight: layer.v.storage.pointer, outFeatures: kvDim, into: V)
            rope.apply(Q, rows: n, heads: nH, headDim: hd)
            rope.apply(K, rows: n, heads: nKV, headDim: hd)
            trace?.record(l, \.queries, Q, [n, qDim])
            trace?.record(l, \.keys, K, [n, kvDim])
            trace?.record(l, \.values, V, [n, kvDim])
            for (s, seq) in tokens.enumerated() {
                let past = caches[s].length, rows = seq.count
                (caches[s].keys[l].storage.pointer + past * kvDim).update(from: K + starts[s] * kvDim, count: rows * kvDim)
                (caches[s].values[l].storage.pointer + past * kvDim).update(from: V + starts[s] * kvDim, count: rows * kvDim)
            }
            Parallel.forEach(tokens.count * nH) { job in
                let s = job / nH, head = job % nH, kvHead = head / group
                let rows = tokens[s].count, past = caches[s].length, total = past + rows
                let keys = caches[s].keys[l].storage.pointer + kvHead * hd
                let values = caches[s].values[l].storage.pointer + kvHead * hd
                let queries = Q + starts[s] * qDim + head * hd
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: rows * total)
                defer { scores.deallocate() }
                BLAS.sgemm(transB: true, m: rows, n: total, k: hd, alpha: scale,
                           a: queries, lda: qDim, b: keys, ldb: kvDim, c: scores, ldc: total)
                for i in 0..<rows { Kernels.softmax(scores + i * total, count: total, valid: past + i + 1) }
                trace?.recordProbabilities(layer: l, sequence: s, head: head, scores, rows: rows, total: total)
                BLAS.sgemm(m: rows, n: hd, k: total, a: scores, lda: total, b: values, ldb: kvDim,
                           c: A + starts[s] * qDim + head * hd, ldc: qDim)
            }
            trace?.record(l, \.attentionOut, A, [n, qDim])
            BLAS.linear(A, rows: n, inFeatures: qDim, weight: layer.o.storage.pointer, outFeatures: d, into: X, accumulate: true)

            // MLP block (SwiGLU).
            trace?.record(l, \.residualMid, X, [n, d])
            let inv2 = rmsNormRows(X, layer.postAttentionNorm, eps: eps, into: H, rows: n, width: d)
            trace?.record(l, \.mlpNormOut, H, [n, d])
            trace?.layers[l].mlpNormScale = inv2
            BLAS.linear(H, rows: n, inFeatures: d, weight: layer.gate.storage.pointer, outFeatures: inter, into: G)
            BLAS.linear(H, rows: n, inFeatures: d, weight: layer.up.storage.pointer, outFeatures: inter, into: U)
            trace?.record(l, \.gate, G, [n, inter])
            trace?.record(l, \.up, U, [n, inter])
            Parallel.forRanges(n, minChunk: 8) { r in
                Kernels.swiGLU(G + r.lowerBound * inter, U + r.lowerBound * inter, count: r.count * inter)
            }
            trace?.record(l, \.product, G, [n, inter])
            BLAS.linear(G, rows: n, inFeatures: inter, weight: layer.down.storage.pointer, outFeatures: d, into: X, accumulate: true)
        }
        for (s, seq) in tokens.enumerated() { caches[s].advance(by: seq.count) }
        trace?.recordFinal(X, [n, d])

        // Final norm and output projection, only on the rows that need logits.
        let selected: [Int] = logitRows == .all ? Array(0..<n) : (0..<tokens.count).map { starts[$0 + 1] - 1 }
        if let trace {
            // The backward pass needs every row's 1/rms, even where no logits are computed.
            var all = Tensor(zeros: [n, d])
            trace.finalNormScale = rmsNormRows(X, w.norm, eps: eps, into: ptr(&all), rows: n, width: d)
        }
        var normed = Tensor(zeros: [selected.count, d])
        let NR = ptr(&normed)
        for (j, row) in selected.enumerated() {
            Kernels.rmsNorm(X + row * d, weight: w.norm.storage.pointer, eps: eps, into: NR + j * d, count: d)
        }
        var logits = Tensor(zeros: [selected.count, c.vocabSize])
        BLAS.linear(NR, rows: selected.count, inFeatures: d, weight: w.head.storage.pointer,
                    outFeatures: c.vocabSize, into: ptr(&logits))
        if tokens.count == 1 { return [logits] }
        let vocab = c.vocabSize
        return logits.withUnsafeBufferPointer { all in
            var out: [Tensor] = []
            var row = 0
            for seq in tokens {
                let count = logitRows == .all ? seq.count : 1
                out.append(Tensor(shape: [count, vocab]) { $0.baseAddress!.update(from: all.baseAddress! + row * vocab, count: count * vocab) })
                row += count
            }
            return out
        }
    }

    /// Checks ids before they index the embedding table, and lengths before they size buffers.
    func validate(_ ids: [Int], extraPositions: Int = 0) throws {
        guard !ids.isEmpty else { throw ModelError.invalidInput("empty input: no tokens to run") }
        guard ids.count <= config.maxPositions - extraPositions else {
            throw ModelError.invalidInput("\(ids.count) tokens\(extraPositions > 0 ? " + \(extraPositions) new" : "") exceed the model's context length (\(config.maxPositions))")
        }
        if let bad = ids.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw ModelError.invalidInput("token id \(bad) is outside the vocabulary (0..<\(config.vocabSize))")
        }
    }
}

/// A stable mutable pointer to a tensor's buffer for the lifetime of the forward pass
/// (the tensors are uniquely owned locals, so no copy-on-write can move them).
@inline(__always)
private func ptr(_ t: inout Tensor) -> UnsafeMutablePointer<Float> {
    t.withUnsafeMutableBufferPointer { $0.baseAddress! }
}

/// RMSNorm of every row; returns each row's 1/rms (kept by traces for the backward pass).
@discardableResult
private func rmsNormRows(_ x: UnsafeMutablePointer<Float>, _ weight: Tensor, eps: Float,
                         into y: UnsafeMutablePointer<Float>, rows: Int, width: Int) -> [Float] {
    let w = weight.storage.pointer
    var scales = [Float](repeating: 0, count: rows)
    scales.withUnsafeMutableBufferPointer { sc in
        Parallel.forRanges(rows, minChunk: 32) { r in
            for i in r { sc[i] = Kernels.rmsNorm(x + i * width, weight: w, eps: eps, into: y + i * width, count: width) }
        }
    }
    return scales
}

/// cos/sin of position · θ_i for each row, and the rotation transformers applies:
/// pairs (i, i + d/2) of each head (`rotate_half`), not llama.cpp's interleaved pairs.
public struct RopeTable: Sendable {
    public let half: Int
    public let cos: [Float]
    public let sin: [Float]

    init(positions: [Int], inverseFrequencies inv: [Float]) {
        half = inv.count
        var c = [Float](repeating: 0, count: positions.count * half)
        var s = c
        for (r, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Float(p) * inv[i]   // float32 product, as in transformers
                c[r * half + i] = Float(Foundation.cos(Double(angle)))
                s[r * half + i] = Float(Foundation.sin(Double(angle)))
            }
        }
        cos = c
        sin = s
    }

    /// Rotates each head's pairs by +angle (forward) or −angle (`inverse`, the
    /// transpose, used to carry gradients back through RoPE, which is linear).
    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, headDim: Int, inverse: Bool = false) {
        let sign: Float = inverse ? -1 : 1
        let stride = heads * headDim
        cos.withUnsafeBufferPointer { cb in
            sin.withUnsafeBufferPointer { sb in
                for r in 0..<rows {
                    let cr = cb.baseAddress! + r * half, sr = sb.baseAddress! + r * half
                    for h in 0..<heads {
                        let v = x + r * stride + h * headDim
                        for i in 0..<half {
                            let a = v[i], b = v[i + half], sn = sign * sr[i]
                            v[i] = a * cr[i] - b * sn
                            v[i + half] = b * cr[i] + a * sn
                        }
                    }
                }
            }
        }
    }
}
