import Foundation

/// BPE tokenizer as the Hugging Face `tokenizers` library defines it (byte-level GPT-2 /
/// Llama-3 / SmolLM2 style and SentencePiece-style with byte fallback), giving the same
/// ids for the configurations it accepts; or llama.cpp's SentencePiece tokenizer from a
/// GGUF file or a `tokenizer.model` (`SentencePieceModel`), giving llama.cpp's ids (and,
/// for a `tokenizer.model`, sentencepiece's).
///
/// Encoding: split the text on added tokens, normalize each remaining segment, split it
/// on normalized added tokens, pre-tokenize, map to GPT-2's byte alphabet when the
/// pre-tokenizer is byte-level, run BPE on each piece (cached), then add the
/// post-processor's BOS/EOS tokens.
public final class Tokenizer: Sendable {
    public struct AddedToken: Sendable, Equatable {
        public let id: Int
        public let content: String
        public let special: Bool
        /// Also take the whitespace before / after a match.
        public var lstrip = false, rstrip = false
        /// Match only when not inside a word.
        public var singleWord = false
        /// Matched in the normalized text (else in the raw text).
        public var normalized = false

        public init(id: Int, content: String, special: Bool, lstrip: Bool = false, rstrip: Bool = false,
                    singleWord: Bool = false, normalized: Bool? = nil) {
            self.id = id
            self.content = content
            self.special = special
            self.lstrip = lstrip
            self.rstrip = rstrip
            self.singleWord = singleWord
            self.normalized = normalized ?? !special  // tokenizers' default
        }
    }

    /// Token strings by id (byte-level alphabet for byte-level models; added tokens as
    /// written; "" for ids the file leaves out).
    public let tokens: [String]
    /// Merges in rank order, each "left right".
    public let merges: [String]
    public let addedTokens: [AddedToken]
    public let normalizer: [NormalizerStep]
    public let preTokenizer: [PreTokenizerStep]
    /// nil: no decoder, tokens are joined with spaces (as `tokenizers` does).
    public let decoder: [DecoderStep]?
    public let options: BPEOptions
    /// Ids placed before / after every encoded text (BOS / EOS as the file says).
    public let prefix: [Int]
    public let suffix: [Int]
    public let bosTokenId: Int?
    public let eosTokenId: Int?
    public var ignoreMerges: Bool { options.ignoreMerges }
    /// The tokenizer.json this was read from, written back unchanged when saving.
    let sourceJSON: Data?

    private let engine: Engine
    private let norm: Normalizer
    private let pre: PreTokenizer
    private let dec: Decoder?
    /// Pre-tokens are mapped to GPT-2's byte alphabet before BPE.
    private let byteLevel: Bool
    private let rawAdded: AddedTokenMatcher
    private let normalizedAdded: AddedTokenMatcher
    private let specialIds: Set<Int>
    private let cache = PieceCache()

    private enum Engine: Sendable {
        case bpe(BPEModel)
        case sentencePiece(SentencePieceModel)
    }

    public enum Error: Swift.Error, CustomStringConvertible {
        case invalid(String)
        public var description: String { if case .invalid(let m) = self { return m }; return "" }
    }

