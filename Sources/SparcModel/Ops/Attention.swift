import SparcTensor

/// Causal multi-head attention with grouped-query heads (kv head = head / group):
///
///     out_h = softmax(q_h·k_gᵀ · scale + causal mask) · v_g
///
/// Sliding-window layers (Gemma 3) mask further: query position i sees key positions
/// j with i − window < j ≤ i. Masked entries are exact zeros of P, so the backward
/// (which runs on P) needs nothing more.
///
/// Shapes: q `[n, heads·d]`, k and v `[n, kvHeads·d]` (rows = the tokens of all sequences
/// stacked), out `[n, heads·d]`. Every sequence attends to its own KV cache, so batches,
/// single sequences and incremental decoding are one path; one job per (sequence, head),
/// which takes its queries in blocks of `queryBlock` rows.
struct Attention {
    let heads: Int
    let kvHeads: Int
    let headDim: Int
    /// 1/√head_dim unless the family sets another (Gemma's `query_pre_attn_scalar`^-½).
    let scale: Float
    /// Each layer's window (nil: attends to every past position).
    let windows: [Int?]
    var group: Int { heads / kvHeads }

    init(heads: Int, kvHeads: Int, headDim: Int, scale: Float? = nil, windows: [Int?]) {
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
        self.windows = windows
    }

    /// What the backward needs (traces run without a past: rows = total per sequence).
    struct Saved {
        var queries = Tensor(zeros: [0]), keys = Tensor(zeros: [0]), values = Tensor(zeros: [0])
        /// Per sequence `[heads, rows, rows]`; empty when the trace was too long to keep
        /// them (`storedProbabilityLimit`): the backward then recomputes each head's P.
        var probabilities: [Tensor] = []
        /// The attention output, the output projection's input `[n, heads·d]`.
        var output = Tensor(zeros: [0])
    }

