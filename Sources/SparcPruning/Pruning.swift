import SparcAttribution
import SparcModel
import SparcTensor

/// Applying masks to models: the masked weights, neurons or heads are zeroed in a new
/// model that shares every untouched tensor with the original.
public enum Pruning {
    public static func prune(_ model: Model, _ mask: Mask) throws -> Model {
        switch mask.granularity {
        case .weight: return try model.replacing(try pruneWeights(model, mask))
        case .neuron, .head: return try model.replacing(try pruneComponents(model, mask))
        }
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
            t.withUnsafeMutableBufferPointer { p in for i in 0..<p.count where bits[i] { p[i] = 0 } }
            replaced[n] = t
        }
        return replaced
    }

    /// Neuron and head masks name the family's components (`model.layers.3.mlp`,
    /// `transformer.h.3.attn`): their units are rows and columns of runtime parameters.
    /// MLP unit i: row i (and bias i) of the input projections, column i of the output
    /// projection. Attention channel j / head h: column j / the head's columns of the
    /// attention output projection.
    private static func pruneComponents(_ model: Model, _ mask: Mask) throws -> [String: Tensor] {
        let c = model.config
        var runtime: [ParameterKey: Tensor] = [:]
        func zero(_ role: ParameterRole, _ layer: Int, rows: (Int) -> Bool = { _ in false }, columns: (Int) -> Bool = { _ in false }) {
            let key = ParameterKey(role, layer: layer)
            guard var t = runtime[key] ?? model.runtimeParameters[key] else { return }
            let r = t.shape[0], cols = t.rank == 2 ? t.shape[1] : 1
            t.withUnsafeMutableBufferPointer { p in
                for i in 0..<r { for j in 0..<cols where rows(i) || columns(j) { p[i * cols + j] = 0 } }
            }
            runtime[key] = t
        }
        for n in mask.names {
            guard let (layer, kind) = model.components.parse(n, layers: c.numLayers) else {
                throw MaskError.invalid("unexpected component \(n) in a \(mask.granularity.rawValue) mask: this model's components are named like \(model.components.mlp(0)) and \(model.components.attention(0))")
            }
            guard let bits = mask.bits[n] else { continue }
            guard bits.cardinality > 0 else { continue }
            switch (kind, mask.granularity) {
            case (.mlp, .neuron):
                guard bits.count == c.intermediateSize else { throw MaskError.invalid("\(n) has \(bits.count) units, this model \(c.intermediateSize): it is for another model") }
                for role in [ParameterRole.gate, .gateBias, .up, .upBias] { zero(role, layer, rows: { bits[$0] }) }
                zero(.down, layer, columns: { bits[$0] })
            case (.attention, .neuron):
                guard bits.count == c.numHeads * c.headDim else { throw MaskError.invalid("\(n) has \(bits.count) channels, this model \(c.numHeads * c.headDim): it is for another model") }
                zero(.output, layer, columns: { bits[$0] })
            case (.attention, .head):
                guard bits.count == c.numHeads else { throw MaskError.invalid("\(n) has \(bits.count) heads, this model \(c.numHeads): it is for another model") }
                zero(.output, layer, columns: { bits[$0 / c.headDim] })
            default:
                throw MaskError.invalid("unexpected component \(n) in a \(mask.granularity.rawValue) mask")
            }
        }
        // Back to checkpoint tensors: every piece of an affected tensor, replaced or not.
        var parts = runtime
        for key in runtime.keys {
            for p in model.layout.tensor(holding: key)!.pieces where parts[p.key] == nil { parts[p.key] = model.runtimeParameters[p.key] }
        }
        let affected = Set(runtime.keys.map { model.layout.tensor(holding: $0)!.name })
        return model.layout.checkpointTensors(parts).filter { affected.contains($0.key) }
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
