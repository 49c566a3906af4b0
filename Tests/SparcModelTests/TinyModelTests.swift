import Foundation
import Testing
import SparcFormats
@testable import SparcModel
import SparcTensor

/// Tiny random Llama models saved by transformers (HF folders) and gguf-py (GGUF),
/// compared with transformers' own outputs on the same weights.
@Suite struct TinyModelTests {
    static let files = ["tiny-gqa", "tiny-gqa.gguf", "tiny-quant.gguf", "tiny-tied", "tiny-tied.gguf"]

    @Test(arguments: files)
    func logitsMatchTransformers(file: String) throws {
        let m = try Model.load(Fixtures.path(file))
        let prompts = Fixtures.intLists(Fixtures.model(file)["prompts"])
        for (i, ids) in prompts.enumerated() {
            let ref = try Fixtures.logits.tensor("\(file)/logits/\(i)")
            let mine = try m.logits(ids)
            #expect(mine.shape == ref.shape)
            let diff = maxAbsDiff(mine, ref)
            #expect(diff <= 1e-4, "\(file) prompt \(i): max |Δlogit| = \(diff)")
        }
    }

    @Test(arguments: files)
    func greedyContinuationMatchesTransformers(file: String) throws {
        let m = try Model.load(Fixtures.path(file))
        let ref = Fixtures.model(file)
        let out = try m.generate(Fixtures.ints(ref["greedy_prompt"]), maxTokens: 12)
        #expect(out == Fixtures.ints(ref["greedy"]))
    }

    @Test(arguments: files)
    func slidingWindowPerplexityMatchesTransformers(file: String) throws {
        let m = try Model.load(Fixtures.path(file))
        let ref = Fixtures.model(file)
        let r = try m.perplexity(Fixtures.ints(ref["long"]), window: 16, stride: 8)
        let expected = (ref["perplexity"] as! NSNumber).doubleValue
        #expect(r.predictedTokens == (ref["perplexity_tokens"] as! NSNumber).intValue)
        #expect(abs(r.perplexity - expected) / expected < 1e-5, "\(r.perplexity) vs \(expected)")
    }

    @Test func ggufWeightsAreHuggingFaceWeights() throws {
        // F32 GGUF: after renaming and undoing the q/k permutation, every parameter is
        // bit-identical to the safetensors export.
        let hf = try Model.load(Fixtures.path("tiny-gqa"))
        let gg = try Model.load(Fixtures.path("tiny-gqa.gguf"))
        #expect(hf.parameterNames == gg.parameterNames)
        for name in hf.parameterNames {
            #expect(hf.parameters[name]!.scalars == gg.parameters[name]!.scalars, "\(name)")
        }
    }

    @Test func quantisedTensorsDequantiseLikeGGUFPy() throws {
        let m = try Model.load(Fixtures.path("tiny-quant.gguf"))
        let ref = try SafetensorsFile(path: Fixtures.path("tiny-quant-dequant.safetensors"))
        #expect(Set(ref.names) == Set(m.parameterNames))
        for name in ref.names {
            #expect(m.parameters[name]!.scalars == (try ref.tensor(name)).scalars, "\(name)")
        }
    }

    @Test func batchAndKVCacheAgreeWithSingleSequences() throws {
        let m = try Model.load(Fixtures.path("tiny-gqa"))
        let seqs = [[3, 17, 99, 5], [42], Array(10..<40)]
        let batch = try m.logits(batch: seqs)
        for (ids, out) in zip(seqs, batch) {
            #expect(maxAbsDiff(out, try m.logits(ids)) < 1e-5)
        }
        // Incremental decoding through the cache gives the full pass's last-row logits.
        let ids = Array(10..<40)
        let full = try m.logits(ids)
        let cache = KVCache(config: m.config, capacity: ids.count)
        _ = m.forward([Array(ids[0..<20])], caches: [cache], logitRows: .last)
        var last = Tensor(zeros: [1])
        for id in ids[20...] { last = m.forward([[id]], caches: [cache], logitRows: .last)[0] }
        let fullLast = Tensor(shape: [1, m.config.vocabSize], values: full.row(ids.count - 1))
        #expect(maxAbsDiff(last, fullLast) < 1e-5)
    }

    @Test func seededSamplingIsReproducible() throws {
        let m = try Model.load(Fixtures.path("tiny-tied"))
        let s = Sampling.sample(temperature: 0.8, topK: 50, topP: 0.95, seed: 7)
        let a = try m.generate([4, 5, 6], maxTokens: 20, sampling: s, stopAtEOS: false)
        let b = try m.generate([4, 5, 6], maxTokens: 20, sampling: s, stopAtEOS: false)
        let c = try m.generate([4, 5, 6], maxTokens: 20, sampling: .sample(temperature: 0.8, topK: 50, topP: 0.95, seed: 8), stopAtEOS: false)
        #expect(a == b)
        #expect(a.count == 20)
        #expect(a != c)
    }

    @Test func configsAreRead() throws {
        let tied = try Model.load(Fixtures.path("tiny-tied"))
        #expect(tied.config.tieWordEmbeddings)
        #expect(tied.config.ropeScaling == .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16))
        #expect(tied.parameters["lm_head.weight"] == nil)
        let gqa = try Model.load(Fixtures.path("tiny-gqa.gguf"))
        #expect(gqa.config.numHeads == 4 && gqa.config.numKVHeads == 2 && gqa.config.headDim == 16)
        #expect(!gqa.config.tieWordEmbeddings)
    }
}
