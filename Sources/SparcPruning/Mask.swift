import SparcAttribution
import SparcTensor

/// A set of weights, rows, neurons or heads of one model, at one granularity, stored as
/// bitsets keyed like the relevance map it came from (HF parameter names for weights and
/// rows, `model.layers.L.mlp` / `model.layers.L.self_attn` for neurons and heads).
public struct Mask: Sendable {
    public enum Granularity: String, Sendable, CaseIterable {
        case weight
        /// Output units of linear layers (rows of `[out, in]` weights).
        case row
        case neuron, head
    }

    public let granularity: Granularity
    public let names: [String]
    public let shapes: [String: [Int]]
    public var bits: [String: BitSet]
    /// What the mask was made from and how (the map's provenance, method, level, sample
    /// count, the selection); saved with it.
    public var provenance: [String: String] = [:]

    public init(granularity: Granularity, names: [String], shapes: [String: [Int]], bits: [String: BitSet]) {
        self.granularity = granularity
        self.names = names
        self.shapes = shapes
        self.bits = bits
    }

    /// An empty (or full) mask with the keys and shapes of `map`.
    public init(like map: RelevanceMap, filled: Bool = false) throws {
        guard let g = Granularity(rawValue: map.level == .head ? "head" : map.level.rawValue) else {
            throw MaskError.invalid("masks are made from weight, row, neuron or head relevance, not \(map.level.rawValue)")
        }
        granularity = g
        names = map.names
        shapes = Dictionary(uniqueKeysWithValues: map.names.map { ($0, map[$0]!.shape) })
        bits = Dictionary(uniqueKeysWithValues: map.names.map { ($0, BitSet(count: map[$0]!.count, filled: filled)) })
        let method = map.provenance["random_seed"] == nil ? map.method.rawValue : "random"
        provenance = map.provenance.merging(["method": method, "level": map.level.rawValue,
                                             "samples": String(map.sampleCount)]) { $1 }
    }

    /// Selected elements.
    public var count: Int { bits.values.reduce(0) { $0 + $1.cardinality } }
    /// Elements the mask ranges over.
    public var size: Int { bits.values.reduce(0) { $0 + $1.count } }
    /// Fraction selected.
    public var fraction: Double { size == 0 ? 0 : Double(count) / Double(size) }

    /// Checks two masks can be combined: same granularity, keys and shapes.
    public func checkCompatible(_ other: Mask) throws {
        guard granularity == other.granularity else {
            throw MaskError.invalid("cannot combine a \(granularity.rawValue) mask with a \(other.granularity.rawValue) mask")
        }
        guard names == other.names, shapes == other.shapes else {
            throw MaskError.invalid("the masks cover different parameters or shapes: they come from different models")
        }
    }

    public static func combine(_ a: Mask, _ b: Mask, _ op: (BitSet, BitSet) -> BitSet) throws -> Mask {
        try a.checkCompatible(b)
        var out = a
        for n in a.names { out.bits[n] = op(a.bits[n]!, b.bits[n]!) }
        // What both operands share still holds; the selection is now a combination.
        out.provenance = a.provenance.filter { b.provenance[$0.key] == $0.value }
        out.provenance["selection"] = "combination of (\(a.provenance["selection"] ?? "?")) and (\(b.provenance["selection"] ?? "?"))"
        return out
    }

    /// The complement within the mask's own range (the prunable set it was made over).
    public var complement: Mask {
        var out = self
        for n in names { out.bits[n] = ~bits[n]! }
        out.provenance["selection"] = "complement of (\(provenance["selection"] ?? "?"))"
        return out
    }

    /// Per key: selected and total counts, in key order.
    public var summary: [(name: String, selected: Int, total: Int)] {
        names.map { ($0, bits[$0]!.cardinality, bits[$0]!.count) }
    }

    /// The mask as 0/1 tensors (for saving).
    public func tensors() -> [(String, Tensor)] {
        names.map { n in
            let b = bits[n]!
            return (n, Tensor(shape: shapes[n]!) { out in for i in 0..<b.count where b[i] { out[i] = 1 } })
        }
    }

    public init(granularity: Granularity, tensors: [(String, Tensor)]) {
        self.granularity = granularity
        names = tensors.map(\.0)
        shapes = Dictionary(uniqueKeysWithValues: tensors.map { ($0.0, $0.1.shape) })
        bits = Dictionary(uniqueKeysWithValues: tensors.map { name, t in
            var b = BitSet(count: t.count)
            t.withUnsafeBufferPointer { p in for i in 0..<p.count where p[i] != 0 { b[i] = true } }
            return (name, b)
        })
    }
}

public enum MaskError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String { if case .invalid(let m) = self { return m }; return "" }
}
