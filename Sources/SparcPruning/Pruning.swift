import SparcAttribution
import SparcModel
import SparcTensor

/// Applying masks to models: the masked weights, neurons or heads are zeroed in a new
/// model that shares every untouched tensor with the original.
public enum Pruning {
    public static func prune(_ model: Model, _ mask: Mask) throws -> Model {
        let c = model.config
        var replaced: [String: Tensor] = [:]
        func zero(_ name: String, _ positions: (Int, Int) -> Bool) {
            var t = replaced[name] ?? model.parameters[name]!
            let rows = t.shape[0], cols = t.shape[1]
            t.withUnsafeMutableBufferPointer { p in
                for r in 0..<rows { for col in 0..<cols where positions(r, col) { p[r * cols + col] = 0 } }
            }
            replaced[name] = t
        }
        switch mask.granularity {
        case .weight:
            for n in mask.names {
                guard let w = model.parameters[n], w.shape == mask.shapes[n]! else {
                    throw MaskError.invalid("the mask covers \(n) with shape \(mask.shapes[n]!), which this model does not have: it is for another model")
                }
                let bits = mask.bits[n]!
                guard bits.cardinality > 0 else { continue }
                var t = w
                t.withUnsafeMutableBufferPointer { p in for i in 0..<p.count where bits[i] { p[i] = 0 } }
                replaced[n] = t
            }
        case .neuron, .head:
            for n in mask.names {
                let parts = n.split(separator: ".")
                guard parts.count == 4, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]), layer < c.numLayers else {
                    throw MaskError.invalid("unexpected component \(n) in a \(mask.granularity.rawValue) mask")
                }
                let bits = mask.bits[n]!
                guard bits.cardinality > 0 else { continue }
                let pre = "model.layers.\(layer)."
                switch (parts[3], mask.granularity) {
                case ("mlp", .neuron):
                    guard bits.count == c.intermediateSize else { throw MaskError.invalid("\(n) has \(bits.count) units, this model \(c.intermediateSize): it is for another model") }
                    // Unit i: row i of gate_proj and up_proj, column i of down_proj.
                    zero(pre + "mlp.gate_proj.weight") { r, _ in bits[r] }
                    zero(pre + "mlp.up_proj.weight") { r, _ in bits[r] }
                    zero(pre + "mlp.down_proj.weight") { _, col in bits[col] }
                case ("self_attn", .neuron):
                    guard bits.count == c.numHeads * c.headDim else { throw MaskError.invalid("\(n) has \(bits.count) channels, this model \(c.numHeads * c.headDim): it is for another model") }
                    // Attention output channel j: column j of o_proj.
                    zero(pre + "self_attn.o_proj.weight") { _, col in bits[col] }
                case ("self_attn", .head):
                    guard bits.count == c.numHeads else { throw MaskError.invalid("\(n) has \(bits.count) heads, this model \(c.numHeads): it is for another model") }
                    // Head h: its head_dim columns of o_proj.
                    zero(pre + "self_attn.o_proj.weight") { _, col in bits[col / c.headDim] }
                default:
                    throw MaskError.invalid("unexpected component \(n) in a \(mask.granularity.rawValue) mask")
                }
            }
        }
        return try model.replacing(replaced)
    }

    /// Fraction of exactly-zero elements among the block linear weights (the prunable set).
    public static func sparsity(_ model: Model) -> Double {
        var zeros = 0, total = 0
        for n in Attribution.linearWeightNames(model.config) {
            model.parameters[n]!.withUnsafeBufferPointer { p in
                total += p.count
                for x in p where x == 0 { zeros += 1 }
            }
        }
        return total == 0 ? 0 : Double(zeros) / Double(total)
    }
}
