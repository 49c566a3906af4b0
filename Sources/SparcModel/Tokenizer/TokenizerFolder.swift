import Foundation
import SparcFormats

extension Tokenizer {
    /// The tokenizer of a Hugging Face model folder: `tokenizer.json` when there is one,
    /// else a SentencePiece `tokenizer.model` (Llama 2, TinyLlama), else GPT-2 style
    /// `vocab.json` + `merges.txt` (GPT-2, OPT); the last two configured from
    /// `tokenizer_config.json` / `special_tokens_map.json` when present.
    public static func load(folder: String) throws -> Tokenizer {
        let url = URL(fileURLWithPath: folder)
        func file(_ name: String) -> String? {
            let p = url.appendingPathComponent(name).path
            return FileManager.default.fileExists(atPath: p) ? p : nil
        }
        if let json = file("tokenizer.json") { return try load(tokenizerJSON: json) }
        if let model = file("tokenizer.model") {
            let c = try FolderTokenizerConfig(file)
            // transformers' LlamaTokenizer adds BOS unless told otherwise.
            return try load(sentencePieceModel: model, bosToken: c.tokenName("bos_token"), eosToken: c.tokenName("eos_token"),
                            addBOS: c.config["add_bos_token"] as? Bool ?? true, addEOS: c.config["add_eos_token"] as? Bool ?? false,
                            addedTokens: try c.addedTokens(addedTokensJSON: file("added_tokens.json")))
        }
        guard let vocab = file("vocab.json"), let merges = file("merges.txt") else {
            throw FormatError(folder, "no tokenizer: tokenizer.json is missing, and so are tokenizer.model (SentencePiece) and vocab.json + merges.txt (GPT-2 style)")
        }
        let c = try FolderTokenizerConfig(file)
        let config = c.config, tokenName = c.tokenName
        var special = c.specialNames
        if let decl = config["added_tokens_decoder"] as? [String: Any] {
            special += decl.values.compactMap { ($0 as? [String: Any])?["content"] as? String }
        }
        // OPT's tokenizer prepends its BOS ("</s>"); transformers does this for model_type
        // "opt" even where tokenizer_config.json does not say add_bos_token.
        var addBOS = config["add_bos_token"] as? Bool
        if addBOS == nil, let modelConfig = file("config.json"), (try? jsonObject(modelConfig))?["model_type"] as? String == "opt" {
            addBOS = true
        }
        return try load(vocabJSON: vocab, mergesTXT: merges, specialTokens: special, bosToken: tokenName("bos_token"),
                        eosToken: tokenName("eos_token"), addBOS: addBOS ?? false,
                        addPrefixSpace: config["add_prefix_space"] as? Bool ?? false)
    }

