import Foundation
import SparcFormats

/// RoPE frequency scaling (transformers' `rope_scaling` / `rope_parameters`).
public enum RopeScaling: Equatable, Sendable {
    case none
    /// Positions divided by `factor`.
    case linear(factor: Double)
    /// Llama 3.1's wavelength-dependent scaling.
    case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
    /// Per-frequency divisors, as llama.cpp stores Llama 3.1 scaling (`rope_freqs.weight`).
    case frequencyFactors([Float])
}

/// The normalisation a family uses.
public enum NormKind: String, Sendable { case rms, layer }

/// The MLP's element-wise non-linearity (transformers' `hidden_act` names).
public enum Activation: String, Sendable, CaseIterable {
    case silu
    /// GELU with the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    case geluTanh = "gelu_new"
    /// Exact GELU (erf).
    case gelu
    case relu

    init?(huggingFace name: String) {
        switch name {
        case "silu", "swish": self = .silu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        case "gelu": self = .gelu
        case "relu": self = .relu
        default: return nil
        }
    }
}

/// How positions enter the model.
public enum PositionEncoding: Equatable, Sendable {
    /// Rotary embeddings on queries and keys.
    case rotary
    /// A learned table added to the token embeddings, row `position + offset` (OPT: 2).
    case learned(offset: Int)
}

/// Hyper-parameters of a decoder-only transformer, and the block style of its family
/// (set by the family when it reads the config).
public struct ModelConfig: Equatable, Sendable {
    public var architecture = "llama"
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    /// ε of every norm (RMSNorm's `rms_norm_eps`, LayerNorm's `layer_norm_epsilon`).
    public var normEps: Double = 1e-5
    public var ropeTheta: Double = 10_000
    public var ropeScaling: RopeScaling = .none
    public var maxPositions: Int = 2048
    public var tieWordEmbeddings = false
    public var bosTokenId: Int?
    public var eosTokenIds: [Int] = []

