import Foundation
import SparcCluster
import SparcModel
import SparcTensor

/// How relevance is computed.
public enum AttributionMethod: String, CaseIterable, Sendable {
    /// AttnLRP (Gradient×Input with the modified backward, `BackwardRules.attnLRP`).
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
    /// MLP units (the MLP output projection's inputs: down_proj, fc2, c_proj) and attention
    /// output channels (the attention output projection's inputs).
    case neuron
    /// Attention heads.
    case head
    /// Every element of every parameter in the prunable set (the block linear weights by
    /// default), under the checkpoint's names and shapes.
    case weight
    /// Output units of each linear layer: a weight-level map summed over each row (keyed by
    /// the weight's name, `[out]`). The unit's relevance, as LRP conserves it through the
    /// layer (Hatefi et al. 2025: a neuron is a row of any chosen linear layer).
    case row
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

/// Computes relevance maps over reference samples, averaged, in batches.
public enum Attribution {
    /// The block linear weights a weight-level map covers by default, in `params` order.
    public static func linearWeightNames(_ model: Model) -> [String] { weightNames(model, .linear) }

    /// The checkpoint tensors of the given groups, in `params` order. `.head` of a tied
    /// model is the embedding matrix: it is covered by `.embeddings`.
    public static func weightNames(_ model: Model, _ groups: ParameterGroups) -> [String] {
        let layout = model.layout
        var names = Set(layout.names(in: groups))
        if groups.contains(.head) && model.config.tieWordEmbeddings, let e = layout.tensor(holding: ParameterKey(.embedding)) {
            names.insert(e.name)
        }
        return layout.names.filter(names.contains)
    }

