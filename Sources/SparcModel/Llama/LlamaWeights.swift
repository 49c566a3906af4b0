import Foundation
import SparcTensor

/// The Llama family's parameters, resolved once from the name-keyed dictionary.
struct LlamaWeights: @unchecked Sendable {
    struct Layer {
        let inputNorm, q, k, v, o, postAttentionNorm, gate, up, down: Tensor
    }

    let embed: Tensor
    let layers: [Layer]
    let norm: Tensor
    /// The output projection: `lm_head.weight`, or the embeddings when tied.
    let head: Tensor
    /// RoPE inverse frequencies θ_i = 1 / base^(2i/d), after any frequency scaling.
    let inverseFrequencies: [Float]

    init(config c: ModelConfig, parameters p: [String: Tensor]) {
        embed = p["model.embed_tokens.weight"]!
        layers = (0..<c.numLayers).map { i in
            let pre = "model.layers.\(i)."
            return Layer(inputNorm: p[pre + "input_layernorm.weight"]!,
                         q: p[pre + "self_attn.q_proj.weight"]!, k: p[pre + "self_attn.k_proj.weight"]!,
                         v: p[pre + "self_attn.v_proj.weight"]!, o: p[pre + "self_attn.o_proj.weight"]!,
                         postAttentionNorm: p[pre + "post_attention_layernorm.weight"]!,
                         gate: p[pre + "mlp.gate_proj.weight"]!, up: p[pre + "mlp.up_proj.weight"]!,
                         down: p[pre + "mlp.down_proj.weight"]!)
        }
        norm = p["model.norm.weight"]!
        head = c.tieWordEmbeddings ? embed : p["lm_head.weight"]!
        inverseFrequencies = LlamaWeights.ropeInverseFrequencies(c)
    }

    /// Names and shapes every Llama model of this config has, in canonical order.
    static func parameterShapes(_ c: ModelConfig) -> [(String, [Int])] {
        let d = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        var out: [(String, [Int])] = [("model.embed_tokens.weight", [c.vocabSize, d])]
        for i in 0..<c.numLayers {
            let pre = "model.layers.\(i)."
            out += [
                (pre + "input_layernorm.weight", [d]),
                (pre + "self_attn.q_proj.weight", [qDim, d]),
                (pre + "self_attn.k_proj.weight", [kvDim, d]),
                (pre + "self_attn.v_proj.weight", [kvDim, d]),
                (pre + "self_attn.o_proj.weight", [d, qDim]),
                (pre + "post_attention_layernorm.weight", [d]),
                (pre + "mlp.gate_proj.weight", [c.intermediateSize, d]),
                (pre + "mlp.up_proj.weight", [c.intermediateSize, d]),
                (pre + "mlp.down_proj.weight", [d, c.intermediateSize]),
            ]
        }
        out.append(("model.norm.weight", [d]))
        if !c.tieWordEmbeddings { out.append(("lm_head.weight", [c.vocabSize, d])) }
        return out
    }

    /// As transformers computes them in float32 (`_compute_default_rope_parameters`,
    /// `_compute_linear_scaling_rope_parameters`, `_compute_llama3_parameters`).
    static func ropeInverseFrequencies(_ c: ModelConfig) -> [Float] {
        let dim = c.headDim
        var inv: [Float] = (0..<(dim / 2)).map { i in
            let exponent = Float(2 * i) / Float(dim)
            return 1 / Float(pow(Double(Float(c.ropeTheta)), Double(exponent)))
        }
        switch c.ropeScaling {
        case .none: break
        case .frequencyFactors(let factors):
            inv = zip(inv, factors).map { $0 / $1 }
        case .linear(let factor):
            inv = inv.map { $0 / Float(factor) }
        case .llama3(let factor, let lowFreqFactor, let highFreqFactor, let original):
            let lowWavelen = Float(original) / Float(lowFreqFactor)
            let highWavelen = Float(original) / Float(highFreqFactor)
            inv = inv.map { f in
                let wavelen = 2 * Float.pi / f
                if wavelen < highWavelen { return f }                    // high frequencies kept
                if wavelen > lowWavelen { return f / Float(factor) }     // low frequencies scaled
                let smooth = (Float(original) / wavelen - Float(lowFreqFactor)) / Float(highFreqFactor - lowFreqFactor)
                return (1 - smooth) * f / Float(factor) + smooth * f
            }
        }
        return inv
    }
}
