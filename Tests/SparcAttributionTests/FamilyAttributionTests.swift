import Foundation
import Testing
import SparcFormats
@testable import SparcAttribution
@testable import SparcModel
import SparcTensor

/// AttnLRP and Gradient×Input on tiny llama, qwen2, gpt2, opt and gemma3 models against LXT
/// 2.1's efficient patches (llama, qwen2, gpt2, gemma3; OPT with GPT-2's rules applied by
/// the script), from scripts/make_family_references.py: every parameter's relevance under
/// its checkpoint name and shape, tokens (and learned positions), neurons, heads.
enum FamilyRelevance {
    static let dir = RelevanceFixtures.dir
    /// Gemma 3 (LXT's gemma3 map) has its own files (`make_family_references.py --gemma3`).
    static let gemma = ["gemma3-window", "gemma3-six"]
    static let files = (try! SafetensorsFile(path: dir + "/families-relevance.safetensors"),
                        try! SafetensorsFile(path: dir + "/families-relevance-gemma3.safetensors"))
    nonisolated(unsafe) static let metas = (meta("families-relevance.json"), meta("families-relevance-gemma3.json"))
    static let models = RelevanceFixtures.models + "/families"
    static let names = ["llama-linear", "llama-llama3", "qwen2-gqa", "qwen2-tied", "gpt2", "gpt2-inner", "opt", "opt-post"] + gemma

    static func meta(_ file: String) -> [String: Any] {
        (try! JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/" + file)))) as! [String: Any]
    }
    static func tensors(_ model: String) -> SafetensorsFile { gemma.contains(model) ? files.1 : files.0 }

    static func prompt(_ mode: String, _ model: String, _ i: Int) -> (ids: [Int], target: AttributionTarget, explained: Double) {
        RelevanceFixtures.prompt(in: gemma.contains(model) ? metas.1 : metas.0, mode, model, i)
    }

    /// Relative L2 error, with an absolute floor for relevances that are zero in theory
    /// (a key bias shifts a softmax row by a constant: the reference holds ~1e-8 noise).
    /// `magnitude` (default: `b` itself) is the size the error is relative to.
    static func error(_ a: Tensor, _ b: Tensor, explained: Double, magnitude: Tensor? = nil) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a.scalars, b.scalars) { num += Double(x - y) * Double(x - y) }
        for y in (magnitude ?? b).scalars { den += Double(y) * Double(y) }
        return num.squareRoot() / max(den.squareRoot(), 1e-3 * max(1, abs(explained)))
    }
}

@Suite struct FamilyAttributionMatchesLXT {
    static let cases: [(String, String, Int)] =
        FamilyRelevance.names.flatMap { m in ["lrp", "gradient"].flatMap { mode in (0..<4).map { (m, mode, $0) } } }

