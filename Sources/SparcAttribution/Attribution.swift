import Foundation
import SparcModel
import SparcTensor

/// How relevance is computed.
public enum AttributionMethod: String, CaseIterable, Sendable {
    /// AttnLRP (Gradient×Input with the modified backward of `LlamaBackward`).
    case lrp
    /// The plain gradient of the explained quantity.
    case gradient
    /// Plain Gradient×Input.
    case gradxinput
    /// Mean |activation| over the reference tokens (no backward pass).
    case activation
    /// |W| (no data).
    case magnitude
    /// Wanda: |W_ij|·‖X_j‖₂, X_j the input column over the reference tokens (Sun et al. 2023).
    case wanda
}

/// Which components get a relevance.
public enum AttributionLevel: String, CaseIterable, Sendable {
    /// Input tokens (embedding relevance summed over hidden), per sample.
    case token
    /// The residual stream entering each layer, per token (summed over hidden), per sample.
    case hidden
    /// MLP intermediate units (down_proj inputs) and attention output channels (o_proj inputs).
    case neuron
    /// Attention heads.
    case head
    /// Every element of every linear weight in the blocks (q, k, v, o, gate, up, down).
    case weight
}

/// What is explained for a sample.
public enum AttributionTarget: Equatable, Sendable {
    /// The logit of the top-1 next token at the last position (LXT's convention).
    case predicted
    /// The logit of a given token at the last position.
    case token(Int)
    /// logit(answer) − logit(foil) at the last position (e.g. indirect-object identification).
    case contrast(answer: Int, foil: Int)
    /// The logit of the true next token at every position, in one backward pass.
    case languageModeling
}

public struct AttributionSample: Sendable {
    public let ids: [Int]
    public let target: AttributionTarget
    public init(ids: [Int], target: AttributionTarget = .predicted) { self.ids = ids; self.target = target }
}

/// Relevances keyed like `params(m)` (weight level) or by component (other levels).
public struct RelevanceMap: Sendable {
    public var names: [String]
    public var tensors: [String: Tensor]
    public let method: AttributionMethod
    public let level: AttributionLevel
    public let sampleCount: Int
    /// The explained quantity of each sample (e.g. the predicted logit), for conservation checks.
    public var explained: [Double]
    /// Where the map comes from (model file and its hash, target, seed…): saved with it and
    /// passed on to masks made from it, so a shared file says what it is.
    public var provenance: [String: String] = [:]

    public init(names: [String], tensors: [String: Tensor], method: AttributionMethod, level: AttributionLevel,
                sampleCount: Int, explained: [Double] = []) {
        self.names = names
        self.tensors = tensors
        self.method = method
        self.level = level
        self.sampleCount = sampleCount
        self.explained = explained
    }

    public subscript(name: String) -> Tensor? { tensors[name] }
}

public enum AttributionError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String { if case .invalid(let m) = self { return m }; return "" }
}

/// Which parameters a weight-level map covers: the prunable set. The block linear weights
/// by default; embeddings, norms and the output head only when asked for.
public struct ParameterGroups: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// q/k/v/o and gate/up/down of every block.
    public static let linear = ParameterGroups(rawValue: 1)
    /// The RMSNorm scales (input, post-attention, final).
    public static let norms = ParameterGroups(rawValue: 2)
    /// `model.embed_tokens.weight` (for a tied model also the output head).
    public static let embeddings = ParameterGroups(rawValue: 4)
    /// `lm_head.weight` of an untied model.
    public static let head = ParameterGroups(rawValue: 8)
    public static let all: ParameterGroups = [.linear, .norms, .embeddings, .head]

    public static let names: [(String, ParameterGroups)] = [("linear", .linear), ("norms", .norms), ("embeddings", .embeddings), ("head", .head)]
}

/// Computes relevance maps over reference samples, averaged, in batches.
public enum Attribution {
    /// The block linear weights a weight-level map covers by default, in `params` order.
    public static func linearWeightNames(_ c: ModelConfig) -> [String] {
        (0..<c.numLayers).flatMap { l in
            ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"].map { "model.layers.\(l).\($0).weight" }
        }
    }