    /// `absolute`: average |relevance| of each sample (weight level) instead of the signed
    /// mean, so components relevant with alternating signs do not cancel: linear weights take
    /// one ∂W per sample inside a batch's backward; other parameters (biases, norms,
    /// embeddings) make each sample run its own pass.
    /// `parameters`: which parameters a weight-level map covers (the block linear weights
    /// unless biases, norms, embeddings or the head are asked for too).
    /// `world`: the processes sharing the work (`mpirun`): each takes a contiguous shard of
    /// the samples and the sums are combined in float64, so every rank ends with the map of
    /// all samples.
    public static func attribute(_ model: Model, samples: [AttributionSample], method: AttributionMethod = .lrp,
                                 level: AttributionLevel = .weight, batchSize: Int = 8, absolute: Bool = false,
                                 parameters: ParameterGroups = .linear, world: World = .current,
                                 progress: (Int, Int) -> Void = { _, _ in }) throws -> RelevanceMap {
        var map = try compute(model, samples: samples, method: method, level: level == .row ? .weight : level,
                              batchSize: batchSize, absolute: absolute, groups: parameters, world: world, progress: progress)
        if level == .row { map = try rows(of: map, model: model) }
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
                                world: World, progress: (Int, Int) -> Void) throws -> RelevanceMap {
        guard !samples.isEmpty else { throw AttributionError.invalid("attribute needs at least one sample") }
        guard batchSize >= 1 else { throw AttributionError.invalid("batch must be at least 1") }
        guard !groups.isEmpty else { throw AttributionError.invalid("no parameters to attribute") }
        if groups != .linear && (method == .wanda || method == .activation) {
            throw AttributionError.invalid("method \(method.rawValue) scores the block linear weights only (their input activations); biases, norms, embeddings and the head have none")
        }
        if groups != .linear && level != .weight && level != .row {
            throw AttributionError.invalid("parameters other than the linear weights are a weight-level choice (level is \(level.rawValue))")
        }
        let names = weightNames(model, groups)
        guard !names.isEmpty else { throw AttributionError.invalid("this model has no parameters in the chosen groups") }
        switch (method, level) {
        case (.magnitude, .weight), (.wanda, .weight), (.activation, .weight), (.activation, .neuron), (.activation, .head): break
        case (.magnitude, _), (.wanda, _):
            throw AttributionError.invalid("method \(method.rawValue) gives weight-level relevance only")
        case (.activation, _):
            throw AttributionError.invalid("method activation gives weight, neuron or head relevance, not \(level.rawValue)")
        default: break
        }
        if method == .magnitude { return magnitude(model, names) }

        let c = model.config, layout = model.layout
        let keys = names.flatMap { layout.tensor(named: $0)!.pieces.map(\.key) }
        let forwardOnly = method == .activation || method == .wanda
        let rules: BackwardRules = method == .lrp ? .attnLRP : .gradient
        let wantWeights = level == .weight && !forwardOnly
        let perSampleAbsolute = absolute && wantWeights
        let count = Float(samples.count)
        // Linear layers fold θ ⊙ ∂θ (or ∂θ), |·| per sample and the mean's 1/N into their
        // accumulators during the backward; the other parameters are finished below.
        let linearFold = WeightGradientFold(timesWeight: method != .gradient, absolute: perSampleAbsolute, scale: 1 / count)
        var grads = Gradients(wanted: wantWeights ? Set(keys) : [], wantNeurons: level == .neuron || level == .head,
                              wantResiduals: level == .hidden, linearFold: linearFold)
        var inputStatistics = InputStatistics()
        var perSample: [[(String, Tensor)]] = []
        var explained: [Double] = []
        var absoluteSums: [ParameterKey: Tensor] = [:]
        var done = 0
        // Per-sample |R| of linear weights is folded per sample inside a batched backward;
        // other parameters' gradients are summed over a batch, so they take one sample per pass.
        let step = perSampleAbsolute && keys.contains(where: { !$0.role.isLinearWeight }) ? 1 : batchSize
        // Whole batches per rank, so each sample's pass is the one-process pass.
        let mine = world.shard(batches: samples.count, of: step)
        for start in stride(from: mine.lowerBound, to: mine.upperBound, by: step) {
            try Interrupt.check()
            let batch = Array(samples[start..<min(start + step, mine.upperBound)])
            let needsEveryPosition = batch.contains { $0.target == .languageModeling }
            let (logits, trace) = try model.tracedLogits(batch: batch.map(\.ids), lastOnly: forwardOnly || !needsEveryPosition,
                                                         forBackwardOnly: !forwardOnly)
            if forwardOnly {
                inputStatistics.add(trace, method == .wanda ? .square : .absolute, gated: c.gatedMLP)
            } else {
                let (seeds, values) = try logitSeeds(model, trace, logits, batch, unitSeed: method == .gradient)
                explained += values
                grads.sampleStarts = trace.starts
                model.backward(trace, seed: model.headInputSeed(seeds, rows: trace.starts.last!), rules: rules, into: grads)
                model.accumulateHeadGradient(trace, seeds, into: grads)
                if perSampleAbsolute {
                    // Add this sample's |θ ⊙ ∂θ| (or |∂θ|) of the other parameters, and start the next sample.
                    for key in keys where !key.role.isLinearWeight {
                        guard let g = grads.parameters[key] else { continue }   // no gradient: adds zeros
                        addAbsolute(g, times: method == .gradient ? nil : model.runtimeParameters[key]!,
                                    into: &absoluteSums[key, default: Tensor(zeros: g.shape)])
                    }
                    grads = grads.nextSample()
                }
                if level == .token || level == .hidden {
                    perSample += perToken(model, trace, grads, level: level, method: method)
                }
            }
            done += batch.count
            progress(world.progress(done, of: samples.count), samples.count)
        }
        if perSampleAbsolute {
            for key in keys where key.role.isLinearWeight { absoluteSums[key] = grads.parameters.removeValue(forKey: key) }
        }
        if world.size > 1 {
            // Every rank adds the other ranks' sums; a rank without samples adds zeros.
            explained = try world.gather(explained)
            if forwardOnly {
                try inputStatistics.combine(model, world)
            } else if perSampleAbsolute {
                for key in keys { try world.sum(&absoluteSums[key, default: Tensor(zeros: model.runtimeParameters[key]!.shape)]) }
            } else if wantWeights {
                for key in keys { try world.sum(&grads.parameters[key, default: Tensor(zeros: model.runtimeParameters[key]!.shape)]) }
            } else if level == .neuron || level == .head {
                let none = [Tensor](repeating: Tensor(zeros: [0]), count: c.numLayers)
                if grads.mlpUnits.count != c.numLayers { grads.mlpUnits = none }
                if grads.attentionChannels.count != c.numLayers { grads.attentionChannels = none }
                for l in 0..<c.numLayers {
                    try world.sum(&grads.mlpUnits[l], count: c.intermediateSize)
                    try world.sum(&grads.attentionChannels[l], count: c.numHeads * c.headDim)
                }
            } else if level == .token || level == .hidden {
                perSample = try world.gather(perSample.map { $0.map(NamedTensor.init) }).map { $0.map(\.pair) }
            }
        }

        var out: [(String, Tensor)] = []
        /// Runtime tensors (one per key) as checkpoint tensors, in `params` order.
        func checkpoint(_ parts: [ParameterKey: Tensor]) -> [(String, Tensor)] {
            let assembled = layout.checkpointTensors(parts)
            return names.map { ($0, assembled[$0]!) }
        }
        let components = model.components
        switch (method, level) {
        case (.wanda, _):
            out = checkpoint(Dictionary(uniqueKeysWithValues: keys.map { key in
                let norms = inputStatistics.sums[key]!.map { Float($0.squareRoot()) }
                return (key, columnScaled(model.runtimeParameters[key]!, norms, absolute: true))
            }))
        case (.activation, .weight):
            out = checkpoint(Dictionary(uniqueKeysWithValues: keys.map { key in
                let means = inputStatistics.means(key)
                return (key, columnScaled(Tensor(zeros: model.runtimeParameters[key]!.shape), means, absolute: false, replace: true))
            }))
        case (.activation, .neuron):
            for l in 0..<c.numLayers {
                out.append((components.mlp(l), Tensor(shape: [c.intermediateSize], values: inputStatistics.means(ParameterKey(.down, layer: l)))))
                out.append((components.attention(l), Tensor(shape: [c.numHeads * c.headDim], values: inputStatistics.means(ParameterKey(.output, layer: l)))))
            }
        case (.activation, .head):
            for l in 0..<c.numLayers {
                out.append((components.attention(l), headSums(inputStatistics.means(ParameterKey(.output, layer: l)), heads: c.numHeads, headDim: c.headDim)))
            }
        case (_, .weight) where perSampleAbsolute:
            for key in keys {
                var sum = absoluteSums[key] ?? Tensor(zeros: model.runtimeParameters[key]!.shape)
                if !key.role.isLinearWeight { scaleInPlace(&sum, by: nil, 1 / count) }   // linear ones: folded
                absoluteSums[key] = sum
            }
            out = checkpoint(absoluteSums)
        case (_, .weight):
            // The accumulated gradients become the relevances in place (no second buffer).
            var parts: [ParameterKey: Tensor] = [:]
            for key in keys {
                var g = grads.parameters.removeValue(forKey: key) ?? Tensor(zeros: model.runtimeParameters[key]!.shape)
                if !key.role.isLinearWeight {   // linear ones: folded during the backward
                    scaleInPlace(&g, by: method == .gradient ? nil : model.runtimeParameters[key]!, 1 / count)
                }
                parts[key] = g
            }
            out = checkpoint(parts)
        case (_, .neuron):
            for l in 0..<c.numLayers {
                out.append((components.mlp(l), scaled(grads.mlpUnits[l], 1 / count)))
                out.append((components.attention(l), scaled(grads.attentionChannels[l], 1 / count)))
            }
        case (_, .head):
            for l in 0..<c.numLayers {
                out.append((components.attention(l), scaled(headSums(grads.attentionChannels[l].scalars, heads: c.numHeads, headDim: c.headDim), 1 / count)))
            }
        case (_, .row):
            preconditionFailure("row maps are summed from weight maps by attribute()")
        case (_, .token), (_, .hidden):
            for (i, sample) in perSample.enumerated() {
                for (key, t) in sample { out.append((samples.count == 1 ? key : "sample.\(i).\(key)", t)) }
            }
        }
        return RelevanceMap(names: out.map(\.0), tensors: Dictionary(uniqueKeysWithValues: out), method: method, level: level,
                            sampleCount: samples.count, explained: explained)
    }

