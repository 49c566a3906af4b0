import Foundation
import SparcFormats

/// JSON helpers for tokenizer files: every reading step says what was wrong and where.
private struct JSONReader {
    let path: String
    func fail(_ m: String) -> FormatError { FormatError(path, m) }

    func object(_ v: Any?, _ what: String) throws -> [String: Any] {
        guard let o = v as? [String: Any] else { throw fail("\(what) is not a JSON object") }
        return o
    }
    func type(_ o: [String: Any], _ what: String) throws -> String {
        guard let t = o["type"] as? String else { throw fail("\(what) has no \"type\"") }
        return t
    }
    func bool(_ o: [String: Any], _ key: String, default d: Bool) throws -> Bool {
        guard let v = o[key], !(v is NSNull) else { return d }
        guard let b = v as? Bool else { throw fail("\"\(key)\" must be true or false") }
        return b
    }
    func int(_ o: [String: Any], _ key: String, default d: Int) throws -> Int {
        guard let v = o[key], !(v is NSNull) else { return d }
        guard let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded(), abs(n.doubleValue) < 1e9 else {
            throw fail("\"\(key)\" must be an integer")
        }
        return n.intValue
    }
    func string(_ o: [String: Any], _ key: String, _ what: String) throws -> String {
        guard let s = o[key] as? String else { throw fail("\(what): \"\(key)\" must be a string") }
        return s
    }
    func optionalString(_ o: [String: Any], _ key: String) throws -> String? {
        guard let v = o[key], !(v is NSNull) else { return nil }
        guard let s = v as? String else { throw fail("\"\(key)\" must be a string") }
        return s
    }
    /// One character, as Metaspace's `replacement` and Strip's `content` are.
    func char(_ o: [String: Any], _ key: String, _ what: String) throws -> Unicode.Scalar {
        let s = try string(o, key, what)
        guard s.unicodeScalars.count == 1, let c = s.unicodeScalars.first else { throw fail("\(what): \"\(key)\" must be one character") }
        return c
    }
    func pattern(_ o: [String: Any], _ what: String) throws -> TokenPattern {
        let p = try object(o["pattern"], "\(what) pattern")
        if let s = p["String"] as? String { return .string(s) }
        if let r = p["Regex"] as? String { return .regex(r) }
        throw fail("\(what) pattern must be {\"String\": ...} or {\"Regex\": ...}")
    }
    func prependScheme(_ o: [String: Any], _ what: String) throws -> PrependScheme {
        if let s = o["prepend_scheme"] as? String {
            guard let p = PrependScheme(rawValue: s) else { throw fail("\(what): unknown prepend_scheme \"\(s)\"") }
            return p
        }
        // Files older than tokenizers 0.14 say add_prefix_space instead.
        return try bool(o, "add_prefix_space", default: true) ? .always : .never
    }
    func behavior(_ o: [String: Any], _ what: String, default d: SplitBehavior) throws -> SplitBehavior {
        guard let v = o["behavior"], !(v is NSNull) else { return d }
        guard let s = v as? String, let b = SplitBehavior(rawValue: s) else { throw fail("\(what): unknown behavior \(v)") }
        return b
    }
}

extension Tokenizer {
    /// Reads a Hugging Face `tokenizer.json` (BPE model; byte-level or SentencePiece-style).
    public static func load(tokenizerJSON path: String) throws -> Tokenizer {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FormatError(path, "cannot read the tokenizer file")
        }
        // JSONText, not JSONSerialization: vocabulary keys must stay exactly as written.
        // model.vocab is read from `parsed` below, so it is not converted here.
        guard let parsed = try? JSONText.parse(data), case .object(let members) = parsed else {
            throw FormatError(path, "not a JSON object")
        }
        var root: [String: Any] = [:]
        for (key, value) in members {
            guard key == "model", case .object(let modelMembers) = value else { root[key] = value.foundation; continue }
            root[key] = Dictionary(modelMembers.filter { $0.key != "vocab" }.map { ($0.key, $0.value.foundation) }) { _, b in b }
        }
        let r = JSONReader(path: path)

