import Foundation
import SparcFormats
import SparcTensor

// A model family is described, not programmed into the runtime: which parameters it has
// under which Hugging Face names and layouts, how its config reads and writes, how its
// GGUF tensors are named, and which block style its forward uses. The runtime (Ops/,
// Runtime/) and everything above it speak typed `ParameterKey`s; checkpoint names and
// layouts appear only at file input/output and in the language.

/// What a parameter is, independent of any family's naming.
public enum ParameterRole: String, Sendable, CaseIterable, Comparable {
    // Outside the blocks.
    case embedding, positions, projectIn, finalNorm, finalNormBias, projectOut, head
    // Inside a block, in forward order.
    case attentionNorm, attentionNormBias
    case query, queryBias, key, keyBias, value, valueBias
    /// Per-head RMSNorm of q and k before RoPE (Gemma 3).
    case queryNorm, keyNorm
    case output, outputBias
    /// Norm of the attention output before the residual add (Gemma).
    case attentionPostNorm
    case mlpNorm, mlpNormBias
    case gate, gateBias, up, upBias, down, downBias
    /// Norm of the MLP output before the residual add (Gemma).
    case mlpPostNorm

    public static func < (a: Self, b: Self) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }

    /// Which prunable group a parameter belongs to (`attribute(parameters:)`).
    public var group: ParameterGroups {
        switch self {
        case .query, .key, .value, .output, .gate, .up, .down: return .linear
        case .queryBias, .keyBias, .valueBias, .outputBias, .gateBias, .upBias, .downBias: return .biases
        case .attentionNorm, .attentionNormBias, .mlpNorm, .mlpNormBias, .finalNorm, .finalNormBias,
             .queryNorm, .keyNorm, .attentionPostNorm, .mlpPostNorm: return .norms
        case .embedding, .positions, .projectIn: return .embeddings
        case .head, .projectOut: return .head
        }
    }
}

/// A parameter of the runtime: a role, in a block (`layer`) or outside them (`nil`).
public struct ParameterKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let layer: Int?
    public let role: ParameterRole
    public init(_ role: ParameterRole, layer: Int? = nil) { self.role = role; self.layer = layer }

    public static func < (a: Self, b: Self) -> Bool {
        (a.layer ?? -1, a.role) < (b.layer ?? -1, b.role)
    }
    public var description: String { layer.map { "layer \($0) \(role.rawValue)" } ?? role.rawValue }
}

/// Which parameters a weight-level map covers: the prunable set. The block linear weights
/// by default; biases, norms, embeddings and the output head only when asked for.
public struct ParameterGroups: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// q/k/v/o and the MLP projections of every block.
    public static let linear = ParameterGroups(rawValue: 1)
    /// Norm scales (and LayerNorm shifts).
    public static let norms = ParameterGroups(rawValue: 2)
    /// Token (and position) embeddings, and an input projection.
    public static let embeddings = ParameterGroups(rawValue: 4)
    /// The output head of an untied model, and an output projection.
    public static let head = ParameterGroups(rawValue: 8)
    /// The biases of the block linear layers.
    public static let biases = ParameterGroups(rawValue: 16)
    public static let all: ParameterGroups = [.linear, .norms, .embeddings, .head, .biases]

    public static let names: [(String, ParameterGroups)] = [
        ("linear", .linear), ("norms", .norms), ("embeddings", .embeddings), ("head", .head), ("biases", .biases),
    ]
}

/// How one checkpoint tensor holds runtime parameters. Most hold exactly one, in the
/// runtime's layout (`[out, in]` for linear weights); GPT-2's `c_attn.weight` holds three,
/// transposed (Conv1D stores `[in, out]`) and side by side.
public struct CheckpointTensor: Sendable {
    public struct Piece: Sendable {
        public let key: ParameterKey
        /// The runtime shape: `[out, in]` for a matrix, `[n]` for a vector.
        public let shape: [Int]
        /// Where the piece starts along the checkpoint's output axis.
        public let offset: Int
        /// Whether the checkpoint stores the matrix as `[in, out]`.
        public let transposed: Bool
        public init(_ key: ParameterKey, shape: [Int], offset: Int = 0, transposed: Bool = false) {
            self.key = key; self.shape = shape; self.offset = offset; self.transposed = transposed
        }
    }

    public let name: String
    public let shape: [Int]
    public let pieces: [Piece]

    /// A tensor that is one parameter in the runtime layout.
    public init(_ name: String, _ key: ParameterKey, _ shape: [Int]) {
        self.name = name; self.shape = shape; self.pieces = [Piece(key, shape: shape)]
    }

    public init(_ name: String, shape: [Int], pieces: [Piece]) {
        self.name = name; self.shape = shape; self.pieces = pieces
    }

