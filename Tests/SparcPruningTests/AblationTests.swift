import Foundation
import Testing
@testable import SparcPruning
import SparcAttribution
import SparcModel
import SparcTensor

/// A map shaped like `map` holding uniform noise (a random ranking).
private func noise(like map: RelevanceMap, seed: UInt64) -> RelevanceMap {
    var rng = Xoshiro256(seed: seed)
    var out = map
    for n in map.names { out.tensors[n] = Tensor(shape: map[n]!.shape) { p in for i in 0..<p.count { p[i] = rng.nextFloat() } } }
    return out
}

/// Restricting maps and masks to named parts, the same part in every family.
@Suite struct RestrictionTests {
    static let families = FamilyPruningTests.families

    @Test(arguments: [("llama-linear", ["mlp.gate_proj.weight", "mlp.up_proj.weight"], ["mlp.down_proj.weight"]),
                      ("opt", ["fc1.weight"], ["fc2.weight"]),
                      ("gpt2", ["mlp.c_fc.weight"], ["mlp.c_proj.weight"]),
                      ("qwen2-gqa", ["mlp.gate_proj.weight", "mlp.up_proj.weight"], ["mlp.down_proj.weight"])])
    func partsMeanTheSameInEveryFamily(family: String, fc1: [String], fc2: [String]) throws {
        let m = try Model.load(Self.families + "/" + family)
        let r = try Attribution.attribute(m, samples: [AttributionSample(ids: [1])], method: .magnitude)
        func suffixes(_ part: String) throws -> Set<String> {
            let names = try r.restricted(to: try ModelParts.filter(part), description: part).names
            return Set(names.map { n in (fc1 + fc2).first { n.hasSuffix($0) } ?? n })
        }
        #expect(try suffixes("fc1") == Set(fc1))
        #expect(try suffixes("fc2") == Set(fc2))
        #expect(try suffixes("mlp") == Set(fc1 + fc2))
        let mlp = try r.restricted(to: try ModelParts.filter("mlp"), description: "mlp")
        let attention = try r.restricted(to: try ModelParts.filter("attention"), description: "attention")
        // The linear weights are the MLP's and the attention's, nothing else and nothing twice.
        #expect(Set(mlp.names).isDisjoint(with: attention.names) && mlp.names.count + attention.names.count == r.names.count)
        // A regular expression on the keys; a filter that matches nothing is an error.
        let layer1 = try r.restricted(to: try ModelParts.filter("\\.1\\."), description: "layer 1")
        #expect(!layer1.names.isEmpty && layer1.names.allSatisfy { $0.contains(".1.") })
        #expect { try r.restricted(to: try ModelParts.filter("nothing-like-this"), description: "x") } throws: { "\($0)".contains("no key") }
        #expect { try ModelParts.filter("([") } throws: { "\($0)".contains("regular expression") }
    }

    /// A circuit searched in the MLP leaves attention intact: its complement stays inside
    /// the MLP, and pruning with it touches no attention tensor.
    @Test func restrictedMasksPruneOnlyTheirPart() throws {
        let m = try Model.load(Self.families + "/llama-linear")
        let r = try Attribution.attribute(m, samples: [AttributionSample(ids: [1])], method: .magnitude)
        let mlp = try r.restricted(to: try ModelParts.filter("mlp"), description: "mlp")
        let circuit = try Selection.extreme(mlp, k: 0.2, largest: true, per: .global)
        #expect(circuit.complement.names == mlp.names)
        let p = try Pruning.prune(m, circuit.complement)
        for n in r.names where !mlp.names.contains(n) { #expect(p.parameters[n]!.sharesStorage(with: m.parameters[n]!)) }
        // Components: neuron maps split into attention and MLP units.
        let neurons = try Attribution.attribute(m, samples: [AttributionSample(ids: [1, 2, 3])], method: .activation, level: .neuron)
        let units = try neurons.restricted(to: try ModelParts.filter("fc1"), description: "fc1")
        #expect(units.names == (0..<m.config.numLayers).map(m.components.mlp))
        let mask = try Mask(like: neurons, filled: true).restricted(to: try ModelParts.filter("attention"), description: "attention")
        #expect(mask.names == (0..<m.config.numLayers).map(m.components.attention))
    }
}

/// Row maps: a weight map summed per output unit, fused tensors' pieces in order.
@Suite struct RowTests {
    @Test(arguments: ["llama-linear", "gpt2"])
    func rowsAreRowSumsOfTheRuntimeMatrices(family: String) throws {
        let m = try Model.load(FamilyPruningTests.families + "/" + family)
        let w = noise(like: try Attribution.attribute(m, samples: [AttributionSample(ids: [1])], method: .magnitude), seed: 3)
        let rows = try Attribution.rows(of: w, model: m)
        #expect(rows.level == .row && rows.names == w.names)
        for n in w.names {
            let t = m.layout.tensor(named: n)!
            let runtime = m.layout.runtimeParameters([n: w[n]!])
            for piece in t.pieces {
                let x = runtime[piece.key]!
                for r in 0..<piece.shape[0] {
                    let sum = x.row(r).reduce(0, +)
                    #expect(abs(rows[n]![flat: piece.offset + r] - sum) <= 1e-4 * max(1, abs(sum)))
                }
            }
        }
    }

