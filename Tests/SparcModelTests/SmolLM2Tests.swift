import Foundation
import Testing
@testable import SparcModel
import SparcTensor

/// Checks on the real default model against transformers' outputs for the same GGUF
/// (dequantised to float32). They run when the model is installed, and must run when
/// SPARC_REQUIRE_MODEL=1 (set by scripts/test.sh, so CI cannot skip them silently).
@Suite(.serialized) struct SmolLM2Tests {
    static let installed: Bool = {
        let present = FileManager.default.fileExists(atPath: ModelRegistry.path(of: ModelRegistry.entry(named: "smollm2")!))
        return present || ProcessInfo.processInfo.environment["SPARC_REQUIRE_MODEL"] == "1"
    }()
    nonisolated(unsafe) static let reference = Fixtures.json("smollm2.json")
    static let model: Model? = try? Model.load("smollm2")

    func loaded() throws -> Model { try #require(SmolLM2Tests.model, "smollm2 is not installed: run `sparc install smollm2`") }
    var prompts: [[String: Any]] { SmolLM2Tests.reference["prompts"] as! [[String: Any]] }

    @Test(.enabled(if: installed)) func promptsTokenizeLikeTokenizers() throws {
        let m = try loaded()
        for p in prompts { #expect(m.tokenizer.encode(p["text"] as! String) == Fixtures.ints(p["ids"])) }
    }

    @Test(.enabled(if: installed)) func corpusTokenizesLikeTokenizers() throws {
        let m = try loaded()
        let expected = Fixtures.intLists(SmolLM2Tests.reference["corpus_ids"])
        for (line, ids) in zip(Fixtures.corpus, expected) {
            #expect(m.tokenizer.encode(line) == ids, "\(line.debugDescription)")
        }
    }

    @Test(.enabled(if: installed)) func topFiveNextTokensMatchTransformers() throws {
        let m = try loaded()
        for p in prompts {
            let logits = try m.logits(Fixtures.ints(p["ids"]))
            let last = logits.row(logits.shape[0] - 1)
            let top = last.indices.sorted { last[$0] > last[$1] }.prefix(5)
            #expect(Array(top) == Fixtures.ints(p["top5_ids"]), "\(p["text"]!)")
            let refLogits = (p["top5_logits"] as! [NSNumber]).map(\.floatValue)
            for (id, ref) in zip(Fixtures.ints(p["top5_ids"]), refLogits) {
                #expect(abs(last[id] - ref) <= 1e-3, "\(p["text"]!): token \(id) logit \(last[id]) vs \(ref)")
            }
        }
    }

    @Test(.enabled(if: installed)) func greedyContinuationsMatchTransformers() throws {
        let m = try loaded()
        for p in prompts {
            #expect(try m.generate(Fixtures.ints(p["ids"]), maxTokens: 24) == Fixtures.ints(p["greedy"]), "\(p["text"]!)")
        }
    }

    @Test(.enabled(if: installed)) func perplexityWithinATenthOfAPercent() throws {
        let m = try loaded()
        let ref = SmolLM2Tests.reference["perplexity"] as! [String: Any]
        let text = try String(contentsOfFile: Fixtures.path(ref["file"] as! String), encoding: .utf8)
        let r = try m.perplexity(text: text, window: (ref["window"] as! NSNumber).intValue, stride: (ref["stride"] as! NSNumber).intValue)
        let expected = (ref["value"] as! NSNumber).doubleValue
        #expect(r.predictedTokens == (ref["predicted"] as! NSNumber).intValue)
        #expect(abs(r.perplexity - expected) / expected < 1e-3, "sparc \(r.perplexity), transformers \(expected)")
    }
}
