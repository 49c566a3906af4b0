import Foundation
import Testing
@testable import SparcAttribution
import SparcModel
import SparcTensor

/// Central difference of f at element i of parameter `name`, against the backward's value.
func expectCentralDifference(_ model: Model, _ name: String, _ i: Int, backward g: Double, context: String,
                             _ f: (Model) throws -> Double) throws {
    let w = model.parameters[name]!
    let h: Float = 1e-2
    var plus = w, minus = w
    plus[flat: i] += h
    minus[flat: i] -= h
    let fd = (try f(model.replacing([name: plus])) - f(model.replacing([name: minus]))) / Double(2 * h)
    #expect(abs(fd - g) <= 2e-3 + 2e-2 * abs(g), "\(context) \(name)[\(i)]: finite difference \(fd), backward \(g)")
}

@Suite struct FiniteDifferenceTests {
    /// With the LRP rules off, the backward pass is the true gradient: central differences
    /// of the target logit agree with it for elements of every kind of parameter.
    /// The OPT fixtures run with GELU in place of ReLU: with h = 1e-2 some ReLU inputs
    /// cross zero, where central differences are meaningless (their ReLU gradient is
    /// compared with torch autograd in `FamilyAttributionMatchesLXT`).
    @Test(arguments: ["tiny-gqa", "tiny-tied", "families/qwen2-gqa", "families/gpt2", "families/opt", "families/opt-post",
                      "families/gemma3-window", "families/gemma3-six"])
    func gradientModeIsTheTrueGradient(model name: String) throws {
        var model = try Model.load(RelevanceFixtures.models + "/" + name)
        if model.config.activation == .relu {
            var c = model.config
            c.activation = .gelu
            model = try Model(config: c, tokenizer: model.tokenizer, parameters: model.parameters, source: model.source)
        }
        let ids = [4, 77, 15, 200, 9, 31, 120]
        let last = try model.logits(ids).row(ids.count - 1)
        let target = last.indices.max { last[$0] < last[$1] }!
        func f(_ m: Model) throws -> Double { Double(try m.logits(ids).row(ids.count - 1)[target]) }
        // Every parameter: linear weights, biases, norms (RMSNorm, LayerNorm scale and
        // shift), token and position embeddings, projections, the head.
        let grads = try Attribution.attribute(model, samples: [AttributionSample(ids: ids, target: .token(target))],
                                              method: .gradient, level: .weight, parameters: .all)
        #expect(grads.names == model.parameterNames)
        var rng = Xoshiro256(seed: 11)
        for name in grads.names {
            // Embedding rows of tokens in the input (and position rows in use) carry gradient.
            for _ in 0..<2 {
                let i: Int
                if name.hasSuffix("embed_tokens.weight") || name.hasSuffix("wte.weight") {
                    let row = ids[Int(rng.next() % UInt64(ids.count))], width = model.parameters[name]!.shape[1]
                    i = row * width + Int(rng.next() % UInt64(width))
                } else if name.hasSuffix("wpe.weight") || name.hasSuffix("embed_positions.weight") {
                    let width = model.parameters[name]!.shape[1], offset = model.config.architecture == "opt" ? 2 : 0
                    i = (Int(rng.next() % UInt64(ids.count)) + offset) * width + Int(rng.next() % UInt64(width))
                } else {
                    i = Int(rng.next() % UInt64(model.parameters[name]!.count))
                }
                try expectCentralDifference(model, name, i, backward: Double(grads[name]![flat: i]), context: name, f)
            }
        }
    }
}

