import Foundation
import SparcFormats
import Testing
@testable import SparcModel

/// The tokenizer.json configurations of scripts/make_tokenizer_fixtures.py: ids, decoded
/// text and decoded text without special tokens identical to the `tokenizers` library on
/// Fixtures/tokenizers/corpus.json (combining marks, emoji, digits, whitespace runs, CRLF,
/// long words, added-token edge cases).
@Suite struct TokenizerReferenceTests {
    static let dir = Fixtures.path("tokenizers")
    static let corpus: [String] = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/corpus.json")))) as? [String] ?? []
    nonisolated(unsafe) static let references: [String: Any] = Fixtures.json("tokenizers/references.json")

    static let configs = ["bytelevel-gpt2", "llama2-spm", "metaspace-first", "metaspace-split", "normalized-words",
                          "split-behaviours", "qwen2-nfc", "bytelevel-prefix-space", "pairs-with-spaces"]

    static func load(_ name: String) throws -> Tokenizer {
        switch name {
        case "gpt2-folder", "opt-folder": return try Tokenizer.load(folder: dir + "/" + name)
        default: return try Tokenizer.load(tokenizerJSON: dir + "/" + name + ".json")
        }
    }

    @Test(arguments: configs + ["gpt2-folder", "opt-folder"])
    func matchesTokenizers(config: String) throws {
        let tok = try Self.load(config)
        let ref = try #require(Self.references[config] as? [String: Any])
        let ids = Fixtures.intLists(ref["ids"])
        let decoded = try #require(ref["decoded"] as? [String])
        let decodedSkip = try #require(ref["decoded_skip"] as? [String])
        #expect(ids.count == Self.corpus.count && !ids.isEmpty)
        var failures = 0
        for (k, line) in Self.corpus.enumerated() where k < ids.count {
            let mine = tok.encode(line)
            let plain = tok.encode(line, addSpecialTokens: false)
            let ok = mine == ids[k] && tok.decode(plain) == decoded[k] && tok.decode(mine, skipSpecialTokens: true) == decodedSkip[k]
            if !ok {
                failures += 1
                if failures <= 4 {
                    Issue.record("""
                        \(config): \(line.debugDescription)
                          ids      sparc \(mine)
                                   tokenizers \(ids[k])
                          decoded  sparc \(tok.decode(plain).debugDescription)
                                   tokenizers \(decoded[k].debugDescription)
                          skipping sparc \(tok.decode(mine, skipSpecialTokens: true).debugDescription)
                                   tokenizers \(decodedSkip[k].debugDescription)
                        """)
                }
            }
        }
        #expect(failures == 0, "\(failures) of \(Self.corpus.count) lines differ")
    }

    @Test func optPrependsItsBOS() throws {
        // OPT's tokenizer puts </s> before every text (tokenizer_config.json: add_bos_token).
        let opt = try Self.load("opt-folder")
        let eos = try #require(opt.id(of: "</s>"))
        #expect(opt.encode("Hello").first == eos)
        #expect(opt.encode("Hello", addSpecialTokens: false).first != eos)
        #expect(opt.bosTokenId == eos)
        let gpt2 = try Self.load("gpt2-folder")
        #expect(gpt2.prefix.isEmpty)
        #expect(gpt2.encode("a<|endoftext|>b").contains(try #require(gpt2.id(of: "<|endoftext|>"))))
    }

