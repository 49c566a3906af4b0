import Foundation
import SparcFormats

extension Tokenizer {
    /// Reads a Hugging Face `tokenizer.json` (BPE model, byte-level).
    public static func load(tokenizerJSON path: String) throws -> Tokenizer {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FormatError(path, "cannot read the tokenizer file")
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw FormatError(path, "not a JSON object")
        }
        func fail(_ m: String) -> FormatError { FormatError(path, m) }

        guard let model = root["model"] as? [String: Any], (model["type"] as? String ?? "BPE") == "BPE" else {
            throw fail("unsupported tokenizer model \((root["model"] as? [String: Any])?["type"] ?? "?") (sparc reads byte-level BPE)")
        }
        if let n = root["normalizer"], !(n is NSNull) {
            throw fail("unsupported normalizer \((n as? [String: Any])?["type"] ?? "?")")
        }
        if (model["byte_fallback"] as? Bool) == true { throw fail("byte_fallback BPE is not supported") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty { throw fail("BPE \(key) \"\(s)\" is not supported") }
        }
        guard let vocab = model["vocab"] as? [String: Any] else { throw fail("model.vocab is missing") }
        var byId: [Int: String] = [:]
        for (token, v) in vocab {
            guard let id = (v as? NSNumber)?.intValue, id >= 0, id < 10_000_000 else { throw fail("vocab entry \(token) has an invalid id") }
            byId[id] = token
        }
        var added: [AddedToken] = []
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (entry["id"] as? NSNumber)?.intValue, id >= 0, id < 10_000_000,
                  let content = entry["content"] as? String, !content.isEmpty else {
                throw fail("malformed added_tokens entry")
            }
            added.append(AddedToken(id: id, content: content, special: entry["special"] as? Bool ?? false))
            byId[id] = content
        }
        let size = (byId.keys.max() ?? -1) + 1
        var tokens = [String](repeating: "", count: size)
        for (id, t) in byId { tokens[id] = t }

        var merges: [String] = []
        for m in model["merges"] as? [Any] ?? [] {
            if let s = m as? String { merges.append(s) }
            else if let pair = m as? [String], pair.count == 2 { merges.append(pair[0] + " " + pair[1]) }
            else { throw fail("malformed merge entry") }
        }

        let steps = try preTokenizerSteps(root["pre_tokenizer"], fail: fail)
        var prefix: [Int] = [], suffix: [Int] = []
        try postProcessor(root["post_processor"], prefix: &prefix, suffix: &suffix, fail: fail)

        // BOS / EOS: from the post-processor when it adds them, else from the usual names.
        let specials = added.filter(\.special)
        let bos = prefix.first ?? specials.first { ["<s>", "<|begin_of_text|>", "<|endoftext|>", "<|im_start|>"].contains($0.content) }?.id
        let eos = suffix.last ?? specials.first { ["</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>"].contains($0.content) }?.id
        do {
            return try Tokenizer(tokens: tokens, merges: merges, addedTokens: added, preTokenizer: steps,
                                 prefix: prefix, suffix: suffix, bosTokenId: bos, eosTokenId: eos,
                                 ignoreMerges: model["ignore_merges"] as? Bool ?? false)
        } catch let e as Tokenizer.Error {
            throw fail(e.description)
        }
    }

    private static func preTokenizerSteps(_ value: Any?, fail: (String) -> FormatError) throws -> [PreTokenizerStep] {
        guard let value, !(value is NSNull) else { return [] }
        guard let obj = value as? [String: Any], let type = obj["type"] as? String else { throw fail("malformed pre_tokenizer") }
        switch type {
        case "Sequence":
            return try (obj["pretokenizers"] as? [Any] ?? []).flatMap { try preTokenizerSteps($0, fail: fail) }
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: obj["add_prefix_space"] as? Bool ?? true, useRegex: obj["use_regex"] as? Bool ?? true)]
        case "Digits":
            return [.digits(individual: obj["individual_digits"] as? Bool ?? false)]
        case "Split":
            let pattern = (obj["pattern"] as? [String: Any])?["Regex"] as? String ?? ""
            guard let known = SplitPattern.sources[pattern] else {
                throw fail("unsupported Split pattern \(pattern) (sparc knows the GPT-2 and Llama-3 patterns)")
            }
            guard (obj["behavior"] as? String) == "Isolated", (obj["invert"] as? Bool ?? false) == false else {
                throw fail("unsupported Split behaviour \(obj["behavior"] ?? "?")")
            }
            return [.split(known)]
        default:
            throw fail("unsupported pre_tokenizer \(type)")
        }
    }

    private static func postProcessor(_ value: Any?, prefix: inout [Int], suffix: inout [Int],
                                      fail: (String) -> FormatError) throws {
        guard let value, !(value is NSNull) else { return }
        guard let obj = value as? [String: Any], let type = obj["type"] as? String else { throw fail("malformed post_processor") }
        switch type {
        case "ByteLevel":
            return
        case "Sequence":
            for p in obj["processors"] as? [Any] ?? [] { try postProcessor(p, prefix: &prefix, suffix: &suffix, fail: fail) }
        case "TemplateProcessing":
            let specials = obj["special_tokens"] as? [String: Any] ?? [:]
            var seenSequence = false
            for item in obj["single"] as? [[String: Any]] ?? [] {
                if item["Sequence"] != nil { seenSequence = true; continue }
                guard let st = item["SpecialToken"] as? [String: Any], let name = st["id"] as? String,
                      let ids = (specials[name] as? [String: Any])?["ids"] as? [NSNumber] else {
                    throw fail("malformed TemplateProcessing template")
                }
                if seenSequence { suffix += ids.map(\.intValue) } else { prefix += ids.map(\.intValue) }
            }
        default:
            throw fail("unsupported post_processor \(type)")
        }
    }

    /// Reads the tokenizer stored in GGUF metadata (`tokenizer.ggml.*`, model `gpt2`).
    public static func load(gguf: GGUFFile) throws -> Tokenizer {
        let md = gguf.metadata
        func fail(_ m: String) -> FormatError { FormatError(gguf.path, m) }
        guard let kind = md["tokenizer.ggml.model"]?.string else { throw fail("no tokenizer in the file (tokenizer.ggml.model missing)") }
        guard kind == "gpt2" else { throw fail("unsupported tokenizer model \(kind) (sparc reads byte-level BPE, \"gpt2\")") }
        guard let tokens = md["tokenizer.ggml.tokens"]?.array?.compactMap(\.string), !tokens.isEmpty else {
            throw fail("tokenizer.ggml.tokens is missing or not a list of strings")
        }
        let merges = md["tokenizer.ggml.merges"]?.array?.compactMap(\.string) ?? []
        let types = md["tokenizer.ggml.token_type"]?.array?.compactMap(\.int) ?? []
        var added: [AddedToken] = []
        for (id, t) in types.enumerated() where id < tokens.count && (t == 3 || t == 4) && !tokens[id].isEmpty {
            added.append(AddedToken(id: id, content: tokens[id], special: t == 3))  // 3 control, 4 user-defined
        }
        let pre = md["tokenizer.ggml.pre"]?.string ?? "default"
        let steps: [PreTokenizerStep]
        switch pre {
        case "default", "gpt2", "gpt-2": steps = [.byteLevel(addPrefixSpace: false, useRegex: true)]
        case "smollm": steps = [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)]
        case "llama-bpe", "llama3", "llama-v3": steps = [.split(.llama3), .byteLevel(addPrefixSpace: false, useRegex: false)]
        default: throw fail("unsupported pre-tokenizer \"\(pre)\" (sparc knows default/gpt2, smollm, llama-bpe)")
        }
        let bos = md["tokenizer.ggml.bos_token_id"]?.int
        let eos = md["tokenizer.ggml.eos_token_id"]?.int
        let addBos = md["tokenizer.ggml.add_bos_token"]?.bool ?? false
        let addEos = md["tokenizer.ggml.add_eos_token"]?.bool ?? false
        do {
            return try Tokenizer(tokens: tokens, merges: merges, addedTokens: added, preTokenizer: steps,
                                 prefix: addBos ? bos.map { [$0] } ?? [] : [], suffix: addEos ? eos.map { [$0] } ?? [] : [],
                                 bosTokenId: bos, eosTokenId: eos, ignoreMerges: pre.hasPrefix("llama"))
        } catch let e as Tokenizer.Error {
            throw fail(e.description)
        }
    }

    /// The llama.cpp name of this tokenizer's pre-tokenizer, for writing GGUF metadata.
    var ggufPreName: String? {
        switch preTokenizer {
        case [.byteLevel(addPrefixSpace: false, useRegex: true)]: return "gpt2"
        case [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)]: return "smollm"
        case [.split(.llama3), .byteLevel(addPrefixSpace: false, useRegex: false)]: return "llama-bpe"
        default: return nil
        }
    }
}