    /// The parameters of the given groups, in `params` order. `.head` of a tied model is
    /// the embedding matrix: it is covered by `.embeddings`.
    public static func weightNames(_ c: ModelConfig, _ groups: ParameterGroups) -> [String] {
        var out: [String] = []
        if groups.contains(.embeddings) || (groups.contains(.head) && c.tieWordEmbeddings) { out.append("model.embed_tokens.weight") }
        for l in 0..<c.numLayers {
            let pre = "model.layers.\(l)."
            if groups.contains(.norms) { out.append(pre + "input_layernorm.weight") }
            if groups.contains(.linear) { out += ["q_proj", "k_proj", "v_proj", "o_proj"].map { pre + "self_attn.\($0).weight" } }
            if groups.contains(.norms) { out.append(pre + "post_attention_layernorm.weight") }
            if groups.contains(.linear) { out += ["gate_proj", "up_proj", "down_proj"].map { pre + "mlp.\($0).weight" } }
        }
        if groups.contains(.norms) { out.append("model.norm.weight") }
        if groups.contains(.head) && !c.tieWordEmbeddings { out.append("lm_head.weight") }
        return out
    }

    /// `absolute`: average |relevance| of each sample (weight level) instead of the signed
    /// mean, so components relevant with alternating signs do not cancel; each sample then
    /// runs its own backward pass.
    /// `parameters`: which weights a weight-level map covers (the block linear weights unless
    /// norms, embeddings or the head are asked for too).
    public static func attribute(_ model: Model, samples: [AttributionSample], method: AttributionMethod = .lrp,
                                 level: AttributionLevel = .weight, batchSize: Int = 8, absolute: Bool = false,
                                 parameters: ParameterGroups = .linear,
                                 progress: (Int, Int) -> Void = { _, _ in }) throws -> RelevanceMap {
        var map = try compute(model, samples: samples, method: method, level: level, batchSize: batchSize,
                              absolute: absolute, groups: parameters, progress: progress)
        func kind(_ t: AttributionTarget) -> String {
            switch t {
            case .predicted: return "predicted"
            case .token: return "token"
            case .contrast: return "contrast"
            case .languageModeling: return "lm"
            }
        }
        let kinds = Set(samples.map { kind($0.target) })
        map.provenance = model.provenance.merging(["target": kinds.count == 1 ? kinds.first! : "mixed",
                                                   "aggregation": absolute ? "mean |R|" : "mean R"]) { $1 }
        return map
    }

