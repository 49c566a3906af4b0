import Foundation
import SparcFormats

/// Gemma 3 text models (`Gemma3ForCausalLM`, `model_type` "gemma3_text"; Gemma-3-270m, 1b).
/// Llama's pre-norm block with, as transformers 4.57's modeling_gemma3 has it:
///   - RMSNorm scaling by (1 + w), in float32 (`Gemma3RMSNorm`), for every norm;
///   - token embeddings times √hidden_size (`Gemma3TextScaledWordEmbedding`);
///   - q_norm / k_norm, an RMSNorm over each head of q and k before RoPE;
///   - a norm on each sublayer's output before the residual add (`post_attention_layernorm`,
///     `post_feedforward_layernorm`; the MLP's input norm is `pre_feedforward_layernorm`);
///   - GeGLU (`gelu_pytorch_tanh`), scores scaled by `query_pre_attn_scalar`^-½;
///   - sliding-window layers (`layer_types`, or every `sliding_window_pattern`-th layer
///     global) with their own RoPE base `rope_local_base_freq` and no RoPE scaling.
/// Under AttnLRP all of it is covered by the shared rules (LXT's gemma3 map): every
/// Gemma3RMSNorm holds 1/rms constant, GeGLU takes the identity and uniform rules, the
/// attention the q/k/v shares; the embedding scale and (1 + w) are plain products.
public struct Gemma3: Architecture {
    public init() {}
    public var modelTypes: [String] { ["gemma3_text", "gemma3"] }
    public var ggufArchitecture: String? { "gemma3" }

    public func config(json: [String: Any], file: String) throws -> ModelConfig {
        if json["model_type"] as? String == "gemma3" {
            // Gemma3ForConditionalGeneration: its weights live under language_model.* beside a
            // vision tower, names this layout does not read.
            throw FormatError(file, "multimodal Gemma 3 checkpoints (model_type gemma3) are not supported; use a text-only Gemma 3 (gemma3_text, e.g. gemma-3-270m, gemma-3-1b)")
        }
        let j = ConfigJSON(j: json, file: file)
        for k in ["final_logit_softcapping", "attn_logit_softcapping"] where j.double(k) != nil {
            throw FormatError(file, "Gemma 3 with \(k) is not supported (Gemma 3 leaves it null)")
        }
        if j.bool("use_bidirectional_attention") == true {
            throw FormatError(file, "Gemma 3 with use_bidirectional_attention (EmbeddingGemma) is not supported")
        }
        let v = try j.require("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        var c = ModelConfig(vocabSize: v[0], hiddenSize: v[1], intermediateSize: v[2], numLayers: v[3], numHeads: v[4],
                            numKVHeads: try j.int("num_key_value_heads") ?? v[4], headDim: try j.int("head_dim") ?? 256)
        c.normEps = j.double("rms_norm_eps") ?? 1e-6
        c.maxPositions = try j.int("max_position_embeddings") ?? 131_072
        c.tieWordEmbeddings = j.bool("tie_word_embeddings") ?? true
        c.activation = try j.activation(j.string("hidden_activation") != nil ? "hidden_activation" : "hidden_act",
                                        default: "gelu_pytorch_tanh")
        j.specialTokens(into: &c)
        c.queryKeyValueBias = j.bool("attention_bias") ?? false
        c.attentionOutputBias = c.queryKeyValueBias
        try Gemma3.rope(j, into: &c)
        c.queryPreAttentionScalar = j.double("query_pre_attn_scalar") ?? 256
        c.slidingWindow = try j.int("sliding_window") ?? 4096
        if let types = json["layer_types"] as? [Any] {
            c.slidingLayers = try types.map { t in
                switch t as? String {
                case "sliding_attention": return true
                case "full_attention": return false
                default: throw FormatError(file, "config.json: unknown layer type \(t) (Gemma 3 has sliding_attention, full_attention)")
                }
            }
        } else {
            // Older configs: every pattern-th layer is global (transformers' default 6).
            let pattern = try j.int("sliding_window_pattern") ?? j.int("_sliding_window_pattern") ?? 6
            guard pattern > 0 else { throw FormatError(file, "config.json: sliding_window_pattern must be positive") }
            c.slidingLayers = try Gemma3.everyNthGlobal(pattern, layers: c.numLayers, file: file)
        }
        Gemma3.style(&c)
        return c
    }