    @Test(arguments: cases)
    func relevancesMatchTheReference(model name: String, mode: String, prompt i: Int) throws {
        let model = try Model.load(FamilyRelevance.models + "/" + name)
        let (ids, target, explained) = FamilyRelevance.prompt(mode, name, i)
        let method: AttributionMethod = mode == "lrp" ? .lrp : .gradxinput
        let sample = AttributionSample(ids: ids, target: target)
        let prefix = "\(name)/\(mode == "lrp" ? "lrp" : "grad")/\(i)/"
        let reference = FamilyRelevance.tensors(name)
        var compared = 0
        func check(_ map: RelevanceMap, _ key: String) throws {
            guard reference.names.contains(prefix + key) else { return }
            let theirs = try reference.tensor(prefix + key)
            // Matrices are stored as their first rows (scripts/make_family_references.py).
            let ours = map[key]!.rank == 2 ? Tensor(shape: theirs.shape, values: Array(map[key]!.scalars.prefix(theirs.count))) : map[key]!
            if let t = model.layout.tensor(named: key), t.pieces.allSatisfy({ $0.key.role == .keyBias }),
               model.config.positions != .rotary {
                // Without RoPE a key bias shifts each softmax row by a constant: its
                // relevance is zero, and both sides hold rounding noise only.
                let scale = 1e-5 * max(1, abs(explained))
                #expect(ours.scalars.allSatisfy { Double(abs($0)) <= scale } && theirs.scalars.allSatisfy { Double(abs($0)) <= scale }, "\(key)")
            } else {
                let err = FamilyRelevance.error(ours, theirs, explained: explained)
                #expect(err <= 1e-4, "\(name) \(mode) \(i) \(key): error \(err)")
            }
            compared += 1
        }

        let tokens = try Attribution.attribute(model, samples: [sample], method: method, level: .token)
        #expect(abs(tokens.explained[0] - explained) <= 1e-4 * max(1, abs(explained)))
        for key in tokens.names { try check(tokens, key) }

        let weights = try Attribution.attribute(model, samples: [sample], method: method, level: .weight, parameters: .all)
        for key in weights.names { try check(weights, key) }

        let neurons = try Attribution.attribute(model, samples: [sample], method: method, level: .neuron)
        for key in neurons.names { try check(neurons, key) }
        // Every reference array of this case was compared.
        #expect(compared == reference.names.filter { $0.hasPrefix(prefix) }.count)

        // Heads: the attention channels of the reference summed per head.
        let heads = try Attribution.attribute(model, samples: [sample], method: method, level: .head)
        let c = model.config
        for l in 0..<c.numLayers {
            let key = model.components.attention(l)
            let channels = try reference.tensor(prefix + key).scalars
            let perHead = (0..<c.numHeads).map { h in channels[(h * c.headDim)..<((h + 1) * c.headDim)] }
            let theirs = Tensor(shape: [c.numHeads], values: perHead.map { $0.reduce(0, +) })
            // A head's relevance sums its channels, which can cancel: float32 rounding of the sum
            // (both sides') is relative to Σ|channel|, not to |Σ channel|. gemma3-six's last
            // layer under gradient×input measured 0.7e-4 (OpenBLAS SkylakeX) and 1.6e-4 (Haswell
            // kernels) relative to |Σ channel|, at most 1.1e-6 relative to Σ|channel|.
            let terms = Tensor(shape: [c.numHeads], values: perHead.map { $0.reduce(0) { $0 + abs($1) } })
            let err = FamilyRelevance.error(heads[key]!, theirs, explained: explained, magnitude: terms)
            #expect(err <= 1e-5, "\(name) \(mode) \(i) \(key) heads: error \(err)")
        }
    }
}

/// Long inputs do not keep every layer's attention probabilities (the backward recomputes
/// each head's P from the saved queries and keys) nor every block's activations (the
/// backward runs each block again from its input). Relevances are the same either way
/// (sliding windows included).
@Suite struct RecomputedAttentionTests {
    @Test(arguments: ["llama-linear", "gemma3-six", "gpt2"])
    func recomputedProbabilitiesGiveTheSameRelevance(family: String) throws {
        let m = try Model.load(FamilyRelevance.models + "/" + family)
        let samples = [AttributionSample(ids: (0..<23).map { ($0 * 7 + 3) % m.config.vocabSize }, target: .languageModeling),
                       AttributionSample(ids: [5, 9, 2, 11, 4, 8, 1])]
        let kept = try Attribution.attribute(m, samples: samples, method: .lrp, level: .weight)
        let keptTokens = try Attribution.attribute(m, samples: samples, method: .lrp, level: .token)
        let (recomputed, recomputedTokens) = try Attention.$storedProbabilityLimit.withValue(0) {
            (try Attribution.attribute(m, samples: samples, method: .lrp, level: .weight),
             try Attribution.attribute(m, samples: samples, method: .lrp, level: .token))
        }
        try Self.expectSame([(kept, recomputed), (keptTokens, recomputedTokens)], family)
    }