    /// Pruning a row removes the unit: its row and its bias entry are zero.
    @Test func rowMasksZeroRowsAndBiases() throws {
        let m = try Model.load(FamilyPruningTests.families + "/gpt2")
        let rows = try Attribution.rows(of: try Attribution.attribute(m, samples: [AttributionSample(ids: [1])], method: .magnitude), model: m)
        let name = "transformer.h.0.attn.c_attn.weight", d = m.config.hiddenSize
        var mask = try Mask(like: rows)
        mask.bits[name]![d + 5] = true           // unit 5 of the key projection
        let p = try Pruning.prune(m, mask)
        let key = p.runtimeParameters[ParameterKey(.key, layer: 0)]!
        #expect(key.row(5).allSatisfy { $0 == 0 } && key.row(4) == m.runtimeParameters[ParameterKey(.key, layer: 0)]!.row(4))
        #expect(p.runtimeParameters[ParameterKey(.keyBias, layer: 0)]![flat: 5] == 0)
        #expect(p.runtimeParameters[ParameterKey(.query, layer: 0)]!.scalars == m.runtimeParameters[ParameterKey(.query, layer: 0)]!.scalars)
    }
}

/// Mean ablation replaces each removed contribution by its mean over reference prompts.
@Suite struct MeanAblationTests {
    /// With one single-token prompt as the reference, every mean is that prompt's own
    /// activation, so the ablated model computes exactly what the full one does on it —
    /// whatever is removed, at every granularity. Zero ablation does not.
    @Test(arguments: ["llama-linear", "gpt2", "opt", "qwen2-gqa", "gemma3-six"])
    func meanAblationOnItsOwnReferenceChangesNothing(family: String) throws {
        let m = try Model.load(FamilyPruningTests.families + "/" + family)
        let prompt = [7]
        let means = try Attribution.inputMeans(m, prompts: [prompt])
        let full = try m.lastLogits(batch: [prompt])[0].scalars
        let weight = try Attribution.attribute(m, samples: [AttributionSample(ids: [1])], method: .magnitude)
        let sample = [AttributionSample(ids: prompt)]
        let maps = [weight, try Attribution.rows(of: weight, model: m),
                    try Attribution.attribute(m, samples: sample, method: .activation, level: .neuron),
                    try Attribution.attribute(m, samples: sample, method: .activation, level: .head)]
        for (i, map) in maps.enumerated() {
            let mask = try Selection.extreme(noise(like: map, seed: UInt64(i)), k: 0.5, largest: true, per: .global)
            let ablated = try Pruning.prune(m, mask, ablation: .mean(means))
            let zeroed = try Pruning.prune(m, mask)
            let a = try ablated.lastLogits(batch: [prompt])[0].scalars, z = try zeroed.lastLogits(batch: [prompt])[0].scalars
            let scale = full.map { abs($0) }.max()!
            #expect(zip(a, full).map { abs($0 - $1) }.max()! <= 1e-4 * scale, "\(family) \(map.level)")
            #expect(zip(z, full).map { abs($0 - $1) }.max()! > 1e-3 * scale, "\(family) \(map.level): zeroing should change the logits")
        }
    }

    /// On other prompts mean ablation is not the identity, and a Llama model gains biases
    /// that its config.json describes (attention_bias, mlp_bias), so it exports and reloads.
    @Test func meanAblatedLlamaGainsBiasesAndExports() throws {
        let m = try Model.load(FamilyPruningTests.families + "/llama-linear")
        #expect(!m.config.queryKeyValueBias && !m.config.mlpBias)
        let means = try Attribution.inputMeans(m, prompts: [[1, 2, 3, 4], [5, 6, 7]])
        let heads = try Attribution.attribute(m, samples: [AttributionSample(ids: [1, 2, 3])], method: .activation, level: .head)
        let mask = try Selection.extreme(noise(like: heads, seed: 9), k: 0.5, largest: true, per: .global)
        let ablated = try Pruning.prune(m, mask, ablation: .mean(means))
        #expect(ablated.config.attentionOutputBias && ablated.config.queryKeyValueBias)
        #expect(ablated.parameters["model.layers.0.self_attn.o_proj.bias"] != nil)
        let ids = [9, 8, 7, 6]
        #expect(try ablated.logits(ids).scalars != Pruning.prune(m, mask).logits(ids).scalars)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-ablated-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ablated.save(huggingFaceFolder: dir)
        #expect(try Model.load(dir).logits(ids).scalars == ablated.logits(ids).scalars)
    }

    /// Qwen2's config has no flag for an o_proj bias: the export refuses instead of writing
    /// a folder transformers would load without it.
    @Test func biasesAConfigCannotDescribeAreNotExported() throws {
        let m = try Model.load(FamilyPruningTests.families + "/qwen2-gqa")
        let heads = try Attribution.attribute(m, samples: [AttributionSample(ids: [1, 2, 3])], method: .activation, level: .head)
        let mask = try Selection.extreme(heads, k: 0.5, largest: true, per: .global)
        let ablated = try Pruning.prune(m, mask, ablation: .mean(try Attribution.inputMeans(m, prompts: [[1, 2, 3]])))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-ablated-qwen-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect { try ablated.save(huggingFaceFolder: dir) } throws: { "\($0)".contains("cannot describe") }
    }
}