    private static func compute(_ model: Model, samples: [AttributionSample], method: AttributionMethod,
                                level: AttributionLevel, batchSize: Int, absolute: Bool, groups: ParameterGroups,
                                progress: (Int, Int) -> Void) throws -> RelevanceMap {
        guard !samples.isEmpty else { throw AttributionError.invalid("attribute needs at least one sample") }
        guard batchSize >= 1 else { throw AttributionError.invalid("batch must be at least 1") }
        guard !groups.isEmpty else { throw AttributionError.invalid("no parameters to attribute") }
        if groups != .linear && (method == .wanda || method == .activation) {
            throw AttributionError.invalid("method \(method.rawValue) scores the block linear weights only (their input activations); norms, embeddings and the head have none")
        }
        if groups != .linear && level != .weight {
            throw AttributionError.invalid("parameters other than the linear weights are a weight-level choice (level is \(level.rawValue))")
        }
        let weightNames = weightNames(model.config, groups)
        switch (method, level) {
        case (.magnitude, .weight), (.wanda, .weight), (.activation, .weight), (.activation, .neuron), (.activation, .head): break
        case (.magnitude, _), (.wanda, _):
            throw AttributionError.invalid("method \(method.rawValue) gives weight-level relevance only")
        case (.activation, _):
            throw AttributionError.invalid("method activation gives weight, neuron or head relevance, not \(level.rawValue)")
        default: break
        }
        if method == .magnitude { return magnitude(model, weightNames) }

        let c = model.config
        let rules: LlamaBackward.Rules = method == .lrp ? .attnLRP : .gradient
        let acc = LlamaBackward.Accumulators(wantWeights: level == .weight && method != .activation && method != .wanda,
                                             wantNeurons: level == .neuron || level == .head, wantResiduals: level == .hidden,
                                             wantNorms: groups.contains(.norms))
        var weightInputNorms: [String: [Double]] = [:]       // wanda: Σ_t x_tj² per weight
        var activationSums: [String: [Double]] = [:]          // activation: Σ_t |a_tj| per component
        var activationTokens = 0
        var perSample: [[String: Tensor]] = []
        var explained: [Double] = []

        let perSampleAbsolute = absolute && level == .weight && acc.wantWeights
        var absoluteSums: [String: Tensor] = [:]
        var done = 0
        let step = perSampleAbsolute ? 1 : batchSize
        for start in stride(from: 0, to: samples.count, by: step) {
            try Interrupt.check()
            let batch = Array(samples[start..<min(start + step, samples.count)])
            let needsEveryPosition = batch.contains { $0.target == .languageModeling }
            let forwardOnly = method == .activation || method == .wanda
            let (logits, trace) = try model.tracedLogits(batch: batch.map(\.ids), lastOnly: forwardOnly || !needsEveryPosition)
            if method == .activation || method == .wanda {
                accumulateInputStatistics(model, trace, wanda: method == .wanda, norms: &weightInputNorms, sums: &activationSums)
                activationTokens += trace.starts.last!
            } else {
                let (seed, values, logitSeeds) = try seedFromLogits(model, trace, logits, batch, unitSeed: method == .gradient)
                explained += values
                let backward = LlamaBackward(model: model, rules: rules)
                let wantsPerToken = level == .token || level == .hidden
                backward.run(trace, seed: seed, into: acc)
                if acc.wantWeights && (groups.contains(.embeddings) || groups.contains(.head)) {
                    accumulateEmbeddingAndHeadGradients(model, trace, acc, logitSeeds, groups: groups)
                }
                if perSampleAbsolute {
                    // Fold this sample's |W ⊙ ∂W| (or |∂W|) in, and start the next one afresh.
                    for name in weightNames {
                        var g = acc.weightGradients.removeValue(forKey: name)!
                        scaleInPlace(&g, by: method == .gradient ? nil : model.parameters[name]!, 1)
                        addAbsolute(g, into: &absoluteSums[name, default: Tensor(zeros: g.shape)])
                    }
                }
                if wantsPerToken {
                    perSample += tokenLevel(trace, acc, level: level, method: method, layers: c.numLayers)
                }
            }
            done += batch.count
            progress(done, samples.count)
        }

        let count = Float(samples.count)
        var names: [String] = [], tensors: [String: Tensor] = [:]
        func put(_ name: String, _ t: Tensor) { names.append(name); tensors[name] = t }
        switch (method, level) {
        case (.wanda, _):
            for name in linearWeightNames(c) {
                let w = model.parameters[name]!, norms = weightInputNorms[name]!.map { Float($0.squareRoot()) }
                put(name, columnScaled(w, norms, absolute: true))
            }
        case (.activation, .weight):
            for name in linearWeightNames(c) {
                let means = activationSums[name]!.map { Float($0 / Double(activationTokens)) }
                put(name, columnScaled(Tensor(zeros: model.parameters[name]!.shape), means, absolute: false, replace: true))
            }
        case (.activation, .neuron):
            for l in 0..<c.numLayers {
                put("model.layers.\(l).mlp", Tensor(shape: [c.intermediateSize], values: activationSums["model.layers.\(l).mlp.down_proj.weight"]!.map { Float($0 / Double(activationTokens)) }))
                put("model.layers.\(l).self_attn", Tensor(shape: [c.numHeads * c.headDim], values: activationSums["model.layers.\(l).self_attn.o_proj.weight"]!.map { Float($0 / Double(activationTokens)) }))
            }
        case (.activation, .head):
            for l in 0..<c.numLayers {
                let channels = activationSums["model.layers.\(l).self_attn.o_proj.weight"]!.map { Float($0 / Double(activationTokens)) }
                put("model.layers.\(l).self_attn", headSums(channels, heads: c.numHeads, headDim: c.headDim))
            }
        case (_, .weight) where perSampleAbsolute:
            for name in weightNames {
                var r = absoluteSums.removeValue(forKey: name)!
                scaleInPlace(&r, by: nil, 1 / count)
                put(name, r)
            }
        case (_, .weight):
            // The accumulated gradients become the relevances in place (no second weight-sized buffer).
            for name in weightNames {
                var g = acc.weightGradients.removeValue(forKey: name)!
                scaleInPlace(&g, by: method == .gradient ? nil : model.parameters[name]!, 1 / count)
                put(name, g)
            }
        case (_, .neuron):
            for l in 0..<c.numLayers {
                put("model.layers.\(l).mlp", scaled(acc.mlpNeuronRelevance[l], 1 / count))
                put("model.layers.\(l).self_attn", scaled(acc.attentionChannelRelevance[l], 1 / count))
            }
        case (_, .head):
            for l in 0..<c.numLayers {
                put("model.layers.\(l).self_attn", scaled(headSums(acc.attentionChannelRelevance[l].scalars, heads: c.numHeads, headDim: c.headDim), 1 / count))
            }
        case (_, .token), (_, .hidden):
            for (i, sample) in perSample.enumerated() {
                for key in sample.keys.sorted(by: { keyOrder($0) < keyOrder($1) }) {
                    put(samples.count == 1 ? key : "sample.\(i).\(key)", sample[key]!)
                }
            }
        }
        return RelevanceMap(names: names, tensors: tensors, method: method, level: level, sampleCount: samples.count, explained: explained)
    }

