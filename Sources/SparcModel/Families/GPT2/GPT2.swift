import Foundation
import SparcFormats

/// GPT-2 (`GPT2LMHeadModel`): learned positions, LayerNorm before each sublayer, GELU
/// MLP, biases everywhere, tied head. Its linear layers are Conv1D, stored `[in, out]`,
/// and q/k/v are one fused `c_attn`: maps and masks keep those names and shapes, so they
/// line up with a torch `state_dict`; the runtime reads the pieces transposed.
public struct GPT2: Architecture {
    public init() {}
    public var modelTypes: [String] { ["gpt2"] }

    public func config(json: [String: Any], file: String) throws -> ModelConfig {
        let j = ConfigJSON(j: json, file: file)
        let v = try j.require("vocab_size", "n_embd", "n_layer", "n_head")
        let d = v[1]
        var c = ModelConfig(vocabSize: v[0], hiddenSize: d, intermediateSize: try j.int("n_inner") ?? 4 * d,
                            numLayers: v[2], numHeads: v[3], numKVHeads: v[3])
        guard v[3] > 0, d % v[3] == 0 else { throw FormatError(file, "config.json: n_embd \(d) is not a multiple of n_head \(v[3])") }
        for flag in ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"] where j.bool(flag) == true {
            throw FormatError(file, "GPT-2 with \(flag) is not supported")
        }
        if j.bool("scale_attn_weights") == false { throw FormatError(file, "GPT-2 without scale_attn_weights is not supported") }
        c.maxPositions = try j.int("n_positions") ?? 1024
        c.normEps = j.double("layer_norm_epsilon") ?? 1e-5
        c.tieWordEmbeddings = j.bool("tie_word_embeddings") ?? true
        c.activation = try j.activation("activation_function", default: "gelu_new")
        j.specialTokens(into: &c)
        c.norm = .layer
        c.gatedMLP = false
        c.positions = .learned(offset: 0)
        c.queryKeyValueBias = true
        c.attentionOutputBias = true
        c.mlpBias = true
        return c
    }

    public func configJSON(_ c: ModelConfig) -> [String: Any] {
        var j: [String: Any] = [
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": c.vocabSize, "n_embd": c.hiddenSize, "n_layer": c.numLayers, "n_head": c.numHeads,
            "n_inner": c.intermediateSize, "n_positions": c.maxPositions, "n_ctx": c.maxPositions,
            "layer_norm_epsilon": c.normEps, "activation_function": c.activation.rawValue,
            "tie_word_embeddings": c.tieWordEmbeddings, "torch_dtype": "float32",
            "resid_pdrop": 0, "embd_pdrop": 0, "attn_pdrop": 0,
        ]
        c.specialTokensJSON(into: &j)
        return j
    }

    public func layout(_ c: ModelConfig) -> ParameterLayout {
        let d = c.hiddenSize, f = c.intermediateSize
        var t = [CheckpointTensor("transformer.wte.weight", .init(.embedding), [c.vocabSize, d]),
                 CheckpointTensor("transformer.wpe.weight", .init(.positions), [c.maxPositions, d])]
        for l in 0..<c.numLayers {
            let p = "transformer.h.\(l)."
            func key(_ r: ParameterRole) -> ParameterKey { .init(r, layer: l) }
            t += [
                CheckpointTensor(p + "ln_1.weight", key(.attentionNorm), [d]),
                CheckpointTensor(p + "ln_1.bias", key(.attentionNormBias), [d]),
                CheckpointTensor(p + "attn.c_attn.weight", shape: [d, 3 * d], pieces: [
                    .init(key(.query), shape: [d, d], offset: 0, transposed: true),
                    .init(key(.key), shape: [d, d], offset: d, transposed: true),
                    .init(key(.value), shape: [d, d], offset: 2 * d, transposed: true)]),
                CheckpointTensor(p + "attn.c_attn.bias", shape: [3 * d], pieces: [
                    .init(key(.queryBias), shape: [d], offset: 0),
                    .init(key(.keyBias), shape: [d], offset: d),
                    .init(key(.valueBias), shape: [d], offset: 2 * d)]),
                CheckpointTensor(p + "attn.c_proj.weight", shape: [d, d], pieces: [.init(key(.output), shape: [d, d], transposed: true)]),
                CheckpointTensor(p + "attn.c_proj.bias", key(.outputBias), [d]),
                CheckpointTensor(p + "ln_2.weight", key(.mlpNorm), [d]),
                CheckpointTensor(p + "ln_2.bias", key(.mlpNormBias), [d]),
                CheckpointTensor(p + "mlp.c_fc.weight", shape: [d, f], pieces: [.init(key(.up), shape: [f, d], transposed: true)]),
                CheckpointTensor(p + "mlp.c_fc.bias", key(.upBias), [f]),
                CheckpointTensor(p + "mlp.c_proj.weight", shape: [f, d], pieces: [.init(key(.down), shape: [d, f], transposed: true)]),
                CheckpointTensor(p + "mlp.c_proj.bias", key(.downBias), [d]),
            ]
        }
        t += [CheckpointTensor("transformer.ln_f.weight", .init(.finalNorm), [d]),
              CheckpointTensor("transformer.ln_f.bias", .init(.finalNormBias), [d])]
        if !c.tieWordEmbeddings { t.append(CheckpointTensor("lm_head.weight", .init(.head), [c.vocabSize, d])) }
        return ParameterLayout(t)
    }

    /// Older GPT-2 files carry the causal mask as `attn.bias` / `attn.masked_bias` buffers.
    public func isBuffer(_ name: String) -> Bool { name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias") }

    public var components: ComponentNames {
        ComponentNames(layerPrefix: { "transformer.h.\($0)" }, attention: "attn", mlp: "mlp")
    }
}
