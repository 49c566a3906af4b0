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

/// Hyper-parameters of a decoder-only transformer. Only the Llama family runs today;
/// `architecture` names the family so that others are additions, not rewrites.
public struct ModelConfig: Equatable, Sendable {
    public var architecture = "llama"
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var rmsNormEps: Double = 1e-5
    public var ropeTheta: Double = 10_000
    public var ropeScaling: RopeScaling = .none
    public var maxPositions: Int = 2048
    public var tieWordEmbeddings = false
    public var bosTokenId: Int?
    public var eosTokenIds: [Int] = []

    public static let supportedArchitectures = ["llama"]

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

    /// Checks the numbers are usable before any buffer is sized by them.
    func validate(file: String) throws {
        func check(_ ok: Bool, _ m: String) throws { if !ok { throw FormatError(file, "invalid config: \(m)") } }
        try check(ModelConfig.supportedArchitectures.contains(architecture),
                  "unsupported architecture \"\(architecture)\" (sparc runs: \(ModelConfig.supportedArchitectures.joined(separator: ", ")))")
        for (name, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                          ("num_hidden_layers", numLayers), ("num_attention_heads", numHeads),
                          ("num_key_value_heads", numKVHeads), ("head_dim", headDim)] {
            try check(v > 0 && v <= 1 << 24, "\(name) = \(v)")
        }
        try check(numHeads % numKVHeads == 0, "num_attention_heads \(numHeads) is not a multiple of num_key_value_heads \(numKVHeads)")
        try check(headDim % 2 == 0, "head_dim \(headDim) must be even for RoPE")
        try check(rmsNormEps > 0 && ropeTheta > 0, "rms_norm_eps and rope_theta must be positive")
    }

    // MARK: config.json

    /// Reads a Hugging Face `config.json`.
    public static func load(configJSON path: String) throws -> ModelConfig {
        guard let data = FileManager.default.contents(atPath: path) else { throw FormatError(path, "cannot read the config file") }
        guard let j = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw FormatError(path, "not a JSON object")
        }
        func int(_ k: String) -> Int? { (j[k] as? NSNumber)?.intValue }
        func double(_ k: String) -> Double? { (j[k] as? NSNumber)?.doubleValue }
        let modelType = j["model_type"] as? String ?? "?"
        guard ModelConfig.supportedArchitectures.contains(modelType) else {
            throw FormatError(path, "unsupported architecture \"\(modelType)\" (sparc runs: \(ModelConfig.supportedArchitectures.joined(separator: ", ")))")
        }
        guard let vocab = int("vocab_size"), let hidden = int("hidden_size"), let inter = int("intermediate_size"),
              let layers = int("num_hidden_layers"), let heads = int("num_attention_heads") else {
            throw FormatError(path, "missing one of vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads")
        }
        var c = ModelConfig(vocabSize: vocab, hiddenSize: hidden, intermediateSize: inter, numLayers: layers,
                            numHeads: heads, numKVHeads: int("num_key_value_heads") ?? heads, headDim: int("head_dim"))
        c.architecture = modelType
        c.rmsNormEps = double("rms_norm_eps") ?? 1e-6
        c.maxPositions = int("max_position_embeddings") ?? 2048
        c.tieWordEmbeddings = j["tie_word_embeddings"] as? Bool ?? false
        c.bosTokenId = int("bos_token_id")
        if let e = j["eos_token_id"] as? NSNumber { c.eosTokenIds = [e.intValue] }
        if let e = j["eos_token_id"] as? [NSNumber] { c.eosTokenIds = e.map(\.intValue) }
        // transformers ≥ 5 writes `rope_parameters`; older files `rope_theta` + `rope_scaling`.
        let rope = (j["rope_parameters"] as? [String: Any]) ?? (j["rope_scaling"] as? [String: Any]) ?? [:]
        c.ropeTheta = (rope["rope_theta"] as? NSNumber)?.doubleValue ?? double("rope_theta") ?? 10_000
        c.ropeScaling = try ropeScaling(rope, file: path)
        try c.validate(file: path)
        return c
    }

    static func ropeScaling(_ r: [String: Any], file: String) throws -> RopeScaling {
        let type = (r["rope_type"] ?? r["type"]) as? String ?? "default"
        func d(_ k: String) -> Double? { (r[k] as? NSNumber)?.doubleValue }
        switch type {
        case "default": return .none
        case "linear":
            guard let f = d("factor"), f > 0 else { throw FormatError(file, "linear rope scaling needs a positive factor") }
            return .linear(factor: f)
        case "llama3":
            guard let f = d("factor"), let lo = d("low_freq_factor"), let hi = d("high_freq_factor"),
                  let orig = (r["original_max_position_embeddings"] as? NSNumber)?.intValue, f > 0, hi > lo, orig > 0 else {
                throw FormatError(file, "llama3 rope scaling needs factor, low_freq_factor < high_freq_factor, original_max_position_embeddings")
            }
            return .llama3(factor: f, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: orig)
        default:
            throw FormatError(file, "unsupported rope scaling \"\(type)\" (sparc supports default, linear, llama3)")
        }
    }

    // MARK: GGUF metadata

    /// Reads `{arch}.*` hyper-parameters from GGUF metadata.
    public static func load(gguf: GGUFFile) throws -> ModelConfig {
        let md = gguf.metadata
        let arch = md["general.architecture"]?.string ?? "?"
        guard ModelConfig.supportedArchitectures.contains(arch) else {
            throw FormatError(gguf.path, "unsupported architecture \"\(arch)\" (sparc runs: \(ModelConfig.supportedArchitectures.joined(separator: ", ")))")
        }
        func int(_ k: String) -> Int? { md["\(arch).\(k)"]?.int }
        guard let hidden = int("embedding_length"), let inter = int("feed_forward_length"),
              let layers = int("block_count"), let heads = int("attention.head_count") else {
            throw FormatError(gguf.path, "missing \(arch).embedding_length, feed_forward_length, block_count or attention.head_count")
        }
        let vocab = int("vocab_size") ?? md["tokenizer.ggml.tokens"]?.array?.count ?? 0
        var c = ModelConfig(vocabSize: vocab, hiddenSize: hidden, intermediateSize: inter, numLayers: layers,
                            numHeads: heads, numKVHeads: int("attention.head_count_kv") ?? heads,
                            headDim: int("attention.key_length"))
        c.architecture = arch
        c.rmsNormEps = md["\(arch).attention.layer_norm_rms_epsilon"]?.double ?? 1e-5
        c.ropeTheta = md["\(arch).rope.freq_base"]?.double ?? 10_000
        c.maxPositions = int("context_length") ?? 2048
        c.bosTokenId = md["tokenizer.ggml.bos_token_id"]?.int
        c.eosTokenIds = md["tokenizer.ggml.eos_token_id"]?.int.map { [$0] } ?? []
        switch md["\(arch).rope.scaling.type"]?.string ?? "none" {
        case "none": break
        case "linear":
            guard let f = md["\(arch).rope.scaling.factor"]?.double, f > 0 else {
                throw FormatError(gguf.path, "linear rope scaling without a factor")
            }
            c.ropeScaling = .linear(factor: f)
        case let other:
            throw FormatError(gguf.path, "unsupported rope scaling \"\(other)\"")
        }
        c.tieWordEmbeddings = gguf.info("output.weight") == nil
        try c.validate(file: gguf.path)
        return c
    }
}