    /// Sliding layers with every `pattern`-th one global. The layer count is checked first:
    /// the config's other checks come later, and a count from a hostile file would size
    /// this array (the fuzzer's 2³²−1 layers took 16 s and 4 GB before any error).
    static func everyNthGlobal(_ pattern: Int, layers: Int, file: String) throws -> [Bool] {
        guard layers > 0 && layers <= 4096 else { throw FormatError(file, "invalid config: num_hidden_layers = \(layers)") }
        return (0..<layers).map { ($0 + 1) % pattern != 0 }
    }

    /// Global layers: `rope_theta` (Gemma 3's default 1e6) and `rope_scaling`; local layers:
    /// `rope_local_base_freq`, unscaled. transformers 5 writes both under `rope_parameters`
    /// keyed by layer type.
    static func rope(_ j: ConfigJSON, into c: inout ModelConfig) throws {
        if let p = j.j["rope_parameters"] as? [String: Any], let full = p["full_attention"] as? [String: Any] {
            try ConfigJSON(j: ["rope_parameters": full], file: j.file).rope(into: &c)
            c.localRopeTheta = ((p["sliding_attention"] as? [String: Any])?["rope_theta"] as? NSNumber)?.doubleValue ?? 10_000
            return
        }
        try j.rope(into: &c)
        if j.double("rope_theta") == nil && (j.j["rope_parameters"] as? [String: Any])?["rope_theta"] == nil { c.ropeTheta = 1_000_000 }
        c.localRopeTheta = j.double("rope_local_base_freq") ?? 10_000
    }

    /// The block style every Gemma 3 shares.
    static func style(_ c: inout ModelConfig) {
        c.normWeightOffset = 1
        c.queryKeyNorm = true
        c.postSublayerNorms = true
        c.embeddingScale = Float(Double(c.hiddenSize).squareRoot())
        c.gatedMLP = true
    }

    /// `gemma3.*` as llama.cpp's converter writes them. llama.cpp fixes what the file does
    /// not say: every 6th layer global (`set_swa_pattern(6)`), local RoPE base 10000,
    /// scores scaled by 1/√head_dim (1/√(hidden/heads) for the 62-layer 27B).
    public func config(gguf: GGUFFile) throws -> ModelConfig {
        var c = try Llama.decoderConfig(gguf: gguf, arch: "gemma3")
        let md = gguf.metadata
        if md["gemma3.rope.freq_base"] == nil { c.ropeTheta = 1_000_000 }
        if md["gemma3.attention.layer_norm_rms_epsilon"] == nil { c.normEps = 1e-6 }
        c.activation = .geluTanh
        c.localRopeTheta = 10_000
        guard let window = md["gemma3.attention.sliding_window"]?.int, window > 0 else {
            throw FormatError(gguf.path, "missing gemma3.attention.sliding_window")
        }
        c.slidingWindow = window
        if let pattern = md["gemma3.attention.sliding_window_pattern"]?.array {
            c.slidingLayers = pattern.map { $0.bool ?? ($0.int.map { $0 != 0 } ?? false) }
        } else {
            c.slidingLayers = try Gemma3.everyNthGlobal(6, layers: c.numLayers, file: gguf.path)
        }
        c.queryPreAttentionScalar = Double(c.numLayers == 62 ? c.hiddenSize / c.numHeads : c.headDim)
        Gemma3.style(&c)
        return c
    }

    /// The keys llama.cpp reads besides the common ones; a model llama.cpp would run
    /// differently (another pattern, local base or attention scale) is refused.
    public func addGGUFMetadata(_ c: ModelConfig, to w: inout GGUFWriter) throws {
        let llamaCpp = (0..<c.numLayers).map { ($0 + 1) % 6 != 0 }
        let scalar = Double(c.numLayers == 62 ? c.hiddenSize / c.numHeads : c.headDim)
        guard c.slidingLayers == llamaCpp, c.localRopeTheta == 10_000, c.queryPreAttentionScalar == scalar,
              !c.queryKeyValueBias else {
            throw ModelError.invalidInput("llama.cpp runs Gemma 3 with every 6th layer global, rope_local_base_freq 10000, query_pre_attn_scalar = head_dim and no attention biases; this model differs, so save it as a Hugging Face folder")
        }
        w.add("gemma3.attention.sliding_window", .uint32(UInt32(c.slidingWindow ?? 0)))
    }