    @Test func vocabAndMergesLoadDirectly() throws {
        let folder = Self.dir + "/gpt2-folder"
        let tok = try Tokenizer.load(vocabJSON: folder + "/vocab.json", mergesTXT: folder + "/merges.txt")
        let viaFolder = try Self.load("gpt2-folder")
        for line in Self.corpus { #expect(tok.encode(line) == viaFolder.encode(line)) }
        let withBOS = try Tokenizer.load(vocabJSON: folder + "/vocab.json", mergesTXT: folder + "/merges.txt", addBOS: true)
        #expect(withBOS.encode("x").first == tok.id(of: "<|endoftext|>"))
    }

    /// BPE work is linear in the input: on one 200 KB word (the Llama-2 style tokenizer has
    /// no pre-tokenizer, so a whole line is one word) the heap pops at most the initial
    /// pairs plus two new pairs per merge, i.e. under 3 per character. Counted, not timed.
    @Test func bpeWorkIsLinear() throws {
        let tok = try Self.load("llama2-spm")
        let sentence = "the licensor grants you a perpetual worldwide royalty free license to reproduce "
        let text = String(repeating: sentence, count: 200_000 / sentence.count)
        let work = tok.bpeWork(text)
        #expect(work > 0)
        #expect(work <= 3 * (text.unicodeScalars.count + 1))
        let half = tok.bpeWork(String(text.prefix(text.count / 2)))
        #expect(Double(work) / Double(half) < 2.1)
        // And the whole text encodes (before this BPE, 200 KB in one word did not finish).
        #expect(tok.encode(text, addSpecialTokens: false).count > 0)
    }

    /// Byte-level and byte-fallback tokenizers lose nothing: decode(encode(s)) == s for
    /// random text drawn from ASCII, Latin, combining marks, CJK, emoji and controls.
    @Test(arguments: ["bytelevel-gpt2", "qwen2-nfc", "llama2-spm", "gpt2-folder"])
    func decodingInvertsEncoding(config: String) throws {
        let tok = try Self.load(config)
        let pools: [ClosedRange<UInt32>] = [0x20...0x7E, 0x09...0x0D, 0xC0...0x17F, 0x300...0x36F, 0x4E00...0x4E80, 0x1F600...0x1F64F, 0x3040...0x309F]
        var state: UInt64 = 12345
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        for _ in 0..<300 {
            var s = String.UnicodeScalarView()
            for _ in 0..<(1 + next(40)) {
                let pool = pools[next(pools.count)]
                if let c = Unicode.Scalar(pool.lowerBound + UInt32(next(Int(pool.upperBound - pool.lowerBound) + 1))) { s.append(c) }
            }
            let text = String(s)
            // NFC changes combining sequences on purpose; compare with the NFC form there.
            let expected = config == "qwen2-nfc" ? text.precomposedStringWithCanonicalMapping : text
            let back = tok.decode(tok.encode(text, addSpecialTokens: false))
            #expect(Array(back.unicodeScalars) == Array(expected.unicodeScalars), "\(config): \(text.debugDescription)")
        }
    }

    /// The pre-token cache must not conflate canonically equivalent text, which Swift's
    /// String equality would.
    @Test func canonicallyEquivalentPiecesStayDistinct() throws {
        let tok = try Self.load("bytelevel-gpt2")
        let a = tok.encode("caf\u{E9}"), b = tok.encode("cafe\u{301}")
        #expect(a != b)
        #expect(tok.encode("caf\u{E9}") == a && tok.encode("cafe\u{301}") == b)
    }
}

/// Tokenizer files that are wrong or use what sparc does not know: a clear error naming
/// the component and the file, never a crash.
@Suite struct TokenizerErrorTests {
    static func base() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizers/llama2-spm.json")))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Writes `root` to a temporary tokenizer.json and returns the loader's error text.
    static func error(_ root: [String: Any]) throws -> String {
        let dir = TempDir()
        let path = dir.file("tokenizer.json")
        try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
        do {
            _ = try Tokenizer.load(tokenizerJSON: path)
            return "loaded"
        } catch let e as FormatError {
            #expect(e.file == path)
            return e.message
        }
    }