    /// GPT-2 style byte-level BPE from `vocab.json` (token → id) and `merges.txt` (one
    /// "left right" pair per line after a `#version` line). `<|endoftext|>` and the given
    /// special tokens that are in the vocabulary are matched whole in the text; with
    /// `addBOS`, `bosToken` (default `<|endoftext|>`) is put before every encoded text.
    public static func load(vocabJSON: String, mergesTXT: String, specialTokens: [String] = [], bosToken: String? = nil,
                            eosToken: String? = nil, addBOS: Bool = false, addPrefixSpace: Bool = false) throws -> Tokenizer {
        // JSONText keeps keys as written (JSONSerialization merges "é" and "e\u{301}").
        guard let data = FileManager.default.contents(atPath: vocabJSON) else { throw FormatError(vocabJSON, "cannot read the file") }
        guard case .object(let vocabObject)? = try? JSONText.parse(data) else { throw FormatError(vocabJSON, "not a JSON object") }
        var byId: [Int: String] = [:]
        for (token, v) in vocabObject {
            guard let id = (v.foundation as? NSNumber)?.intValue, id >= 0, id < 10_000_000 else {
                throw FormatError(vocabJSON, "vocab entry \(token.debugDescription) has an invalid id")
            }
            if let other = byId[id] { throw FormatError(vocabJSON, "tokens \(other.debugDescription) and \(token.debugDescription) share id \(id)") }
            byId[id] = token
        }
        guard !byId.isEmpty else { throw FormatError(vocabJSON, "the vocabulary is empty") }
        var tokens = [String](repeating: "", count: (byId.keys.max() ?? 0) + 1)
        for (id, t) in byId { tokens[id] = t }

        guard let mergeData = FileManager.default.contents(atPath: mergesTXT) else { throw FormatError(mergesTXT, "cannot read the merges file") }
        guard let mergeText = String(data: mergeData, encoding: .utf8) else { throw FormatError(mergesTXT, "not UTF-8 text") }
        var merges: [String] = []
        // Lines and fields are cut on scalars: a space or newline followed by a combining
        // mark is a single Character.
        for (n, line) in mergeText.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = String(String.UnicodeScalarView(line.last == "\r" ? line.dropLast() : line))
            if text.isEmpty || (n == 0 && text.hasPrefix("#version")) { continue }
            let parts = text.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw FormatError(mergesTXT, "line \(n + 1) is not two tokens separated by one space: \(text.debugDescription)")
            }
            merges.append(text)
        }

        let vocab = Dictionary(byId.map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var added: [AddedToken] = []
        for name in ["<|endoftext|>"] + specialTokens where added.allSatisfy({ $0.content != name }) {
            if let id = vocab[name] { added.append(AddedToken(id: id, content: name, special: true)) }
        }
        let bosName = bosToken ?? "<|endoftext|>"
        let bos = vocab[bosName], eos = vocab[eosToken ?? "<|endoftext|>"]
        if addBOS && bos == nil { throw FormatError(vocabJSON, "the BOS token \(bosName.debugDescription) is not in the vocabulary") }
        do {
            return try Tokenizer(tokens: tokens, merges: merges, addedTokens: added,
                                 preTokenizer: [.byteLevel(addPrefixSpace: addPrefixSpace, useRegex: true)],
                                 prefix: addBOS ? bos.map { [$0] } ?? [] : [], bosTokenId: bos, eosTokenId: eos)
        } catch let e as Tokenizer.Error {
            throw FormatError(mergesTXT, e.description)
        }
    }

    /// A SentencePiece `tokenizer.model` (BPE with byte fallback, as Llama 2's), encoded as
    /// llama.cpp encodes it, which on such models gives sentencepiece's ids. BOS / EOS are
    /// the trainer's `bos_id` / `eos_id` unless named here; `addedTokens` are the folder's
    /// (transformers' `added_tokens_decoder`): ones with a piece's id must have its text and
    /// are then matched whole in the text, the others extend the vocabulary in id order.
    public static func load(sentencePieceModel path: String, bosToken: String? = nil, eosToken: String? = nil,
                            addBOS: Bool = true, addEOS: Bool = false, addedTokens: [AddedToken] = []) throws -> Tokenizer {
        guard let data = FileManager.default.contents(atPath: path) else { throw FormatError(path, "cannot read the file") }
        let file: SentencePieceModelFile
        var spm: SentencePieceModel
        do {
            file = try SentencePieceModelFile(bytes: [UInt8](data))
            spm = try file.sentencePieceModel()
        } catch let e as ProtobufError {
            throw FormatError(path, "not a valid SentencePiece model: \(e)")
        } catch let e as SentencePieceModelFile.Error {
            throw FormatError(path, e.description)
        }
        if !addedTokens.isEmpty { spm = try spm.adding(addedTokens, file: path) }

        func id(_ name: String?, default d: Int?, _ what: String) throws -> Int? {
            guard let name else { return d }
            guard let i = spm.vocab[ExactKey(name)] else { throw FormatError(path, "the \(what) token \(name.debugDescription) is not in the vocabulary") }
            return Int(i)
        }
        let bos = try id(bosToken, default: file.bosId >= 0 ? file.bosId : nil, "BOS")
        let eos = try id(eosToken, default: file.eosId >= 0 ? file.eosId : nil, "EOS")
        if addBOS && bos == nil { throw FormatError(path, "add_bos_token is set but the model has no BOS token (bos_id -1)") }
        if addEOS && eos == nil { throw FormatError(path, "add_eos_token is set but the model has no EOS token (eos_id -1)") }
        do {
            return try Tokenizer(sentencePiece: spm, prefix: addBOS ? [bos!] : [], suffix: addEOS ? [eos!] : [],
                                 bosTokenId: bos, eosTokenId: eos)
        } catch let e as Tokenizer.Error {
            throw FormatError(path, e.description)
        }
    }

    fileprivate static func jsonObject(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else { throw FormatError(path, "cannot read the file") }
        guard let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { throw FormatError(path, "not a JSON object") }
        return o
    }
}

/// A folder's `tokenizer_config.json` and `special_tokens_map.json` (either may be missing).
private struct FolderTokenizerConfig {
    let config: [String: Any]
    let configPath: String?
    let specialMap: [String: Any]

    /// `file` gives a file's path in the folder when it exists.
    init(_ file: (String) -> String?) throws {
        configPath = file("tokenizer_config.json")
        config = try configPath.map { try Tokenizer.jsonObject($0) } ?? [:]
        specialMap = try file("special_tokens_map.json").map { try Tokenizer.jsonObject($0) } ?? [:]
    }

    /// A special token's text: "</s>" or {"content": "</s>", ...}, the config first.
    func tokenName(_ key: String) -> String? {
        for source in [config, specialMap] {
            if let s = source[key] as? String { return s }
            if let s = (source[key] as? [String: Any])?["content"] as? String { return s }
        }
        return nil
    }

    var specialNames: [String] { ["bos_token", "eos_token", "unk_token", "pad_token"].compactMap(tokenName) }

    /// The added tokens declared: the config's `added_tokens_decoder`
    /// ({"32000": {"content": "<pad>", "special": true}}) and the older `added_tokens.json`
    /// ({"<pad>": 32000}, special when a special-token name says so).
    func addedTokens(addedTokensJSON: String?) throws -> [Tokenizer.AddedToken] {
        var out: [Int: Tokenizer.AddedToken] = [:]
        if let path = addedTokensJSON {
            let special = Set(specialNames)
            for (content, v) in try Tokenizer.jsonObject(path) {
                guard let id = (v as? NSNumber)?.intValue, id >= 0, !content.isEmpty else {
                    throw FormatError(path, "entry \(content.debugDescription) must map a token to an id ≥ 0")
                }
                out[id] = Tokenizer.AddedToken(id: id, content: content, special: special.contains(content))
            }
        }
        for (key, v) in config["added_tokens_decoder"] as? [String: Any] ?? [:] {
            guard let id = Int(key), id >= 0, let entry = v as? [String: Any], let content = entry["content"] as? String, !content.isEmpty else {
                throw FormatError(configPath ?? "tokenizer_config.json", "added_tokens_decoder entry \(key.debugDescription) is not an id with a \"content\"")
            }
            out[id] = Tokenizer.AddedToken(id: id, content: content, special: entry["special"] as? Bool ?? false)
        }
        return out.values.sorted { $0.id < $1.id }
    }
}