    // MARK: seeds

    /// The gradient of the explained quantity w.r.t. the final norm's output rows.
    /// Gradient×Input methods seed with the quantity's value (LXT: `logit.backward(logit)`),
    /// so relevances are in logit units and sum to about the explained logit.
    static func seedFromLogits(_ model: Model, _ trace: ActivationTrace, _ logits: [Tensor], _ batch: [AttributionSample],
                               unitSeed: Bool) throws -> (Tensor, [Double], [LogitSeed]) {
        let c = model.config, d = c.hiddenSize, vocab = c.vocabSize
        var seed = Tensor(zeros: [trace.starts.last!, d])
        let head = model.outputProjection.storage.pointer
        let S = mutablePointer(&seed)
        var values: [Double] = []
        var logitSeeds: [LogitSeed] = []
        func add(row: Int, token: Int, coefficient: Float) {
            logitSeeds.append(LogitSeed(row: row, token: token, coefficient: coefficient))
            let w = head + token * d, out = S + row * d
            for j in 0..<d { out[j] += coefficient * w[j] }
        }
        func check(_ t: Int) throws {
            guard t >= 0 && t < vocab else { throw AttributionError.invalid("target token \(t) is outside the vocabulary (0..<\(vocab))") }
        }
        for (s, sample) in batch.enumerated() {
            let l = logits[s], rows = sample.ids.count, last = trace.starts[s] + rows - 1
            let lastRow = l.row(l.shape[0] - 1)  // every row, or only the last one
            switch sample.target {
            case .predicted:
                let t = lastRow.indices.max { lastRow[$0] < lastRow[$1] || (lastRow[$0] == lastRow[$1] && $0 > $1) }!
                add(row: last, token: t, coefficient: unitSeed ? 1 : lastRow[t])
                values.append(Double(lastRow[t]))
            case .token(let t):
                try check(t)
                add(row: last, token: t, coefficient: unitSeed ? 1 : lastRow[t])
                values.append(Double(lastRow[t]))
            case .contrast(let a, let b):
                try check(a); try check(b)
                let f = lastRow[a] - lastRow[b]
                add(row: last, token: a, coefficient: unitSeed ? 1 : f)
                add(row: last, token: b, coefficient: unitSeed ? -1 : -f)
                values.append(Double(f))
            case .languageModeling:
                guard rows >= 2 else { throw AttributionError.invalid("language-modelling targets need at least 2 tokens") }
                var total = 0.0
                for i in 0..<(rows - 1) {
                    let next = sample.ids[i + 1], v = l[flat: i * vocab + next]
                    add(row: trace.starts[s] + i, token: next, coefficient: unitSeed ? 1 : v)
                    total += Double(v)
                }
                values.append(total)
            }
        }
        return (seed, values, logitSeeds)
    }