extension Tokenizer {
    /// A `tokenizer.json` the Hugging Face `tokenizers` library reads back to the same ids.
    func tokenizerJSON() throws -> [String: Any] {
        let addedIds = Set(addedTokens.map(\.id))
        var vocab: [String: Int] = [:]
        for (id, t) in tokens.enumerated() where !addedIds.contains(id) { vocab[t] = id }
        func step(_ s: PreTokenizerStep) -> [String: Any] {
            switch s {
            case .digits(let individual): return ["type": "Digits", "individual_digits": individual]
            case .byteLevel(let prefix, let regex):
                return ["type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": true, "use_regex": regex]
            case .split(let pattern):
                let source = SplitPattern.sources.first { $0.value == pattern }!.key
                return ["type": "Split", "pattern": ["Regex": source], "behavior": "Isolated", "invert": false]
            }
        }
        let pre: Any = preTokenizer.isEmpty ? NSNull() : (preTokenizer.count == 1 ? step(preTokenizer[0]) : ["type": "Sequence", "pretokenizers": preTokenizer.map(step)])
        var post: Any = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        if !prefix.isEmpty || !suffix.isEmpty {
            func special(_ id: Int) -> [String: Any] { ["SpecialToken": ["id": tokens[id], "type_id": 0]] }
            let single = prefix.map(special) + [["Sequence": ["id": "A", "type_id": 0]]] + suffix.map(special)
            let specials = Dictionary((prefix + suffix).map { (tokens[$0], ["id": tokens[$0], "ids": [$0], "tokens": [tokens[$0]]] as [String: Any]) }) { a, _ in a }
            post = ["type": "TemplateProcessing", "single": single, "pair": single, "special_tokens": specials]
        }
        return [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(),
            "added_tokens": addedTokens.map { ["id": $0.id, "content": $0.content, "single_word": false, "lstrip": false,
                                               "rstrip": false, "normalized": false, "special": $0.special] },
            "normalizer": NSNull(), "pre_tokenizer": pre, "post_processor": post,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignoreMerges,
                      "vocab": vocab, "merges": merges],
        ]
    }

    /// `tokenizer.ggml.*` metadata for a GGUF file.
    func addGGUFMetadata(to w: inout GGUFWriter, vocabSize: Int) throws {
        guard let pre = ggufPreName else {
            throw ModelError.invalidInput("this tokenizer's pre-tokenizer has no llama.cpp name; it cannot be written to GGUF")
        }
        let types: [Int32] = tokens.indices.map { id in
            addedTokens.first { $0.id == id }.map { $0.special ? 3 : 4 } ?? 1
        }
        w.add("tokenizer.ggml.model", .string("gpt2"))
        w.add("tokenizer.ggml.pre", .string(pre))
        w.add("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) }))
        w.add("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) }))
        w.add("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))
        if let b = bosTokenId { w.add("tokenizer.ggml.bos_token_id", .uint32(UInt32(b))) }
        if let e = eosTokenId { w.add("tokenizer.ggml.eos_token_id", .uint32(UInt32(e))) }
        w.add("tokenizer.ggml.add_bos_token", .bool(!prefix.isEmpty))
    }
}
