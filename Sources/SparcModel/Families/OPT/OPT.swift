import Foundation
import SparcFormats

/// OPT (`OPTForCausalLM`; the paper's circuit and correction model): learned positions
/// read at `position + 2`, LayerNorm before each sublayer (`do_layer_norm_before`, OPT-125m)
/// or after the residual add (OPT-350m), ReLU MLP (`fc1`, `fc2`), biases, tied head, and
/// `project_in`/`project_out` when the embeddings are narrower than the blocks.
public struct OPT: Architecture {
    public init() {}
    public var modelTypes: [String] { ["opt"] }

    /// OPT's learned positions start at row 2 (rows 0 and 1 were reserved for padding).
    static let positionOffset = 2

    public func config(json: [String: Any], file: String) throws -> ModelConfig {
        let j = ConfigJSON(j: json, file: file)
        let v = try j.require("vocab_size", "hidden_size", "ffn_dim", "num_hidden_layers", "num_attention_heads")
        var c = ModelConfig(vocabSize: v[0], hiddenSize: v[1], intermediateSize: v[2], numLayers: v[3],
                            numHeads: v[4], numKVHeads: v[4])
        guard v[4] > 0, v[1] % v[4] == 0 else { throw FormatError(file, "config.json: hidden_size is not a multiple of num_attention_heads") }
        if j.bool("layer_norm_elementwise_affine") == false { throw FormatError(file, "OPT without LayerNorm affine parameters is not supported") }
        if j.bool("scale_embedding") == true { throw FormatError(file, "OPT with scale_embedding is not supported") }
        if j.bool("_remove_final_layer_norm") == true { throw FormatError(file, "OPT with _remove_final_layer_norm is not supported") }
        c.maxPositions = try j.int("max_position_embeddings") ?? 2048
        c.normEps = 1e-5  // nn.LayerNorm's default; OPT's config has no epsilon
        c.tieWordEmbeddings = j.bool("tie_word_embeddings") ?? true
        c.activation = try j.activation("activation_function", default: "relu")
        j.specialTokens(into: &c)
        c.norm = .layer
        c.gatedMLP = false
        c.positions = .learned(offset: OPT.positionOffset)
        c.normBeforeSublayers = j.bool("do_layer_norm_before") ?? true
        c.finalNorm = c.normBeforeSublayers
        let bias = j.bool("enable_bias") ?? true
        guard bias else { throw FormatError(file, "OPT without biases (enable_bias false) is not supported") }
        c.queryKeyValueBias = true
        c.attentionOutputBias = true
        c.mlpBias = true
        if let e = try j.int("word_embed_proj_dim"), e != c.hiddenSize { c.embeddingSize = e }
        return c
    }

    public func configJSON(_ c: ModelConfig) -> [String: Any] {
        var j: [String: Any] = [
            "architectures": ["OPTForCausalLM"], "model_type": "opt",
            "vocab_size": c.vocabSize, "hidden_size": c.hiddenSize, "ffn_dim": c.intermediateSize,
            "num_hidden_layers": c.numLayers, "num_attention_heads": c.numHeads,
            "max_position_embeddings": c.maxPositions, "do_layer_norm_before": c.normBeforeSublayers,
            "word_embed_proj_dim": c.tokenEmbeddingSize, "activation_function": c.activation.rawValue,
            "enable_bias": true, "layer_norm_elementwise_affine": true,
            "tie_word_embeddings": c.tieWordEmbeddings, "torch_dtype": "float32",
            "dropout": 0, "attention_dropout": 0, "activation_dropout": 0, "layerdrop": 0,
        ]
        c.specialTokensJSON(into: &j)
        return j
    }

    public func layout(_ c: ModelConfig) -> ParameterLayout {
        let d = c.hiddenSize, e = c.tokenEmbeddingSize, f = c.intermediateSize
        let pre = "model.decoder."
        var t = [CheckpointTensor(pre + "embed_tokens.weight", .init(.embedding), [c.vocabSize, e]),
                 CheckpointTensor(pre + "embed_positions.weight", .init(.positions), [c.maxPositions + OPT.positionOffset, d])]
        if c.embeddingSize != nil { t.append(CheckpointTensor(pre + "project_in.weight", .init(.projectIn), [d, e])) }
        for l in 0..<c.numLayers {
            let p = pre + "layers.\(l)."
            func add(_ name: String, _ role: ParameterRole, _ shape: [Int]) { t.append(CheckpointTensor(p + name, .init(role, layer: l), shape)) }
            add("self_attn.q_proj.weight", .query, [d, d]); add("self_attn.q_proj.bias", .queryBias, [d])
            add("self_attn.k_proj.weight", .key, [d, d]); add("self_attn.k_proj.bias", .keyBias, [d])
            add("self_attn.v_proj.weight", .value, [d, d]); add("self_attn.v_proj.bias", .valueBias, [d])
            add("self_attn.out_proj.weight", .output, [d, d]); add("self_attn.out_proj.bias", .outputBias, [d])
            add("self_attn_layer_norm.weight", .attentionNorm, [d]); add("self_attn_layer_norm.bias", .attentionNormBias, [d])
            add("fc1.weight", .up, [f, d]); add("fc1.bias", .upBias, [f])
            add("fc2.weight", .down, [d, f]); add("fc2.bias", .downBias, [d])
            add("final_layer_norm.weight", .mlpNorm, [d]); add("final_layer_norm.bias", .mlpNormBias, [d])
        }
        if c.finalNorm {
            t += [CheckpointTensor(pre + "final_layer_norm.weight", .init(.finalNorm), [d]),
                  CheckpointTensor(pre + "final_layer_norm.bias", .init(.finalNormBias), [d])]
        }
        if c.embeddingSize != nil { t.append(CheckpointTensor(pre + "project_out.weight", .init(.projectOut), [e, d])) }
        if !c.tieWordEmbeddings { t.append(CheckpointTensor("lm_head.weight", .init(.head), [c.vocabSize, e])) }
        return ParameterLayout(t)
    }

    /// OPT's MLP has no module of its own (fc1/fc2 sit in the layer): `mlp` names it.
    public var components: ComponentNames {
        ComponentNames(layerPrefix: { "model.decoder.layers.\($0)" }, attention: "self_attn", mlp: "mlp")
    }
}