    /// True when the checkpoint tensor is the runtime parameter itself (shared, no copy).
    var isIdentity: Bool { pieces.count == 1 && !pieces[0].transposed && pieces[0].offset == 0 && pieces[0].shape == shape }

    /// Copies piece `p` out of the checkpoint tensor `t` (the runtime layout).
    func extract(_ p: Piece, from t: Tensor) -> Tensor {
        if isIdentity { return t }
        return t.withUnsafeBufferPointer { src in
            Tensor(shape: p.shape) { out in
                forEachElement(of: p) { runtime, checkpoint in out[runtime] = src[checkpoint] }
            }
        }
    }

    /// Writes runtime tensors back into one checkpoint-layout tensor.
    func assemble(_ parts: [ParameterKey: Tensor]) -> Tensor? {
        if isIdentity { return parts[pieces[0].key] }
        var out = Tensor(zeros: shape)
        for p in pieces {
            guard let part = parts[p.key] else { return nil }
            part.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    forEachElement(of: p) { runtime, checkpoint in dst[checkpoint] = src[runtime] }
                }
            }
        }
        return out
    }

    /// The flat index in the checkpoint tensor of element (row, column) of piece `p`
    /// (column 0 for a vector).
    public func checkpointIndex(_ p: Piece, row: Int, column: Int) -> Int {
        if p.shape.count == 1 { return p.offset + row }
        return p.transposed ? column * shape[1] + p.offset + row : (p.offset + row) * shape[1] + column
    }

    /// The piece holding a runtime parameter.
    public func piece(_ key: ParameterKey) -> Piece? { pieces.first { $0.key == key } }

    /// Visits every element of piece `p` with its flat index in the runtime tensor and in
    /// the checkpoint tensor.
    func forEachElement(of p: Piece, _ body: (Int, Int) -> Void) {
        let rows = p.shape[0], cols = p.shape.count == 1 ? 1 : p.shape[1]
        for r in 0..<rows { for c in 0..<cols { body(r * cols + c, checkpointIndex(p, row: r, column: c)) } }
    }
}

/// Every checkpoint tensor of one model, in canonical (`params`) order.
public struct ParameterLayout: Sendable {
    public let tensors: [CheckpointTensor]
    private let byName: [String: Int]
    private let byKey: [ParameterKey: Int]

    public init(_ tensors: [CheckpointTensor]) {
        self.tensors = tensors
        byName = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
        var keys: [ParameterKey: Int] = [:]
        for (i, t) in tensors.enumerated() { for p in t.pieces { keys[p.key] = i } }
        byKey = keys
    }

    public var names: [String] { tensors.map(\.name) }
    public func tensor(named name: String) -> CheckpointTensor? { byName[name].map { tensors[$0] } }
    /// The checkpoint tensor holding a runtime parameter.
    public func tensor(holding key: ParameterKey) -> CheckpointTensor? { byKey[key].map { tensors[$0] } }
    public var keys: [ParameterKey] { tensors.flatMap { $0.pieces.map(\.key) } }

    /// The checkpoint tensors whose every piece is in `groups`, in canonical order.
    public func names(in groups: ParameterGroups) -> [String] {
        tensors.filter { t in t.pieces.allSatisfy { groups.contains($0.key.role.group) } }.map(\.name)
    }

    /// Runtime parameters from checkpoint tensors (shared where the layouts agree).
    public func runtimeParameters(_ checkpoint: [String: Tensor]) -> [ParameterKey: Tensor] {
        var out: [ParameterKey: Tensor] = [:]
        for t in tensors {
            guard let value = checkpoint[t.name] else { continue }
            for p in t.pieces { out[p.key] = t.extract(p, from: value) }
        }
        return out
    }

    /// Checkpoint tensors from runtime tensors (parameters, gradients or relevances), for
    /// the checkpoint tensors all of whose pieces are given.
    public func checkpointTensors(_ parts: [ParameterKey: Tensor]) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for t in tensors { if let v = t.assemble(parts) { out[t.name] = v } }
        return out
    }
}

/// Where a layer's attention and MLP live, in the family's own names: relevance maps and
/// masks of neurons and heads are keyed `"\(prefix).\(attention)"`, `"\(prefix).\(mlp)"`.
public struct ComponentNames: Sendable {
    public let layerPrefix: @Sendable (Int) -> String
    public let attention: String
    public let mlp: String

    public func attention(_ l: Int) -> String { layerPrefix(l) + "." + attention }
    public func mlp(_ l: Int) -> String { layerPrefix(l) + "." + mlp }
    public func layer(_ l: Int) -> String { layerPrefix(l) }

    public enum Kind: Sendable { case attention, mlp }

    /// Parses a component key; nil for anything that is not one of this model's components.
    public func parse(_ key: String, layers: Int) -> (layer: Int, kind: Kind)? {
        for l in 0..<layers {
            if key == attention(l) { return (l, .attention) }
            if key == mlp(l) { return (l, .mlp) }
        }
        return nil
    }
}

