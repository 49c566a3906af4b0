import SparcModel
import SparcPruning

/// Where a mask's selected elements sit: a layer × component (or layer × head) table of
/// selected fractions, to draw a circuit's shape.
public struct Composition: Sendable {
    public let rowLabels: [String]
    public let columnLabels: [String]
    public let values: [[Double]]

    static let components = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

    /// By layer and linear weight (weight masks), or layer and unit kind (neuron masks).
    public static func byComponent(_ mask: Mask, config c: ModelConfig) throws -> Composition {
        let rows = (0..<c.numLayers).map { "layer \($0)" }
        switch mask.granularity {
        case .weight:
            let values = (0..<c.numLayers).map { l in
                components.map { comp -> Double in
                    let module = ["gate_proj", "up_proj", "down_proj"].contains(comp) ? "mlp" : "self_attn"
                    guard let b = mask.bits["model.layers.\(l).\(module).\(comp).weight"], b.count > 0 else { return 0 }
                    return Double(b.cardinality) / Double(b.count)
                }
            }
            return Composition(rowLabels: rows, columnLabels: components.map { String($0.dropLast(5)) }, values: values)
        case .neuron:
            let values = (0..<c.numLayers).map { l in
                ["self_attn", "mlp"].map { kind -> Double in
                    guard let b = mask.bits["model.layers.\(l).\(kind)"], b.count > 0 else { return 0 }
                    return Double(b.cardinality) / Double(b.count)
                }
            }
            return Composition(rowLabels: rows, columnLabels: ["attn", "mlp"], values: values)
        case .head:
            return try byHead(mask, config: c)
        }
    }

    /// By layer and attention head: for a weight mask, the fraction of the head's own
    /// weights selected (its q_proj rows, its k/v group's rows, its o_proj columns).
    public static func byHead(_ mask: Mask, config c: ModelConfig) throws -> Composition {
        let rows = (0..<c.numLayers).map { "layer \($0)" }, columns = (0..<c.numHeads).map { "h\($0)" }
        switch mask.granularity {
        case .head:
            let values = (0..<c.numLayers).map { l -> [Double] in
                guard let b = mask.bits["model.layers.\(l).self_attn"] else { return [Double](repeating: 0, count: c.numHeads) }
                return (0..<c.numHeads).map { b[$0] ? 1 : 0 }
            }
            return Composition(rowLabels: rows, columnLabels: columns, values: values)
        case .weight:
            let d = c.headDim, group = c.numHeads / c.numKVHeads
            let values = (0..<c.numLayers).map { l -> [Double] in
                let pre = "model.layers.\(l).self_attn."
                return (0..<c.numHeads).map { h -> Double in
                    var selected = 0, total = 0
                    func rows(_ name: String, _ first: Int) {
                        guard let b = mask.bits[pre + name + ".weight"], let shape = mask.shapes[pre + name + ".weight"] else { return }
                        let cols = shape[1]
                        for r in first..<(first + d) { for k in 0..<cols { total += 1; if b[r * cols + k] { selected += 1 } } }
                    }
                    rows("q_proj", h * d)
                    rows("k_proj", (h / group) * d)
                    rows("v_proj", (h / group) * d)
                    if let b = mask.bits[pre + "o_proj.weight"], let shape = mask.shapes[pre + "o_proj.weight"] {
                        let cols = shape[1]
                        for r in 0..<shape[0] { for k in (h * d)..<((h + 1) * d) { total += 1; if b[r * cols + k] { selected += 1 } } }
                    }
                    return total == 0 ? 0 : Double(selected) / Double(total)
                }
            }
            return Composition(rowLabels: rows, columnLabels: columns, values: values)
        case .neuron:
            throw WorkflowError.invalid("a neuron mask has no per-head picture; use by: \"component\"")
        }
    }
}