@Suite struct AggregationTests {
    @Test func meanOverSamplesIsTheSameInAnyBatching() throws {
        let model = try Model.load(RelevanceFixtures.models + "/tiny-gqa")
        let samples = [(0, "lrp"), (1, "lrp"), (2, "lrp")].map { i, mode -> AttributionSample in
            let p = RelevanceFixtures.prompt(mode, "tiny-gqa", i)
            return AttributionSample(ids: p.ids, target: p.target)
        }
        let one = try Attribution.attribute(model, samples: samples, method: .lrp, level: .weight, batchSize: 1)
        let all = try Attribution.attribute(model, samples: samples, method: .lrp, level: .weight, batchSize: 3)
        #expect(one.sampleCount == 3)
        for key in one.names {
            // The mean of the three LXT references.
            var mean = try RelevanceFixtures.tensors.tensor("tiny-gqa/lrp/0/" + key).scalars
            for i in 1..<3 {
                let r = try RelevanceFixtures.tensors.tensor("tiny-gqa/lrp/\(i)/" + key).scalars
                for j in mean.indices { mean[j] += r[j] }
            }
            let reference = Tensor(shape: one[key]!.shape, values: mean.map { $0 / 3 })
            #expect(relativeL2(one[key]!, reference) <= 1e-4, "\(key) (batch 1)")
            #expect(relativeL2(all[key]!, reference) <= 1e-4, "\(key) (batch 3)")
        }
    }

    @Test func tokenRelevanceSumsAsInLXT() throws {
        // Conservation: Σ token relevance vs the explained logit, the same as LXT's on this model.
        for name in ["tiny-gqa", "tiny-tied"] {
            let model = try Model.load(RelevanceFixtures.models + "/" + name)
            for i in 0..<4 {
                let p = RelevanceFixtures.prompt("lrp", name, i)
                let map = try Attribution.attribute(model, samples: [AttributionSample(ids: p.ids, target: p.target)], level: .token)
                let ours = map["tokens"]!.scalars.reduce(0, +)
                let lxt = try RelevanceFixtures.tensors.tensor("\(name)/lrp/\(i)/tokens").scalars.reduce(0, +)
                #expect(abs(Double(ours - lxt)) <= 1e-4 * max(1, abs(Double(lxt))), "\(name) \(i): Σ \(ours) vs LXT \(lxt)")
            }
        }
    }

    @Test func headsAreSumsOfTheirChannels() throws {
        let model = try Model.load(RelevanceFixtures.models + "/tiny-gqa")
        let sample = [AttributionSample(ids: [3, 4, 5, 6])]
        let neurons = try Attribution.attribute(model, samples: sample, level: .neuron)
        let heads = try Attribution.attribute(model, samples: sample, level: .head)
        let channels = neurons["model.layers.1.self_attn"]!.scalars
        let hd = model.config.headDim
        for h in 0..<model.config.numHeads {
            #expect(abs(heads["model.layers.1.self_attn"]![flat: h] - channels[(h * hd)..<((h + 1) * hd)].reduce(0, +)) < 1e-5)
        }
        let hidden = try Attribution.attribute(model, samples: sample, level: .hidden)
        let tokens = try Attribution.attribute(model, samples: sample, level: .token)
        // The residual entering layer 0 is the embedding: same relevance as the tokens.
        #expect(relativeL2(hidden["model.layers.0"]!, tokens["tokens"]!) < 1e-6)
    }
}

