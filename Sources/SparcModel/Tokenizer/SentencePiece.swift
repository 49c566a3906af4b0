import Foundation
import HeapModule
import SparcFormats

/// llama.cpp's SentencePiece tokenizer ("SPM", `tokenizer.ggml.model = "llama"` in GGUF:
/// Llama 1/2, Mistral, Phi-3, Gemma), giving the ids llama.cpp gives.
///
/// Encoding: control, user-defined and unknown tokens are cut out of the raw text first
/// (longest first, as llama.cpp's `tokenizer_st_partition` with `parse_special`); every
/// remaining fragment gets the dummy-prefix space when the file asks for one, its spaces
/// become "▁", and its characters are merged pairwise, always taking the adjacent pair
/// whose merged text is the token with the highest score (ties: leftmost). Characters left
/// outside the vocabulary become their UTF-8 bytes as `<0xAB>` tokens.
struct SentencePieceModel: Sendable {
    /// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
    enum TokenType: Int, Sendable {
        case undefined = 0, normal, unknown, control, userDefined, unused, byte
    }

    /// A token cut out of the raw text before SentencePiece runs.
    struct Special: Sendable {
        let id: Int32
        let scalars: [Unicode.Scalar]
        /// Whitespace on that side of a match is dropped too.
        let lstrip: Bool, rstrip: Bool
    }

    let tokens: [String]
    let scores: [Float]
    let types: [TokenType]
    let addSpacePrefix: Bool
    let vocab: [ExactKey: Int32]
    let unkId: Int32?
    /// Kept to be written back to GGUF.
    let padId: Int32?
    /// Tokens that sentencepiece itself matches inside the text (a `tokenizer.model`'s
    /// user-defined pieces): the text after them continues without a new dummy prefix. After
    /// any other special token the text starts afresh, as llama.cpp and transformers' added
    /// tokens have it. Empty for GGUF files (llama.cpp's rule for every special).
    let inlineIds: Set<Int32>
    /// `<0x00>`…`<0xFF>` (or, as llama.cpp falls back, the byte itself for ASCII); nil: none.
    private let byteIds: [Int32?]
    /// In matching priority: longest UTF-8 text first, then lowest id.
    private let specials: [Special]
    /// Index into `specials` by text.
    private let specialIndex: [ExactKey: Int]
    /// What the specials starting with a scalar look like, to test few lengths per position:
    /// Gemma has 6,000 specials starting with "<" ("<unused0>"…), but few lengths.
    private let specialsByFirst: [Unicode.Scalar: SpecialStart]
    private struct SpecialStart: Sendable {
        var single = false
        var seconds: Set<Unicode.Scalar> = []
        var lengths: Set<Int> = []
    }

    init(tokens: [String], scores: [Float], types: [TokenType], addSpacePrefix: Bool, unkId: Int?, padId: Int? = nil,
         rstripSpecials: Set<Int> = [], inlineIds: Set<Int> = []) {
        self.inlineIds = Set(inlineIds.map(Int32.init))
        self.tokens = tokens
        self.scores = scores
        self.types = types
        self.addSpacePrefix = addSpacePrefix
        var vocab: [ExactKey: Int32] = [:]
        vocab.reserveCapacity(tokens.count)
        for (id, t) in tokens.enumerated() { vocab[ExactKey(t)] = Int32(id) }
        self.vocab = vocab
        byteIds = (0..<256).map { b in
            vocab[ExactKey(ByteLevel.fallbackToken(UInt8(b)))] ?? (b < 128 ? vocab[ExactKey(String(UnicodeScalar(UInt8(b))))] : nil)
        }
        self.unkId = unkId.map(Int32.init)
        self.padId = padId.map(Int32.init)
        // llama.cpp's special-token cache: control, user-defined and unknown tokens.
        let ids = types.indices.filter { [.control, .userDefined, .unknown].contains(types[$0]) && !tokens[$0].isEmpty }
        let ordered = ids.sorted { (tokens[$0].utf8.count, -$0) > (tokens[$1].utf8.count, -$1) }
        specials = ordered.map { Special(id: Int32($0), scalars: Array(tokens[$0].unicodeScalars), lstrip: false, rstrip: rstripSpecials.contains($0)) }
        specialIndex = Dictionary(uniqueKeysWithValues: specials.enumerated().map { (ExactKey(scalars: $1.scalars), $0) })
        var byFirst: [Unicode.Scalar: SpecialStart] = [:]
        for s in specials {
            if s.scalars.count == 1 { byFirst[s.scalars[0], default: SpecialStart()].single = true; continue }
            byFirst[s.scalars[0], default: SpecialStart()].seconds.insert(s.scalars[1])
            byFirst[s.scalars[0], default: SpecialStart()].lengths.insert(s.scalars.count)
        }
        specialsByFirst = byFirst
    }

