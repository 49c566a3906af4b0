import SparcAttribution
import SparcModel
import SparcTensor

/// Applying masks to models: the masked weights, rows, neurons or heads are removed in a
/// new model that shares every untouched tensor with the original — zeroed, or replaced by
/// their mean contribution over reference prompts (mean ablation).
public enum Pruning {
    /// What a pruned part contributes afterwards.
    public enum Ablation: Sendable {
        /// Nothing: the weights are zero.
        case zero
        /// Its mean over reference prompts, as in ACDC and Wang et al. 2023. Every mask
        /// removes parts of linear layers y = Wx + b, so replacing each removed term W_ij·x_j
        /// by W_ij·x̄_j is exact: the weights are zeroed and b grows by (W − W_pruned)·x̄,
        /// x̄ the layer's mean input (`Attribution.inputMeans`). Layers without a bias get one.
        case mean([ParameterKey: [Float]])
    }

    public static func prune(_ model: Model, _ mask: Mask, ablation: Ablation = .zero) throws -> Model {
        let zeroed: [String: Tensor]
        switch mask.granularity {
        case .weight: zeroed = try pruneWeights(model, mask)
        case .row: zeroed = try pruneRows(model, mask)
        case .neuron, .head: zeroed = try pruneComponents(model, mask)
        }
        guard case .mean(let means) = ablation else { return try model.replacing(zeroed) }
        return try meanAblated(model, zeroed: zeroed, means: means)
    }

    /// Weight masks are keyed by checkpoint names and shapes: zero the selected elements.
    private static func pruneWeights(_ model: Model, _ mask: Mask) throws -> [String: Tensor] {
        var replaced: [String: Tensor] = [:]
        for n in mask.names {
            guard let w = model.parameters[n], w.shape == mask.shapes[n] else {
                throw MaskError.invalid("the mask covers \(n) with shape \(mask.shapes[n] ?? []), which this model does not have: it is for another model")
            }
            guard let bits = mask.bits[n], bits.count == w.count else {
                throw MaskError.invalid("the mask's bits for \(n) do not match its shape")
            }
            guard bits.cardinality > 0 else { continue }
            var t = w
            t.withUnsafeMutableBufferPointer { p in bits.forEachSetBit { p[$0] = 0 } }
            replaced[n] = t
        }
        return replaced
    }

    /// Row masks are keyed by linear weights, one bit per output unit (fused tensors: their
    /// pieces' units in order): zero the unit's row and its bias.
    private static func pruneRows(_ model: Model, _ mask: Mask) throws -> [String: Tensor] {
        var edit = RuntimeEdit(model)
        for n in mask.names {
            guard let t = model.layout.tensor(named: n), t.pieces.allSatisfy({ $0.shape.count == 2 }) else {
                throw MaskError.invalid("the row mask covers \(n), which is not a linear weight of this model: it is for another model")
            }
            let units = t.pieces.reduce(0) { $0 + $1.shape[0] }
            guard let bits = mask.bits[n], bits.count == units else {
                throw MaskError.invalid("the row mask has \(mask.bits[n]?.count ?? 0) units for \(n), this model \(units): it is for another model")
            }
            guard bits.cardinality > 0 else { continue }
            for piece in t.pieces {
                let selected = { (r: Int) in bits[piece.offset + r] }
                edit.zero(piece.key, rows: selected)
                if let bias = piece.key.role.biasRole { edit.zero(ParameterKey(bias, layer: piece.key.layer), rows: selected) }
            }
        }
        return edit.checkpointTensors()
    }

    /// Neuron and head masks name the family's components (`model.layers.3.mlp`,
    /// `transformer.h.3.attn`): their units are rows and columns of runtime parameters.
    /// MLP unit i: row i (and bias i) of the input projections, column i of the output
    /// projection. Attention channel j / head h: column j / the head's columns of the
    /// attention output projection.
    private static func pruneComponents(_ model: Model, _ mask: Mask) throws -> [String: Tensor] {
        let c = model.config
        var edit = RuntimeEdit(model)
        for n in mask.names {
            guard let (layer, kind) = model.components.parse(n, layers: c.numLayers) else {
                throw MaskError.invalid("unexpected component \(n) in a \(mask.granularity.rawValue) mask: this model's components are named like \(model.components.mlp(0)) and \(model.components.attention(0))")
            }
            guard let bits = mask.bits[n] else { continue }
            guard bits.cardinality > 0 else { continue }
            func key(_ role: ParameterRole) -> ParameterKey { ParameterKey(role, layer: layer) }
            switch (kind, mask.granularity) {
            case (.mlp, .neuron):
                guard bits.count == c.intermediateSize else { throw MaskError.invalid("\(n) has \(bits.count) units, this model \(c.intermediateSize): it is for another model") }
                for role in [ParameterRole.gate, .gateBias, .up, .upBias] { edit.zero(key(role), rows: { bits[$0] }) }
                edit.zero(key(.down), columns: { bits[$0] })
            case (.attention, .neuron):
                guard bits.count == c.numHeads * c.headDim else { throw MaskError.invalid("\(n) has \(bits.count) channels, this model \(c.numHeads * c.headDim): it is for another model") }
                edit.zero(key(.output), columns: { bits[$0] })
            case (.attention, .head):
                guard bits.count == c.numHeads else { throw MaskError.invalid("\(n) has \(bits.count) heads, this model \(c.numHeads): it is for another model") }
                edit.zero(key(.output), columns: { bits[$0 / c.headDim] })
            default:
                throw MaskError.invalid("unexpected component \(n) in a \(mask.granularity.rawValue) mask")
            }
        }
        return edit.checkpointTensors()
    }

