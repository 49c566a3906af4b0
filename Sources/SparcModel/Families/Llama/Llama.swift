import Foundation
import SparcFormats

/// Llama (`LlamaForCausalLM`; SmolLM2, TinyLlama, Llama 2/3): RMSNorm before each
/// sublayer, RoPE, grouped-query attention, SwiGLU MLP; optional attention and MLP biases.
public struct Llama: Architecture {
    public init() {}
    public var modelTypes: [String] { ["llama"] }
    public var ggufArchitecture: String? { "llama" }

    public func config(json: [String: Any], file: String) throws -> ModelConfig {
        let j = ConfigJSON(j: json, file: file)
        var c = try Llama.decoderConfig(j)
        c.queryKeyValueBias = j.bool("attention_bias") ?? false
        c.attentionOutputBias = c.queryKeyValueBias
        c.mlpBias = j.bool("mlp_bias") ?? false
        return c
    }

    /// The fields Llama-shaped families share (Qwen2 reads the same ones).
    static func decoderConfig(_ j: ConfigJSON) throws -> ModelConfig {
        let v = try j.require("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        var c = ModelConfig(vocabSize: v[0], hiddenSize: v[1], intermediateSize: v[2], numLayers: v[3],
                            numHeads: v[4], numKVHeads: try j.int("num_key_value_heads") ?? v[4], headDim: try j.int("head_dim"))
        c.normEps = j.double("rms_norm_eps") ?? 1e-6
        c.maxPositions = try j.int("max_position_embeddings") ?? 2048
        c.tieWordEmbeddings = j.bool("tie_word_embeddings") ?? false
        c.activation = try j.activation("hidden_act", default: "silu")
        j.specialTokens(into: &c)
        try j.rope(into: &c)
        return c
    }

    public func config(gguf: GGUFFile) throws -> ModelConfig {
        try Llama.decoderConfig(gguf: gguf, arch: "llama")
    }

    /// `{arch}.*` GGUF metadata of a Llama-shaped model.
    static func decoderConfig(gguf: GGUFFile, arch: String) throws -> ModelConfig {
        let md = gguf.metadata
        func int(_ k: String) -> Int? { md["\(arch).\(k)"]?.int }
        guard let hidden = int("embedding_length"), let inter = int("feed_forward_length"),
              let layers = int("block_count"), let heads = int("attention.head_count") else {
            throw FormatError(gguf.path, "missing \(arch).embedding_length, feed_forward_length, block_count or attention.head_count")
        }
        let vocab = int("vocab_size") ?? md["tokenizer.ggml.tokens"]?.array?.count ?? 0
        var c = ModelConfig(vocabSize: vocab, hiddenSize: hidden, intermediateSize: inter, numLayers: layers,
                            numHeads: heads, numKVHeads: int("attention.head_count_kv") ?? heads,
                            headDim: int("attention.key_length"))
        c.normEps = md["\(arch).attention.layer_norm_rms_epsilon"]?.double ?? 1e-5
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
        return c
    }

    public func configJSON(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.decoderConfigJSON(c, className: "LlamaForCausalLM")
        j["attention_bias"] = c.queryKeyValueBias
        j["mlp_bias"] = c.mlpBias
        return j
    }

    static func decoderConfigJSON(_ c: ModelConfig, className: String) -> [String: Any] {
        var j: [String: Any] = [
            "architectures": [className], "model_type": c.architecture,
            "vocab_size": c.vocabSize, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.numLayers, "num_attention_heads": c.numHeads, "num_key_value_heads": c.numKVHeads,
            "head_dim": c.headDim, "rms_norm_eps": c.normEps, "max_position_embeddings": c.maxPositions,
            "tie_word_embeddings": c.tieWordEmbeddings, "hidden_act": c.activation.rawValue, "torch_dtype": "float32",
        ]
        c.ropeJSON(into: &j)
        c.specialTokensJSON(into: &j)
        return j
    }

    public func layout(_ c: ModelConfig) -> ParameterLayout { Llama.layout(c) }