    public func configJSON(_ c: ModelConfig) -> [String: Any] {
        var j: [String: Any] = [
            "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
            "vocab_size": c.vocabSize, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.numLayers, "num_attention_heads": c.numHeads, "num_key_value_heads": c.numKVHeads,
            "head_dim": c.headDim, "rms_norm_eps": c.normEps, "max_position_embeddings": c.maxPositions,
            "tie_word_embeddings": c.tieWordEmbeddings, "hidden_activation": "gelu_pytorch_tanh", "torch_dtype": "float32",
            "attention_bias": c.queryKeyValueBias, "query_pre_attn_scalar": c.queryPreAttentionScalar ?? Double(c.headDim),
            "sliding_window": c.slidingWindow ?? 4096, "rope_local_base_freq": c.localRopeTheta ?? 10_000,
            "layer_types": c.slidingLayers.map { $0 ? "sliding_attention" : "full_attention" },
            "final_logit_softcapping": NSNull(), "attn_logit_softcapping": NSNull(),
        ]
        if c.activation != .geluTanh { j["hidden_activation"] = c.activation.rawValue }
        // transformers 4.x reads rope_theta + rope_scaling (a flat rope_parameters would
        // mean every layer type to 5.x, so it is left out).
        c.ropeJSON(into: &j)
        j["rope_parameters"] = nil
        if j["rope_scaling"] == nil { j["rope_scaling"] = NSNull() }
        c.specialTokensJSON(into: &j)
        return j
    }

    /// Llama's layout with Gemma's extra norms: `self_attn.{q,k}_norm` after q and k,
    /// `post_attention_layernorm` after attention (where Llama's is the MLP's input norm),
    /// `pre_feedforward_layernorm` before and `post_feedforward_layernorm` after the MLP.
    /// Gemma 3 has no MLP biases, but mean ablation adds them (`mlpBias`); config.json
    /// cannot say so, and such a model is refused as an HF export.
    public func layout(_ c: ModelConfig) -> ParameterLayout { Llama.layout(c, gemmaNorms: true) }

    public var components: ComponentNames { Llama.components }

    /// llama.cpp's gemma3 tensors: q/k rows in Hugging Face order (only the llama arch is
    /// permuted), every `*norm.weight` stored as 1 + w (the converter's `norm_shift`).
    public var ggufNames: GGUFNameMap? {
        GGUFNameMap(
            global: [("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"),
                     ("output.weight", "lm_head.weight")],
            perLayer: [
                ("attn_norm.weight", "input_layernorm.weight"),
                ("attn_q.weight", "self_attn.q_proj.weight"), ("attn_k.weight", "self_attn.k_proj.weight"),
                ("attn_v.weight", "self_attn.v_proj.weight"), ("attn_output.weight", "self_attn.o_proj.weight"),
                ("attn_q_norm.weight", "self_attn.q_norm.weight"), ("attn_k_norm.weight", "self_attn.k_norm.weight"),
                ("post_attention_norm.weight", "post_attention_layernorm.weight"),
                ("ffn_norm.weight", "pre_feedforward_layernorm.weight"),
                ("ffn_gate.weight", "mlp.gate_proj.weight"), ("ffn_up.weight", "mlp.up_proj.weight"),
                ("ffn_down.weight", "mlp.down_proj.weight"),
                ("post_ffw_norm.weight", "post_feedforward_layernorm.weight"),
            ],
            layerName: { "model.layers.\($0).\($1)" },
            permutesQueryKey: false, normShift: 1)
    }

    /// Gemma's turn markers (`<start_of_turn>user … <end_of_turn>`, then the model's turn).
    public func chatPrompt(user: String) -> String {
        "<start_of_turn>user\n\(user)<end_of_turn>\n<start_of_turn>model\n"
    }
}
