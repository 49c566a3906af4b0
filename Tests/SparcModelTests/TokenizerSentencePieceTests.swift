import Foundation
import SparcFormats
import Testing
@testable import SparcModel

/// llama.cpp's SentencePiece tokenizer from GGUF (`tokenizer.ggml.model = "llama"`), on
/// llama.cpp's own test vectors: the vocab-only GGUFs `ggml-vocab-{llama-spm,phi-3}.gguf`
/// with their `.inp` / `.out` files, committed under Fixtures/tokenizers/llama.cpp.
@Suite struct TokenizerSentencePieceTests {
    static let dir = Fixtures.path("tokenizers/llama.cpp")

    /// The `.inp` texts and `.out` ids of a llama.cpp test vocabulary.
    static func vectors(_ vocab: String) throws -> [(text: String, ids: [Int])] {
        let base = dir + "/ggml-vocab-\(vocab).gguf"
        let inp = try String(contentsOfFile: base + ".inp", encoding: .utf8)
        let out = try String(contentsOfFile: base + ".out", encoding: .utf8)
        var texts = inp.components(separatedBy: "\n__ggml_vocab_test__\n")
        if texts.last == "" { texts.removeLast() }
        let expected = out.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.split(separator: " ").compactMap { Int($0) }
        }
        return zip(texts, expected).map { ($0, $1) }
    }

    static func load(_ vocab: String) throws -> Tokenizer {
        try Tokenizer.load(gguf: GGUFFile(path: dir + "/ggml-vocab-\(vocab).gguf"))
    }

    @Test(arguments: ["llama-spm", "phi-3"])
    func matchesLlamaCppVectors(vocab: String) throws {
        let tok = try Self.load(vocab)
        let cases = try Self.vectors(vocab)
        #expect(cases.count > 30)
        for (text, ids) in cases {
            // test-tokenizer-0 encodes without BOS; every id must match.
            #expect(tok.encode(text, addSpecialTokens: false) == ids, "\(vocab): \(text.debugDescription)")
            // llama.cpp's detokenizer gives the text back (the dummy-prefix space removed).
            #expect(tok.decode(ids) == text, "\(vocab) decoding: \(text.debugDescription)")
        }
    }

    @Test func specialTokensAndPrefixSpace() throws {
        let tok = try Self.load("llama-spm")
        #expect(tok.bosTokenId == 1 && tok.eosTokenId == 2 && tok.prefix == [1] && tok.suffix.isEmpty)
        // add_bos_token: BOS first; "Hello world" as in the vectors.
        #expect(tok.encode("Hello world") == [1, 15043, 3186])
        // Control tokens in the text are matched whole, and the text after each gets the
        // dummy prefix again (llama.cpp's is_prev_special).
        #expect(tok.encode("<s>Hello</s>world", addSpecialTokens: false) == [1, 15043, 2, 3186])
        #expect(tok.decode([1, 15043, 2, 3186]) == "<s> Hello</s> world")
        #expect(tok.decode([1, 15043, 2, 3186], skipSpecialTokens: true) == "Hello world")
        // Byte fallback: a character outside the vocabulary becomes its UTF-8 bytes.
        let emoji = tok.encode("🦙", addSpecialTokens: false)
        #expect(emoji.count == 5 && emoji.dropFirst().allSatisfy { (3...258).contains($0) })
        #expect(tok.decode(emoji) == "🦙")
        #expect(tok.encode("", addSpecialTokens: true) == [1])
        #expect(tok.id(of: "▁Hello") == 15043)
        try tok.validate(vocabularySize: 32000)
    }

    @Test func phi3SpecialTokensStripSpaceAfterThem() throws {
        // llama.cpp gives Phi-3's special tokens rstrip (by general.name); "</s>" is a
        // user-defined token there, "<|user|>" a control token.
        let tok = try Self.load("phi-3")
        let user = try #require(tok.id(of: "<|user|>")), end = try #require(tok.id(of: "</s>"))
        let ids = tok.encode("<|user|>  \nHi</s> there", addSpecialTokens: false)
        #expect(ids.first == user && ids.contains(end))
        #expect(ids == [user] + tok.encode("Hi", addSpecialTokens: false) + [end] + tok.encode("there", addSpecialTokens: false))
    }

    @Test func mergingIsLinearish() throws {
        // Long runs without spaces: the heap does O(n log n) work, not O(n²).
        let tok = try Self.load("llama-spm")
        let text = String(repeating: "abcdefghij", count: 2000)
        #expect(tok.bpeWork(text) < 20 * text.count)
    }

    @Test func roundTripsThroughGGUFWriting() throws {
        // The SentencePiece metadata sparc writes reads back to the same tokenizer.
        let tok = try Self.load("phi-3")
        var w = GGUFWriter()
        w.add("general.architecture", .string("llama"))
        try tok.addGGUFMetadata(to: &w, vocabSize: tok.vocabularySize)
        let tmp = TempDir()
        try w.write(to: tmp.file("v.gguf"))
        let back = try Tokenizer.load(gguf: GGUFFile(path: tmp.file("v.gguf")))
        #expect(back.tokens == tok.tokens && back.prefix == tok.prefix && back.eosTokenId == tok.eosTokenId)
        for (text, ids) in try Self.vectors("phi-3") { #expect(back.encode(text, addSpecialTokens: false) == ids) }
    }

    @Test(arguments: ["llama-spm", "phi-3"])
    func writesATokenizerJSONThatEncodesTheSame(vocab: String) throws {
        // The tokenizer.json sparc writes for a GGUF SentencePiece vocabulary (BPE with
        // merges by score, as transformers converts them) gives llama.cpp's ids again.
        let tok = try Self.load(vocab)
        let tmp = TempDir()
        try tok.tokenizerJSONData().write(to: URL(fileURLWithPath: tmp.file("tokenizer.json")))
        let hf = try Tokenizer.load(tokenizerJSON: tmp.file("tokenizer.json"))
        for (text, ids) in try Self.vectors(vocab) {
            #expect(hf.encode(text, addSpecialTokens: false) == ids, "\(vocab): \(text.debugDescription)")
            #expect(hf.decode(ids) == text)
        }
        for text in ["<s>Hello</s>world", "<|user|>  \nHi</s> there", "🦙 x"] {
            #expect(hf.encode(text) == tok.encode(text), "\(text.debugDescription)")
        }
    }
}