    /// Checkpointed traces (`ActivationTrace.storedActivationLimit`) keep each block's input
    /// alone and run the block again in the backward: the same relevances at every level,
    /// for LRP and gradients, with P kept per recomputed block or recomputed per head.
    @Test(arguments: ["llama-linear", "gemma3-six", "gpt2", "opt-post", "qwen2-gqa"])
    func checkpointedBlocksGiveTheSameRelevance(family: String) throws {
        let m = try Model.load(FamilyRelevance.models + "/" + family)
        let samples = [AttributionSample(ids: (0..<23).map { ($0 * 7 + 3) % m.config.vocabSize }, target: .languageModeling),
                       AttributionSample(ids: [5, 9, 2, 11, 4, 8, 1])]
        let cases: [(AttributionMethod, AttributionLevel)] = [(.lrp, .weight), (.lrp, .token), (.lrp, .neuron), (.gradient, .hidden)]
        let stored = try cases.map { try Attribution.attribute(m, samples: samples, method: $0.0, level: $0.1) }
        try ActivationTrace.$storedActivationLimit.withValue(0) {
            #expect(try m.tracedLogits(batch: [[1, 2, 3]], forBackwardOnly: true).trace.recomputesBlocks)
            #expect(try !m.tracedLogits(batch: [[1, 2, 3]]).trace.recomputesBlocks)  // Wanda's statistics read every block
            let checkpointed = try cases.map { try Attribution.attribute(m, samples: samples, method: $0.0, level: $0.1) }
            try Self.expectSame(Array(zip(stored, checkpointed)), family)
            let both = try Attention.$storedProbabilityLimit.withValue(0) {
                try cases.map { try Attribution.attribute(m, samples: samples, method: $0.0, level: $0.1) }
            }
            try Self.expectSame(Array(zip(stored, both)), family)
        }
    }

    /// Attention in query blocks (each against the keys up to its last row) gives the same
    /// logits, with a KV-cache past too, and the same relevances, P stored or recomputed.
    @Test(arguments: ["llama-linear", "gemma3-window", "gpt2", "qwen2-gqa"])
    func blockedAttentionGivesTheSameResults(family: String) throws {
        let m = try Model.load(FamilyRelevance.models + "/" + family)
        let ids = (0..<23).map { ($0 * 7 + 3) % m.config.vocabSize }, more = (0..<10).map { ($0 * 5 + 1) % m.config.vocabSize }
        let samples = [AttributionSample(ids: ids, target: .languageModeling), AttributionSample(ids: [5, 9, 2, 11, 4, 8, 1])]
        func run() throws -> (logits: [Tensor], continued: Tensor, maps: [RelevanceMap]) {
            let caches = [KVCache(config: m.config, capacity: ids.count + more.count)]
            _ = m.forward([ids], caches: caches, logitRows: .all)
            let continued = m.forward([more], caches: caches, logitRows: .all)[0]  // 10 rows after a past of 23
            let maps = try [AttributionLevel.weight, .token].map { try Attribution.attribute(m, samples: samples, method: .lrp, level: $0) }
            return (try m.logits(batch: [ids, more]), continued, maps)
        }
        let whole = try run()
        let blocked = try Attention.$queryBlock.withValue(4) { try run() }
        for (a, b) in zip(whole.logits + [whole.continued], blocked.logits + [blocked.continued]) {
            let scale = a.scalars.map { abs($0) }.max()!
            #expect(zip(a.scalars, b.scalars).allSatisfy { abs($0 - $1) <= 1e-5 * scale }, "\(family) logits")
        }
        try Self.expectSame(Array(zip(whole.maps, blocked.maps)), family)
        let recomputed = try Attention.$queryBlock.withValue(4) {
            try Attention.$storedProbabilityLimit.withValue(0) { try run() }
        }
        try Self.expectSame(Array(zip(whole.maps, recomputed.maps)), family)
    }

    static func expectSame(_ pairs: [(RelevanceMap, RelevanceMap)], _ family: String) throws {
        for (a, b) in pairs {
            #expect(a.names == b.names)
            for n in a.names {
                let x = a[n]!.scalars, y = b[n]!.scalars
                let scale = max(x.map { abs($0) }.max() ?? 0, 1e-12)
                let diff = zip(x, y).map { abs($0 - $1) }.max() ?? 0
                #expect(diff <= 1e-5 * scale, "\(family) \(n): \(diff) of \(scale)")
            }
        }
    }
}