    // Block style.
    public var norm: NormKind = .rms
    public var activation: Activation = .silu
    /// SwiGLU-style `act(gate(h)) · up(h)`; otherwise `act(up(h))` (fc1/c_fc).
    public var gatedMLP = true
    /// Norms before each sublayer (x + f(norm(x))) or after the residual add (norm(x + f(x))).
    public var normBeforeSublayers = true
    /// A norm after the last block (pre-norm models have one).
    public var finalNorm = true
    public var positions: PositionEncoding = .rotary
    public var queryKeyValueBias = false
    public var attentionOutputBias = false
    public var mlpBias = false
    /// Width of the token embeddings when it differs from the hidden size (OPT's
    /// `word_embed_proj_dim`, with `project_in`/`project_out`).
    public var embeddingSize: Int?
    /// Every norm scales by `offset + w` (Gemma's RMSNorm: `1 + w`, in float32).
    public var normWeightOffset: Float = 0
    /// RMSNorm over each head of q and k, before RoPE (Gemma 3's `q_norm`, `k_norm`).
    public var queryKeyNorm = false
    /// A norm on each sublayer's output before the residual add (Gemma's
    /// `post_attention_layernorm`, `post_feedforward_layernorm`).
    public var postSublayerNorms = false
    /// Token embeddings multiplied by this (Gemma: √hidden_size, rounded to float32).
    public var embeddingScale: Float?
    /// Attention scores scaled by 1/√this instead of 1/√head_dim (Gemma's
    /// `query_pre_attn_scalar`).
    public var queryPreAttentionScalar: Double?
    /// Layers that attend to the last `slidingWindow` positions only (the query's own
    /// included), with RoPE base `localRopeTheta` and no scaling; empty: every layer is global.
    public var slidingLayers: [Bool] = []
    public var slidingWindow: Int?
    public var localRopeTheta: Double?

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int,
                numKVHeads: Int, headDim: Int? = nil) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headDim = headDim ?? (numHeads > 0 ? hiddenSize / numHeads : 0)
    }

    /// Width of the token embeddings and of the output head's input.
    public var tokenEmbeddingSize: Int { embeddingSize ?? hiddenSize }

    /// Checks the numbers are usable before any buffer is sized by them.
    func validate(file: String) throws {
        func check(_ ok: Bool, _ m: String) throws { if !ok { throw FormatError(file, "invalid config: \(m)") } }
        try check(Architectures.named(architecture) != nil,
                  "unsupported architecture \"\(architecture)\" (sparc runs: \(Architectures.modelTypes.joined(separator: ", ")))")
        for (name, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                          ("num_hidden_layers", numLayers), ("num_attention_heads", numHeads),
                          ("num_key_value_heads", numKVHeads), ("head_dim", headDim),
                          ("max_position_embeddings", maxPositions), ("embedding size", tokenEmbeddingSize)] {
            try check(v > 0 && v <= 1 << 24, "\(name) = \(v)")
        }
        try check(numLayers <= 4096, "num_hidden_layers = \(numLayers)")
        try check(numHeads % numKVHeads == 0, "num_attention_heads \(numHeads) is not a multiple of num_key_value_heads \(numKVHeads)")
        if positions == .rotary { try check(headDim % 2 == 0, "head_dim \(headDim) must be even for RoPE") }
        if case .learned(let offset) = positions { try check(offset >= 0 && offset <= 1024, "position offset \(offset)") }
        try check(normEps > 0 && normEps.isFinite && ropeTheta > 0 && ropeTheta.isFinite, "norm epsilon and rope_theta must be positive")
        // Every matrix the runtime allocates must be addressable (and fit a 32-bit BLAS).
        let widest = max(numHeads * headDim, intermediateSize, hiddenSize, tokenEmbeddingSize)
        try check(widest.multipliedReportingOverflow(by: max(vocabSize, widest)).partialValue < Int(Int32.max)
                      && !widest.multipliedReportingOverflow(by: max(vocabSize, widest)).overflow,
                  "a weight matrix of \(widest) × \(max(vocabSize, widest)) is too large")
        if let b = bosTokenId { try check(b >= 0 && b < vocabSize, "bos_token_id \(b) is outside the vocabulary") }
        if let e = eosTokenIds.first(where: { $0 < 0 || $0 >= vocabSize }) { try check(false, "eos_token_id \(e) is outside the vocabulary") }
        if !slidingLayers.isEmpty {
            try check(slidingLayers.count == numLayers, "\(slidingLayers.count) layer types for \(numLayers) layers")
            try check((slidingWindow ?? 0) > 0, "sliding layers need a positive sliding_window")
        }
        if let t = localRopeTheta { try check(t > 0 && t.isFinite, "rope_local_base_freq must be positive") }
        if let s = queryPreAttentionScalar { try check(s > 0 && s.isFinite, "query_pre_attn_scalar must be positive") }
        if postSublayerNorms || queryKeyNorm { try check(normBeforeSublayers && norm == .rms, "post-sublayer and q/k norms need pre-norm RMSNorm blocks") }
        if let s = embeddingScale { try check(s > 0 && s.isFinite, "the embedding scale must be positive") }
    }

    // MARK: reading

    /// Reads a Hugging Face `config.json`, dispatching on `model_type`.
    public static func load(configJSON path: String) throws -> ModelConfig {
        guard let data = FileManager.default.contents(atPath: path) else { throw FormatError(path, "cannot read the config file") }
        guard let j = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw FormatError(path, "not a JSON object")
        }
        let modelType = j["model_type"] as? String ?? "?"
        guard let family = Architectures.named(modelType) else { throw Architectures.unsupported(modelType, file: path) }
        var c = try family.config(json: j, file: path)
        c.architecture = family.modelTypes[0]
        try c.validate(file: path)
        return c
    }

    /// Reads `{arch}.*` hyper-parameters from GGUF metadata.
    public static func load(gguf: GGUFFile) throws -> ModelConfig {
        let arch = gguf.metadata["general.architecture"]?.string ?? "?"
        guard let family = Architectures.gguf(arch) else { throw Architectures.unsupported(arch, file: gguf.path) }
        var c = try family.config(gguf: gguf)
        c.architecture = family.modelTypes[0]
        try c.validate(file: gguf.path)
        return c
    }
}

/// Typed access to a `config.json` object, with errors that name the file and key.
struct ConfigJSON {
    let j: [String: Any]
    let file: String