@Suite struct BaselineTests {
    @Test func magnitudeWandaAndActivation() throws {
        let model = try Model.load(RelevanceFixtures.models + "/tiny-gqa")
        let name = "model.layers.0.mlp.down_proj.weight"
        let w = model.parameters[name]!
        let mag = try Attribution.attribute(model, samples: [AttributionSample(ids: [1])], method: .magnitude)
        #expect(mag[name]!.scalars == w.scalars.map { abs($0) })

        let ids = [5, 9, 13, 200, 7]
        let (_, trace) = try model.tracedLogits(batch: [ids])
        let x = trace.layers[0].mlpProduct   // down_proj's input [tokens, intermediate]
        let cols = x.shape[1]
        let norms = (0..<cols).map { j in (0..<x.shape[0]).map { Double(x[flat: $0 * cols + j]) }.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        let wanda = try Attribution.attribute(model, samples: [AttributionSample(ids: ids)], method: .wanda)
        for (k, v) in wanda[name]!.scalars.enumerated() {
            #expect(abs(Double(v) - Double(abs(w[flat: k])) * norms[k % cols]) <= 1e-4 * max(1, Double(v)))
        }
        let act = try Attribution.attribute(model, samples: [AttributionSample(ids: ids)], method: .activation, level: .neuron)
        let meanAbs = (0..<cols).map { j in (0..<x.shape[0]).map { abs(x[flat: $0 * cols + j]) }.reduce(0, +) / Float(x.shape[0]) }
        #expect(relativeL2(act["model.layers.0.mlp"]!, Tensor(shape: [cols], values: meanAbs)) < 1e-6)
        #expect(throws: AttributionError.self) { try Attribution.attribute(model, samples: [AttributionSample(ids: ids)], method: .magnitude, level: .token) }
    }
}

@Suite struct AbsoluteAggregationTests {
    @Test func meanOfAbsoluteRelevances() throws {
        let model = try Model.load(RelevanceFixtures.models + "/tiny-gqa")
        let samples = (0..<3).map { i -> AttributionSample in
            let p = RelevanceFixtures.prompt("lrp", "tiny-gqa", i)
            return AttributionSample(ids: p.ids, target: p.target)
        }
        let map = try Attribution.attribute(model, samples: samples, method: .lrp, level: .weight, absolute: true)
        for key in map.names {
            var mean = [Float](repeating: 0, count: map[key]!.count)
            for i in 0..<3 {
                let r = try RelevanceFixtures.tensors.tensor("tiny-gqa/lrp/\(i)/" + key).scalars
                for j in mean.indices { mean[j] += abs(r[j]) / 3 }
            }
            #expect(relativeL2(map[key]!, Tensor(shape: map[key]!.shape, values: mean)) <= 1e-4, "\(key)")
        }
    }
}

/// Per-sample |R| of the linear weights is folded sample by sample inside a batched backward;
/// it must equal one pass per sample (and the parameters that are not linear weights, which
/// still take one pass per sample, must be right beside them).
@Suite struct BatchedAbsoluteRelevanceTests {
    @Test(arguments: ["tiny-gqa", "families/gpt2", "families/opt", "families/gemma3-window"])
    func batchedEqualsOnePassPerSample(model name: String) throws {
        let model = try Model.load(RelevanceFixtures.models + "/" + name)
        let samples = [[4, 77, 15, 200, 9], [31, 120, 77], [8, 8, 100, 3, 51, 60, 2], [11]].map { AttributionSample(ids: $0) }
        for method in [AttributionMethod.lrp, .gradient] {
            for groups in [ParameterGroups.linear, .all] {
                let batched = try Attribution.attribute(model, samples: samples, method: method, batchSize: 3, absolute: true, parameters: groups)
                let single = try Attribution.attribute(model, samples: samples, method: method, batchSize: 1, absolute: true, parameters: groups)
                #expect(batched.names == single.names)
                // Equal within float32 rounding: stacked samples meet other sgemm kernels (the
                // row remainders) than one sample alone. OpenBLAS's Haswell kernels measured up to
                // 1.15e-6 relative L2 (SkylakeX below 1e-6); a sample folded into the wrong map
                // or dropped is off by order 1.
                for key in single.names {
                    #expect(relativeL2(batched[key]!, single[key]!) <= 1e-5, "\(name) \(method) \(key)")
                    #expect(batched[key]!.scalars.allSatisfy { $0 >= 0 }, "\(name) \(method) \(key)")
                }
                // |mean| ≤ mean |·|, strictly somewhere: the per-sample values did not cancel.
                let signed = try Attribution.attribute(model, samples: samples, method: method, batchSize: 3, parameters: groups)
                func pairs(_ key: String) -> Zip2Sequence<[Float], [Float]> { zip(batched[key]!.scalars, signed[key]!.scalars) }
                // Within rounding: ∂W sums tokens with cancellations, so 1e-5 of the tensor's
                // largest value (Haswell kernels measured 1.2e-6). Tensors whose gradient is zero
                // in exact arithmetic (a key bias under softmax) hold rounding noise alone and are
                // left out.
                let largest = batched.names.map { Double(batched[$0]!.scalars.max() ?? 0) }.max() ?? 0
                for key in batched.names where Double(batched[key]!.scalars.max() ?? 0) > 1e-6 * largest {
                    let slack = 1e-5 * Double(batched[key]!.scalars.max() ?? 0)
                    let worst = pairs(key).map { Double(abs($1)) - Double($0) }.max() ?? 0
                    #expect(worst <= slack, "\(name) \(method) \(key): |mean| exceeds mean |·| by \(worst)")
                }
                #expect(batched.names.contains { pairs($0).contains { abs($1) < $0 * 0.99 } })
            }
        }
    }
}

/// Norms, embeddings and the output head join a weight-level map only when asked for.
@Suite struct ParameterGroupTests {
    @Test(arguments: ["tiny-gqa", "tiny-tied"])
    func gradientsOfNormsEmbeddingsAndHeadAreTrue(model name: String) throws {
        let model = try Model.load(RelevanceFixtures.models + "/" + name)
        let ids = [4, 77, 15, 200, 9, 31, 120, 77]
        let last = try model.logits(ids).row(ids.count - 1)
        let target = last.indices.max { last[$0] < last[$1] }!
        func f(_ m: Model) throws -> Double { Double(try m.logits(ids).row(ids.count - 1)[target]) }
        let grads = try Attribution.attribute(model, samples: [AttributionSample(ids: ids, target: .token(target))],
                                              method: .gradient, level: .weight, parameters: .all)
        let c = model.config
        #expect(grads.names == Attribution.weightNames(model, .all))
        #expect(grads.names.contains("lm_head.weight") == !c.tieWordEmbeddings)
        var checks: [(String, Int)] = []
        for n in ["model.norm.weight", "model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight"] {
            checks += [(n, 3), (n, 40)]
        }
        // Embedding rows of tokens in the prompt (77 twice), and head rows of the target.
        checks += [("model.embed_tokens.weight", 77 * c.hiddenSize + 5), ("model.embed_tokens.weight", 4 * c.hiddenSize + 60),
                   ("model.embed_tokens.weight", target * c.hiddenSize + 7)]
        if !c.tieWordEmbeddings { checks += [("lm_head.weight", target * c.hiddenSize + 7), ("lm_head.weight", 5 * c.hiddenSize)] }
        for (n, i) in checks {
            try expectCentralDifference(model, n, i, backward: Double(grads[n]![flat: i]), context: name, f)
        }
    }