    public init(tokens: [String], merges: [String], addedTokens: [AddedToken], preTokenizer: [PreTokenizerStep],
                normalizer: [NormalizerStep] = [], decoder: [DecoderStep]? = [.byteLevel], options: BPEOptions = BPEOptions(),
                prefix: [Int] = [], suffix: [Int] = [], bosTokenId: Int? = nil, eosTokenId: Int? = nil,
                ignoreMerges: Bool = false, sourceJSON: Data? = nil, mergePairs: [(String, String)]? = nil) throws {
        var options = options
        if ignoreMerges { options.ignoreMerges = true }
        self.tokens = tokens
        self.merges = merges
        self.addedTokens = addedTokens
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.decoder = decoder
        self.options = options
        self.prefix = prefix
        self.suffix = suffix
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.sourceJSON = sourceJSON
        norm = try Normalizer(steps: normalizer)
        pre = try PreTokenizer(steps: preTokenizer)
        dec = try decoder.map { try Decoder(steps: $0) }
        byteLevel = preTokenizer.contains { if case .byteLevel = $0 { return true } else { return false } }

        // The model's vocabulary is every id the file gives that is not only an added token.
        let addedIds = Set(addedTokens.map(\.id))
        var vocab: [ExactKey: Int32] = [:]
        var single: [Unicode.Scalar: Int32] = [:]
        vocab.reserveCapacity(tokens.count)
        for (id, t) in tokens.enumerated() where !t.isEmpty {
            let key = ExactKey(t)
            if vocab[key] == nil || !addedIds.contains(id) { vocab[key] = Int32(id) }
            var it = t.unicodeScalars.makeIterator()
            if let c = it.next(), it.next() == nil, single[c] == nil || !addedIds.contains(id) { single[c] = Int32(id) }
        }

        let prefixLen = options.continuingSubwordPrefix?.unicodeScalars.count ?? 0
        // tokenizer.json's newer [left, right] form gives the pairs (tokens may hold spaces);
        // "left right" strings are split on their first space.
        var pairs: [(String, String)] = []
        if let mergePairs {
            pairs = mergePairs
        } else {
            pairs.reserveCapacity(merges.count)
            for (rank, m) in merges.enumerated() {
                // Split on the space scalar: by Characters, a space followed by a combining
                // mark would be one grapheme and not split at all.
                let u = m.unicodeScalars
                guard let space = u.firstIndex(of: " ") else {
                    throw Error.invalid("merge #\(rank) \"\(m)\" is not two tokens separated by a space")
                }
                pairs.append((String(u[..<space]), String(u[u.index(after: space)...])))
            }
        }
        var table = PairTable(capacityFor: pairs.count)
        for (rank, (a, b)) in pairs.enumerated() {
            let m = a + " " + b
            // With a subword prefix, "a ##b" merges to "ab".
            let right = prefixLen > 0 && b.hasPrefix(options.continuingSubwordPrefix ?? "") ? String(b.unicodeScalars.dropFirst(prefixLen)) : b
            guard let ia = vocab[ExactKey(a)], let ib = vocab[ExactKey(b)], let merged = vocab[ExactKey(a + right)] else {
                throw Error.invalid("merge #\(rank) \"\(m)\" refers to tokens missing from the vocabulary")
            }
            // A repeated pair keeps its last rank, as tokenizers' HashMap does.
            table.set(BPEModel.pairKey(ia, ib), UInt64(rank) << 32 | UInt64(UInt32(merged)))
        }

        var unkId: Int32? = nil
        if let unk = options.unkToken {
            guard let id = vocab[ExactKey(unk)] else { throw Error.invalid("unk_token \"\(unk)\" is not in the vocabulary") }
            unkId = id
        }
        var byteIds: [Int32]? = nil
        if options.byteFallback {
            let ids = (0..<256).map { vocab[ExactKey(ByteLevel.fallbackToken(UInt8($0)))] }
            if ids.allSatisfy({ $0 != nil }) { byteIds = ids.compactMap { $0 } }
        }
        let ascii = (0..<128).map { single[Unicode.Scalar(UInt8($0))] ?? -1 }
        engine = .bpe(BPEModel(merges: table, singleScalar: single, asciiIds: ascii, vocab: vocab, byteIds: byteIds, unkId: unkId, options: options))

        for t in addedTokens where t.id < 0 || t.id >= max(tokens.count, 1) || t.content.isEmpty {
            throw Error.invalid("added token \"\(t.content)\" has invalid id \(t.id)")
        }
        for id in prefix + suffix + [bosTokenId, eosTokenId].compactMap({ $0 }) where id < 0 || id >= tokens.count {
            throw Error.invalid("special token id \(id) is outside the vocabulary (\(tokens.count) tokens)")
        }
        // Normalized added tokens are looked for in normalized text, so normalize them too.
        let normed = try Normalizer(steps: normalizer)
        rawAdded = AddedTokenMatcher(addedTokens.filter { !$0.normalized }.map { ($0, Array($0.content.unicodeScalars)) })
        normalizedAdded = AddedTokenMatcher(addedTokens.filter(\.normalized).map { ($0, normed.normalize(Array($0.content.unicodeScalars))) })
        specialIds = Set(addedTokens.filter(\.special).map(\.id))
    }