/// Gemma 3's GGUF tokenizer (SentencePiece, no dummy prefix, 6k control and 165
/// user-defined tokens: whitespace runs, HTML tags) against Google's `sentencepiece` on the
/// same vocabulary (scripts/make_gemma3_tokenizer_fixture.py). The committed GGUF holds the
/// vocabulary cut down to what the texts can reach; `original_ids` maps back to Gemma's ids.
@Suite struct TokenizerGemma3Tests {
    static let dir = Fixtures.path("tokenizers/gemma3")
    nonisolated(unsafe) static let reference: [String: Any] = Fixtures.json("tokenizers/gemma3/reference.json")
    static let fullVocab = ProcessInfo.processInfo.environment["SPARC_GEMMA3_VOCAB"]

    static var cases: [(String, [Int])] {
        zip(reference["texts"] as! [String], Fixtures.intLists(reference["ids"])).map { ($0, $1) }
    }

    @Test func matchesSentencePieceOnTheCutVocabulary() throws {
        let tok = try Tokenizer.load(gguf: GGUFFile(path: Self.dir + "/gemma3-sub.gguf"))
        let original = Fixtures.ints(Self.reference["original_ids"])
        #expect(Self.cases.count >= 12)
        for (text, ids) in Self.cases {
            let mine = tok.encode(text, addSpecialTokens: false)
            #expect(mine.map { original[$0] } == ids, "\(text.debugDescription)")
            #expect(tok.decode(mine) == text, "decoding \(text.debugDescription)")
        }
        // add_bos_token: <bos> (id 2 in Gemma) first; no dummy-prefix space anywhere.
        #expect(tok.encode("Hello world").map { original[$0] } == [2, 9259, 1902])
        #expect(tok.prefix.map { original[$0] } == [2] && original[tok.eosTokenId!] == 1)
        // Its tokenizer.json (no dummy prefix: no Prepend, no Strip) encodes the same.
        let tmp = TempDir()
        try tok.tokenizerJSONData().write(to: URL(fileURLWithPath: tmp.file("tokenizer.json")))
        let hf = try Tokenizer.load(tokenizerJSON: tmp.file("tokenizer.json"))
        for (text, ids) in Self.cases { #expect(hf.encode(text, addSpecialTokens: false).map { original[$0] } == ids, "tokenizer.json: \(text.debugDescription)") }
        let turn = tok.encode("<start_of_turn>user\nHi<end_of_turn>\n", addSpecialTokens: false)
        #expect(tok.decode(turn, skipSpecialTokens: true) == "user\nHi\n")
    }

    @Test(.enabled(if: fullVocab != nil)) func matchesSentencePieceOnTheFullVocabulary() throws {
        let tok = try Tokenizer.load(gguf: GGUFFile(path: try #require(Self.fullVocab)))
        #expect(tok.vocabularySize == 262_144)
        for (text, ids) in Self.cases { #expect(tok.encode(text, addSpecialTokens: false) == ids, "\(text.debugDescription)") }
        // Its tokenizer.json keeps all 262,144 tokens (434 pairs are canonically equivalent).
        let tmp = TempDir()
        try tok.tokenizerJSONData().write(to: URL(fileURLWithPath: tmp.file("tokenizer.json")))
        let hf = try Tokenizer.load(tokenizerJSON: tmp.file("tokenizer.json"))
        #expect(hf.tokens == tok.tokens)
        for (text, ids) in Self.cases { #expect(hf.encode(text, addSpecialTokens: false) == ids, "tokenizer.json: \(text.debugDescription)") }
    }
}

/// Malformed SentencePiece metadata: each gives a FormatError that names the problem.
@Suite struct TokenizerSentencePieceErrorTests {
    /// A valid tiny vocabulary: <unk>, <s>, </s>, 256 byte tokens, then a few pieces.
    static func metadata() -> [(String, GGUFValue)] {
        var tokens = ["<unk>", "<s>", "</s>"] + (0..<256).map { ByteLevel.fallbackToken(UInt8($0)) }
        tokens += ["▁", "a", "b", "▁a", "ab", "▁ab"]
        let scores: [Float] = [0, 0, 0] + Array(repeating: 0, count: 256) + [-1, -2, -3, -4, -5, -6]
        let types: [Int32] = [2, 3, 3] + Array(repeating: 6, count: 256) + Array(repeating: 1, count: 6)
        return [
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })),
            ("tokenizer.ggml.scores", .array(.float32, scores.map { .float32($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) })),
            ("tokenizer.ggml.bos_token_id", .uint32(1)),
            ("tokenizer.ggml.eos_token_id", .uint32(2)),
        ]
    }

    static func load(_ entries: [(String, GGUFValue)]) throws -> Tokenizer {
        var w = GGUFWriter()
        w.add("general.architecture", .string("llama"))
        for (k, v) in entries { w.add(k, v) }
        let tmp = TempDir()
        try w.write(to: tmp.file("v.gguf"))
        return try Tokenizer.load(gguf: GGUFFile(path: tmp.file("v.gguf")))
    }

    static func replacing(_ key: String, with value: GGUFValue?) -> [(String, GGUFValue)] {
        var m = metadata().filter { $0.0 != key }
        if let value { m.append((key, value)) }
        return m
    }

    static func expectError(_ entries: [(String, GGUFValue)], _ words: String) {
        do {
            _ = try load(entries)
            Issue.record("loaded; expected an error mentioning \(words.debugDescription)")
        } catch let e as FormatError {
            #expect(e.message.contains(words), "\(e.message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func theValidVocabularyWorks() throws {
        let tok = try Self.load(Self.metadata())
        // "ab ab": "▁ab" (score -6) is built from "▁a"+"b" or "▁"+"ab"; the higher-scored
        // pair merges first ("▁a", -4), then "▁a"+"b" → "▁ab".
        #expect(tok.encode("ab ab") == [1, 264, 264])
        #expect(tok.decode(tok.encode("ab ab")) == "<s> ab ab")
        #expect(tok.decode(tok.encode("ab ab"), skipSpecialTokens: true) == "ab ab")
        #expect(tok.encode("c", addSpecialTokens: false) == [259, 3 + 0x63])
        #expect(tok.decode([259, 3 + 0x63]) == "c")
    }

    @Test func specialsAreCutLongestFirst() throws {
        // llama.cpp cuts the longest special out everywhere first: in "wxyz", "xyz" wins
        // over "wx" although "wx" starts further left (tokenizers would take "wx").
        var m = Self.metadata()
        var tokens = m[1].1.array!, scores = m[2].1.array!, types = m[3].1.array!
        for t in ["xyz", "wx"] { tokens.append(.string(t)); scores.append(.float32(0)); types.append(.int32(4)) }
        m[1].1 = .array(.string, tokens); m[2].1 = .array(.float32, scores); m[3].1 = .array(.int32, types)
        let tok = try Self.load(m)
        #expect(tok.encode("wxyz", addSpecialTokens: false) == [259, 3 + 0x77, 265])
        // Text after a special gets the dummy prefix too: " " becomes "▁▁" (as llama.cpp).
        #expect(tok.encode("wx xyz", addSpecialTokens: false) == [266, 259, 259, 265])
        #expect(tok.decode([266, 259, 265]) == "wx xyz")
    }

    @Test func canonicallyEquivalentTokensSurviveTokenizerJSON() throws {
        // "é" and "e" + U+301 are two tokens; the tokenizer.json written keeps both.
        var m = Self.metadata()
        var tokens = m[1].1.array!, scores = m[2].1.array!, types = m[3].1.array!
        for t in ["e", "\u{301}", "\u{E9}", "e\u{301}"] { tokens.append(.string(t)); scores.append(.float32(-7)); types.append(.int32(1)) }
        m[1].1 = .array(.string, tokens); m[2].1 = .array(.float32, scores); m[3].1 = .array(.int32, types)
        let tok = try Self.load(m)
        #expect(tok.encode("\u{E9}", addSpecialTokens: false) == [259, 267] && tok.encode("e\u{301}", addSpecialTokens: false) == [259, 268])
        let tmp = TempDir()
        try tok.tokenizerJSONData().write(to: URL(fileURLWithPath: tmp.file("tokenizer.json")))
        let hf = try Tokenizer.load(tokenizerJSON: tmp.file("tokenizer.json"))
        #expect(hf.tokens == tok.tokens)
        #expect(hf.encode("\u{E9} e\u{301}") == tok.encode("\u{E9} e\u{301}"))
    }

    @Test func flippedBytesNeverTrap() throws {
        // Any byte of a small SentencePiece GGUF changed: an error or a working tokenizer.
        var w = GGUFWriter()
        w.add("general.architecture", .string("llama"))
        for (k, v) in Self.metadata() { w.add(k, v) }
        let data = try w.encoded()
        let tmp = TempDir()
        var rng = SystemRandomNumberGenerator()
        for i in stride(from: 0, to: data.count, by: 7) {
            var d = data
            d[i] ^= UInt8.random(in: 1...255, using: &rng)
            try d.write(to: URL(fileURLWithPath: tmp.file("f.gguf")))
            guard let tok = try? Tokenizer.load(gguf: GGUFFile(path: tmp.file("f.gguf"))) else { continue }
            let ids = tok.encode("ab <s>c\u{E9} ab", addSpecialTokens: true)
            _ = tok.decode(ids + [-1, tok.vocabularySize, 0, 1, 2])
        }
    }

    @Test func malformedMetadataIsRejected() {
        let tokens = Self.metadata()[1].1.array!
        Self.expectError(Self.replacing("tokenizer.ggml.tokens", with: nil), "tokenizer.ggml.tokens is missing")
        Self.expectError(Self.replacing("tokenizer.ggml.tokens", with: .array(.int32, [.int32(1)])), "array of strings")
        Self.expectError(Self.replacing("tokenizer.ggml.tokens", with: .array(.string, Array(tokens.dropLast()))), "scores has 265 entries for 264 tokens")
        Self.expectError(Self.replacing("tokenizer.ggml.scores", with: nil), "tokenizer.ggml.scores is missing")
        Self.expectError(Self.replacing("tokenizer.ggml.scores", with: .array(.string, tokens)), "scores must be an array of float32")
        Self.expectError(Self.replacing("tokenizer.ggml.scores", with: .array(.float32, Array(repeating: .float32(.nan), count: 265))), "is NaN")
        Self.expectError(Self.replacing("tokenizer.ggml.token_type", with: .array(.int32, Array(repeating: .int32(1), count: 264))), "token_type has 264 entries for 265 tokens")
        Self.expectError(Self.replacing("tokenizer.ggml.token_type", with: .array(.float32, Array(repeating: .float32(1), count: 265))), "array of int32")
        Self.expectError(Self.replacing("tokenizer.ggml.token_type", with: .array(.int32, Array(repeating: .int32(9), count: 265))), "token_type[0] = 9 is not a token type")
        // A byte-typed token that is not <0xAB>.
        var badByte = tokens
        badByte[3] = .string("<0xZZ>")
        Self.expectError(Self.replacing("tokenizer.ggml.tokens", with: .array(.string, badByte)), "has type byte but is not of the form <0xAB>")
        var dup = tokens
        dup[264] = .string("ab")
        Self.expectError(Self.replacing("tokenizer.ggml.tokens", with: .array(.string, dup)), "are both \"ab\"")
        Self.expectError(Self.replacing("tokenizer.ggml.bos_token_id", with: .uint32(265)), "bos_token_id = 265 is not a token id")
        Self.expectError(Self.replacing("tokenizer.ggml.eos_token_id", with: .string("x")), "eos_token_id")
        Self.expectError(Self.replacing("tokenizer.ggml.unknown_token_id", with: .int32(-1)), "unknown_token_id = -1")
        Self.expectError(Self.replacing("tokenizer.ggml.add_bos_token", with: .uint8(1)), "add_bos_token must be a bool")
        Self.expectError(Self.replacing("tokenizer.ggml.model", with: .string("ugm")), "unsupported tokenizer model ugm")
    }
}