    /// One seeded logit: the gradient of the explained quantity w.r.t. logit[row, token].
    struct LogitSeed { let row: Int, token: Int, coefficient: Float }

    /// The gradients of the embedding matrix and the output head (a linear layer on the
    /// final norm's output h): ∂E[v] = Σ over positions t holding token v of ∂x_t, and
    /// ∂W_head[v] = Σ_t seed[t, v] · h_t. A tied matrix gets both.
    static func accumulateEmbeddingAndHeadGradients(_ model: Model, _ trace: ActivationTrace, _ acc: LlamaBackward.Accumulators,
                                                    _ seeds: [LogitSeed], groups: ParameterGroups) {
        let c = model.config, d = c.hiddenSize
        let embedName = "model.embed_tokens.weight"
        let headName = c.tieWordEmbeddings ? embedName : "lm_head.weight"
        func gradient(_ name: String) -> UnsafeMutablePointer<Float> {
            if acc.weightGradients[name] == nil { acc.weightGradients[name] = Tensor(zeros: model.parameters[name]!.shape) }
            return mutablePointer(&acc.weightGradients[name]!)
        }
        if groups.contains(.embeddings) {
            let G = gradient(embedName), DX = acc.embeddingGradient.storage.pointer
            for (s, ids) in trace.tokens.enumerated() {
                for (i, v) in ids.enumerated() {
                    let row = DX + (trace.starts[s] + i) * d, out = G + v * d
                    for j in 0..<d { out[j] += row[j] }
                }
            }
        }
        if groups.contains(.head) || (c.tieWordEmbeddings && groups.contains(.embeddings)) {
            // h = γ ⊙ x · r, recomputed for the seeded rows only.
            let G = gradient(headName), X = trace.finalResidual.storage.pointer
            let gamma = model.parameters["model.norm.weight"]!.storage.pointer
            for s in seeds {
                let x = X + s.row * d, out = G + s.token * d, r = trace.finalNormScale[s.row]
                for j in 0..<d { out[j] += s.coefficient * gamma[j] * x[j] * r }
            }
        }
    }

    // MARK: per-token levels

    private static func tokenLevel(_ trace: ActivationTrace, _ acc: LlamaBackward.Accumulators, level: AttributionLevel,
                                   method: AttributionMethod, layers: Int) -> [[String: Tensor]] {
        func rowSums(_ x: Tensor?, _ g: Tensor, rows: Range<Int>) -> Tensor {
            let d = g.shape[1]
            return Tensor(shape: [rows.count], values: rows.map { r in
                var s: Float = 0
                for j in 0..<d {
                    let gj = g[flat: r * d + j]
                    if let x { s += x[flat: r * d + j] * gj } else { s += gj * gj }
                }
                return x == nil ? s.squareRoot() : s
            })
        }
        let useInput = method != .gradient  // the gradient baseline reports ‖∂f/∂x‖ per token
        return trace.tokens.indices.map { s in
            let rows = trace.starts[s]..<trace.starts[s + 1]
            var out: [String: Tensor] = [:]
            if level == .token {
                out["tokens"] = rowSums(useInput ? trace.layers[0].residualIn : nil, acc.embeddingGradient, rows: rows)
            } else {
                for l in 0..<layers {
                    out["model.layers.\(l)"] = rowSums(useInput ? trace.layers[l].residualIn : nil, acc.residualGradients[l], rows: rows)
                }
            }
            return out
        }
    }