    /// A SentencePiece tokenizer read from GGUF or a `tokenizer.model`. Control and unknown
    /// tokens are its special added tokens, user-defined ones its other added tokens (all
    /// matched in raw text).
    init(sentencePiece spm: SentencePieceModel, prefix: [Int], suffix: [Int], bosTokenId: Int?, eosTokenId: Int?) throws {
        tokens = spm.tokens
        merges = []
        addedTokens = spm.types.indices.compactMap { id in
            switch spm.types[id] {
            case .control, .unknown: return AddedToken(id: id, content: spm.tokens[id], special: true)
            case .userDefined: return AddedToken(id: id, content: spm.tokens[id], special: false, normalized: false)
            default: return nil
            }
        }
        normalizer = []
        preTokenizer = []
        decoder = nil
        options = BPEOptions()
        self.prefix = prefix
        self.suffix = suffix
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        sourceJSON = nil
        engine = .sentencePiece(spm)
        norm = try Normalizer(steps: [])
        pre = try PreTokenizer(steps: [])
        dec = nil
        byteLevel = false
        rawAdded = AddedTokenMatcher([])
        normalizedAdded = AddedTokenMatcher([])
        specialIds = Set(addedTokens.filter(\.special).map(\.id))
        for id in prefix + suffix + [bosTokenId, eosTokenId].compactMap({ $0 }) where id < 0 || id >= tokens.count {
            throw Error.invalid("special token id \(id) is outside the vocabulary (\(tokens.count) tokens)")
        }
    }

    /// The SentencePiece model when this tokenizer is llama.cpp's SPM (from GGUF or a `tokenizer.model`).
    var sentencePiece: SentencePieceModel? {
        if case .sentencePiece(let m) = engine { return m }
        return nil
    }

    public var vocabularySize: Int { tokens.count }

    /// Checks that every id this tokenizer can produce (vocabulary, added tokens, BOS/EOS
    /// and post-processor tokens) is below `vocabularySize`, the model's embedding rows.
    public func validate(vocabularySize size: Int) throws {
        var problems: [String] = []
        let used = tokens.indices.last { !tokens[$0].isEmpty } ?? -1
        if used >= size { problems.append("vocabulary has ids up to \(used)") }
        if let t = addedTokens.filter({ $0.id >= size }).max(by: { $0.id < $1.id }) {
            problems.append("added token \"\(t.content)\" has id \(t.id)")
        }
        for (name, id) in [("BOS", bosTokenId), ("EOS", eosTokenId)] {
            if let id, id >= size { problems.append("\(name) token has id \(id)") }
        }
        if let id = (prefix + suffix).first(where: { $0 >= size }) { problems.append("the post-processor adds id \(id)") }
        if !problems.isEmpty {
            throw Error.invalid("the tokenizer does not fit a model with \(size) token embeddings: " + problems.joined(separator: "; "))
        }
    }

    // MARK: encoding