        let model = try r.object(root["model"], "model")
        let modelType = model["type"] as? String ?? (model["merges"] != nil ? "BPE" : "?")
        guard modelType == "BPE" else {
            throw r.fail("unsupported tokenizer model \(modelType) (sparc reads BPE models)")
        }
        if let d = model["dropout"] as? NSNumber, d.doubleValue > 0 {
            throw r.fail("BPE dropout \(d) is not supported (it makes encoding random)")
        }
        var options = BPEOptions()
        options.byteFallback = try r.bool(model, "byte_fallback", default: false)
        options.fuseUnk = try r.bool(model, "fuse_unk", default: false)
        options.ignoreMerges = try r.bool(model, "ignore_merges", default: false)
        options.unkToken = try r.optionalString(model, "unk_token")
        options.continuingSubwordPrefix = try r.optionalString(model, "continuing_subword_prefix").flatMap { $0.isEmpty ? nil : $0 }
        options.endOfWordSuffix = try r.optionalString(model, "end_of_word_suffix").flatMap { $0.isEmpty ? nil : $0 }

        guard case .object(let vocab)? = parsed["model"]?["vocab"] else { throw r.fail("model.vocab is missing") }
        var byId: [Int: String] = [:]
        for (token, v) in vocab {
            guard let id = (v.foundation as? NSNumber)?.intValue, id >= 0, id < 10_000_000 else { throw r.fail("vocab entry \(token) has an invalid id") }
            byId[id] = token
        }
        var added: [AddedToken] = []
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (entry["id"] as? NSNumber)?.intValue, id >= 0, id < 10_000_000,
                  let content = entry["content"] as? String, !content.isEmpty else {
                throw r.fail("malformed added_tokens entry")
            }
            let special = try r.bool(entry, "special", default: false)
            added.append(AddedToken(id: id, content: content, special: special,
                                    lstrip: try r.bool(entry, "lstrip", default: false), rstrip: try r.bool(entry, "rstrip", default: false),
                                    singleWord: try r.bool(entry, "single_word", default: false),
                                    normalized: try r.bool(entry, "normalized", default: !special)))
            byId[id] = content
        }
        let size = (byId.keys.max() ?? -1) + 1
        var tokens = [String](repeating: "", count: size)
        for (id, t) in byId { tokens[id] = t }

        var merges: [String] = []
        var pairList: [(String, String)] = []
        for m in model["merges"] as? [Any] ?? [] {
            if let s = m as? String { merges.append(s) }
            else if let pair = m as? [String], pair.count == 2 {
                merges.append(pair[0] + " " + pair[1])
                pairList.append((pair[0], pair[1]))
            }
            else { throw r.fail("malformed merge entry") }
        }
        if !pairList.isEmpty && pairList.count != merges.count { throw r.fail("model.merges mixes \"a b\" strings and [a, b] pairs") }
        let pairs = pairList.isEmpty ? nil : pairList

        let normalizer = try normalizerSteps(root["normalizer"], r)
        let steps = try preTokenizerSteps(root["pre_tokenizer"], r)
        let decoder = try decoderSteps(root["decoder"], r)
        var prefix: [Int] = [], suffix: [Int] = []
        try postProcessor(root["post_processor"], prefix: &prefix, suffix: &suffix, r)

        // BOS / EOS: from the post-processor when it adds them, else from the usual names.
        let specials = added.filter(\.special)
        let bos = prefix.first ?? specials.first { ["<s>", "<|begin_of_text|>", "<|endoftext|>", "<|im_start|>"].contains($0.content) }?.id
        let eos = suffix.last ?? specials.first { ["</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>"].contains($0.content) }?.id
        do {
            return try Tokenizer(tokens: tokens, merges: merges, addedTokens: added, preTokenizer: steps,
                                 normalizer: normalizer, decoder: decoder, options: options,
                                 prefix: prefix, suffix: suffix, bosTokenId: bos, eosTokenId: eos, sourceJSON: data,
                                 mergePairs: pairs)
        } catch let e as Tokenizer.Error {
            throw r.fail(e.description)
        }
    }

    private static func normalizerSteps(_ value: Any?, _ r: JSONReader) throws -> [NormalizerStep] {
        guard let value, !(value is NSNull) else { return [] }
        let o = try r.object(value, "normalizer")
        let type = try r.type(o, "normalizer")
        switch type {
        case "Sequence":
            guard let list = o["normalizers"] as? [Any] else { throw r.fail("normalizer Sequence has no \"normalizers\" list") }
            return try list.flatMap { try normalizerSteps($0, r) }
        case "NFC": return [.nfc]
        case "NFD": return [.nfd]
        case "NFKC": return [.nfkc]
        case "NFKD": return [.nfkd]
        case "Lowercase": return [.lowercase]
        case "Strip":
            return [.strip(left: try r.bool(o, "strip_left", default: true), right: try r.bool(o, "strip_right", default: true))]
        case "Prepend": return [.prepend(try r.string(o, "prepend", "normalizer Prepend"))]
        case "Replace":
            return [.replace(try r.pattern(o, "normalizer Replace"), content: try r.string(o, "content", "normalizer Replace"))]
        case "ByteLevel": return [.byteLevel]
        default:
            throw r.fail("unsupported normalizer \(type) (sparc knows Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace, ByteLevel)")
        }
    }

    private static func preTokenizerSteps(_ value: Any?, _ r: JSONReader) throws -> [PreTokenizerStep] {
        guard let value, !(value is NSNull) else { return [] }
        let obj = try r.object(value, "pre_tokenizer")
        let type = try r.type(obj, "pre_tokenizer")
        switch type {
        case "Sequence":
            guard let list = obj["pretokenizers"] as? [Any] else { throw r.fail("pre_tokenizer Sequence has no \"pretokenizers\" list") }
            return try list.flatMap { try preTokenizerSteps($0, r) }
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: try r.bool(obj, "add_prefix_space", default: true), useRegex: try r.bool(obj, "use_regex", default: true))]
        case "Digits":
            return [.digits(individual: try r.bool(obj, "individual_digits", default: false))]
        case "Split":
            let pattern = try r.pattern(obj, "pre_tokenizer Split")
            let behavior = try r.behavior(obj, "pre_tokenizer Split", default: .isolated)
            let invert = try r.bool(obj, "invert", default: false)
            // The known patterns keep their short form (it names them in GGUF files).
            if case .regex(let source) = pattern, let known = SplitPattern.sources[source], behavior == .isolated, !invert {
                return [.split(known)]
            }
            return [.splitBy(pattern, behavior: behavior, invert: invert)]
        case "Metaspace":
            return [.metaspace(replacement: try r.char(obj, "replacement", "pre_tokenizer Metaspace"),
                               prependScheme: try r.prependScheme(obj, "pre_tokenizer Metaspace"),
                               split: try r.bool(obj, "split", default: true))]
        case "Whitespace": return [.whitespace]
        case "WhitespaceSplit": return [.whitespaceSplit]
        case "Punctuation": return [.punctuation(try r.behavior(obj, "pre_tokenizer Punctuation", default: .isolated))]
        default:
            throw r.fail("unsupported pre_tokenizer \(type) (sparc knows Sequence, ByteLevel, Digits, Split, Metaspace, Whitespace, WhitespaceSplit, Punctuation)")
        }
    }

    private static func decoderSteps(_ value: Any?, _ r: JSONReader) throws -> [DecoderStep]? {
        guard let value, !(value is NSNull) else { return nil }
        let o = try r.object(value, "decoder")
        let type = try r.type(o, "decoder")
        switch type {
        case "Sequence":
            guard let list = o["decoders"] as? [Any] else { throw r.fail("decoder Sequence has no \"decoders\" list") }
            return try list.flatMap { try decoderSteps($0, r) ?? [] }
        case "ByteLevel": return [.byteLevel]
        case "Metaspace":
            return [.metaspace(replacement: try r.char(o, "replacement", "decoder Metaspace"), prependScheme: try r.prependScheme(o, "decoder Metaspace"))]
        case "Replace":
            return [.replace(try r.pattern(o, "decoder Replace"), content: try r.string(o, "content", "decoder Replace"))]
        case "ByteFallback": return [.byteFallback]
        case "BPEDecoder": return [.bpe(suffix: try r.optionalString(o, "suffix") ?? "</w>")]
        case "Fuse": return [.fuse]
        case "Strip":
            let start = try r.int(o, "start", default: 0), stop = try r.int(o, "stop", default: 0)
            guard start >= 0, stop >= 0 else { throw r.fail("decoder Strip: start and stop must be ≥ 0") }
            return [.strip(content: try r.char(o, "content", "decoder Strip"), start: start, stop: stop)]
        default:
            throw r.fail("unsupported decoder \(type) (sparc knows Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder)")
        }
    }

    private static func postProcessor(_ value: Any?, prefix: inout [Int], suffix: inout [Int], _ r: JSONReader) throws {
        guard let value, !(value is NSNull) else { return }
        let obj = try r.object(value, "post_processor")
        let type = try r.type(obj, "post_processor")
        func idPair(_ key: String) throws -> Int {
            guard let pair = obj[key] as? [Any], pair.count == 2, let id = (pair[1] as? NSNumber)?.intValue else {
                throw r.fail("post_processor \(type): \"\(key)\" must be [token, id]")
            }
            return id
        }
        switch type {
        case "ByteLevel":
            return
        case "Sequence":
            for p in obj["processors"] as? [Any] ?? [] { try postProcessor(p, prefix: &prefix, suffix: &suffix, r) }
        case "RobertaProcessing", "BertProcessing":
            // <s> A </s> (Roberta) / [CLS] A [SEP] (Bert) for a single sequence.
            prefix.append(try idPair("cls"))
            suffix.append(try idPair("sep"))
        case "TemplateProcessing":
            let specials = obj["special_tokens"] as? [String: Any] ?? [:]
            var seenSequence = false
            for item in obj["single"] as? [[String: Any]] ?? [] {
                if item["Sequence"] != nil { seenSequence = true; continue }
                guard let st = item["SpecialToken"] as? [String: Any], let name = st["id"] as? String,
                      let ids = (specials[name] as? [String: Any])?["ids"] as? [NSNumber] else {
                    throw r.fail("malformed TemplateProcessing template")
                }
                if seenSequence { suffix += ids.map(\.intValue) } else { prefix += ids.map(\.intValue) }
            }
        default:
            throw r.fail("unsupported post_processor \(type) (sparc knows ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing, Sequence)")
        }
    }

    /// Reads the tokenizer stored in GGUF metadata (`tokenizer.ggml.*`, model `gpt2` or
    /// SentencePiece `llama`).
    public static func load(gguf: GGUFFile) throws -> Tokenizer {
        let md = gguf.metadata
        func fail(_ m: String) -> FormatError { FormatError(gguf.path, m) }
        guard let kind = md["tokenizer.ggml.model"]?.string else { throw fail("no tokenizer in the file (tokenizer.ggml.model missing)") }
        if kind == "llama" {
            do { return try loadSentencePiece(gguf: gguf) } catch let e as Tokenizer.Error { throw fail(e.description) }
        }
        guard kind == "gpt2" else {
            throw fail("unsupported tokenizer model \(kind) (sparc reads byte-level BPE, \"gpt2\", and SentencePiece, \"llama\")")
        }
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
        case "qwen2": steps = [.split(.qwen2), .byteLevel(addPrefixSpace: false, useRegex: false)]
        default: throw fail("unsupported pre-tokenizer \"\(pre)\" (sparc knows default/gpt2, smollm, llama-bpe, qwen2)")
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
        // GGUF's "gpt2" tokenizer model is plain byte-level BPE.
        guard normalizer.isEmpty, decoder == [.byteLevel], options == BPEOptions() || options == ignoreMergesOnly else { return nil }
        switch preTokenizer {
        case [.byteLevel(addPrefixSpace: false, useRegex: true)]: return "gpt2"
        case [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)]: return "smollm"
        case [.split(.llama3), .byteLevel(addPrefixSpace: false, useRegex: false)]: return "llama-bpe"
        case [.split(.qwen2), .byteLevel(addPrefixSpace: false, useRegex: false)]: return "qwen2"
        default: return nil
        }
    }
}

