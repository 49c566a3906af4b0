import Foundation
import SparcFormats
import SparcTensor

extension Model {
    /// Loads a `.gguf` file, a Hugging Face folder, or an installed model by name.
    public static func load(_ nameOrPath: String) throws -> Model {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: nameOrPath, isDirectory: &isDir) {
            return isDir.boolValue ? try load(huggingFaceFolder: nameOrPath) : try load(gguf: nameOrPath)
        }
        if let entry = ModelRegistry.entry(named: nameOrPath) {
            let path = ModelRegistry.path(of: entry)
            guard FileManager.default.fileExists(atPath: path) else {
                throw ModelError.notInstalled(name: entry.name, path: path)
            }
            return try load(gguf: path)
        }
        throw ModelError.notFound(nameOrPath)
    }

    // MARK: GGUF

    /// Loads a GGUF model, renaming tensors to Hugging Face names and undoing llama.cpp's
    /// q/k row permutation, so relevances and masks carry over to the HF export unchanged.
    public static func load(gguf path: String) throws -> Model { try load(gguf: path, tokenizer: nil) }

    /// `tokenizer`, when given, stands in for the file's own (tests that check a model's
    /// weights on token ids, where sparc cannot read the file's tokenizer kind yet).
    static func load(gguf path: String, tokenizer override: Tokenizer?) throws -> Model {
        let file = try GGUFFile(path: path)
        var config = try ModelConfig.load(gguf: file)
        guard let family = Architectures.named(config.architecture), let names = family.ggufNames else {
            throw FormatError(path, "sparc has no GGUF name map for \(config.architecture)")
        }
        let tokenizer = try override ?? Tokenizer.load(gguf: file)
        try checkTokenizer(tokenizer, fits: config, file: path)
        if file.info(GGUFNames.ropeFactors) != nil {
            let factors = try file.tensor(GGUFNames.ropeFactors).scalars
            guard factors.count == config.headDim / 2, factors.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw FormatError(path, "\(GGUFNames.ropeFactors) must hold \(config.headDim / 2) positive factors")
            }
            config.ropeScaling = .frequencyFactors(factors)
        }
        // Biases mark the checkpoint's variant (Llama with attention_bias).
        if family is Llama, file.info("blk.0.attn_q.bias") != nil {
            config.queryKeyValueBias = true
            config.attentionOutputBias = file.info("blk.0.attn_output.bias") != nil
        }
        var params: [String: Tensor] = [:]
        for info in file.tensors where info.name != GGUFNames.ropeFactors {
            guard let name = names.checkpointName(info.name) else {
                throw FormatError(path, "unexpected tensor \(info.name) for architecture \(config.architecture)")
            }
            // F16/BF16 matrices stay half-precision, as in Hugging Face folders (q and k
            // become Float32 where llama.cpp's row permutation is undone).
            var t = try file.tensor(info.name, keepingHalfPrecision: info.shape.count == 2)
            if names.permutesQueryKey && name.hasSuffix("self_attn.q_proj.weight") {
                t = try GGUFNames.unpermuteRoPE(t, heads: config.numHeads, file: path, name: info.name)
            } else if names.permutesQueryKey && name.hasSuffix("self_attn.k_proj.weight") {
                t = try GGUFNames.unpermuteRoPE(t, heads: config.numKVHeads, file: path, name: info.name)
            }
            if names.normShift != 0 && name.hasSuffix("norm.weight") {
                // Gemma 3: llama.cpp stores 1 + w; sparc speaks the Hugging Face w.
                let shift = names.normShift
                t = Tensor(shape: t.shape, values: t.scalars.map { $0 - shift })
            }
            params[name] = t
        }
        return try Model(config: config, tokenizer: tokenizer, parameters: params, source: path)
    }

    // MARK: Hugging Face folder

    /// Token ids beyond the embedding table would index past it later: refuse them now.
    private static func checkTokenizer(_ t: Tokenizer, fits c: ModelConfig, file: String) throws {
        do { try t.validate(vocabularySize: c.vocabSize) } catch { throw FormatError(file, "\(error)") }
    }

    public static func load(huggingFaceFolder dir: String) throws -> Model {
        let url = URL(fileURLWithPath: dir)
        let configPath = url.appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw FormatError(dir, "not a Hugging Face model folder: config.json is missing")
        }
        let config = try ModelConfig.load(configJSON: configPath)
        let tokenizer = try Tokenizer.load(folder: dir)
        try checkTokenizer(tokenizer, fits: config, file: dir)

        // F16 and BF16 matrices stay half-precision in memory (half the bytes of Float32),
        // widened exactly where they are used; vectors (norms, biases) are widened here,
        // since the ops read them element by element and they are small.
        var params: [String: Tensor] = [:]
        for st in try weightFiles(in: dir) {
            for name in st.names {
                guard params[name] == nil else { throw FormatError(st.path, "tensor \(name) appears in two weight files") }
                params[name] = try st.tensor(name, keepingHalfPrecision: st.entry(name)!.shape.count == 2)
            }
        }
        // A tied head is stored once, as the embeddings; some files carry buffers.
        let family = Architectures.named(config.architecture)!, layout = family.layout(config)
        for name in params.keys where family.isBuffer(name) { params[name] = nil }
        if config.tieWordEmbeddings, layout.tensor(named: "lm_head.weight") == nil, let head = params["lm_head.weight"],
           let embed = layout.tensor(holding: ParameterKey(.embedding)).flatMap({ params[$0.name] }), head.scalars == embed.scalars {
            params["lm_head.weight"] = nil
        }
        return try Model(config: config, tokenizer: tokenizer, parameters: params, source: dir)
    }

    /// The weight files of a folder, chosen as transformers chooses them: `model.safetensors`
    /// alone when present, else the shards `model.safetensors.index.json` lists (checked
    /// against it), else every `.safetensors` file.
    private static func weightFiles(in dir: String) throws -> [SafetensorsFile] {
        let url = URL(fileURLWithPath: dir)
        let single = url.appendingPathComponent("model.safetensors").path
        if FileManager.default.fileExists(atPath: single) { return [try SafetensorsFile(path: single)] }
        let index = url.appendingPathComponent(SafetensorsIndex.fileName).path
        if FileManager.default.fileExists(atPath: index) { return try SafetensorsIndex(path: index).openShards() }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir))?
            .filter { $0.hasSuffix(".safetensors") }.sorted() ?? []
        guard !files.isEmpty else { throw FormatError(dir, "no .safetensors weights in the folder") }
        return try files.map { try SafetensorsFile(path: url.appendingPathComponent($0).path) }
    }
}

