import Foundation
import Testing
import SparcFormats
@testable import SparcModel
import SparcTensor

/// The real Gemma-3-270m (Q4_K_M GGUF) against scripts/make_gemma3_reference.py
/// (gguf-py dequantisation + transformers' Gemma3ForCausalLM), on token ids: the top-5
/// logits of the last position within 1e-3 and greedy 20-token continuations of three
/// sequences (the third longer than the 512-token window). Runs when the file is at
/// $SPARC_GEMMA3_GGUF or installed (`sparc install gemma3-270m`), else skips.
enum Gemma3Real {
    static let fileName = "gemma-3-270m-q4_k_m.gguf"
    static var path: String? {
        let env = ProcessInfo.processInfo.environment["SPARC_GEMMA3_GGUF"].flatMap { $0.isEmpty ? nil : $0 }
        let p = env ?? ModelRegistry.cacheDirectory + "/" + fileName
        return FileManager.default.fileExists(atPath: p) ? p : nil
    }
    nonisolated(unsafe) static let reference = Fixtures.json("gemma3-270m-reference.json")

    /// The model; where sparc cannot read the file's SentencePiece tokenizer yet, its
    /// weights with a stand-in tokenizer over the file's vocabulary (the check is on ids).
    static func load(_ path: String) throws -> (model: Model, ownTokenizer: Bool) {
        do {
            return (try Model.load(path), true)
        } catch let e as FormatError where "\(e)".contains("tokenizer") {
            let tokens = try GGUFFile(path: path).metadata["tokenizer.ggml.tokens"]?.array?.compactMap(\.string) ?? []
            let standIn = try Tokenizer(tokens: tokens, merges: [], addedTokens: [], preTokenizer: [], decoder: [],
                                        bosTokenId: 2, eosTokenId: 1)
            print("gemma3-270m: the file's tokenizer is not read (\(e)); checking on ids with a stand-in")
            return (try Model.load(gguf: path, tokenizer: standIn), false)
        }
    }
}

@Suite(.enabled(if: Gemma3Real.path != nil, "Gemma-3-270m GGUF not found (set SPARC_GEMMA3_GGUF or run sparc install gemma3-270m)"))
struct Gemma3RealModelTests {
    @Test func topLogitsAndGreedyContinuationsMatchTransformers() throws {
        let (m, ownTokenizer) = try Gemma3Real.load(Gemma3Real.path!)
        let c = m.config
        #expect(c.architecture == "gemma3_text" && c.numLayers == 18 && c.slidingWindow == 512 && c.numKVHeads == 1)
        #expect(c.slidingLayers.enumerated().allSatisfy { $1 == (($0 + 1) % 6 != 0) })
        for (i, entry) in (Gemma3Real.reference["sequences"] as! [[String: Any]]).enumerated() {
            let ids = Fixtures.ints(entry["ids"])
            if ownTokenizer, let text = entry["text"] as? String {
                // The reference ids are BOS + one piece per word, as Gemma's tokenizer splits these.
                #expect(m.tokenizer.encode(text) == ids, "sequence \(i): \(text)")
            }
            let last = try m.logits(ids).row(ids.count - 1)
            let topIds = Fixtures.ints(entry["top5_ids"]), topLogits = (entry["top5_logits"] as! [NSNumber]).map(\.doubleValue)
            let ours = last.indices.sorted { last[$0] > last[$1] }.prefix(5)
            #expect(Array(ours) == topIds, "sequence \(i): top-5 \(Array(ours)) vs \(topIds)")
            let worst = zip(topIds, topLogits).map { abs(Double(last[$0]) - $1) }.max()!
            print("gemma3-270m sequence \(i) (T=\(ids.count)): top-5 max |Δlogit| \(worst)")
            #expect(worst <= 1e-3, "sequence \(i): top-5 logits differ by \(worst)")
            let greedy = try m.generate(ids, maxTokens: 20, stopAtEOS: false)
            #expect(greedy == Fixtures.ints(entry["greedy"]), "sequence \(i): greedy continuation")
        }
    }
}