    // MARK: seeds

    /// The logits explained for each sample and their coefficients. Gradient×Input methods
    /// seed with the quantity's value (LXT: `logit.backward(logit)`), so relevances are in
    /// logit units and sum to about the explained logit.
    static func logitSeeds(_ model: Model, _ trace: ActivationTrace, _ logits: [Tensor], _ batch: [AttributionSample],
                           unitSeed: Bool) throws -> ([Model.LogitSeed], [Double]) {
        let vocab = model.config.vocabSize
        var seeds: [Model.LogitSeed] = [], values: [Double] = []
        func add(_ row: Int, _ token: Int, _ coefficient: Float) { seeds.append(.init(row: row, token: token, coefficient: coefficient)) }
        func check(_ t: Int) throws {
            guard t >= 0 && t < vocab else { throw AttributionError.invalid("target token \(t) is outside the vocabulary (0..<\(vocab))") }
        }
        for (s, sample) in batch.enumerated() {
            let l = logits[s], rows = sample.ids.count, last = trace.starts[s] + rows - 1
            let lastRow = l.row(l.shape[0] - 1)  // every row, or only the last one
            switch sample.target {
            case .predicted:
                let t = lastRow.indices.max { lastRow[$0] < lastRow[$1] || (lastRow[$0] == lastRow[$1] && $0 > $1) }!
                add(last, t, unitSeed ? 1 : lastRow[t])
                values.append(Double(lastRow[t]))
            case .token(let t):
                try check(t)
                add(last, t, unitSeed ? 1 : lastRow[t])
                values.append(Double(lastRow[t]))
            case .contrast(let a, let b):
                try check(a); try check(b)
                let f = lastRow[a] - lastRow[b]
                add(last, a, unitSeed ? 1 : f)
                add(last, b, unitSeed ? -1 : -f)
                values.append(Double(f))
            case .languageModeling:
                guard rows >= 2 else { throw AttributionError.invalid("language-modelling targets need at least 2 tokens") }
                var total = 0.0
                for i in 0..<(rows - 1) {
                    let next = sample.ids[i + 1], v = l[flat: i * vocab + next]
                    add(trace.starts[s] + i, next, unitSeed ? 1 : v)
                    total += Double(v)
                }
                values.append(total)
            }
        }
        return (seeds, values)
    }

