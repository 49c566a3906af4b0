import Foundation
import SparcFormats
import Testing
@testable import SparcModel

/// SentencePiece `tokenizer.model` folders (Llama 2 / TinyLlama style, no tokenizer.json),
/// on a tiny BPE model trained by `sentencepiece` with byte fallback and the ids
/// `sentencepiece` and transformers' `LlamaTokenizer` give (scripts/make_spm_model_fixture.py,
/// committed under Fixtures/tokenizers/spm-model).
@Suite struct TokenizerSentencePieceModelFileTests {
    static let dir = Fixtures.path("tokenizers/spm-model")
    static let modelPath = dir + "/tokenizer.model"
    nonisolated(unsafe) static let reference: [String: Any] = Fixtures.json("tokenizers/spm-model/reference.json")
    static var cases: [[String: Any]] { reference["cases"] as! [[String: Any]] }
    static func modelBytes() throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: modelPath))) }

    // MARK: ids

    @Test func matchesSentencePieceAndTransformers() throws {
        let tok = try Tokenizer.load(folder: Self.dir)
        var compared = 0
        for c in Self.cases {
            let text = c["text"] as! String
            // sentencepiece's own ids, without BOS (texts without control tokens only).
            if let ids = c["sentencepiece"] {
                #expect(tok.encode(text, addSpecialTokens: false) == Fixtures.ints(ids), "\(text.debugDescription)")
                #expect(tok.decode(Fixtures.ints(ids)) == c["decoded"] as? String, "decoding \(text.debugDescription)")
                compared += 1
            }
            // LlamaTokenizer: BOS first, control tokens in the text cut out.
            #expect(tok.encode(text) == Fixtures.ints(c["transformers"]), "\(text.debugDescription) with BOS")
        }
        #expect(compared >= 20)
    }

    @Test func decodingRoundTrips() throws {
        let tok = try Tokenizer.load(sentencePieceModel: Self.modelPath)
        // Texts with control tokens do not: the text after one gets a dummy-prefix space.
        for c in Self.cases where c["sentencepiece"] != nil {
            let text = c["text"] as! String
            #expect(tok.decode(tok.encode(text, addSpecialTokens: false)) == text, "\(text.debugDescription)")
            #expect(tok.decode(tok.encode(text), skipSpecialTokens: true) == text, "\(text.debugDescription) with BOS")
        }
    }

    @Test func specialTokensComeFromTheTrainerSpec() throws {
        let tok = try Tokenizer.load(sentencePieceModel: Self.modelPath)
        #expect(tok.vocabularySize == Self.reference["vocab_size"] as? Int)
        #expect(tok.tokens == Self.reference["pieces"] as? [String])
        #expect(tok.bosTokenId == Self.reference["bos_id"] as? Int && tok.eosTokenId == Self.reference["eos_id"] as? Int)
        #expect(tok.prefix == [tok.bosTokenId!] && tok.suffix.isEmpty)
        // The trainer's pad_id is -1, written as a 10-byte varint.
        let file = try SentencePieceModelFile(bytes: Self.modelBytes())
        #expect(file.padId == Self.reference["pad_id"] as? Int && file.padId == -1)
        #expect(file.unkId == Self.reference["unk_id"] as? Int)
        #expect(file.modelType == SentencePieceModelFile.ModelType.bpe.rawValue && file.byteFallback && file.addDummyPrefix)
        // <unk>, <s>, </s> are special; the user-defined <sep> is an added token, not special.
        #expect(tok.addedTokens.filter(\.special).map(\.content).sorted() == ["</s>", "<s>", "<unk>"])
        #expect(tok.addedTokens.contains { $0.content == "<sep>" && !$0.special })
        let eos = try Tokenizer.load(sentencePieceModel: Self.modelPath, addBOS: false, addEOS: true)
        #expect(eos.encode("x") == tok.encode("x", addSpecialTokens: false) + [tok.eosTokenId!])
    }

    // MARK: a full-size vocabulary

    /// Llama's 32,000-piece vocabulary (from llama.cpp's test GGUF) written as a
    /// `tokenizer.model`, the way sentencepiece lays one out.
    static func llamaModelBytes() throws -> [UInt8] {
        let gguf = try #require(TokenizerSentencePieceTests.load("llama-spm").sentencePiece)
        typealias W = TokenizerSentencePieceModelFileErrorTests
        var bytes: [UInt8] = []
        for (i, t) in gguf.tokens.enumerated() {
            let score = withUnsafeBytes(of: gguf.scores[i].bitPattern.littleEndian) { Array($0) }
            bytes += W.field(1, bytes: W.field(1, bytes: Array(t.utf8)) + [0x15] + score + W.field(3, varint: UInt64(gguf.types[i].rawValue)))
        }
        bytes += W.field(2, bytes: W.field(3, varint: 2) + W.field(35, varint: 1) + W.field(43, varint: UInt64(bitPattern: -1)))
        bytes += W.field(3, bytes: W.field(1, bytes: Array("identity".utf8)) + W.field(4, varint: 0))
        return bytes
    }

    @Test func aFullSizeVocabularyMatchesLlamaCpp() throws {
        let tmp = TempDir()
        try Data(try Self.llamaModelBytes()).write(to: URL(fileURLWithPath: tmp.file("tokenizer.model")))
        let tok = try Tokenizer.load(folder: tmp.path)
        let gguf = try TokenizerSentencePieceTests.load("llama-spm")
        #expect(tok.vocabularySize == 32000 && tok.tokens == gguf.tokens && tok.prefix == gguf.prefix)
        #expect(tok.sentencePiece?.scores == gguf.sentencePiece?.scores && tok.sentencePiece?.types == gguf.sentencePiece?.types)
        // llama.cpp's vectors, which sentencepiece gives too on this vocabulary.
        for (text, ids) in try TokenizerSentencePieceTests.vectors("llama-spm") {
            #expect(tok.encode(text, addSpecialTokens: false) == ids, "\(text.debugDescription)")
        }
    }

    /// A real Llama 2 / TinyLlama `tokenizer.model`, when `SPARC_LLAMA_TOKENIZER_MODEL` names one.
    static let realModel = ProcessInfo.processInfo.environment["SPARC_LLAMA_TOKENIZER_MODEL"]

    @Test(.enabled(if: realModel != nil)) func aRealLlamaTokenizerModelMatchesLlamaCpp() throws {
        let tok = try Tokenizer.load(sentencePieceModel: Self.realModel!)
        for (text, ids) in try TokenizerSentencePieceTests.vectors("llama-spm") {
            #expect(tok.encode(text, addSpecialTokens: false) == ids, "\(text.debugDescription)")
        }
    }

    // MARK: folders

    /// A folder with the fixture's tokenizer.model and the given JSON files.
    static func folder(_ files: [String: Any] = [:]) throws -> TempDir {
        let tmp = TempDir()
        try FileManager.default.copyItem(atPath: modelPath, toPath: tmp.file("tokenizer.model"))
        for (name, object) in files {
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: tmp.file(name)))
        }
        return tmp
    }

    /// The tokenizer of such a folder.
    static func load(_ files: [String: Any]) throws -> Tokenizer {
        let tmp = try folder(files)
        return try withExtendedLifetime(tmp) { try Tokenizer.load(folder: tmp.path) }
    }

    @Test func aBareTokenizerModelLoadsWithLlamaDefaults() throws {
        // No tokenizer_config.json: BOS from the trainer spec, added as LlamaTokenizer does.
        let tmp = try Self.folder()
        defer { withExtendedLifetime(tmp) {} }
        let tok = try Tokenizer.load(folder: tmp.path)
        #expect(tok.encode("Hello world") == [1] + tok.encode("Hello world", addSpecialTokens: false))
    }

    @Test func tokenizerConfigIsFollowed() throws {
        let off = try Self.load(["tokenizer_config.json": ["add_bos_token": false, "add_eos_token": true]])
        #expect(off.encode("x") == off.encode("x", addSpecialTokens: false) + [2])
        // Special-token names pick the ids (here </s> as BOS, as a contrived config might).
        let named = try Self.load(["special_tokens_map.json": ["bos_token": ["content": "</s>"]]])
        #expect(named.bosTokenId == 2 && named.encode("x").first == 2)
        let e = #expect(throws: FormatError.self) { try Self.load(["tokenizer_config.json": ["bos_token": "<nope>"]]) }
        #expect(e?.message == "the BOS token \"<nope>\" is not in the vocabulary")
    }

    @Test func addedTokensExtendTheVocabulary() throws {
        let config: [String: Any] = ["added_tokens_decoder": [
            "1": ["content": "<s>", "special": true],
            "384": ["content": "<pad>", "special": true],
            "385": ["content": "<|user|>", "special": false],
        ]]
        let tok = try Self.load(["tokenizer_config.json": config])
        #expect(tok.vocabularySize == 386 && tok.id(of: "<pad>") == 384 && tok.id(of: "<|user|>") == 385)
        let plain = try Tokenizer.load(sentencePieceModel: Self.modelPath)
        #expect(tok.encode("a<pad>b", addSpecialTokens: false)
                == plain.encode("a", addSpecialTokens: false) + [384] + plain.encode("b", addSpecialTokens: false))
        // Text after an added token starts with the dummy prefix again (transformers cuts
        // added tokens out before sentencepiece runs, as llama.cpp does).
        let ids = tok.encode("a<|user|>b<pad>")
        #expect(ids.contains(385) && ids.last == 384)
        #expect(tok.decode(ids, skipSpecialTokens: true) == "a<|user|> b")
        // added_tokens.json, the older form.
        let old = try Self.load(["added_tokens.json": ["<pad>": 384]])
        #expect(old.id(of: "<pad>") == 384 && old.vocabularySize == 385)
        // A gap after the pieces, or another text at a piece's id, is refused.
        let bad: [(String, String, String)] = [("390", "<pad>", "without gaps"), ("5", "<pad>", "which is the piece \"<0x01>\""),
                                               ("384", "<s>", "is already the piece 1")]
        for (id, content, message) in bad {
            let e = #expect(throws: FormatError.self) {
                try Self.load(["tokenizer_config.json": ["added_tokens_decoder": [id: ["content": content]]]])
            }
            #expect(e?.message.contains(message) == true, "\(id): \(content)")
        }
    }

    @Test func tokenizerJSONWinsOverTokenizerModel() throws {
        // transformers' fast tokenizer reads tokenizer.json when both are there.
        let tmp = try Self.folder()
        defer { withExtendedLifetime(tmp) {} }
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-gqa/tokenizer.json"), toPath: tmp.file("tokenizer.json"))
        let tok = try Tokenizer.load(folder: tmp.path)
        let gqa = try Tokenizer.load(tokenizerJSON: Fixtures.path("tiny-gqa/tokenizer.json"))
        #expect(tok.tokens == gqa.tokens)
    }

    @Test func aModelFolderWithOnlyTokenizerModelLoads() throws {
        // tiny-gqa's weights (384 embeddings, BOS 1, EOS 2) with the SentencePiece tokenizer.
        let tmp = try Self.folder()
        defer { withExtendedLifetime(tmp) {} }
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-gqa/" + name), toPath: tmp.file(name))
        }
        let model = try Model.load(tmp.path)
        let standalone = try Tokenizer.load(sentencePieceModel: Self.modelPath)
        for c in Self.cases {
            let text = c["text"] as! String
            #expect(model.tokenizer.encode(text) == Fixtures.ints(c["transformers"]), "\(text.debugDescription)")
        }
        let logits = try model.logits(text: "Licensed under the Apache License")
        #expect(logits.shape == [standalone.encode("Licensed under the Apache License").count, 384])
        // Saved, the folder gets a tokenizer.json that reads back to the same ids.
        let saved = TempDir()
        try model.save(huggingFaceFolder: saved.path)
        let reloaded = try Model.load(saved.path)
        // (Except around the user-defined <sep>: tokenizer.json, like llama.cpp, starts the
        // text after it with a new dummy prefix; sentencepiece does not.)
        for c in Self.cases {
            let text = c["text"] as! String
            if text.contains("<sep>") { continue }
            #expect(reloaded.tokenizer.encode(text) == model.tokenizer.encode(text), "after saving: \(text.debugDescription)")
        }
    }

    @Test func aVocabularyLargerThanTheModelIsRefused() throws {
        let tmp = try Self.folder(["added_tokens.json": ["<pad>": 384]])
        defer { withExtendedLifetime(tmp) {} }
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-gqa/" + name), toPath: tmp.file(name))
        }
        let e = #expect(throws: FormatError.self) { try Model.load(tmp.path) }
        #expect(e?.message.contains("does not fit a model with 384 token embeddings") == true)
    }
}