    /// Token ids of `text`, with the BOS/EOS tokens the tokenizer's post-processor adds
    /// when `addSpecialTokens` is true.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = addSpecialTokens ? prefix : []
        switch engine {
        case .sentencePiece(let spm):
            var work = 0
            spm.encode(text, into: &ids, work: &work)
        case .bpe(let model):
            forEachPiece(text, added: { ids.append($0) }) { piece in
                for id in cachedTokenize(piece, model) { ids.append(Int(id)) }
            }
        }
        if addSpecialTokens { ids += suffix }
        return ids
    }

    /// Heap operations BPE does on `text` (no cache): for checking that work grows linearly.
    func bpeWork(_ text: String) -> Int {
        var work = 0
        switch engine {
        case .sentencePiece(let spm):
            var ids: [Int] = []
            spm.encode(text, into: &ids, work: &work)
        case .bpe(let model):
            forEachPiece(text, added: { _ in }) { _ = model.tokenize(byteLevel ? ByteLevel.map($0) : $0, work: &work) }
        }
        return work
    }

    /// The pipeline up to the model: added-token ids and pre-tokens, in order.
    private func forEachPiece(_ text: String, added: (Int) -> Void, piece: ([Unicode.Scalar]) -> Void) {
        let u = Array(text.unicodeScalars)
        for segment in rawAdded.split(u) {
            guard case .text(let range) = segment else {
                if case .token(let id) = segment { added(id) }
                continue
            }
            // Empty segments are dropped before and after normalizing (as tokenizers'
            // PreTokenizedString::split), so Metaspace never sees an empty input.
            guard !range.isEmpty else { continue }
            let normalized = norm.normalize(Array(u[range]))
            for inner in normalizedAdded.split(normalized) {
                guard case .text(let r) = inner else {
                    if case .token(let id) = inner { added(id) }
                    continue
                }
                guard !r.isEmpty else { continue }
                let start = Piece(text: Array(normalized[r]), atStart: range.lowerBound == 0 && r.lowerBound == 0)
                for p in pre.split([start]) { piece(p.text) }
            }
        }
    }

    /// BPE ids of a pre-token. The cache is keyed by the pre-token before the byte-level
    /// mapping (the mapping is a function of it), so a hit skips the mapping too.
    private func cachedTokenize(_ piece: [Unicode.Scalar], _ model: BPEModel) -> [Int32] {
        // Long pieces are rare and not worth the memory (tokenizers' cache skips them too).
        guard piece.count < PieceCache.maxPieceLength else { return model.tokenize(byteLevel ? ByteLevel.map(piece) : piece) }
        if let hit = cache.get(piece) { return hit }
        let ids = model.tokenize(byteLevel ? ByteLevel.map(piece) : piece)
        cache.put(piece, ids)
        return ids
    }

    // MARK: decoding

    /// The text of `ids` through the file's decoder (byte-level: bytes decoded as UTF-8,
    /// invalid sequences become U+FFFD, as in `tokenizers`). Unknown ids are skipped.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        if case .sentencePiece(let spm) = engine { return spm.decode(ids, skipSpecialTokens: skipSpecialTokens) }
        let strings = ids.compactMap { id -> String? in
            guard id >= 0 && id < tokens.count, !tokens[id].isEmpty else { return nil }
            if skipSpecialTokens && specialIds.contains(id) { return nil }
            return tokens[id]
        }
        guard let dec else { return strings.joined(separator: " ") }
        return dec.decode(strings)
    }

    public func id(of token: String) -> Int? {
        switch engine {
        case .bpe(let model): return model.vocab[ExactKey(token)].map(Int.init)
        case .sentencePiece(let spm): return spm.vocab[ExactKey(token)].map(Int.init)
        }
    }
}

/// A bounded, thread-safe map from pre-token to ids. When full it starts over, which
/// keeps it useful on long varied text without growing.
final class PieceCache: @unchecked Sendable {  // all state behind `lock`
    static let capacity = 50_000
    static let maxPieceLength = 256
    private var map: [Key: [Int32]] = [:]
    private let lock = NSLock()

    /// The scalars with a precomputed FNV-1a hash: hashing one word through `Hasher` is
    /// much cheaper than feeding it every scalar.
    private struct Key: Hashable {
        let scalars: [Unicode.Scalar]
        let h: UInt64
        init(_ s: [Unicode.Scalar]) {
            scalars = s
            var h: UInt64 = 0xCBF2_9CE4_8422_2325
            for c in s { h = (h ^ UInt64(c.value)) &* 0x100_0000_01B3 }
            self.h = h
        }
        func hash(into hasher: inout Hasher) { hasher.combine(h) }
        static func == (a: Key, b: Key) -> Bool { a.h == b.h && a.scalars == b.scalars }
    }

    func get(_ key: [Unicode.Scalar]) -> [Int32]? {
        let k = Key(key)
        lock.lock(); defer { lock.unlock() }
        return map[k]
    }

    func put(_ key: [Unicode.Scalar], _ ids: [Int32]) {
        let k = Key(key)
        lock.lock(); defer { lock.unlock() }
        if map.count >= Self.capacity { map.removeAll(keepingCapacity: true) }
        map[k] = ids
    }
}

/// Finds added tokens in text: leftmost-longest matches (as tokenizers' Aho-Corasick
/// search), with the `single_word`, `lstrip` and `rstrip` rules of `AddedVocabulary`.
struct AddedTokenMatcher: Sendable {
    enum Segment { case text(Range<Int>), token(Int) }
    private let byFirst: [Unicode.Scalar: [(token: Tokenizer.AddedToken, scalars: [Unicode.Scalar])]]
    /// ASCII first characters of some token, to skip the dictionary on most characters.
    private let asciiFirst: [Bool]
    private let anyNonASCIIFirst: Bool