    @Test func unknownComponentsAreNamed() throws {
        var root = try Self.base()
        root["normalizer"] = ["type": "BertNormalizer"]
        #expect(try Self.error(root).contains("unsupported normalizer BertNormalizer"))
        root = try Self.base()
        root["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "UnicodeScripts"]]]
        #expect(try Self.error(root).contains("unsupported pre_tokenizer UnicodeScripts"))
        root = try Self.base()
        root["decoder"] = ["type": "WordPiece", "prefix": "##"]
        #expect(try Self.error(root).contains("unsupported decoder WordPiece"))
        root = try Self.base()
        root["post_processor"] = ["type": "Fancy"]
        #expect(try Self.error(root).contains("unsupported post_processor Fancy"))
        root = try Self.base()
        var model = try #require(root["model"] as? [String: Any])
        model["type"] = "Unigram"
        root["model"] = model
        #expect(try Self.error(root).contains("unsupported tokenizer model Unigram"))
    }

    @Test func malformedComponentsAreRejected() throws {
        var root = try Self.base()
        root["pre_tokenizer"] = ["type": "Split", "pattern": ["Regex": "(unclosed"], "behavior": "Isolated", "invert": false]
        #expect(try Self.error(root).contains("does not compile"))
        root["pre_tokenizer"] = ["type": "Split", "pattern": ["String": "x"], "behavior": "Sideways", "invert": false]
        #expect(try Self.error(root).contains("unknown behavior"))
        root["pre_tokenizer"] = ["type": "Metaspace", "replacement": "ab", "prepend_scheme": "first", "split": false]
        #expect(try Self.error(root).contains("must be one character"))
        root = try Self.base()
        root["normalizer"] = ["type": "Replace", "pattern": ["Glob": "*"], "content": ""]
        #expect(try Self.error(root).contains("pattern must be"))
        root = try Self.base()
        var model = try #require(root["model"] as? [String: Any])
        model["unk_token"] = "<nowhere>"
        root["model"] = model
        #expect(try Self.error(root).contains("unk_token"))
        model["unk_token"] = "<unk>"
        model["merges"] = [["▁t", "no-such-token"]]
        root["model"] = model
        #expect(try Self.error(root).contains("missing from the vocabulary"))
    }

    @Test func emptyNormalizerSequenceIsAccepted() throws {
        var root = try Self.base()
        root["normalizer"] = ["type": "Sequence", "normalizers": [] as [Any]]
        root["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [] as [Any]]
        #expect(try Self.error(root) == "loaded")
    }

    @Test func validateChecksEveryIdAgainstTheModel() throws {
        let tok = try TokenizerReferenceTests.load("llama2-spm")
        try tok.validate(vocabularySize: tok.vocabularySize)
        #expect(throws: Tokenizer.Error.self) { try tok.validate(vocabularySize: tok.vocabularySize - 1) }
        do {
            try tok.validate(vocabularySize: 100)
        } catch {
            #expect("\(error)".contains("100 token embeddings"))
        }
    }

    @Test func badVocabAndMergesFilesAreRejected() throws {
        let dir = TempDir()
        try #"{"a": 0, "b": 1, "ab": 2}"#.write(toFile: dir.file("vocab.json"), atomically: true, encoding: .utf8)
        try "#version: 0.2\na b c\n".write(toFile: dir.file("merges.txt"), atomically: true, encoding: .utf8)
        #expect(throws: FormatError.self) { try Tokenizer.load(folder: dir.path) }
        try "#version: 0.2\na x\n".write(toFile: dir.file("merges.txt"), atomically: true, encoding: .utf8)
        #expect(throws: FormatError.self) { try Tokenizer.load(folder: dir.path) }
        try "#version: 0.2\na b\n".write(toFile: dir.file("merges.txt"), atomically: true, encoding: .utf8)
        #expect(try Tokenizer.load(folder: dir.path).encode("ab", addSpecialTokens: false) == [2])
        try #"{"a": -1}"#.write(toFile: dir.file("vocab.json"), atomically: true, encoding: .utf8)
        #expect(throws: FormatError.self) { try Tokenizer.load(folder: dir.path) }
        let empty = TempDir()
        #expect(throws: FormatError.self) { try Tokenizer.load(folder: empty.path) }
    }
}

/// llama.cpp's tokenizer test vectors (vendor/llama.cpp/models/ggml-vocab-*.gguf.inp/.out,
/// committed under Fixtures/tokenizers/llama.cpp). The vocabularies themselves are several
/// MB, so they are read from SPARC_LLAMA_VOCABS (a folder with ggml-vocab-*.gguf) when set.
@Suite struct TokenizerLlamaCppTests {
    static let vocabs = ProcessInfo.processInfo.environment["SPARC_LLAMA_VOCABS"]

    @Test(.enabled(if: vocabs != nil), arguments: ["gpt-2", "qwen2", "llama-bpe"])
    func matchesLlamaCppVectors(vocab: String) throws {
        let dir = try #require(Self.vocabs)
        let tok = try Tokenizer.load(gguf: GGUFFile(path: dir + "/ggml-vocab-\(vocab).gguf"))
        let base = Fixtures.path("tokenizers/llama.cpp/ggml-vocab-\(vocab).gguf")
        let inp = try String(contentsOfFile: base + ".inp", encoding: .utf8)
        let out = try String(contentsOfFile: base + ".out", encoding: .utf8)
        var texts = inp.components(separatedBy: "\n__ggml_vocab_test__\n")
        if texts.last == "" { texts.removeLast() }
        let expected = out.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.split(separator: " ").compactMap { Int($0) }
        }
        #expect(texts.count <= expected.count && !texts.isEmpty)
        for (text, ids) in zip(texts, expected) {
            #expect(tok.encode(text, addSpecialTokens: false) == ids, "\(vocab): \(text.debugDescription)")
        }
    }
}