    /// Appends k and v to each sequence's cache of layer `layer`, then attends. When
    /// `probabilities` is given (one `[heads, rows, rows]` tensor per sequence, no past),
    /// each head writes its own slice of it.
    func forward(_ Q: UnsafePointer<Float>, _ K: UnsafePointer<Float>, _ V: UnsafePointer<Float>,
                 tokens: [[Int]], starts: [Int], caches: [KVCache], layer l: Int,
                 into A: UnsafeMutablePointer<Float>, probabilities: [Tensor]?) {
        let hd = headDim, qDim = heads * hd, kvDim = kvHeads * hd, group = group, nH = heads
        let window = windows[l], queryBlock = Attention.queryBlock  // task-local: read on the caller's thread
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
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: min(rows, queryBlock) * total)
            defer { scores.deallocate() }
            for r0 in stride(from: 0, to: rows, by: queryBlock) {
                let b = min(queryBlock, rows - r0), visible = past + r0 + b
                self.probabilities(queries + r0 * qDim, qDim, keys, kvDim, rows: b, past: past + r0, window: window, into: scores)
                if let probabilities, !probabilities.isEmpty {
                    // Each job writes its own [rows, rows] slice of a buffer the trace alone owns
                    // (traces have no past), zeros past `visible` included: the buffer starts
                    // uninitialised, so no single-threaded pass zeroes it first.
                    let P = probabilities[s].storage.pointer + head * rows * rows + r0 * rows
                    for i in 0..<b {
                        (P + i * rows).update(from: scores + i * visible, count: visible)
                        (P + i * rows + visible).update(repeating: 0, count: rows - visible)
                    }
                }
                BLAS.sgemm(m: b, n: hd, k: visible, a: scores, lda: visible, b: values, ldb: kvDim,
                           c: A + (starts[s] + r0) * qDim + head * hd, ldc: qDim)
            }
        }
    }

    /// Queries are attended in blocks of this many rows, each against the keys up to its
    /// last row only: the causal upper triangle beyond each block is never computed (for
    /// 2048 tokens, 53 % of the square instead of all of it). Shorter inputs are one block.
    /// Task-local so that a test can change it for its own calls alone (a global changed
    /// under another test's running forward overflowed that forward's score buffer).
    @TaskLocal static var queryBlock = 128

    /// P = softmax(q·kᵀ · scale) for `rows` queries after `past` cached positions, causal
    /// and windowed, into `P` `[rows, past + rows]`: the forward's, and the backward's when
    /// it recomputes them (the same calls on the same saved q and k).
    func probabilities(_ queries: UnsafePointer<Float>, _ qStride: Int, _ keys: UnsafePointer<Float>, _ kStride: Int,
                       rows: Int, past: Int, window: Int?, into P: UnsafeMutablePointer<Float>) {
        let total = past + rows
        BLAS.sgemm(transB: true, m: rows, n: total, k: headDim, alpha: scale,
                   a: queries, lda: qStride, b: keys, ldb: kStride, c: P, ldc: total)
        for i in 0..<rows {
            let row = P + i * total, end = past + i + 1
            let first = window.map { max(0, end - $0) } ?? 0
            if first > 0 { row.update(repeating: 0, count: first) }
            Kernels.softmax(row + first, count: total - first, valid: end - first)
        }
    }

    /// Traces keep every layer's attention probabilities up to this many bytes in all
    /// (all layers, heads and sequences); longer inputs recompute them in the backward, one
    /// head at a time, so a 2048-token pass does not hold 30 layers × heads × 2048² floats.
    /// Task-local, as `queryBlock`.
    @TaskLocal static var storedProbabilityLimit = 512 << 20

    /// dQ, dK, dV from dOut. out = P·V: dP = dOut·Vᵀ, dV = Pᵀ·dOut (× the value share);
    /// softmax Jacobian: dS = P ⊙ (dP − Σ_j dP·P); S = scale·q·kᵀ: dQ = dS·K, dK = dSᵀ·Q
    /// (× the query/key share). Keys and values of a GQA group sum over its heads.
    func backward(_ dOut: UnsafePointer<Float>, saved a: Saved, tokens: [[Int]], starts: [Int], layer l: Int, rules: BackwardRules,
                  dQ DQ: UnsafeMutablePointer<Float>, dK DK: UnsafeMutablePointer<Float>, dV DV: UnsafeMutablePointer<Float>) {
        let hd = headDim, nH = heads, nKV = kvHeads, qDim = nH * hd, kvDim = nKV * hd, group = group, scale = scale
        let n = starts.last!
        var dKPerHead = Tensor(unsafeUninitializedShape: [n, qDim]), dVPerHead = Tensor(unsafeUninitializedShape: [n, qDim])
        let DKH = mutablePointer(&dKPerHead), DVH = mutablePointer(&dVPerHead)
        let Q = a.queries.storage.pointer, K = a.keys.storage.pointer, V = a.values.storage.pointer
        let qkShare = rules.queryKeyShare, vShare = rules.valueShare, queryBlock = Attention.queryBlock
        Parallel.forEach(tokens.count * nH) { job in
            let s = job / nH, head = job % nH, kvHead = head / group
            let rows = tokens[s].count, first = starts[s], block = min(rows, queryBlock)
            let dP = UnsafeMutablePointer<Float>.allocate(capacity: block * rows)
            defer { dP.deallocate() }
            let recomputed: UnsafeMutablePointer<Float>? = a.probabilities.isEmpty ? .allocate(capacity: block * rows) : nil
            defer { recomputed?.deallocate() }
            let dO = dOut + first * qDim + head * hd, queries = Q + first * qDim + head * hd
            let keys = K + first * kvDim + kvHead * hd, values = V + first * kvDim + kvHead * hd
            let dQ = DQ + first * qDim + head * hd, dK = DKH + first * qDim + head * hd, dV = DVH + first * qDim + head * hd
            // Query blocks as in the forward, the last first: it reaches every key, so its
            // products set dK and dV (β = 0) and the earlier blocks add to them.
            for (index, r0) in stride(from: 0, to: rows, by: queryBlock).reversed().enumerated() {
                let b = min(block, rows - r0), visible = r0 + b, beta: Float = index == 0 ? 0 : 1
                let P: UnsafePointer<Float>, pStride: Int
                if let recomputed {
                    probabilities(queries + r0 * qDim, qDim, keys, kvDim, rows: b, past: r0, window: windows[l], into: recomputed)
                    (P, pStride) = (UnsafePointer(recomputed), visible)
                } else {
                    (P, pStride) = (UnsafePointer(a.probabilities[s].storage.pointer + head * rows * rows + r0 * rows), rows)
                }
                BLAS.sgemm(transB: true, m: b, n: visible, k: hd, a: dO + r0 * qDim, lda: qDim, b: values, ldb: kvDim,
                           c: dP, ldc: visible)
                BLAS.sgemm(transA: true, m: visible, n: hd, k: b, alpha: vShare, a: P, lda: pStride, b: dO + r0 * qDim, ldb: qDim,
                           beta: beta, c: dV, ldc: qDim)
                Kernels.softmaxBackwardCausal(P, stride: pStride, dP, stride: visible, rows: b, offset: r0, scale: scale)
                BLAS.sgemm(m: b, n: hd, k: visible, alpha: qkShare, a: dP, lda: visible, b: keys, ldb: kvDim,
                           c: dQ + r0 * qDim, ldc: qDim)
                BLAS.sgemm(transA: true, m: visible, n: hd, k: b, alpha: qkShare, a: dP, lda: visible,
                           b: queries + r0 * qDim, ldb: qDim, beta: beta, c: dK, ldc: qDim)
            }
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
    }
}