/// Malformed and unsupported `tokenizer.model` files: named errors, never a crash.
@Suite struct TokenizerSentencePieceModelFileErrorTests {
    static func parse(_ bytes: [UInt8]) throws -> SentencePieceModelFile { try SentencePieceModelFile(bytes: bytes) }

    /// Protobuf encoding, for building test messages.
    static func varint(_ v: UInt64) -> [UInt8] {
        var v = v, out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }
    static func field(_ number: Int, varint v: UInt64) -> [UInt8] { varint(UInt64(number << 3)) + varint(v) }
    static func field(_ number: Int, bytes b: [UInt8]) -> [UInt8] { varint(UInt64(number << 3 | 2)) + varint(UInt64(b.count)) + b }

    @Test func emptyFile() {
        #expect(throws: SentencePieceModelFile.Error.empty) { try Self.parse([]) }
    }

    @Test func truncatedFiles() throws {
        let bytes = try TokenizerSentencePieceModelFileTests.modelBytes()
        // The file starts with the first piece: tag 0x0A (field 1, length-delimited), its length.
        #expect(bytes[0] == 0x0A)
        #expect(throws: ProtobufError.truncatedVarint(offset: 1)) { try Self.parse(Array(bytes[..<1])) }
        #expect(throws: ProtobufError.lengthPastEnd(offset: 1, length: UInt64(bytes[1]), available: 0)) { try Self.parse(Array(bytes[..<2])) }
        // Every cut is an error (or, at a field boundary, a model that lacks what was cut).
        for n in 1..<bytes.count {
            do {
                let m = try Self.parse(Array(bytes[..<n])).sentencePieceModel()
                #expect(m.tokens.count <= 384)
            } catch is ProtobufError {
            } catch is SentencePieceModelFile.Error {
            }
        }
    }

