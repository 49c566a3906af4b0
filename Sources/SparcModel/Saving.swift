import Foundation
import SparcFormats
import SparcTensor

/// Writing models back out: a Hugging Face folder (config.json, model.safetensors,
/// tokenizer.json) that transformers loads, or a GGUF file in llama.cpp's layout.
extension Model {
    /// Writes an HF folder; files are written atomically, the folder created if needed.
    public func save(huggingFaceFolder dir: String) throws {
        if case .frequencyFactors = config.ropeScaling {
            throw ModelError.invalidInput("this model's RoPE scaling is stored as per-frequency factors (from a GGUF file), which config.json cannot express; save it as .gguf")
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let url = URL(fileURLWithPath: dir)
        try AtomicWrite.write(try JSONSerialization.data(withJSONObject: config.configJSON(), options: [.prettyPrinted, .sortedKeys]),
                              to: url.appendingPathComponent("config.json").path)
        try SafetensorsWriter.write(parameterNames.map { ($0, parameters[$0]!) }, to: url.appendingPathComponent("model.safetensors").path,
                                    metadata: ["format": "pt"])
        try AtomicWrite.write(try JSONSerialization.data(withJSONObject: tokenizer.tokenizerJSON(), options: [.sortedKeys]),
                              to: url.appendingPathComponent("tokenizer.json").path)
    }

    /// Writes a GGUF v3 file (F32 tensors), with llama.cpp's names and q/k row order.
    public func save(gguf path: String) throws {
        let c = config
        var w = GGUFWriter()
        w.add("general.architecture", .string(c.architecture))
        w.add("general.name", .string(URL(fileURLWithPath: source).lastPathComponent))
        let a = c.architecture
        w.add("\(a).block_count", .uint32(UInt32(c.numLayers)))
        w.add("\(a).context_length", .uint32(UInt32(c.maxPositions)))
        w.add("\(a).embedding_length", .uint32(UInt32(c.hiddenSize)))
        w.add("\(a).feed_forward_length", .uint32(UInt32(c.intermediateSize)))
        w.add("\(a).attention.head_count", .uint32(UInt32(c.numHeads)))
        w.add("\(a).attention.head_count_kv", .uint32(UInt32(c.numKVHeads)))
        w.add("\(a).attention.key_length", .uint32(UInt32(c.headDim)))
        w.add("\(a).attention.value_length", .uint32(UInt32(c.headDim)))
        w.add("\(a).rope.dimension_count", .uint32(UInt32(c.headDim)))
        w.add("\(a).rope.freq_base", .float32(Float(c.ropeTheta)))
        w.add("\(a).attention.layer_norm_rms_epsilon", .float32(Float(c.rmsNormEps)))
        w.add("\(a).vocab_size", .uint32(UInt32(c.vocabSize)))
        if case .linear(let f) = c.ropeScaling {
            w.add("\(a).rope.scaling.type", .string("linear"))
            w.add("\(a).rope.scaling.factor", .float32(Float(f)))
        }
        try tokenizer.addGGUFMetadata(to: &w, vocabSize: c.vocabSize)
        if let factors = ropeFrequencyFactors() {
            w.add(tensor: Tensor(shape: [factors.count], values: factors), named: GGUFNames.ropeFactors)
        }
        for name in parameterNames {
            guard let g = GGUFNames.gguf(name) else { throw ModelError.invalidInput("no GGUF name for \(name)") }
            var t = parameters[name]!
            if name.hasSuffix("self_attn.q_proj.weight") { t = GGUFNames.permuteRoPE(t, heads: c.numHeads) }
            if name.hasSuffix("self_attn.k_proj.weight") { t = GGUFNames.permuteRoPE(t, heads: c.numKVHeads) }
            w.add(tensor: t, named: g)
        }
        try w.write(to: path)
    }

    /// llama.cpp stores Llama 3.1 scaling as per-frequency divisors.
    private func ropeFrequencyFactors() -> [Float]? {
        switch config.ropeScaling {
        case .frequencyFactors(let f): return f
        case .llama3:
            var plain = config
            plain.ropeScaling = .none
            let base = LlamaWeights.ropeInverseFrequencies(plain), scaled = weights.inverseFrequencies
            return zip(base, scaled).map { $0 / $1 }
        default: return nil
        }
    }
}

extension ModelConfig {
    /// The `config.json` transformers reads (both the v4 and v5 spellings of RoPE settings).
    func configJSON() -> [String: Any] {
        var j: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": architecture,
            "vocab_size": vocabSize, "hidden_size": hiddenSize, "intermediate_size": intermediateSize,
            "num_hidden_layers": numLayers, "num_attention_heads": numHeads, "num_key_value_heads": numKVHeads,
            "head_dim": headDim, "rms_norm_eps": rmsNormEps, "rope_theta": ropeTheta,
            "max_position_embeddings": maxPositions, "tie_word_embeddings": tieWordEmbeddings,
            "hidden_act": "silu", "attention_bias": false, "mlp_bias": false, "torch_dtype": "float32",
        ]
        var rope: [String: Any] = ["rope_type": "default", "rope_theta": ropeTheta]
        switch ropeScaling {
        case .none, .frequencyFactors: break  // factors from a GGUF stay in the tensor form only
        case .linear(let f): rope = ["rope_type": "linear", "factor": f, "rope_theta": ropeTheta]
        case .llama3(let f, let lo, let hi, let orig):
            rope = ["rope_type": "llama3", "factor": f, "low_freq_factor": lo, "high_freq_factor": hi,
                    "original_max_position_embeddings": orig, "rope_theta": ropeTheta]
        }
        j["rope_parameters"] = rope
        if (rope["rope_type"] as! String) != "default" { j["rope_scaling"] = rope.filter { $0.key != "rope_theta" } }
        if let b = bosTokenId { j["bos_token_id"] = b }
        if eosTokenIds.count == 1 { j["eos_token_id"] = eosTokenIds[0] } else if !eosTokenIds.isEmpty { j["eos_token_id"] = eosTokenIds }
        return j
    }
}