    // MARK: per-token levels

    /// Token level: Σ_hidden embedding ⊙ gradient per token (and per learned position);
    /// hidden level: the same at each block's input. The gradient baseline reports ‖∂f/∂x‖.
    private static func perToken(_ model: Model, _ trace: ActivationTrace, _ grads: Gradients, level: AttributionLevel,
                                 method: AttributionMethod) -> [[(String, Tensor)]] {
        func rowSums(_ x: Tensor, _ g: Tensor, rows: Range<Int>) -> Tensor {
            let d = g.shape[1], useInput = method != .gradient
            return Tensor(shape: [rows.count], values: rows.map { r in
                var s: Float = 0
                for j in 0..<d {
                    let gj = g[flat: r * d + j]
                    s += useInput ? x[flat: r * d + j] * gj : gj * gj
                }
                return useInput ? s : s.squareRoot()
            })
        }
        return trace.tokens.indices.map { s in
            let rows = trace.starts[s]..<trace.starts[s + 1]
            if level == .token {
                var out = [("tokens", rowSums(trace.tokenEmbeddings, grads.tokenEmbeddings, rows: rows))]
                if let p = trace.positionEmbeddings { out.append(("positions", rowSums(p, grads.blockInput, rows: rows))) }
                return out
            }
            return (0..<model.config.numLayers).map { l in
                (model.components.layer(l), rowSums(trace.layers[l].residualIn, grads.residuals[l], rows: rows))
            }
        }
    }

    // MARK: data-free and forward-only baselines