    /// Tokens whose following whitespace is dropped when they are matched (Phi-3's).
    var rstripIds: Set<Int> { Set(specials.filter(\.rstrip).map { Int($0.id) }) }

    /// BPE merges equivalent to merging by score, as transformers' `SentencePieceExtractor`
    /// makes them: every split of a token into two tokens, ordered by the merged token's
    /// score (highest first), then by the lengths of the left and right parts (longest
    /// first), then by id.
    func merges() -> [(String, String)] {
        struct Merge { let score: Float; let left: Int; let right: Int; let leftLength: Int; let rightLength: Int }
        var all: [Merge] = []
        for (id, t) in tokens.enumerated() {
            let u = Array(t.unicodeScalars)
            guard u.count >= 2 else { continue }
            for k in 1..<u.count {
                guard let l = vocab[ExactKey(scalars: u[..<k])], let r = vocab[ExactKey(scalars: u[k...])] else { continue }
                all.append(Merge(score: scores[id], left: Int(l), right: Int(r), leftLength: k, rightLength: u.count - k))
            }
        }
        all.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.leftLength != b.leftLength { return a.leftLength > b.leftLength }
            if a.rightLength != b.rightLength { return a.rightLength > b.rightLength }
            return (a.left, a.right) < (b.left, b.right)
        }
        return all.map { (tokens[$0.left], tokens[$0.right]) }
    }

    // MARK: encoding

    /// Appends the ids of `text` (no BOS/EOS) to `out`.
    func encode(_ text: String, into out: inout [Int], work: inout Int) {
        let u = Array(text.unicodeScalars)
        var previousSpecial = true  // the first fragment gets the dummy prefix too
        for segment in partition(u) {
            switch segment {
            case .token(let id) where inlineIds.contains(Int32(id)):
                // sentencepiece's prefix "▁" stays a symbol of its own before the token.
                if addSpacePrefix && previousSpecial { merge(["▁"], into: &out, work: &work) }
                out.append(id)
                previousSpecial = false
            case .token(let id):
                out.append(id)
                previousSpecial = true
            case .text(let range):
                var w: [Unicode.Scalar] = []
                w.reserveCapacity(range.count + 1)
                if addSpacePrefix && previousSpecial { w.append("▁") }
                for c in u[range] { w.append(c == " " ? "▁" : c) }  // only U+0020, as llama_escape_whitespace
                merge(w, into: &out, work: &work)
                previousSpecial = false
            }
        }
    }

    /// The raw text cut into text fragments and special tokens. Equivalent to llama.cpp
    /// taking the specials one at a time, longest first, each splitting every text
    /// fragment left so far at its leftmost non-overlapping matches: every occurrence is
    /// considered in (priority, position) order and taken if it does not touch a position
    /// an earlier one took.
    private func partition(_ u: [Unicode.Scalar]) -> [AddedTokenMatcher.Segment] {
        guard !specials.isEmpty, !u.isEmpty else { return u.isEmpty ? [] : [.text(0..<u.count)] }
        var found: [(rank: Int, start: Int)] = []
        for i in u.indices {
            guard let start = specialsByFirst[u[i]] else { continue }
            if start.single, let k = specialIndex[ExactKey(scalars: u[i...i])] { found.append((k, i)) }
            guard i + 1 < u.count, start.seconds.contains(u[i + 1]) else { continue }
            for n in start.lengths where i + n <= u.count {
                if let k = specialIndex[ExactKey(scalars: u[i..<(i + n)])] { found.append((k, i)) }
            }
        }
        guard !found.isEmpty else { return [.text(0..<u.count)] }
        found.sort { ($0.rank, $0.start) < ($1.rank, $1.start) }
        // taken[i]: position i belongs to a special (or whitespace it stripped).
        var taken = [Bool](repeating: false, count: u.count)
        var starts: [Int: (id: Int32, end: Int)] = [:]
        for (rank, start) in found {
            let t = specials[rank]
            var lo = start, hi = start + t.scalars.count
            guard !taken[lo..<hi].contains(true) else { continue }
            // C isspace, as llama.cpp strips: space, \t, \n, \v, \f, \r.
            func isSpace(_ c: Unicode.Scalar) -> Bool { c == " " || (0x09...0x0D).contains(c.value) }
            if t.lstrip { while lo > 0 && !taken[lo - 1] && isSpace(u[lo - 1]) { lo -= 1 } }
            if t.rstrip { while hi < u.count && !taken[hi] && isSpace(u[hi]) { hi += 1 } }
            for p in lo..<hi { taken[p] = true }
            starts[lo] = (t.id, hi)
        }
        var out: [AddedTokenMatcher.Segment] = []
        var i = 0, textStart = 0
        while i < u.count {
            if let (id, end) = starts[i] {
                if textStart < i { out.append(.text(textStart..<i)) }
                out.append(.token(Int(id)))
                i = end
                textStart = end
            } else {
                i += 1
            }
        }
        if textStart < u.count { out.append(.text(textStart..<u.count)) }
        return out
    }

    /// SentencePiece BPE over one escaped fragment, as llama.cpp's `llm_tokenizer_spm_session`.
    private func merge(_ w: [Unicode.Scalar], into out: inout [Int], work: inout Int) {
        let n = w.count
        guard n > 0 else { return }
        // Symbols are runs w[start ..< start + len]; a merged-away symbol has len 0.
        var start = Array(0..<n), len = [Int](repeating: 1, count: n)
        var prev = (0..<n).map { $0 - 1 }, next = (0..<n).map { $0 + 1 < n ? $0 + 1 : -1 }
        var heap = Heap<Bigram>()

        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0, let id = vocab[ExactKey(scalars: w[start[l]..<(start[r] + len[r])])] else { return }
            heap.insert(Bigram(score: scores[Int(id)], left: l, right: r, size: len[l] + len[r]))
        }
        for i in 1..<n { tryAdd(i - 1, i) }
        while let b = heap.popMin() {
            work += 1
            // Stale when either side has changed since the pair was queued.
            guard len[b.left] > 0, len[b.right] > 0, len[b.left] + len[b.right] == b.size else { continue }
            len[b.left] += len[b.right]
            len[b.right] = 0
            next[b.left] = next[b.right]
            if next[b.right] >= 0 { prev[next[b.right]] = b.left }
            tryAdd(prev[b.left], b.left)
            tryAdd(b.left, next[b.left])
        }
        // Every merged symbol is a token; a single character may not be: then its bytes.
        var i = 0
        while i >= 0 {
            let piece = w[start[i]..<(start[i] + len[i])]
            if let id = vocab[ExactKey(scalars: piece)] {
                out.append(Int(id))
            } else {
                for b in String(String.UnicodeScalarView(piece)).utf8 {
                    // llama.cpp requires the byte token; without it the unknown token stands in.
                    if let id = byteIds[Int(b)] ?? unkId { out.append(Int(id)) }
                }
            }
            i = next[i]
        }
    }

    // MARK: decoding

    /// The text of `ids` as llama.cpp's `token_to_piece` renders each token (normal: "▁"
    /// becomes a space; byte tokens: their byte; control, unknown and user-defined: their
    /// text; unused: nothing), minus the dummy-prefix space at the start. Skipped special
    /// tokens are removed first, so the text after a skipped BOS loses its prefix space
    /// as in `tokenizers`' Strip decoder.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var bytes: [UInt8] = []
        var first = true
        for id in ids where id >= 0 && id < tokens.count {
            let type = types[id]
            if skipSpecialTokens && (type == .control || type == .unknown) { continue }
            let startCount = bytes.count
            switch type {
            case .normal:
                for c in tokens[id].unicodeScalars {
                    if c == "▁" { bytes.append(0x20) } else { bytes += String(c).utf8 }
                }
            case .byte:
                if let b = ByteLevel.fallbackByte(tokens[id]) { bytes.append(b) }
            case .control, .unknown, .userDefined:
                bytes += tokens[id].utf8
            case .unused, .undefined:
                break
            }
            if first && addSpacePrefix && bytes.count > startCount && bytes[startCount] == 0x20 { bytes.remove(at: startCount) }
            first = false
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A SentencePiece merge candidate, ordered so that the heap's minimum is the one to merge
/// first: highest score, then the leftmost (llama.cpp's `llm_bigram_spm::comparator`).
private struct Bigram: Comparable {
    let score: Float, left: Int, right: Int, size: Int
    static func < (x: Bigram, y: Bigram) -> Bool { x.score > y.score || (x.score == y.score && x.left < y.left) }
}

// MARK: GGUF

extension Tokenizer {
    /// Reads a SentencePiece vocabulary (`tokenizer.ggml.model = "llama"`): tokens, scores
    /// and token types of equal length, the byte tokens `<0x00>`…`<0xFF>`, special ids in
    /// range. Defaults are llama.cpp's: BOS 1, EOS 2, unknown 0, `add_bos_token` true,
    /// `add_space_prefix` true.
    static func loadSentencePiece(gguf: GGUFFile) throws -> Tokenizer {
        let md = gguf.metadata
        func fail(_ m: String) -> FormatError { FormatError(gguf.path, m) }

        guard case .array(let tokenType, let tokenValues)? = md["tokenizer.ggml.tokens"] else {
            throw fail("tokenizer.ggml.tokens is missing or not an array")
        }
        guard tokenType == .string, !tokenValues.isEmpty else { throw fail("tokenizer.ggml.tokens must be a non-empty array of strings") }
        guard tokenValues.count < Int(Int32.max) else { throw fail("tokenizer.ggml.tokens has \(tokenValues.count) entries, too many") }
        // An empty token becomes "[EMPTY_<id>]", as llama.cpp names it.
        let tokens = tokenValues.enumerated().map { i, v in (v.string ?? "").isEmpty ? "[EMPTY_\(i)]" : v.string! }
        let n = tokens.count

        guard case .array(let scoreType, let scoreValues)? = md["tokenizer.ggml.scores"] else {
            throw fail("tokenizer.ggml.scores is missing or not an array (a SentencePiece vocabulary needs a score per token)")
        }
        guard [.float32, .float64, .int32].contains(scoreType) else {
            throw fail("tokenizer.ggml.scores must be an array of float32 (it holds \(scoreType))")
        }
        guard scoreValues.count == n else { throw fail("tokenizer.ggml.scores has \(scoreValues.count) entries for \(n) tokens") }
        let scores = scoreValues.map { Float($0.double ?? .nan) }
        if let bad = scores.firstIndex(where: \.isNaN) { throw fail("tokenizer.ggml.scores[\(bad)] is NaN") }

        guard case .array(let typeType, let typeValues)? = md["tokenizer.ggml.token_type"] else {
            throw fail("tokenizer.ggml.token_type is missing or not an array")
        }
        guard typeType == .int32 else { throw fail("tokenizer.ggml.token_type must be an array of int32 (it holds \(typeType))") }
        guard typeValues.count == n else { throw fail("tokenizer.ggml.token_type has \(typeValues.count) entries for \(n) tokens") }
        var types: [SentencePieceModel.TokenType] = []
        types.reserveCapacity(n)
        for (i, v) in typeValues.enumerated() {
            guard let raw = v.int, let t = SentencePieceModel.TokenType(rawValue: raw) else {
                throw fail("tokenizer.ggml.token_type[\(i)] = \(v.int.map(String.init) ?? "?") is not a token type (0 undefined, 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)")
            }
            if t == .byte && ByteLevel.fallbackByte(tokens[i]) == nil {
                throw fail("token \(i) \(tokens[i].debugDescription) has type byte but is not of the form <0xAB>")
            }
            types.append(t)
        }
        var seen: [ExactKey: Int] = [:]
        for (i, t) in tokens.enumerated() {
            if let j = seen.updateValue(i, forKey: ExactKey(t)) { throw fail("tokens \(j) and \(i) are both \(t.debugDescription)") }
        }

        func id(_ key: String, default d: Int?) throws -> Int? {
            guard let v = md["tokenizer.ggml.\(key)"] else { return d.flatMap { $0 < n ? $0 : nil } }
            guard let i = v.int, i >= 0, i < n else {
                throw fail("tokenizer.ggml.\(key) = \(v.int.map(String.init) ?? "\(v)") is not a token id (the vocabulary has \(n) tokens)")
            }
            return i
        }
        func flag(_ key: String, default d: Bool) throws -> Bool {
            guard let v = md["tokenizer.ggml.\(key)"] else { return d }
            guard let b = v.bool else { throw fail("tokenizer.ggml.\(key) must be a bool") }
            return b
        }
        let bos = try id("bos_token_id", default: 1), eos = try id("eos_token_id", default: 2)
        let unk = try id("unknown_token_id", default: 0)
        let pad = try id("padding_token_id", default: nil)
        let addBos = try flag("add_bos_token", default: true), addEos = try flag("add_eos_token", default: false)
        let addSpacePrefix = try flag("add_space_prefix", default: true)
        if addBos && bos == nil { throw fail("add_bos_token is set but the file has no BOS token") }
        if addEos && eos == nil { throw fail("add_eos_token is set but the file has no EOS token") }

        // llama.cpp gives Phi-3's special tokens rstrip (by model name), except these.
        var rstrip = Set<Int>()
        let name = md["general.name"]?.string?.lowercased() ?? ""
        if name.contains("phi-3") || name.contains("phi3") {
            for (i, t) in types.enumerated() where [.control, .userDefined, .unknown].contains(t) { rstrip.insert(i) }
            for (i, t) in tokens.enumerated() where ["<unk>", "<s>", "<|endoftext|>"].contains(t) { rstrip.remove(i) }
        }

        let model = SentencePieceModel(tokens: tokens, scores: scores, types: types, addSpacePrefix: addSpacePrefix,
                                       unkId: unk, padId: pad, rstripSpecials: rstrip)
        return try Tokenizer(sentencePiece: model, prefix: addBos ? [bos!] : [], suffix: addEos ? [eos!] : [],
                             bosTokenId: bos, eosTokenId: eos)
    }

    /// A tokenizer.json in the form transformers' Llama / Gemma converters give a
    /// SentencePiece BPE vocabulary: a BPE model with byte fallback and merges ordered by
    /// score, spaces replaced by "▁" (after a "▁" prefix with the dummy prefix), control,
    /// unknown and user-defined tokens as added tokens matched in the raw text.
    func sentencePieceTokenizerJSON(_ spm: SentencePieceModel) -> [String: Any] {
        var vocab: [String: Int] = [:]
        for (id, t) in tokens.enumerated() { vocab[t] = id }
        let rstrip = spm.rstripIds
        let added: [[String: Any]] = addedTokens.map {
            ["id": $0.id, "content": $0.content, "single_word": false, "lstrip": false, "rstrip": rstrip.contains($0.id),
             "normalized": false, "special": $0.special]
        }
        func replace(_ from: String, _ to: String) -> [String: Any] { ["type": "Replace", "pattern": ["String": from], "content": to] }
        let normalizer: [String: Any] = spm.addSpacePrefix
            ? ["type": "Sequence", "normalizers": [["type": "Prepend", "prepend": "▁"], replace(" ", "▁")]]
            : replace(" ", "▁")
        var decoders: [[String: Any]] = [replace("▁", " "), ["type": "ByteFallback"], ["type": "Fuse"]]
        if spm.addSpacePrefix { decoders.append(["type": "Strip", "content": " ", "start": 1, "stop": 0]) }
        func special(_ id: Int) -> [String: Any] { ["SpecialToken": ["id": tokens[id], "type_id": 0]] }
        let single = prefix.map(special) + [["Sequence": ["id": "A", "type_id": 0]]] + suffix.map(special)
        let pair = single + prefix.map(special) + [["Sequence": ["id": "B", "type_id": 1]]] + suffix.map(special)
        let specials = Dictionary((prefix + suffix).map { (tokens[$0], ["id": tokens[$0], "ids": [$0], "tokens": [tokens[$0]]] as [String: Any]) }) { a, _ in a }
        return [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": normalizer, "pre_tokenizer": NSNull(),
            "post_processor": ["type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials],
            "decoder": ["type": "Sequence", "decoders": decoders],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": spm.unkId.map { tokens[Int($0)] as Any } ?? NSNull(),
                      "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(), "fuse_unk": true,
                      "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": spm.merges().map { [$0.0, $0.1] }],
        ]
    }

    /// `tokenizer.ggml.*` metadata of a SentencePiece tokenizer, as llama.cpp reads it.
    func addSentencePieceMetadata(_ spm: SentencePieceModel, to w: inout GGUFWriter) {
        w.add("tokenizer.ggml.model", .string("llama"))
        w.add("tokenizer.ggml.pre", .string("default"))
        w.add("tokenizer.ggml.tokens", .array(.string, spm.tokens.map { .string($0) }))
        w.add("tokenizer.ggml.scores", .array(.float32, spm.scores.map { .float32($0) }))
        w.add("tokenizer.ggml.token_type", .array(.int32, spm.types.map { .int32(Int32($0.rawValue)) }))
        if let b = bosTokenId { w.add("tokenizer.ggml.bos_token_id", .uint32(UInt32(b))) }
        if let e = eosTokenId { w.add("tokenizer.ggml.eos_token_id", .uint32(UInt32(e))) }
        if let u = spm.unkId { w.add("tokenizer.ggml.unknown_token_id", .uint32(UInt32(u))) }
        if let p = spm.padId { w.add("tokenizer.ggml.padding_token_id", .uint32(UInt32(p))) }
        w.add("tokenizer.ggml.add_bos_token", .bool(!prefix.isEmpty))
        w.add("tokenizer.ggml.add_eos_token", .bool(!suffix.isEmpty))
        w.add("tokenizer.ggml.add_space_prefix", .bool(spm.addSpacePrefix))
    }
}