extension Tokenizer {
    private var ignoreMergesOnly: BPEOptions {
        var o = BPEOptions()
        o.ignoreMerges = true
        return o
    }

    /// The bytes of `tokenizerJSON()` to save: the file this was read from, unchanged, or the
    /// JSON written with every vocabulary entry in id order (`JSONSerialization` would merge
    /// canonically equivalent tokens, "é" and "e\u{301}", and drop one of them).
    func tokenizerJSONData() throws -> Data {
        if let sourceJSON { return sourceJSON }
        var root = try tokenizerJSON()
        var model = root["model"] as? [String: Any] ?? [:]
        // Byte-level BPE lists its added tokens only in added_tokens; SentencePiece in both.
        let onlyAdded = sentencePiece == nil ? Set(addedTokens.map(\.id)) : []
        model["vocab"] = JSONText.Members(members: tokens.enumerated().compactMap { id, t in
            t.isEmpty || onlyAdded.contains(id) ? nil : (t, id)
        })
        root["model"] = model
        return try JSONText.serialize(root)
    }

    /// A `tokenizer.json` the Hugging Face `tokenizers` library reads back to the same ids.
    func tokenizerJSON() throws -> [String: Any] {
        // Read from a tokenizer.json: give that file back as it was.
        if let sourceJSON, let root = (try? JSONSerialization.jsonObject(with: sourceJSON)) as? [String: Any] { return root }
        if let spm = sentencePiece { return sentencePieceTokenizerJSON(spm) }
        guard normalizer.isEmpty, decoder == [.byteLevel], options == BPEOptions() || options == ignoreMergesOnly else {
            throw ModelError.invalidInput("this tokenizer was not read from a tokenizer.json and is not plain byte-level BPE; sparc cannot write it")
        }
        let addedIds = Set(addedTokens.map(\.id))
        var vocab: [String: Int] = [:]
        for (id, t) in tokens.enumerated() where !addedIds.contains(id) { vocab[t] = id }
        func pattern(_ p: TokenPattern) -> [String: Any] {
            switch p { case .string(let s): return ["String": s]; case .regex(let r): return ["Regex": r] }
        }
        func step(_ s: PreTokenizerStep) -> [String: Any] {
            switch s {
            case .digits(let individual): return ["type": "Digits", "individual_digits": individual]
            case .byteLevel(let prefix, let regex):
                return ["type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": true, "use_regex": regex]
            case .split(let p):
                return ["type": "Split", "pattern": ["Regex": p.source], "behavior": "Isolated", "invert": false]
            case .splitBy(let p, let behavior, let invert):
                return ["type": "Split", "pattern": pattern(p), "behavior": behavior.rawValue, "invert": invert]
            case .metaspace(let replacement, let scheme, let split):
                return ["type": "Metaspace", "replacement": String(replacement), "prepend_scheme": scheme.rawValue, "split": split]
            case .whitespace: return ["type": "Whitespace"]
            case .whitespaceSplit: return ["type": "WhitespaceSplit"]
            case .punctuation(let behavior): return ["type": "Punctuation", "behavior": behavior.rawValue]
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
        if let spm = sentencePiece { return addSentencePieceMetadata(spm, to: &w) }
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