    private static func magnitude(_ model: Model, _ names: [String]) -> RelevanceMap {
        let tensors = Dictionary(uniqueKeysWithValues: names.map { n in
            (n, model.parameters[n]!.withUnsafeBufferPointer { src in Tensor(shape: model.parameters[n]!.shape) { for i in 0..<src.count { $0[i] = abs(src[i]) } } })
        })
        return RelevanceMap(names: names, tensors: tensors, method: .magnitude, level: .weight, sampleCount: 0, explained: [])
    }

    /// Per linear weight, Σ over tokens of x_j² (wanda), |x_j| (activation) or x_j (mean
    /// ablation) of its input column.
    struct InputStatistics {
        enum Statistic { case square, absolute, signed }
        var sums: [ParameterKey: [Double]] = [:]
        var tokens = 0

        /// The linear layers whose inputs are summed.
        static func roles(gated: Bool) -> [ParameterRole] { [.query, .key, .value, .output, .up, .down] + (gated ? [.gate] : []) }

        static func input(_ role: ParameterRole, _ a: ActivationTrace.Layer) -> Tensor {
            switch role {
            case .query, .key, .value: return a.attentionInput
            case .output: return a.attentionOutput
            case .up, .gate: return a.mlpInput
            default: return a.mlpProduct
            }
        }

        mutating func add(_ trace: ActivationTrace, _ statistic: Statistic, gated: Bool) {
            for (l, a) in trace.layers.enumerated() {
                for role in InputStatistics.roles(gated: gated) {
                    let x = InputStatistics.input(role, a)
                    let key = ParameterKey(role, layer: l)
                    let rows = x.shape[0], width = x.shape[1]
                    var acc = sums[key] ?? [Double](repeating: 0, count: width)
                    x.withUnsafeBufferPointer { p in
                        for i in 0..<rows {
                            for j in 0..<width {
                                let v = Double(p[i * width + j])
                                switch statistic {
                                case .square: acc[j] += v * v
                                case .absolute: acc[j] += abs(v)
                                case .signed: acc[j] += v
                                }
                            }
                        }
                    }
                    sums[key] = acc
                }
            }
            tokens += trace.starts.last!
        }

        func means(_ key: ParameterKey) -> [Float] { sums[key]!.map { Float($0 / Double(tokens)) } }

        /// The sums over every rank's tokens (keys in layout order; zeros where a rank saw none).
        mutating func combine(_ model: Model, _ world: World) throws {
            guard world.size > 1 else { return }
            let roles = InputStatistics.roles(gated: model.config.gatedMLP)
            for l in 0..<model.config.numLayers {
                for role in roles {
                    let key = ParameterKey(role, layer: l)
                    var acc = sums[key] ?? [Double](repeating: 0, count: model.runtimeParameters[key]!.shape[1])
                    try world.sum(&acc)
                    sums[key] = acc
                }
            }
            tokens = try world.sum(tokens)
        }
    }

    /// The mean input of every block linear layer over the tokens of `prompts` (runtime
    /// keys, `[in]` each): what mean ablation puts in place of a pruned weight's, unit's or
    /// head's contribution (Wang et al. 2023; ACDC).
    public static func inputMeans(_ model: Model, prompts: [[Int]], batchSize: Int = 8, world: World = .current) throws -> [ParameterKey: [Float]] {
        guard !prompts.isEmpty else { throw AttributionError.invalid("mean ablation needs at least one reference prompt") }
        var statistics = InputStatistics()
        let mine = world.shard(batches: prompts.count, of: max(batchSize, 1))
        for start in stride(from: mine.lowerBound, to: mine.upperBound, by: max(batchSize, 1)) {
            try Interrupt.check()
            let (_, trace) = try model.tracedLogits(batch: Array(prompts[start..<min(start + max(batchSize, 1), mine.upperBound)]), lastOnly: true)
            statistics.add(trace, .signed, gated: model.config.gatedMLP)
        }
        try statistics.combine(model, world)
        return statistics.sums.mapValues { $0.map { Float($0 / Double(statistics.tokens)) } }
    }