/// llama.cpp's tensor names for a family: per-block and global pairs, GGUF ↔ checkpoint.
public struct GGUFNameMap: Sendable {
    public let global: [(gguf: String, checkpoint: String)]
    public let perLayer: [(gguf: String, checkpoint: String)]
    /// The checkpoint name of layer `l`'s tensor with in-block suffix `suffix`.
    public let layerName: @Sendable (Int, String) -> String
    /// Whether llama.cpp's converter interleaves the q/k rows for RoPE (the llama arch does).
    public let permutesQueryKey: Bool
    /// What llama.cpp's converter adds to every `*norm.weight` (Gemma 3: 1, so that its
    /// RMSNorm scales by the stored value); loading subtracts it, saving adds it back.
    public let normShift: Float

    public init(global: [(gguf: String, checkpoint: String)], perLayer: [(gguf: String, checkpoint: String)],
                layerName: @escaping @Sendable (Int, String) -> String, permutesQueryKey: Bool, normShift: Float = 0) {
        self.global = global; self.perLayer = perLayer; self.layerName = layerName
        self.permutesQueryKey = permutesQueryKey; self.normShift = normShift
    }

    func checkpointName(_ gguf: String) -> String? {
        if let g = global.first(where: { $0.gguf == gguf }) { return g.checkpoint }
        let parts = gguf.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0,
              let m = perLayer.first(where: { $0.gguf == parts[2] }) else { return nil }
        return layerName(layer, m.checkpoint)
    }

    func ggufName(_ checkpoint: String, layers: Int) -> String? {
        if let g = global.first(where: { $0.checkpoint == checkpoint }) { return g.gguf }
        for l in 0..<layers {
            for m in perLayer where layerName(l, m.checkpoint) == checkpoint { return "blk.\(l).\(m.gguf)" }
        }
        return nil
    }
}

/// A model family: everything about it that is not the shared runtime.
public protocol Architecture: Sendable {
    /// Hugging Face `model_type` values read as this family (the first is written).
    var modelTypes: [String] { get }
    /// GGUF `general.architecture`, where llama.cpp has the family.
    var ggufArchitecture: String? { get }
    /// Reads `config.json`.
    func config(json: [String: Any], file: String) throws -> ModelConfig
    /// Reads GGUF metadata (families without a GGUF form throw).
    func config(gguf: GGUFFile) throws -> ModelConfig
    /// Writes `config.json` as transformers reads it.
    func configJSON(_ c: ModelConfig) -> [String: Any]
    /// Checkpoint tensors, names and shapes from the config, in canonical order.
    func layout(_ c: ModelConfig) -> ParameterLayout
    var components: ComponentNames { get }
    var ggufNames: GGUFNameMap? { get }
    /// Tensors some checkpoints carry that are not parameters (skipped at load).
    func isBuffer(_ name: String) -> Bool
    /// One user turn in the family's chat format, ready for the model's reply.
    func chatPrompt(user: String) -> String
    /// Family-specific `{arch}.*` GGUF keys, or an error where llama.cpp cannot express the model.
    func addGGUFMetadata(_ c: ModelConfig, to w: inout GGUFWriter) throws
}

extension Architecture {
    public var ggufArchitecture: String? { nil }
    public var ggufNames: GGUFNameMap? { nil }
    public func isBuffer(_ name: String) -> Bool { false }
    public func addGGUFMetadata(_ c: ModelConfig, to w: inout GGUFWriter) throws {}
    /// ChatML (SmolLM2, Qwen2, and what sparc has always used for the others).
    public func chatPrompt(user: String) -> String { "<|im_start|>user\n\(user)<|im_end|>\n<|im_start|>assistant\n" }
    public func config(gguf: GGUFFile) throws -> ModelConfig {
        throw FormatError(gguf.path, "sparc reads \(modelTypes[0]) models from Hugging Face folders, not GGUF")
    }
}

/// The families sparc runs, keyed by `model_type` and `general.architecture`.
public enum Architectures {
    public static let all: [any Architecture] = [Llama(), Qwen2(), GPT2(), OPT(), Gemma3()]

    public static var modelTypes: [String] { all.map { $0.modelTypes[0] } }

    public static func named(_ modelType: String) -> (any Architecture)? {
        all.first { $0.modelTypes.contains(modelType) }
    }

    public static func gguf(_ name: String) -> (any Architecture)? {
        all.first { $0.ggufArchitecture == name }
    }

    static func unsupported(_ name: String, file: String) -> FormatError {
        FormatError(file, "unsupported architecture \"\(name)\" (sparc runs: \(modelTypes.joined(separator: ", ")))")
    }
}
