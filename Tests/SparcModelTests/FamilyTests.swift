import Foundation
import Testing
import SparcFormats
@testable import SparcModel
import SparcTensor

/// Tiny random llama, qwen2, gpt2, opt and gemma3 models from scripts/make_family_references.py
/// (transformers 4.57): their logits and greedy continuations, and exports that reload.
/// The Gemma 3 references (`--gemma3`) live in their own files, with the same sequences.
enum FamilyFixtures {
    static let dir = Fixtures.path("families")
    static let gemma = ["gemma3-window", "gemma3-six"]
    static let names = ["llama-linear", "llama-llama3", "qwen2-gqa", "qwen2-tied", "gpt2", "gpt2-inner", "opt", "opt-post"] + gemma
    nonisolated(unsafe) static let references = Fixtures.json("families/references.json")
    nonisolated(unsafe) static let gemmaReferences = Fixtures.json("families/references-gemma3.json")
    static let logitFiles = (try! SafetensorsFile(path: dir + "/references.safetensors"),
                             try! SafetensorsFile(path: dir + "/references-gemma3.safetensors"))
    static func model(_ name: String) throws -> Model { try Model.load(dir + "/" + name) }
    /// Model `name`'s logits for sequence `i`.
    static func logits(_ name: String, _ i: Int) throws -> Tensor {
        try (gemma.contains(name) ? logitFiles.1 : logitFiles.0).tensor("\(name)/logits/\(i)")
    }
    /// Model `name`'s entry (greedy continuation).
    static func reference(_ name: String) -> [String: Any] {
        ((gemma.contains(name) ? gemmaReferences : references)["models"] as! [String: Any])[name] as! [String: Any]
    }
}

@Suite struct FamilyTests {
    @Test(arguments: FamilyFixtures.names)
    func logitsMatchTransformers(family name: String) throws {
        let m = try FamilyFixtures.model(name)
        let sequences = Fixtures.intLists(FamilyFixtures.references["sequences"])
        for (i, ids) in sequences.enumerated() {
            let diff = maxAbsDiff(try m.logits(ids), try FamilyFixtures.logits(name, i))
            #expect(diff <= 1e-4, "\(name) sequence \(i): max |Δlogit| \(diff)")
        }
        let ref = FamilyFixtures.reference(name)
        let prompt = Fixtures.ints(FamilyFixtures.references["greedy_prompt"])
        let out = try m.generate(prompt, maxTokens: 12, stopAtEOS: false)
        #expect(out == Fixtures.ints(ref["greedy"]))
    }

    /// Batched generation (one cache per sequence, one forward per step for the batch)
    /// gives each prompt exactly what it gets alone: greedy and seeded sampling, prompts of
    /// different lengths, sequences that stop early at EOS while others go on.
    @Test(arguments: FamilyFixtures.names)
    func batchedGenerationEqualsOneByOne(family name: String) throws {
        let m = try FamilyFixtures.model(name)
        let v = m.config.vocabSize
        let prompts = [[1, 2, 3], [7], [5, 9, 11, 13, 2, 4, 6, 8, 10], [3, 3, 3, 3]].map { $0.map { $0 % v } }
        let samplings: [Sampling] = [.greedy, .sample(temperature: 0.9, seed: 1), .sample(temperature: 1.3, topK: 5, seed: 2), .greedy]
        let alone = try zip(prompts, samplings).map { try m.generate($0, maxTokens: 10, sampling: $1, stopAtEOS: false) }
        #expect(try m.generate(batch: prompts, maxTokens: 10, samplings: samplings, stopAtEOS: false) == alone)
        // Stop tokens: pretend the first prompt's third greedy token is EOS by stopping on
        // every id it generates at position 3; the others must be unaffected by its end.
        let stop = alone[0][2]
        let single = try prompts.indices.map { i in
            let full = alone[i]
            return Array(full.prefix(through: full.firstIndex(of: stop) ?? full.count - 1))
        }
        let batched = try m.generate(batch: prompts, maxTokens: 10, samplings: samplings, stopAtEOS: true, stopTokens: [stop])
        #expect(batched == single)
    }

