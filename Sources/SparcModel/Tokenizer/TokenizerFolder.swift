import Foundation
import SparcFormats

extension Tokenizer {
    /// The tokenizer of a Hugging Face model folder: `tokenizer.json` when there is one,
    /// else GPT-2 style `vocab.json` + `merges.txt` (GPT-2, OPT), configured from
    /// `tokenizer_config.json` / `special_tokens_map.json` when present.
    public static func load(folder: String) throws -> Tokenizer {
        let url = URL(fileURLWithPath: folder)
        func file(_ name: String) -> String? {
            let p = url.appendingPathComponent(name).path
            return FileManager.default.fileExists(atPath: p) ? p : nil
        }
        if let json = file("tokenizer.json") { return try load(tokenizerJSON: json) }
        guard let vocab = file("vocab.json"), let merges = file("merges.txt") else {
            throw FormatError(folder, "no tokenizer: tokenizer.json is missing, and so are vocab.json + merges.txt (GPT-2 style)")
        }
        let config = try file("tokenizer_config.json").map { try jsonObject($0) } ?? [:]
        let specialMap = try file("special_tokens_map.json").map { try jsonObject($0) } ?? [:]
        func tokenName(_ key: String) -> String? {
            // Either "</s>" or {"content": "</s>", ...}.
            for source in [config, specialMap] {
                if let s = source[key] as? String { return s }
                if let s = (source[key] as? [String: Any])?["content"] as? String { return s }
            }
            return nil
        }
        var special = ["bos_token", "eos_token", "unk_token", "pad_token"].compactMap(tokenName)
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

    private static func jsonObject(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else { throw FormatError(path, "cannot read the file") }
        guard let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { throw FormatError(path, "not a JSON object") }
        return o
    }
}