    /// A whole number, nil when the key is absent or null; anything else is an error
    /// (a silently ignored bad value would fall back to a default).
    func int(_ k: String) throws -> Int? {
        guard let v = j[k], !(v is NSNull) else { return nil }
        // On Linux `1 is Bool` holds for a JSON number; JSON's true/false are NSNumbers of type "c".
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { throw FormatError(file, "config.json: \(k) must be a number") }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), abs(d) < 1e15 else { throw FormatError(file, "config.json: \(k) = \(n) is not a usable whole number") }
        return Int(d)
    }
    func double(_ k: String) -> Double? { (j[k] as? NSNumber)?.doubleValue }
    func bool(_ k: String) -> Bool? { j[k] as? Bool }
    func string(_ k: String) -> String? { j[k] as? String }

    func require(_ keys: String...) throws -> [Int] {
        try keys.map { k in
            guard let v = try int(k) else { throw FormatError(file, "config.json: missing or invalid \(k)") }
            return v
        }
    }

    /// BOS/EOS ids (a number or a list).
    func specialTokens(into c: inout ModelConfig) {
        c.bosTokenId = (try? int("bos_token_id")) ?? nil
        if let e = (try? int("eos_token_id")) ?? nil { c.eosTokenIds = [e] }
        if let e = j["eos_token_id"] as? [NSNumber] { c.eosTokenIds = e.map(\.intValue) }
    }

    func activation(_ key: String, default d: String) throws -> Activation {
        let name = string(key) ?? d
        guard let a = Activation(huggingFace: name) else {
            throw FormatError(file, "unsupported activation \"\(name)\" (sparc runs silu, gelu, gelu_new, relu)")
        }
        return a
    }

    /// RoPE settings: transformers ≥ 5 writes `rope_parameters`; older files `rope_theta` + `rope_scaling`.
    func rope(into c: inout ModelConfig) throws {
        let r = (j["rope_parameters"] as? [String: Any]) ?? (j["rope_scaling"] as? [String: Any]) ?? [:]
        c.ropeTheta = (r["rope_theta"] as? NSNumber)?.doubleValue ?? double("rope_theta") ?? 10_000
        let type = (r["rope_type"] ?? r["type"]) as? String ?? "default"
        func d(_ k: String) -> Double? { (r[k] as? NSNumber)?.doubleValue }
        switch type {
        case "default": c.ropeScaling = .none
        case "linear":
            guard let f = d("factor"), f > 0, f.isFinite else { throw FormatError(file, "linear rope scaling needs a positive factor") }
            c.ropeScaling = .linear(factor: f)
        case "llama3":
            guard let f = d("factor"), let lo = d("low_freq_factor"), let hi = d("high_freq_factor"),
                  let orig = (r["original_max_position_embeddings"] as? NSNumber)?.intValue,
                  f > 0, f.isFinite, lo > 0, hi > lo, hi.isFinite, orig > 0 else {
                throw FormatError(file, "llama3 rope scaling needs factor, low_freq_factor < high_freq_factor, original_max_position_embeddings")
            }
            c.ropeScaling = .llama3(factor: f, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: orig)
        default:
            throw FormatError(file, "unsupported rope scaling \"\(type)\" (sparc supports default, linear, llama3)")
        }
    }
}

extension ModelConfig {
    /// The RoPE entries of `config.json` (both the v4 and v5 spellings).
    func ropeJSON(into j: inout [String: Any]) {
        var rope: [String: Any] = ["rope_type": "default", "rope_theta": ropeTheta]
        switch ropeScaling {
        case .none, .frequencyFactors: break  // factors from a GGUF stay in the tensor form only
        case .linear(let f): rope = ["rope_type": "linear", "factor": f, "rope_theta": ropeTheta]
        case .llama3(let f, let lo, let hi, let orig):
            rope = ["rope_type": "llama3", "factor": f, "low_freq_factor": lo, "high_freq_factor": hi,
                    "original_max_position_embeddings": orig, "rope_theta": ropeTheta]
        }
        j["rope_theta"] = ropeTheta
        j["rope_parameters"] = rope
        if (rope["rope_type"] as? String) != "default" { j["rope_scaling"] = rope.filter { $0.key != "rope_theta" } }
    }

    /// BOS/EOS entries of `config.json`.
    func specialTokensJSON(into j: inout [String: Any]) {
        if let b = bosTokenId { j["bos_token_id"] = b }
        if eosTokenIds.count == 1 { j["eos_token_id"] = eosTokenIds[0] } else if !eosTokenIds.isEmpty { j["eos_token_id"] = eosTokenIds }
    }
}
