import Foundation
import SparcFormats
import SparcTensor

/// Writing models back out: a Hugging Face folder (config.json, model.safetensors,
/// tokenizer.json) that transformers loads, or a GGUF file in llama.cpp's layout.
extension Model {
    /// Writes an HF folder in one step: the files go to a temporary folder beside it, which
    /// then replaces the folder (an exchange of names), so a killed save never leaves new
    /// config.json with old weights. Other files already in the folder (a README, a
    /// licence) are carried over; old weight files are not, since they would load too.
    public func save(huggingFaceFolder dir: String) throws {
        if case .frequencyFactors = config.ropeScaling {
            throw ModelError.invalidInput("this model's RoPE scaling is stored as per-frequency factors (from a GGUF file), which config.json cannot express; save it as .gguf")
        }
        // config.json must describe every tensor written: a mean-ablated Qwen2 has an o_proj
        // bias that Qwen2's config has no flag for, and transformers would drop it silently.
        let configJSON = architecture.configJSON(config)
        let described = try architecture.layout(architecture.config(json: configJSON, file: dir + "/config.json")).names
        guard described == layout.names else {
            let missing = layout.names.filter { !described.contains($0) }
            throw ModelError.invalidInput("a \(config.architecture) config.json cannot describe this model's \(missing.first ?? "parameters")\(missing.count > 1 ? " (and \(missing.count - 1) more)" : ""); save it as .gguf, or prune with ablation: \"zero\"")
        }
        let parent = URL(fileURLWithPath: dir).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        var files: [(String, Data)] = [
            ("config.json", try JSONSerialization.data(withJSONObject: configJSON, options: [.prettyPrinted, .sortedKeys])),
            ("tokenizer.json", try tokenizer.tokenizerJSONData()),
        ]
        for (name, object) in transformersFiles() {
            files.append((name, try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])))
        }
        try AtomicDirectory.write(to: dir) { tmp in
            let out = URL(fileURLWithPath: tmp)
            for (name, data) in files { try data.write(to: out.appendingPathComponent(name)) }
            try SafetensorsWriter.write(parameterNames.map { ($0, parameters[$0]!) }, to: out.appendingPathComponent("model.safetensors").path,
                                        keepingHalfPrecision: true, metadata: ["format": "pt"])
            let ours = Set(files.map(\.0) + ["model.safetensors"])
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            where !ours.contains(name) && !name.hasSuffix(".safetensors") && name != "model.safetensors.index.json" && !name.hasPrefix(".") {
                try FileManager.default.copyItem(atPath: dir + "/" + name, toPath: out.appendingPathComponent(name).path)
            }
        }
    }

    /// What transformers' `Auto*` classes read besides the weights: without
    /// `tokenizer_config.json`, AutoTokenizer (4.x) builds the family's slow-tokenizer class
    /// from `model_type` and Llama's prepends a new `<s>` (id = vocab size). Naming
    /// `PreTrainedTokenizerFast` makes it take tokenizer.json as it is.
    func transformersFiles() -> [(String, [String: Any])] {
        func token(_ id: Int?) -> String? { id.flatMap { $0 < tokenizer.tokens.count ? tokenizer.tokens[$0] : nil } }
        var specials: [String: Any] = [:]
        if let b = token(tokenizer.bosTokenId ?? config.bosTokenId) { specials["bos_token"] = b }
        if let e = token(tokenizer.eosTokenId ?? config.eosTokenIds.first) { specials["eos_token"] = e }
        var tokenizerConfig = specials
        tokenizerConfig["tokenizer_class"] = "PreTrainedTokenizerFast"
        tokenizerConfig["model_max_length"] = config.maxPositions
        tokenizerConfig["clean_up_tokenization_spaces"] = false
        var added: [String: Any] = [:]
        for t in tokenizer.addedTokens {
            added[String(t.id)] = ["content": t.content, "special": t.special, "lstrip": t.lstrip, "rstrip": t.rstrip,
                                   "single_word": t.singleWord, "normalized": t.normalized]
        }
        if !added.isEmpty { tokenizerConfig["added_tokens_decoder"] = added }
        var generation: [String: Any] = ["_from_model_config": true]
        config.specialTokensJSON(into: &generation)
        return [("tokenizer_config.json", tokenizerConfig), ("special_tokens_map.json", specials),
                ("generation_config.json", generation)]
    }

    /// Writes a GGUF v3 file (F32 tensors), with llama.cpp's names and q/k row order.
    public func save(gguf path: String) throws {
        let c = config
        guard let names = architecture.ggufNames, let arch = architecture.ggufArchitecture else {
            throw ModelError.invalidInput("llama.cpp has no \(c.architecture) architecture sparc can write; save it as a Hugging Face folder")
        }
        var w = GGUFWriter()
        w.add("general.architecture", .string(arch))
        w.add("general.name", .string(URL(fileURLWithPath: source).lastPathComponent))
        let a = arch
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
        w.add("\(a).attention.layer_norm_rms_epsilon", .float32(Float(c.normEps)))
        w.add("\(a).vocab_size", .uint32(UInt32(c.vocabSize)))
        if case .linear(let f) = c.ropeScaling {
            w.add("\(a).rope.scaling.type", .string("linear"))
            w.add("\(a).rope.scaling.factor", .float32(Float(f)))
        }
        try architecture.addGGUFMetadata(c, to: &w)
        try tokenizer.addGGUFMetadata(to: &w, vocabSize: c.vocabSize)
        if let factors = ropeFrequencyFactors() {
            w.add(tensor: Tensor(shape: [factors.count], values: factors), named: GGUFNames.ropeFactors)
        }
        for name in parameterNames {
            guard let g = names.ggufName(name, layers: c.numLayers) else { throw ModelError.invalidInput("no GGUF name for \(name)") }
            // Half-precision tensors are written in their own encoding (exact: their
            // values are F16/BF16 values, also after llama.cpp's permutation).
            let original = parameters[name]!
            var t = original
            if names.permutesQueryKey && name.hasSuffix("self_attn.q_proj.weight") { t = GGUFNames.permuteRoPE(t, heads: c.numHeads) }
            if names.permutesQueryKey && name.hasSuffix("self_attn.k_proj.weight") { t = GGUFNames.permuteRoPE(t, heads: c.numKVHeads) }
            if names.normShift != 0 && name.hasSuffix("norm.weight") {
                let shift = names.normShift
                t = Tensor(shape: t.shape, values: t.scalars.map { $0 + shift })
            }
            w.add(tensor: t, named: g, as: original.elementType == .f16 ? .f16 : original.elementType == .bf16 ? .bf16 : .f32)
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
            let base = RopeTable.inverseFrequencies(plain), scaled = RopeTable.inverseFrequencies(config)
            return zip(base, scaled).map { $0 / $1 }
        default: return nil
        }
    }
}
