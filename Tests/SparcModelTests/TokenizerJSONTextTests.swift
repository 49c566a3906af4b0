import Foundation
import SparcFormats
import Testing
@testable import SparcModel

/// The JSON reader of tokenizer files keeps every key and string exactly as written,
/// where Foundation's merges canonically equivalent keys and empties a lone U+FEFF.
@Suite struct TokenizerJSONTextTests {
    @Test func keepsKeysAndStringsAsWritten() throws {
        let text = #"{"é": 1, "e\u0301": 2, "\ufeff": 3, "": 4, "a": [true, false, null, -1.5e3, 7, "\ud83e\udd99\n\"\\\/"], "a": {}}"#
        let v = try JSONText.parse(Data(text.utf8))
        guard case .object(let members) = v else { Issue.record("not an object"); return }
        #expect(members.map { Array($0.key.unicodeScalars) } == [["é"], ["e", "\u{301}"], ["\u{FEFF}"], [], ["a"], ["a"]])
        #expect(v["a"].map { if case .object(let m) = $0 { return m.isEmpty } else { return false } } == true)
        let items = try #require(members[4].value.foundation as? [Any])
        try #require(items.count == 6)
        #expect(items[0] as? Bool == true && items[1] as? Bool == false && items[2] is NSNull)
        #expect((items[3] as? NSNumber)?.doubleValue == -1500 && (items[4] as? NSNumber)?.intValue == 7)
        #expect(items[5] as? String == "🦙\n\"\\/")
    }

    @Test func rejectsMalformedText() {
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "[1 2]", "\"abc", "\"\\x\"", "\"\\u12\"", "tru", "{\"a\": 1} x", "+1", "-", "\"\u{1}\"",
                    String(repeating: "[", count: 600) + String(repeating: "]", count: 600)] {
            #expect(throws: JSONText.ParseError.self, "\(bad.prefix(20).debugDescription)") { try JSONText.parse(Data(bad.utf8)) }
        }
        #expect(throws: JSONText.ParseError.self) { try JSONText.parse(Data([0x22, 0xFF, 0x22])) }  // not UTF-8
        #expect((try? JSONText.parse(Data([0xEF, 0xBB, 0xBF] + Array("[1]".utf8)))) != nil)  // a leading byte-order mark
    }

    @Test func flippedBytesNeverTrap() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizers/llama2-spm.json")))
        let dir = TempDir()
        var rng = SystemRandomNumberGenerator()
        for i in stride(from: 0, to: data.count, by: max(1, data.count / 250)) {
            var d = data
            d[i] = [UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "{"), UInt8(ascii: "]"), 0xFF, 0x00, UInt8.random(in: 0...255, using: &rng)].randomElement(using: &rng)!
            try d.write(to: URL(fileURLWithPath: dir.file("tokenizer.json")))
            if let tok = try? Tokenizer.load(tokenizerJSON: dir.file("tokenizer.json")) { _ = tok.decode(tok.encode("Hello wörld ab")) }
        }
    }

    @Test func canonicallyEquivalentVocabularyEntriesStayDistinct() throws {
        // "é" (U+E9) and "e" + U+301 are different tokens; so are U+FEFF and "\u{FEFF}x".
        let json = #"""
        {"model": {"type": "BPE", "vocab": {"é": 0, "e": 1, "\u0301": 2, "e\u0301": 3, "\ufeff": 4, "x": 5, "\ufeffx": 6},
                   "merges": [["e", "\u0301"], ["\ufeff", "x"]]},
         "pre_tokenizer": null, "decoder": {"type": "Fuse"}}
        """#
        let dir = TempDir()
        try json.write(toFile: dir.file("tokenizer.json"), atomically: true, encoding: .utf8)
        let tok = try Tokenizer.load(tokenizerJSON: dir.file("tokenizer.json"))
        #expect(tok.tokens.count == 7)
        #expect(tok.encode("\u{E9}") == [0] && tok.encode("e\u{301}") == [3])
        #expect(tok.encode("\u{FEFF}") == [4] && tok.encode("\u{FEFF}x") == [6])
    }
}