    init(_ tokens: [(Tokenizer.AddedToken, [Unicode.Scalar])]) {
        var m: [Unicode.Scalar: [(token: Tokenizer.AddedToken, scalars: [Unicode.Scalar])]] = [:]
        for (t, s) in tokens { if let f = s.first { m[f, default: []].append((t, s)) } }
        byFirst = m.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }
        asciiFirst = (0..<128).map { m[Unicode.Scalar(UInt8($0))] != nil }
        anyNonASCIIFirst = m.keys.contains { !$0.isASCII }
    }

    func split(_ u: [Unicode.Scalar]) -> [Segment] {
        guard !byFirst.isEmpty else { return [.text(0..<u.count)] }
        var out: [Segment] = []
        var start = 0, i = 0
        outer: while i < u.count {
            let c = u[i]
            if c.value < 128 ? !asciiFirst[Int(c.value)] : !anyNonASCIIFirst { i += 1; continue }
            guard let candidates = byFirst[c] else { i += 1; continue }
            for (t, c) in candidates where i + c.count <= u.count && u[i..<(i + c.count)].elementsEqual(c) {
                var lo = i, hi = i + c.count
                if t.singleWord {
                    let before = lo == 0 || !isAlphanumeric(u[lo - 1])
                    let after = hi == u.count || !isAlphanumeric(u[hi])
                    // tokenizers skips the whole match and searches on after it.
                    if !(before && after) { i = hi; continue outer }
                }
                if t.lstrip { while lo > start && isSpace(u[lo - 1]) { lo -= 1 } }
                if t.rstrip { while hi < u.count && isSpace(u[hi]) { hi += 1 } }
                if start < lo { out.append(.text(start..<lo)) }
                out.append(.token(t.id))
                i = hi
                start = hi
                continue outer
            }
            i += 1
        }
        if start < u.count || out.isEmpty { out.append(.text(start..<u.count)) }
        return out
    }
}

/// GPT-2's reversible byte ↔ printable-character table: printable Latin-1 bytes map to
/// themselves, the rest to U+0100 onwards in byte order.
enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            table[b] = Unicode.Scalar(printable ? UInt32(b) : next) ?? " "
            if !printable { next += 1 }
        }
        return table
    }()

    static let scalarToByte: [Unicode.Scalar: UInt8] = {
        Dictionary(uniqueKeysWithValues: byteToScalar.enumerated().map { ($1, UInt8($0)) })
    }()

    /// The UTF-8 bytes of `u`, each as its printable character.
    static func map(_ u: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(u.count)
        let table = byteToScalar
        for c in u {
            let v = c.value
            // UTF-8 by hand: String(c).utf8 would allocate per character.
            if v < 0x80 {
                out.append(table[Int(v)])
            } else if v < 0x800 {
                out.append(table[Int(0xC0 | v >> 6)]); out.append(table[Int(0x80 | v & 0x3F)])
            } else if v < 0x10000 {
                out.append(table[Int(0xE0 | v >> 12)]); out.append(table[Int(0x80 | v >> 6 & 0x3F)])
                out.append(table[Int(0x80 | v & 0x3F)])
            } else {
                out.append(table[Int(0xF0 | v >> 18)]); out.append(table[Int(0x80 | v >> 12 & 0x3F)])
                out.append(table[Int(0x80 | v >> 6 & 0x3F)]); out.append(table[Int(0x80 | v & 0x3F)])
            }
        }
        return out
    }

    /// "<0x41>" for byte 0x41, the SentencePiece byte-fallback token names.
    static func fallbackToken(_ b: UInt8) -> String {
        let hex = String(b, radix: 16, uppercase: true)
        return "<0x" + (hex.count == 1 ? "0" + hex : hex) + ">"
    }

    /// The byte of a "<0xAB>" token, as tokenizers' ByteFallback decoder reads it.
    static func fallbackByte(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == 60, u[1] == 48, u[2] == 120, u[5] == 62 else { return nil }  // "<0x" … ">"
        return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
    }
}
