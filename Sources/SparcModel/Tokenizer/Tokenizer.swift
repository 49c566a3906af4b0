import Foundation

/// Byte-level BPE tokenizer (GPT-2 / Llama-3 / SmolLM2 family), giving the same ids as
/// the Hugging Face `tokenizers` library for the configurations it accepts.
///
/// Encoding: split the text on added (special) tokens, pre-tokenize each remaining
/// segment, map each piece's UTF-8 bytes to the byte-level alphabet, apply merges by
/// rank, then add the post-processor's BOS/EOS tokens.
public final class Tokenizer: Sendable {
    public struct AddedToken: Sendable, Equatable {
        public let id: Int
        public let content: String
        public let special: Bool
    }

    /// Token strings by id, in the byte-level alphabet (added tokens as written).
    public let tokens: [String]
    /// Merges in rank order, each "left right".
    public let merges: [String]
    public let addedTokens: [AddedToken]
    public let preTokenizer: [PreTokenizerStep]
    /// Ids placed before / after every encoded text (BOS / EOS as the file says).
    public let prefix: [Int]
    public let suffix: [Int]
    public let bosTokenId: Int?
    public let eosTokenId: Int?
    /// If set, a whole pre-token found in the vocabulary is emitted without merging.
    public let ignoreMerges: Bool

    private let vocab: [String: Int]
    private let mergeTable: [UInt64: (rank: Int32, id: Int32)]
    private let pre: PreTokenizer
    private let addedByFirstScalar: [Unicode.Scalar: [AddedToken]]
    private let addedIds: Set<Int>

    public enum Error: Swift.Error, CustomStringConvertible {
        case invalid(String)
        public var description: String { if case .invalid(let m) = self { return m }; return "" }
    }

    public init(tokens: [String], merges: [String], addedTokens: [AddedToken], preTokenizer: [PreTokenizerStep],
                prefix: [Int] = [], suffix: [Int] = [], bosTokenId: Int? = nil, eosTokenId: Int? = nil,
                ignoreMerges: Bool = false) throws {
        self.tokens = tokens
        self.merges = merges
        self.addedTokens = addedTokens
        self.preTokenizer = preTokenizer
        self.prefix = prefix
        self.suffix = suffix
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.ignoreMerges = ignoreMerges
        pre = PreTokenizer(steps: preTokenizer)

        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (id, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = id }
        self.vocab = vocab

        var table: [UInt64: (Int32, Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, m) in merges.enumerated() {
            let parts = m.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let a = vocab[String(parts[0])], let b = vocab[String(parts[1])],
                  let merged = vocab[String(parts[0]) + String(parts[1])] else {
                throw Error.invalid("merge #\(rank) \"\(m)\" refers to tokens missing from the vocabulary")
            }
            let key = UInt64(a) << 32 | UInt64(b)
            if table[key] == nil { table[key] = (Int32(rank), Int32(merged)) }
        }
        mergeTable = table

        for t in addedTokens where t.id < 0 || t.id >= max(tokens.count, 1) || t.content.isEmpty {
            throw Error.invalid("added token \"\(t.content)\" has invalid id \(t.id)")
        }
        for id in prefix + suffix + [bosTokenId, eosTokenId].compactMap({ $0 }) where id < 0 || id >= tokens.count {
            throw Error.invalid("special token id \(id) is outside the vocabulary (\(tokens.count) tokens)")
        }
        addedByFirstScalar = Dictionary(grouping: addedTokens, by: { $0.content.unicodeScalars.first! })
            .mapValues { $0.sorted { $0.content.unicodeScalars.count > $1.content.unicodeScalars.count } }
        addedIds = Set(addedTokens.map(\.id))
    }

    public var vocabularySize: Int { tokens.count }

    // MARK: encoding

    /// Token ids of `text`, with the BOS/EOS tokens the tokenizer's post-processor adds
    /// when `addSpecialTokens` is true.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = addSpecialTokens ? prefix : []
        var cache: [String: [Int]] = [:]
        for segment in splitOnAddedTokens(text) {
            switch segment {
            case .added(let id):
                ids.append(id)
            case .text(let s):
                for piece in pre.split(s) {
                    if let hit = cache[piece] { ids += hit; continue }
                    let out = bpe(piece)
                    cache[piece] = out
                    ids += out
                }
            }
        }
        if addSpecialTokens { ids += suffix }
        return ids
    }