    /// `model.embed_tokens`, `model.layers.L.{input_layernorm, self_attn.{q,k,v,o}_proj,
    /// post_attention_layernorm, mlp.{gate,up,down}_proj}`, `model.norm`, `lm_head`; with
    /// `gemmaNorms`, Gemma 3's q/k norms and a norm before and after each sublayer.
    static func layout(_ c: ModelConfig, gemmaNorms: Bool = false) -> ParameterLayout {
        let d = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim, f = c.intermediateSize
        var t = [CheckpointTensor("model.embed_tokens.weight", .init(.embedding), [c.vocabSize, d])]
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            func add(_ name: String, _ role: ParameterRole, _ shape: [Int]) { t.append(CheckpointTensor(p + name, .init(role, layer: l), shape)) }
            add("input_layernorm.weight", .attentionNorm, [d])
            add("self_attn.q_proj.weight", .query, [q, d])
            if c.queryKeyValueBias { add("self_attn.q_proj.bias", .queryBias, [q]) }
            add("self_attn.k_proj.weight", .key, [kv, d])
            if c.queryKeyValueBias { add("self_attn.k_proj.bias", .keyBias, [kv]) }
            add("self_attn.v_proj.weight", .value, [kv, d])
            if c.queryKeyValueBias { add("self_attn.v_proj.bias", .valueBias, [kv]) }
            if gemmaNorms {
                add("self_attn.q_norm.weight", .queryNorm, [c.headDim])
                add("self_attn.k_norm.weight", .keyNorm, [c.headDim])
            }
            add("self_attn.o_proj.weight", .output, [d, q])
            if c.attentionOutputBias { add("self_attn.o_proj.bias", .outputBias, [d]) }
            if gemmaNorms {
                add("post_attention_layernorm.weight", .attentionPostNorm, [d])
                add("pre_feedforward_layernorm.weight", .mlpNorm, [d])
            } else {
                add("post_attention_layernorm.weight", .mlpNorm, [d])
            }
            add("mlp.gate_proj.weight", .gate, [f, d])
            if c.mlpBias { add("mlp.gate_proj.bias", .gateBias, [f]) }
            add("mlp.up_proj.weight", .up, [f, d])
            if c.mlpBias { add("mlp.up_proj.bias", .upBias, [f]) }
            add("mlp.down_proj.weight", .down, [d, f])
            if c.mlpBias { add("mlp.down_proj.bias", .downBias, [d]) }
            if gemmaNorms { add("post_feedforward_layernorm.weight", .mlpPostNorm, [d]) }
        }
        t.append(CheckpointTensor("model.norm.weight", .init(.finalNorm), [d]))
        if !c.tieWordEmbeddings { t.append(CheckpointTensor("lm_head.weight", .init(.head), [c.vocabSize, d])) }
        return ParameterLayout(t)
    }

    public var components: ComponentNames { Llama.components }
    static let components = ComponentNames(layerPrefix: { "model.layers.\($0)" }, attention: "self_attn", mlp: "mlp")

    public var ggufNames: GGUFNameMap? { Llama.ggufNames(permutesQueryKey: true) }

    static func ggufNames(permutesQueryKey: Bool) -> GGUFNameMap {
        GGUFNameMap(
            global: [("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"),
                     ("output.weight", "lm_head.weight")],
            perLayer: [
                ("attn_norm.weight", "input_layernorm.weight"),
                ("attn_q.weight", "self_attn.q_proj.weight"), ("attn_q.bias", "self_attn.q_proj.bias"),
                ("attn_k.weight", "self_attn.k_proj.weight"), ("attn_k.bias", "self_attn.k_proj.bias"),
                ("attn_v.weight", "self_attn.v_proj.weight"), ("attn_v.bias", "self_attn.v_proj.bias"),
                ("attn_output.weight", "self_attn.o_proj.weight"), ("attn_output.bias", "self_attn.o_proj.bias"),
                ("ffn_norm.weight", "post_attention_layernorm.weight"),
                ("ffn_gate.weight", "mlp.gate_proj.weight"),
                ("ffn_up.weight", "mlp.up_proj.weight"),
                ("ffn_down.weight", "mlp.down_proj.weight"),
            ],
            layerName: { "model.layers.\($0).\($1)" },
            permutesQueryKey: permutesQueryKey)
    }
}