    @Test func lrpRelevanceOfEmbeddingsAndHeadIsConserved() throws {
        let model = try Model.load(RelevanceFixtures.models + "/tiny-gqa")
        let sample = AttributionSample(ids: [4, 77, 15, 200, 9, 31, 120, 77])
        let all = try Attribution.attribute(model, samples: [sample], method: .lrp, parameters: .all)
        let tokens = try Attribution.attribute(model, samples: [sample], method: .lrp, level: .token)
        func total(_ t: Tensor) -> Double { t.scalars.reduce(0) { $0 + Double($1) } }
        // The embedding matrix's relevance is the input tokens' relevance (checked against LXT).
        let tokenTotal = total(tokens["tokens"]!)
        #expect(abs(total(all["model.embed_tokens.weight"]!) - tokenTotal) <= 1e-4 * max(1, abs(tokenTotal)))
        // The final norm's scale and the head both carry everything the seed puts in:
        // logit · (w_target · h) = logit².
        let f = all.explained[0]
        #expect(abs(total(all["lm_head.weight"]!) - f * f) <= 1e-4 * f * f)
        #expect(abs(total(all["model.norm.weight"]!) - f * f) <= 1e-4 * f * f)
        // The linear weights are the same as in the default map.
        let linear = try Attribution.attribute(model, samples: [sample], method: .lrp)
        #expect(linear.names == Attribution.linearWeightNames(model))
        for n in linear.names { #expect(linear[n]!.scalars == all[n]!.scalars) }
        #expect(throws: AttributionError.self) { try Attribution.attribute(model, samples: [sample], method: .wanda, parameters: .all) }
        #expect(throws: AttributionError.self) { try Attribution.attribute(model, samples: [sample], level: .neuron, parameters: .norms) }
    }
}