    @Test func familiesAreRecognisedFromTheirConfigs() throws {
        #expect(try FamilyFixtures.model("qwen2-gqa").architecture is Qwen2)
        let gpt2 = try FamilyFixtures.model("gpt2")
        #expect(gpt2.config.norm == .layer && gpt2.config.positions == .learned(offset: 0) && gpt2.config.activation == .geluTanh)
        // Conv1D weights keep the checkpoint's [in, out] shape and fused q/k/v.
        #expect(gpt2.parameters["transformer.h.0.attn.c_attn.weight"]!.shape == [64, 192])
        let opt = try FamilyFixtures.model("opt-post")
        #expect(!opt.config.normBeforeSublayers && !opt.config.finalNorm && opt.config.embeddingSize == 32)
        #expect(opt.components.mlp(1) == "model.decoder.layers.1.mlp")
    }

    @Test(arguments: FamilyFixtures.names)
    func exportedFoldersReloadIdentically(family name: String) throws {
        let m = try FamilyFixtures.model(name)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-family-\(name)-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try m.save(huggingFaceFolder: dir)
        let back = try Model.load(dir)
        #expect(back.config == m.config)
        #expect(back.parameterNames == m.parameterNames)
        for n in m.parameterNames { #expect(back.parameters[n]!.scalars == m.parameters[n]!.scalars, "\(n)") }
        let ids = Fixtures.intLists(FamilyFixtures.references["sequences"])[2]
        #expect(try back.logits(ids).scalars == m.logits(ids).scalars)
    }

    @Test(arguments: ["llama-linear", "qwen2-gqa"])
    func llamaCppFamiliesRoundTripThroughGGUF(family name: String) throws {
        let m = try FamilyFixtures.model(name)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-\(name)-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try m.save(gguf: path)
        let back = try Model.load(path)
        for n in m.parameterNames { #expect(back.parameters[n]!.scalars == m.parameters[n]!.scalars, "\(n)") }
        let ids = Fixtures.intLists(FamilyFixtures.references["sequences"])[1]
        #expect(maxAbsDiff(try back.logits(ids), try m.logits(ids)) < 1e-5)
    }

    /// The Gemma 3 block as the configs describe it: (1 + w) norms, QK-norm, post-sublayer
    /// norms, √d embedding scale, layer types with their windows and RoPE bases.
    @Test func gemma3ConfigsReadAsTransformersReadsThem() throws {
        let w = try FamilyFixtures.model("gemma3-window"), c = w.config
        #expect(w.architecture is Gemma3 && c.architecture == "gemma3_text")
        #expect(c.normWeightOffset == 1 && c.queryKeyNorm && c.postSublayerNorms && c.embeddingScale == Float(8))
        #expect(c.slidingLayers == [true, false, true] && c.slidingWindow == 5 && c.localRopeTheta == 100)
        #expect(c.ropeTheta == 10_000 && c.ropeScaling == .linear(factor: 2) && c.queryPreAttentionScalar == 24)
        #expect(c.activation == .geluTanh && c.tieWordEmbeddings && c.numKVHeads == 2 && c.headDim == 16)
        #expect(try FamilyFixtures.model("gemma3-six").config.slidingLayers == [true, true, true, true, true, false])
        // Older configs: sliding_window_pattern instead of layer_types.
        var j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: FamilyFixtures.dir + "/gemma3-window/config.json"))) as! [String: Any]
        j["layer_types"] = nil
        j["_sliding_window_pattern"] = nil
        j["sliding_window_pattern"] = 2
        #expect(try Gemma3().config(json: j, file: "config.json").slidingLayers == [true, false, true])
        // transformers 5 writes RoPE per layer type.
        var v5 = j
        for k in ["rope_theta", "rope_scaling", "rope_local_base_freq"] { v5[k] = NSNull() }
        v5["rope_parameters"] = ["sliding_attention": ["rope_type": "default", "rope_theta": 100.0],
                                 "full_attention": ["rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0]]
        let c5 = try Gemma3().config(json: v5, file: "config.json")
        #expect(c5.ropeTheta == 10_000 && c5.ropeScaling == .linear(factor: 2) && c5.localRopeTheta == 100)
        j["final_logit_softcapping"] = 30.0
        #expect(throws: FormatError.self) { try Gemma3().config(json: j, file: "config.json") }
        j["final_logit_softcapping"] = nil
        j["model_type"] = "gemma3"
        #expect(throws: FormatError.self) { try Gemma3().config(json: j, file: "config.json") }
        #expect(w.architecture.chatPrompt(user: "hi") == "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n")
        #expect(try FamilyFixtures.model("qwen2-gqa").architecture.chatPrompt(user: "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    }

    /// gemma3-six.gguf, written by the script as llama.cpp's converter writes Gemma 3
    /// (norms stored as 1 + w, gemma3.* keys, pattern 6 implied), loads to the HF folder's
    /// weights and logits.
    @Test func gemma3GGUFLoadsAsTheFolder() throws {
        let folder = try FamilyFixtures.model("gemma3-six"), gguf = try Model.load(FamilyFixtures.dir + "/gemma3-six.gguf")
        let c = gguf.config
        #expect(c.architecture == "gemma3_text" && c.normWeightOffset == 1 && c.localRopeTheta == 10_000 && !c.tieWordEmbeddings)
        #expect(c.slidingLayers == folder.config.slidingLayers && c.slidingWindow == 3 && c.queryPreAttentionScalar == 16)
        #expect(gguf.parameterNames.sorted() == folder.parameterNames.sorted())
        for n in folder.parameterNames {
            #expect(maxAbsDiff(gguf.parameters[n]!, folder.parameters[n]!) <= 1e-6, "\(n)")
        }
        for (i, ids) in Fixtures.intLists(FamilyFixtures.references["sequences"]).enumerated() {
            let diff = maxAbsDiff(try gguf.logits(ids), try FamilyFixtures.logits("gemma3-six", i))
            #expect(diff <= 1e-4, "sequence \(i): max |Δlogit| \(diff)")
        }
    }

    /// A Gemma 3 in llama.cpp's shape writes a GGUF that reads back (norms within a float
    /// rounding of 1 + w − 1); one llama.cpp would run differently is refused.
    @Test func gemma3RoundTripsThroughGGUF() throws {
        let m = try FamilyFixtures.model("gemma3-six")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sparc-gemma3-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try m.save(gguf: path)
        let back = try Model.load(path)
        for n in m.parameterNames { #expect(maxAbsDiff(back.parameters[n]!, m.parameters[n]!) <= 1e-6, "\(n)") }
        let ids = Fixtures.intLists(FamilyFixtures.references["sequences"])[2]
        #expect(maxAbsDiff(try back.logits(ids), try m.logits(ids)) < 1e-4)
        #expect(throws: ModelError.self) { try FamilyFixtures.model("gemma3-window").save(gguf: path + ".no") }
    }

    @Test func familiesWithoutAGGUFFormSayHowToSave() throws {
        let m = try FamilyFixtures.model("opt")
        #expect(throws: ModelError.self) { try m.save(gguf: "/tmp/never-written.gguf") }
    }

    /// Checkpoint tensors with several runtime pieces (GPT-2's fused, transposed c_attn)
    /// split and reassemble exactly.
    @Test func fusedConv1DLayoutsSplitAndReassemble() throws {
        let m = try FamilyFixtures.model("gpt2")
        let name = "transformer.h.1.attn.c_attn.weight", w = m.parameters[name]!
        let q = m.runtimeParameters[ParameterKey(.query, layer: 1)]!, v = m.runtimeParameters[ParameterKey(.value, layer: 1)]!
        // runtime q[o, i] = c_attn[i, o]; v[o, i] = c_attn[i, 2·64 + o].
        #expect(q[flat: 3 * 64 + 5] == w[flat: 5 * 192 + 3])
        #expect(v[flat: 7 * 64 + 2] == w[flat: 2 * 192 + 128 + 7])
        let back = m.layout.checkpointTensors(m.runtimeParameters)
        for n in m.parameterNames { #expect(back[n]!.scalars == m.parameters[n]!.scalars, "\(n)") }
    }
}
