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
    public static func load(gguf path: String) throws -> Model {
        let file = try GGUFFile(path: path)
        var config = try ModelConfig.load(gguf: file)
        let tokenizer = try Tokenizer.load(gguf: file)
        if file.info(GGUFNames.ropeFactors) != nil {
            let factors = try file.tensor(GGUFNames.ropeFactors).scalars
            guard factors.count == config.headDim / 2, factors.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw FormatError(path, "\(GGUFNames.ropeFactors) must hold \(config.headDim / 2) positive factors")
            }
            config.ropeScaling = .frequencyFactors(factors)
        }
        var params: [String: Tensor] = [:]
        for info in file.tensors where info.name != GGUFNames.ropeFactors {
            guard let name = GGUFNames.huggingFace(info.name) else {
                throw FormatError(path, "unexpected tensor \(info.name) for architecture \(config.architecture)")
            }
            var t = try file.tensor(info.name)
            if name.hasSuffix("self_attn.q_proj.weight") {
                t = try GGUFNames.unpermuteRoPE(t, heads: config.numHeads, file: path, name: info.name)
            } else if name.hasSuffix("self_attn.k_proj.weight") {
                t = try GGUFNames.unpermuteRoPE(t, heads: config.numKVHeads, file: path, name: info.name)
            }
            params[name] = t
        }
        return try Model(config: config, tokenizer: tokenizer, parameters: params, source: path)
    }

    // MARK: Hugging Face folder

    public static func load(huggingFaceFolder dir: String) throws -> Model {
        let url = URL(fileURLWithPath: dir)
        let configPath = url.appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw FormatError(dir, "not a Hugging Face model folder: config.json is missing")
        }
        let config = try ModelConfig.load(configJSON: configPath)
        let tokPath = url.appendingPathComponent("tokenizer.json").path
        guard FileManager.default.fileExists(atPath: tokPath) else {
            throw FormatError(dir, "tokenizer.json is missing (sparc needs the model's tokenizer)")
        }
        let tokenizer = try Tokenizer.load(tokenizerJSON: tokPath)

        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir))?
            .filter { $0.hasSuffix(".safetensors") }.sorted() ?? []
        guard !files.isEmpty else { throw FormatError(dir, "no .safetensors weights in the folder") }
        var params: [String: Tensor] = [:]
        for f in files {
            let st = try SafetensorsFile(path: url.appendingPathComponent(f).path)
            for name in st.names {
                guard params[name] == nil else { throw FormatError(st.path, "tensor \(name) appears in two weight files") }
                params[name] = try st.tensor(name)
            }
        }
        // A tied head is stored once, as the embeddings.
        if config.tieWordEmbeddings, let head = params["lm_head.weight"], let embed = params["model.embed_tokens.weight"],
           head.scalars == embed.scalars {
            params["lm_head.weight"] = nil
        }
        return try Model(config: config, tokenizer: tokenizer, parameters: params, source: dir)
    }
}

/// llama.cpp tensor names ↔ Hugging Face names for the Llama family.
enum GGUFNames {
    /// Llama 3.1 RoPE scaling, stored as a tensor of per-frequency divisors.
    static let ropeFactors = "rope_freqs.weight"

    static let perLayer: [(gguf: String, hf: String)] = [
        ("attn_norm.weight", "input_layernorm.weight"),
        ("attn_q.weight", "self_attn.q_proj.weight"),
        ("attn_k.weight", "self_attn.k_proj.weight"),
        ("attn_v.weight", "self_attn.v_proj.weight"),
        ("attn_output.weight", "self_attn.o_proj.weight"),
        ("ffn_norm.weight", "post_attention_layernorm.weight"),
        ("ffn_gate.weight", "mlp.gate_proj.weight"),
        ("ffn_up.weight", "mlp.up_proj.weight"),
        ("ffn_down.weight", "mlp.down_proj.weight"),
    ]
    static let global: [(gguf: String, hf: String)] = [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
    ]

    static func huggingFace(_ name: String) -> String? {
        if let g = global.first(where: { $0.gguf == name }) { return g.hf }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]),
              let m = perLayer.first(where: { $0.gguf == parts[2] }) else { return nil }
        return "model.layers.\(layer).\(m.hf)"
    }

    static func gguf(_ name: String) -> String? {
        if let g = global.first(where: { $0.hf == name }) { return g.gguf }
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count).split(separator: ".", maxSplits: 1)
        guard rest.count == 2, let layer = Int(rest[0]), let m = perLayer.first(where: { $0.hf == rest[1] }) else { return nil }
        return "blk.\(layer).\(m.gguf)"
    }

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
