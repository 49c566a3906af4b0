import SparcModel
import SparcPruning

/// Where a mask's selected elements sit: a layer × component (or layer × head) table of
/// selected fractions, to draw a circuit's shape. Weight masks are keyed by checkpoint
/// tensors; the model's layout says which elements belong to which projection and head.
public struct Composition: Sendable {
    public let rowLabels: [String]
    public let columnLabels: [String]
    public let values: [[Double]]

    /// The block's linear layers, in forward order, with their column labels.
    static func projections(_ c: ModelConfig) -> [(ParameterRole, String)] {
        [(.query, "q"), (.key, "k"), (.value, "v"), (.output, "o")] + (c.gatedMLP ? [(.gate, "gate")] : []) + [(.up, "up"), (.down, "down")]
    }

    /// By layer and linear weight (weight masks), or layer and unit kind (neuron masks).
    public static func byComponent(_ mask: Mask, model: Model) throws -> Composition {
        let c = model.config
        let rows = (0..<c.numLayers).map { "layer \($0)" }
        switch mask.granularity {
        case .weight:
            let projections = projections(c)
            let values = try (0..<c.numLayers).map { l in
                try projections.map { role, _ -> Double in
                    let (selected, total) = try count(mask, model, ParameterKey(role, layer: l)) { _, _ in true }
                    return total == 0 ? 0 : Double(selected) / Double(total)
                }
            }
            return Composition(rowLabels: rows, columnLabels: projections.map(\.1), values: values)
        case .row:
            let projections = projections(c)
            let values = try (0..<c.numLayers).map { l in
                try projections.map { role, _ -> Double in
                    let key = ParameterKey(role, layer: l)
                    guard let t = model.layout.tensor(holding: key), let piece = t.piece(key), let b = mask.bits[t.name] else { return 0 }
                    let units = t.pieces.reduce(0) { $0 + $1.shape[0] }
                    guard b.count == units else { throw WorkflowError.invalid("the mask's \(t.name) has \(b.count) rows, this model \(units): it is for another model") }
                    let selected = (0..<piece.shape[0]).filter { b[piece.offset + $0] }.count
                    return Double(selected) / Double(piece.shape[0])
                }
            }
            return Composition(rowLabels: rows, columnLabels: projections.map(\.1), values: values)
        case .neuron:
            let values = try (0..<c.numLayers).map { l in
                try [model.components.attention(l), model.components.mlp(l)].map { key -> Double in
                    guard let b = mask.bits[key], b.count > 0 else { return 0 }
                    let expected = key == model.components.mlp(l) ? c.intermediateSize : c.numHeads * c.headDim
                    guard b.count == expected else { throw WorkflowError.invalid("\(key) has \(b.count) units, this model \(expected): the mask is for another model") }
                    return Double(b.cardinality) / Double(b.count)
                }
            }
            return Composition(rowLabels: rows, columnLabels: ["attn", "mlp"], values: values)
        case .head:
            return try byHead(mask, model: model)
        }
    }

    /// By layer and attention head: for a weight mask, the fraction of the head's own
    /// weights selected (its query rows, its k/v group's rows, its output-projection columns).
    public static func byHead(_ mask: Mask, model: Model) throws -> Composition {
        let c = model.config
        let rows = (0..<c.numLayers).map { "layer \($0)" }, columns = (0..<c.numHeads).map { "h\($0)" }
        switch mask.granularity {
        case .head:
            let values = try (0..<c.numLayers).map { l -> [Double] in
                guard let b = mask.bits[model.components.attention(l)] else { return [Double](repeating: 0, count: c.numHeads) }
                guard b.count == c.numHeads else {
                    throw WorkflowError.invalid("\(model.components.attention(l)) has \(b.count) heads, this model \(c.numHeads): the mask is for another model")
                }
                return (0..<c.numHeads).map { b[$0] ? 1 : 0 }
            }
            return Composition(rowLabels: rows, columnLabels: columns, values: values)
        case .weight:
            let d = c.headDim, group = c.numHeads / c.numKVHeads
            let values = try (0..<c.numLayers).map { l -> [Double] in
                try (0..<c.numHeads).map { h -> Double in
                    let heads: [(ParameterRole, Range<Int>, Bool)] = [
                        (.query, (h * d)..<((h + 1) * d), true), (.key, (h / group * d)..<((h / group + 1) * d), true),
                        (.value, (h / group * d)..<((h / group + 1) * d), true), (.output, (h * d)..<((h + 1) * d), false),
                    ]
                    var selected = 0, total = 0
                    for (role, range, byRow) in heads {
                        let (s, t) = try count(mask, model, ParameterKey(role, layer: l)) { r, col in range.contains(byRow ? r : col) }
                        selected += s
                        total += t
                    }
                    return total == 0 ? 0 : Double(selected) / Double(total)
                }
            }
            return Composition(rowLabels: rows, columnLabels: columns, values: values)
        case .neuron, .row:
            throw WorkflowError.invalid("a \(mask.granularity.rawValue) mask has no per-head picture; use by: \"component\"")
        }
    }

    /// Selected and total elements of one runtime parameter inside a weight mask,
    /// restricted to the (row, column) positions `include` accepts; (0, 0) when the mask
    /// does not cover it.
    static func count(_ mask: Mask, _ model: Model, _ key: ParameterKey, include: (Int, Int) -> Bool) throws -> (Int, Int) {
        guard let t = model.layout.tensor(holding: key), let piece = t.piece(key), let b = mask.bits[t.name] else { return (0, 0) }
        guard b.count == t.shape.reduce(1, *) else {
            throw WorkflowError.invalid("the mask's \(t.name) has \(b.count) elements, this model \(t.shape.reduce(1, *)): it is for another model")
        }
        let rows = piece.shape[0], cols = piece.shape.count == 2 ? piece.shape[1] : 1
        var selected = 0, total = 0
        for r in 0..<rows {
            for col in 0..<cols where include(r, col) {
                total += 1
                if b[t.checkpointIndex(piece, row: r, column: col)] { selected += 1 }
            }
        }
        return (selected, total)
    }
}