    /// A weight-level map summed over each output unit of every linear layer: the row
    /// level. Fused checkpoint tensors (GPT-2's c_attn) list their pieces' units in order.
    public static func rows(of map: RelevanceMap, model: Model) throws -> RelevanceMap {
        guard map.level == .weight else { throw AttributionError.invalid("row relevance is summed from a weight-level map, not a \(map.level.rawValue) map") }
        var names: [String] = [], tensors: [String: Tensor] = [:]
        for n in map.names {
            guard let t = model.layout.tensor(named: n), let values = map[n], values.shape == t.shape else {
                throw AttributionError.invalid("the map's \(n) is not a parameter of this model with that shape: the map is for another model")
            }
            guard t.pieces.allSatisfy({ $0.shape.count == 2 }) else { continue }  // vectors have no rows
            let units = t.pieces.reduce(0) { $0 + $1.shape[0] }
            var sums = [Float](repeating: 0, count: units)
            values.withUnsafeBufferPointer { p in
                for piece in t.pieces {
                    for r in 0..<piece.shape[0] {
                        var s: Float = 0
                        for col in 0..<piece.shape[1] { s += p[t.checkpointIndex(piece, row: r, column: col)] }
                        sums[piece.offset + r] = s
                    }
                }
            }
            names.append(n)
            tensors[n] = Tensor(shape: [units], values: sums)
        }
        guard !names.isEmpty else { throw AttributionError.invalid("the map has no matrices, so no rows") }
        var out = RelevanceMap(names: names, tensors: tensors, method: map.method, level: .row, sampleCount: map.sampleCount, explained: map.explained)
        out.provenance = map.provenance
        return out
    }

    // MARK: tensor helpers

    static func scaled(_ t: Tensor, _ f: Float) -> Tensor {
        t.withUnsafeBufferPointer { src in Tensor(shape: t.shape) { for i in 0..<src.count { $0[i] = src[i] * f } } }
    }

    /// g ← g ⊙ w · scale (or g · scale without w), in place.
    /// A half-precision w is widened for the product (one matrix at a time).
    static func scaleInPlace(_ g: inout Tensor, by w: Tensor?, _ scale: Float) {
        let G = g.withUnsafeMutableBufferPointer { $0.baseAddress! }
        guard let w else {
            Parallel.forRanges(g.count, minChunk: 65536) { r in for i in r { G[i] *= scale } }
            return
        }
        w.withFloat32 { W in
            Parallel.forRanges(g.count, minChunk: 65536) { r in for i in r { G[i] = W[i] * G[i] * scale } }
        }
    }

    /// sum += |x ⊙ w| (|x| without w), in one pass over the three tensors: per-sample
    /// weight relevances are memory-bound (hundreds of MB per sample), so the product is
    /// not written back first. A half-precision w is widened (one matrix at a time).
    static func addAbsolute(_ x: Tensor, times w: Tensor?, into sum: inout Tensor) {
        let X = x.storage.pointer, S = sum.withUnsafeMutableBufferPointer { $0.baseAddress! }
        guard let w else {
            Parallel.forRanges(x.count, minChunk: 65536) { r in for i in r { S[i] += abs(X[i]) } }
            return
        }
        w.withFloat32 { W in
            Parallel.forRanges(x.count, minChunk: 65536) { r in for i in r { S[i] += abs(W[i] * X[i]) } }
        }
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

// MARK: combining the ranks' sums (`World`)

extension World {
    /// A tensor summed over ranks in place.
    func sum(_ t: inout Tensor) throws {
        try t.withUnsafeMutableBufferPointer { try sum($0) }
    }

    /// A per-layer accumulator summed over ranks; a rank that saw no samples has an empty
    /// one and contributes zeros of the given length.
    func sum(_ t: inout Tensor, count: Int) throws {
        if t.count != count { t = Tensor(zeros: [count]) }
        try sum(&t)
    }
}

/// A named tensor as it travels between ranks (token- and hidden-level maps per sample).
struct NamedTensor: Codable {
    let name: String
    let shape: [Int]
    let values: [Float]
    init(_ pair: (String, Tensor)) { name = pair.0; shape = pair.1.shape; values = pair.1.scalars }
    var pair: (String, Tensor) { (name, Tensor(shape: shape, values: values)) }
}