    private enum Segment { case text(String), added(Int) }

    /// Leftmost-longest matching of added tokens in the raw text.
    private func splitOnAddedTokens(_ text: String) -> [Segment] {
        guard !addedTokens.isEmpty else { return [.text(text)] }
        let u = Array(text.unicodeScalars)
        var out: [Segment] = []
        var start = 0, i = 0
        outer: while i < u.count {
            if let candidates = addedByFirstScalar[u[i]] {
                for t in candidates {
                    let c = Array(t.content.unicodeScalars)
                    if i + c.count <= u.count && Array(u[i..<(i + c.count)]) == c {
                        if start < i { out.append(.text(String(String.UnicodeScalarView(u[start..<i])))) }
                        out.append(.added(t.id))
                        i += c.count
                        start = i
                        continue outer
                    }
                }
            }
            i += 1
        }
        if start < u.count { out.append(.text(String(String.UnicodeScalarView(u[start..<u.count])))) }
        return out
    }

    /// BPE on one pre-token: bytes → byte-level symbols → repeatedly apply the
    /// lowest-ranked merge (leftmost first among equal ranks).
    private func bpe(_ piece: String) -> [Int] {
        let mapped = String(String.UnicodeScalarView(piece.utf8.map { ByteLevel.byteToScalar[Int($0)] }))
        if ignoreMerges, let id = vocab[mapped] { return [id] }
        var symbols: [Int32] = []
        symbols.reserveCapacity(mapped.unicodeScalars.count)
        for s in mapped.unicodeScalars {
            // Every byte-level symbol is in a well-formed vocabulary; one that is not is dropped, as tokenizers does without an unk token.
            if let id = vocab[String(s)] { symbols.append(Int32(id)) }
        }
        while symbols.count > 1 {
            var best: (rank: Int32, pos: Int, id: Int32)? = nil
            for p in 0..<(symbols.count - 1) {
                let key = UInt64(UInt32(symbols[p])) << 32 | UInt64(UInt32(symbols[p + 1]))
                if let m = mergeTable[key], best == nil || m.rank < best!.rank { best = (m.rank, p, m.id) }
            }
            guard let b = best else { break }
            symbols[b.pos] = b.id
            symbols.remove(at: b.pos + 1)
        }
        return symbols.map(Int.init)
    }

    // MARK: decoding

    /// The text of `ids`: byte-level symbols back to bytes, decoded as UTF-8 (invalid
    /// sequences become U+FFFD, as in `tokenizers`).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        var out = ""
        func flush() { if !bytes.isEmpty { out += String(decoding: bytes, as: UTF8.self); bytes.removeAll() } }
        for id in ids {
            guard id >= 0 && id < tokens.count else { continue }
            if addedIds.contains(id) {
                if skipSpecialTokens && addedTokens.first(where: { $0.id == id })?.special == true { continue }
                flush()
                out += tokens[id]
                continue
            }
            for s in tokens[id].unicodeScalars {
                if let b = ByteLevel.scalarToByte[s] { bytes.append(b) } else { flush(); out.unicodeScalars.append(s) }
            }
        }
        flush()
        return out
    }

    public func id(of token: String) -> Int? { vocab[token] }
}

/// GPT-2's reversible byte ↔ printable-character table: printable Latin-1 bytes map to
/// themselves, the rest to U+0100 onwards in byte order.
enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            table[b] = Unicode.Scalar(printable ? UInt32(b) : next)!
            if !printable { next += 1 }
        }
        return table
    }()

    static let scalarToByte: [Unicode.Scalar: UInt8] = {
        Dictionary(uniqueKeysWithValues: byteToScalar.enumerated().map { ($1, UInt8($0)) })
    }()
}