    /// Mean ablation on top of zeroing: b ← b + (W − W_pruned)·x̄ for every linear layer
    /// touched, with biases added (as zeros first) where the layer had none.
    private static func meanAblated(_ model: Model, zeroed: [String: Tensor], means: [ParameterKey: [Float]]) throws -> Model {
        let prunedRuntime = model.layout.runtimeParameters(zeroed)
        var deltas: [ParameterKey: [Float]] = [:]
        for (key, pruned) in prunedRuntime {
            guard let biasRole = key.role.biasRole, let w = model.runtimeParameters[key], w.rank == 2 else { continue }
            guard let x = means[key], x.count == w.shape[1] else {
                throw MaskError.invalid("mean ablation has no mean input for \(key); compute the means on this model")
            }
            let rows = w.shape[0], cols = w.shape[1]
            var delta = [Float](repeating: 0, count: rows)
            w.withUnsafeBufferPointer { old in
                pruned.withUnsafeBufferPointer { new in
                    delta.withUnsafeMutableBufferPointer { d in
                        Parallel.forRanges(rows, minChunk: 64) { range in
                            for i in range {
                                var s: Double = 0
                                for j in 0..<cols { s += Double(old[i * cols + j] - new[i * cols + j]) * Double(x[j]) }
                                d[i] = Float(s)
                            }
                        }
                    }
                }
            }
            deltas[ParameterKey(biasRole, layer: key.layer)] = delta
        }
        // Biases the layout lacks: switch on the family's flag for the whole group, so the
        // config still describes the model (Llama's attention_bias covers q, k, v and o).
        var config = model.config
        for key in deltas.keys where model.layout.tensor(holding: key) == nil {
            if ModelPart.attention.roles.contains(key.role) { config.queryKeyValueBias = true; config.attentionOutputBias = true }
            if ModelPart.mlp.roles.contains(key.role) { config.mlpBias = true }
        }
        let layout = model.architecture.layout(config)
        var parameters = model.parameters.merging(zeroed) { $1 }
        var added: [String: Tensor] = zeroed
        for t in layout.tensors where parameters[t.name] == nil {
            parameters[t.name] = Tensor(zeros: t.shape)
            added[t.name] = parameters[t.name]
        }
        guard deltas.keys.allSatisfy({ layout.tensor(holding: $0) != nil }) else {
            throw MaskError.invalid("mean ablation needs biases that a \(config.architecture) model cannot hold; use ablation: \"zero\"")
        }
        // b_original + Δ: the pruned bias of a removed row is replaced by the row's mean output.
        // Only the bias tensors are unpacked (GPT-2's fused c_attn.bias with all its pieces).
        let touched = Set(deltas.keys.map { layout.tensor(holding: $0)!.name })
        var runtime = layout.runtimeParameters(parameters.filter { touched.contains($0.key) })
        for (key, delta) in deltas {
            let original = model.runtimeParameters[key] ?? Tensor(zeros: [delta.count])
            runtime[key] = original.withUnsafeBufferPointer { b in Tensor(shape: [delta.count]) { for i in 0..<delta.count { $0[i] = b[i] + delta[i] } } }
        }
        for (name, t) in layout.checkpointTensors(runtime) { added[name] = t }
        return try model.replacing(added, config: config)
    }

    /// Zeroing rows and columns of runtime parameters, then writing back every checkpoint
    /// tensor that holds one of them (all of its pieces, edited or not).
    private struct RuntimeEdit {
        let model: Model
        var runtime: [ParameterKey: Tensor] = [:]
        init(_ model: Model) { self.model = model }

        mutating func zero(_ key: ParameterKey, rows: (Int) -> Bool = { _ in false }, columns: (Int) -> Bool = { _ in false }) {
            guard var t = runtime[key] ?? model.runtimeParameters[key] else { return }
            let r = t.shape[0], cols = t.rank == 2 ? t.shape[1] : 1
            t.withUnsafeMutableBufferPointer { p in
                for i in 0..<r { for j in 0..<cols where rows(i) || columns(j) { p[i * cols + j] = 0 } }
            }
            runtime[key] = t
        }

        func checkpointTensors() -> [String: Tensor] {
            var parts = runtime
            for key in runtime.keys {
                for p in model.layout.tensor(holding: key)!.pieces where parts[p.key] == nil { parts[p.key] = model.runtimeParameters[p.key] }
            }
            let affected = Set(runtime.keys.map { model.layout.tensor(holding: $0)!.name })
            return model.layout.checkpointTensors(parts).filter { affected.contains($0.key) }
        }
    }

    /// Fraction of exactly-zero elements among the block linear weights (the prunable set).
    public static func sparsity(_ model: Model) -> Double {
        var zeros = 0, total = 0
        for n in Attribution.linearWeightNames(model) {
            model.parameters[n]!.withUnsafeBufferPointer { p in
                total += p.count
                for x in p where x == 0 { zeros += 1 }
            }
        }
        return total == 0 ? 0 : Double(zeros) / Double(total)
    }
}