/// llama.cpp's conventions for Llama-family GGUF files (the name maps live with each family).
enum GGUFNames {
    /// Llama 3.1 RoPE scaling, stored as a tensor of per-frequency divisors.
    static let ropeFactors = "rope_freqs.weight"

    /// llama.cpp's converter reorders each head's rows from HF's half-split RoPE layout
    /// (row h·d + s·d/2 + j) to its interleaved layout (row h·d + 2j + s). This is the
    /// inverse; `permuteRoPE` is the forward map used when writing GGUF.
    static func unpermuteRoPE(_ w: Tensor, heads: Int, file: String, name: String) throws -> Tensor {
        try reorderRoPE(w, heads: heads, file: file, name: name, toHF: true)
    }

    static func permuteRoPE(_ w: Tensor, heads: Int) -> Tensor {
        (try? reorderRoPE(w, heads: heads, file: "", name: "", toHF: false)) ?? w
    }

    private static func reorderRoPE(_ w: Tensor, heads: Int, file: String, name: String, toHF: Bool) throws -> Tensor {
        guard w.rank == 2, heads > 0, w.shape[0] % (2 * heads) == 0 else {
            throw FormatError(file, "tensor \(name) with shape \(w.shape) cannot hold \(heads) RoPE heads")
        }
        let rows = w.shape[0], cols = w.shape[1], d = rows / heads, half = d / 2
        return Tensor(shape: w.shape) { out in
            w.withUnsafeBufferPointer { src in
                for h in 0..<heads {
                    for s in 0..<2 {
                        for j in 0..<half {
                            let hfRow = h * d + s * half + j, ggufRow = h * d + 2 * j + s
                            let (from, to) = toHF ? (ggufRow, hfRow) : (hfRow, ggufRow)
                            (out.baseAddress! + to * cols).update(from: src.baseAddress! + from * cols, count: cols)
                        }
                    }
                }
            }
        }
    }
}