    @Test func badLengths() {
        // A piece that says it is 2^35 - 1 bytes long: checked before any Int conversion.
        #expect(throws: ProtobufError.lengthPastEnd(offset: 1, length: 0x7_FFFF_FFFF, available: 0)) {
            try Self.parse([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        }
        // Length 3 with two bytes left.
        #expect(throws: ProtobufError.lengthPastEnd(offset: 1, length: 3, available: 2)) { try Self.parse([0x0A, 0x03, 0x0A, 0x01]) }
        // Inside a piece: its text runs past the piece's own end, though not the file's.
        #expect(throws: ProtobufError.lengthPastEnd(offset: 3, length: 5, available: 0)) { try Self.parse([0x0A, 0x02, 0x0A, 0x05, 0x61, 0x62, 0x63, 0x64, 0x65]) }
        #expect(throws: ProtobufError.varintTooLong(offset: 1)) { try Self.parse([0x0A] + [UInt8](repeating: 0xFF, count: 10) + [0x01]) }
        #expect(throws: ProtobufError.truncatedFixed(offset: 6, size: 4)) {
            try Self.parse(Self.field(1, bytes: [0x0A, 0x01, 0x61, 0x15, 0x00, 0x00]))  // a 2-byte score
        }
    }

    @Test func wrongWireTypes() {
        // pieces as a varint.
        #expect(throws: ProtobufError.wrongWireType(field: "ModelProto.pieces", expected: .lengthDelimited, found: .varint)) {
            try Self.parse(Self.field(1, varint: 1))
        }
        // A piece's score as a varint instead of a float.
        #expect(throws: ProtobufError.wrongWireType(field: "SentencePiece.score", expected: .fixed32, found: .varint)) {
            try Self.parse(Self.field(1, bytes: Self.field(1, bytes: [0x61]) + Self.field(2, varint: 3)))
        }
        // byte_fallback as a string.
        #expect(throws: ProtobufError.wrongWireType(field: "TrainerSpec.byte_fallback", expected: .varint, found: .lengthDelimited)) {
            try Self.parse(Self.field(2, bytes: Self.field(35, bytes: [1])))
        }
        // Wire type 7 does not exist; 3 (groups) is not read; field 0 is invalid.
        #expect(throws: ProtobufError.invalidWireType(offset: 0, wireType: 7)) { try Self.parse([0x0F]) }
        #expect(throws: ProtobufError.invalidWireType(offset: 1, wireType: 3)) { try Self.parse([0x3B]) }
        #expect(throws: ProtobufError.invalidFieldNumber(offset: 0)) { try Self.parse([0x02, 0x00]) }
    }

    @Test func unknownFieldsAreSkipped() throws {
        // Fields sparc does not read, of every wire type, around one piece.
        let piece = Self.field(1, bytes: Self.field(1, bytes: Array("a".utf8)) + [0x15, 0, 0, 0x80, 0x3F] + Self.field(9, varint: 5))
        let bytes = Self.field(99, varint: 300) + [0x29] + [UInt8](repeating: 7, count: 8) + piece + Self.field(4, bytes: [1, 2, 3]) + [0x2D, 1, 2, 3, 4]
        let file = try Self.parse(bytes)
        #expect(file.pieces == [SentencePieceModelFile.Piece(text: "a", score: 1, type: 1)])
    }

    @Test func invalidPieces() throws {
        #expect(throws: SentencePieceModelFile.Error.noPieces) { try Self.parse(Self.field(2, bytes: Self.field(3, varint: 2))) }
        #expect(throws: SentencePieceModelFile.Error.invalidPiece(index: 0, "not UTF-8")) { try Self.parse(Self.field(1, bytes: Self.field(1, bytes: [0xFF, 0xFE]))) }
        #expect(throws: SentencePieceModelFile.Error.invalidPiece(index: 0, "has no text")) { try Self.parse(Self.field(1, bytes: Self.field(3, varint: 1))) }
        #expect(throws: SentencePieceModelFile.Error.invalidPiece(index: 0, "type 9 is not a SentencePiece type (1 normal … 6 byte)")) {
            try Self.parse(Self.field(1, bytes: Self.field(1, bytes: [0x61]) + Self.field(3, varint: 9)))
        }
        // The real model with a second "<s>" appended.
        let dup = try TokenizerSentencePieceModelFileTests.modelBytes() + Self.field(1, bytes: Self.field(1, bytes: Array("<s>".utf8)))
        #expect(throws: SentencePieceModelFile.Error.invalidPiece(index: 384, "same text as piece 1, \"<s>\"")) {
            try Self.parse(dup).sentencePieceModel()
        }
    }

    /// The fixture with settings overridden: a message appended later is merged into the
    /// earlier one, its fields winning, as protobuf parsers do.
    static func overriding(trainer: [UInt8] = [], normalizer: [UInt8] = []) throws -> [UInt8] {
        var bytes = try TokenizerSentencePieceModelFileTests.modelBytes()
        if !trainer.isEmpty { bytes += field(2, bytes: trainer) }
        if !normalizer.isEmpty { bytes += field(3, bytes: normalizer) }
        return bytes
    }

    static func unsupported(_ bytes: [UInt8]) -> String? {
        do { _ = try parse(bytes).sentencePieceModel(); return nil } catch SentencePieceModelFile.Error.unsupported(let m) { return m } catch { return "\(error)" }
    }

    @Test func unsupportedModelsAreNamed() throws {
        #expect(try Self.unsupported(Self.overriding()) == nil)
        #expect(try Self.unsupported(Self.overriding(trainer: Self.field(3, varint: 1)))?.contains("unigram SentencePiece model; sparc reads only BPE") == true)
        #expect(try Self.unsupported(Self.overriding(trainer: Self.field(3, varint: 7)))?.contains("type 7") == true)
        #expect(try Self.unsupported(Self.overriding(trainer: Self.field(35, varint: 0)))?.contains("byte_fallback is off") == true)
        #expect(try Self.unsupported(Self.overriding(trainer: Self.field(24, varint: 1)))?.contains("treat_whitespace_as_suffix") == true)
        #expect(try Self.unsupported(Self.overriding(trainer: Self.field(41, varint: 384)))?.contains("bos_id = 384") == true)
        #expect(try Self.unsupported(Self.overriding(normalizer: Self.field(1, bytes: Array("nmt_nfkc".utf8)) + Self.field(2, bytes: [1, 2, 3])))?
            .contains("\"nmt_nfkc\" has compiled normalization rules") == true)
        #expect(try Self.unsupported(Self.overriding(normalizer: Self.field(4, varint: 1)))?.contains("remove_extra_whitespaces") == true)
        #expect(try Self.unsupported(Self.overriding(normalizer: Self.field(5, varint: 0)))?.contains("escape_whitespaces") == true)
        // The dummy prefix is followed either way: off, "x" loses its "▁".
        let noPrefix = try Self.parse(Self.overriding(normalizer: Self.field(3, varint: 0))).sentencePieceModel()
        #expect(!noPrefix.addSpacePrefix)
    }

    @Test func theLoaderNamesTheFile() throws {
        let tmp = TempDir()
        let path = tmp.file("tokenizer.model")
        // Cut by one byte: the last field (the normalizer spec) runs past the end.
        try Data(try TokenizerSentencePieceModelFileTests.modelBytes().dropLast()).write(to: URL(fileURLWithPath: path))
        do {
            _ = try Tokenizer.load(folder: tmp.path)
            Issue.record("a truncated tokenizer.model loaded")
        } catch let e as FormatError {
            #expect(e.file == path && e.message.hasPrefix("not a valid SentencePiece model: "))
        }
        try Data().write(to: URL(fileURLWithPath: path))
        #expect(throws: FormatError(path, "the file is empty")) { try Tokenizer.load(folder: tmp.path) }
        try Data(try Self.overriding(trainer: Self.field(3, varint: 1))).write(to: URL(fileURLWithPath: path))
        #expect(throws: FormatError.self) { try Tokenizer.load(folder: tmp.path) }
    }

    @Test func flippedBytesNeverTrap() throws {
        // Any byte of the model changed: an error or a working tokenizer.
        let bytes = try TokenizerSentencePieceModelFileTests.modelBytes()
        var rng = SystemRandomNumberGenerator()
        for i in stride(from: 0, to: bytes.count, by: 3) {
            var b = bytes
            b[i] ^= UInt8.random(in: 1...255, using: &rng)
            guard let spm = try? Self.parse(b).sentencePieceModel(),
                  let tok = try? Tokenizer(sentencePiece: spm, prefix: [], suffix: [], bosTokenId: nil, eosTokenId: nil) else { continue }
            let ids = tok.encode("Hello <s> wörld 🦙", addSpecialTokens: false)
            _ = tok.decode(ids + [-1, tok.vocabularySize, 0, 1, 2])
        }
    }
}