    private static func keyOrder(_ key: String) -> Int {
        let parts = key.split(separator: ".")
        return parts.count > 2 ? (Int(parts[2]) ?? 0) : -1
    }

    // MARK: data-free and forward-only baselines

    private static func magnitude(_ model: Model, _ names: [String]) -> RelevanceMap {
        let tensors = Dictionary(uniqueKeysWithValues: names.map { n in
            (n, model.parameters[n]!.withUnsafeBufferPointer { src in Tensor(shape: model.parameters[n]!.shape) { for i in 0..<src.count { $0[i] = abs(src[i]) } } })
        })
        return RelevanceMap(names: names, tensors: tensors, method: .magnitude, level: .weight, sampleCount: 0, explained: [])
    }

    /// Per weight, Σ over tokens of x_j² (wanda) or |x_j| (activation) of its input column.
    private static func accumulateInputStatistics(_ model: Model, _ trace: ActivationTrace, wanda: Bool,
                                                  norms: inout [String: [Double]], sums: inout [String: [Double]]) {
        for (l, a) in trace.layers.enumerated() {
            let inputs: [(String, Tensor)] = [
                ("self_attn.q_proj", a.attentionNormOut), ("self_attn.k_proj", a.attentionNormOut), ("self_attn.v_proj", a.attentionNormOut),
                ("self_attn.o_proj", a.attentionOut), ("mlp.gate_proj", a.mlpNormOut), ("mlp.up_proj", a.mlpNormOut),
                ("mlp.down_proj", a.product),
            ]
            for (module, x) in inputs {
                let name = "model.layers.\(l).\(module).weight"
                let rows = x.shape[0], width = x.shape[1]
                var acc = (wanda ? norms[name] : sums[name]) ?? [Double](repeating: 0, count: width)
                x.withUnsafeBufferPointer { p in
                    for i in 0..<rows { for j in 0..<width { let v = Double(p[i * width + j]); acc[j] += wanda ? v * v : abs(v) } }
                }
                if wanda { norms[name] = acc } else { sums[name] = acc }
            }
        }
    }

    // MARK: tensor helpers

    static func scaled(_ t: Tensor, _ f: Float) -> Tensor {
        t.withUnsafeBufferPointer { src in Tensor(shape: t.shape) { for i in 0..<src.count { $0[i] = src[i] * f } } }
    }

    /// g ← g ⊙ w · scale (or g · scale without w), in place.
    static func scaleInPlace(_ g: inout Tensor, by w: Tensor?, _ scale: Float) {
        let G = mutablePointer(&g), W = w?.storage.pointer
        Parallel.forRanges(g.count, minChunk: 65536) { r in
            if let W { for i in r { G[i] = W[i] * G[i] * scale } } else { for i in r { G[i] *= scale } }
        }
    }

    /// sum += |x|.
    static func addAbsolute(_ x: Tensor, into sum: inout Tensor) {
        let X = x.storage.pointer, S = mutablePointer(&sum)
        Parallel.forRanges(x.count, minChunk: 65536) { r in for i in r { S[i] += abs(X[i]) } }
    }

    /// Each column j of W scaled by s[j] (|W| when `absolute`; s alone when `replace`).
    static func columnScaled(_ w: Tensor, _ s: [Float], absolute: Bool, replace: Bool = false) -> Tensor {
        let cols = w.shape[1]
        return w.withUnsafeBufferPointer { src in
            Tensor(shape: w.shape) { out in
                for i in 0..<out.count {
                    let j = i % cols
                    out[i] = replace ? s[j] : (absolute ? abs(src[i]) : src[i]) * s[j]
                }
            }
        }
    }

    static func headSums(_ channels: [Float], heads: Int, headDim: Int) -> Tensor {
        Tensor(shape: [heads], values: (0..<heads).map { h in channels[(h * headDim)..<((h + 1) * headDim)].reduce(0, +) })
    }
}
