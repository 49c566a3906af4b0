import Foundation
import Testing
@testable import SparcModel

/// Token ids identical to the Hugging Face `tokenizers` library on a corpus of varied
/// lines (Unicode, emoji, code, whitespace runs, digits, special tokens).
@Suite struct TokenizerTests {
    static let cases: [(file: String, tokenizer: String)] = [
        ("tiny-gqa", "tiny-gqa"), ("tiny-gqa.gguf", "tiny-gqa"),
        ("tiny-tied", "tiny-tied"), ("tiny-tied.gguf", "tiny-tied"),
    ]

    @Test(arguments: cases)
    func idsMatchTokenizers(file: String, tokenizer: String) throws {
        let tok = try Model.load(Fixtures.path(file)).tokenizer
        let expected = Fixtures.intLists((Fixtures.references["tokenizers"] as! [String: Any])[tokenizer])
        #expect(expected.count == Fixtures.corpus.count)
        var mismatches = 0
        for (line, ids) in zip(Fixtures.corpus, expected) {
            let mine = tok.encode(line)
            if mine != ids {
                mismatches += 1
                if mismatches <= 5 { Issue.record("\(file): \(line.debugDescription)\n  sparc \(mine)\n  tokenizers \(ids)") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test(arguments: ["tiny-gqa", "tiny-tied"])
    func decodingMatchesTokenizers(file: String) throws {
        let tok = try Model.load(Fixtures.path(file)).tokenizer
        let expected = (Fixtures.references["tokenizers"] as! [String: Any])[file + "/decoded"] as! [String]
        for (line, text) in zip(Fixtures.corpus, expected) {
            #expect(tok.decode(tok.encode(line, addSpecialTokens: false)) == text)
        }
    }

    @Test func bosComesFromTheFile() throws {
        // tiny-gqa's TemplateProcessing (and its GGUF's add_bos_token) prepend <|im_start|>.
        let hf = try Model.load(Fixtures.path("tiny-gqa")).tokenizer
        let gg = try Model.load(Fixtures.path("tiny-gqa.gguf")).tokenizer
        #expect(hf.encode("hi").first == 1)
        #expect(gg.encode("hi").first == 1)
        #expect(hf.encode("hi", addSpecialTokens: false).first != 1)
        let tied = try Model.load(Fixtures.path("tiny-tied")).tokenizer
        #expect(tied.prefix.isEmpty)
    }

    @Test func splitsMatchThePatterns() throws {
        let gpt2 = try PreTokenizer(steps: [.byteLevel(addPrefixSpace: false, useRegex: true)])
        #expect(gpt2.split("Hello  world's 123!!\n\n x") == ["Hello", " ", " world", "'s", " 123", "!!", "\n\n", " x"])
        let smol = try PreTokenizer(steps: [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)])
        #expect(smol.split("in 2024") == ["in", " ", "2", "0", "2", "4"])
        let llama3 = try PreTokenizer(steps: [.split(.llama3)])
        // `\s+(?!\S)` leaves the last space of a run to the word after it.
        #expect(llama3.split("HE'LL pay 12345 dollars.\n\n  ok") == ["HE", "'LL", " pay", " ", "123", "45", " dollars", ".\n\n", " ", " ok"])
    }
}
