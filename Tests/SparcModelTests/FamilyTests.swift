import Foundation
import Testing
import SparcFormats
@testable import SparcModel
import SparcTensor

/// Tiny random llama, qwen2, gpt2 and opt models from scripts/make_family_references.py
/// (transformers 4.57): their logits and greedy continuations, and exports that reload.
enum FamilyFixtures {
    static let dir = Fixtures.path("families")
    static let names = ["llama-linear", "llama-llama3", "qwen2-gqa", "qwen2-tied", "gpt2", "gpt2-inner", "opt", "opt-post"]
    nonisolated(unsafe) static let references = Fixtures.json("families/references.json")
    static let logits = try! SafetensorsFile(path: dir + "/references.safetensors")
    static func model(_ name: String) throws -> Model { try Model.load(dir + "/" + name) }
}

@Suite struct FamilyTests {
    @Test(arguments: FamilyFixtures.names)
    func logitsMatchTransformers(family name: String) throws {
        let m = try FamilyFixtures.model(name)
        let sequences = Fixtures.intLists(FamilyFixtures.references["sequences"])
        for (i, ids) in sequences.enumerated() {
            let diff = maxAbsDiff(try m.logits(ids), try FamilyFixtures.logits.tensor("\(name)/logits/\(i)"))
            #expect(diff <= 1e-4, "\(name) sequence \(i): max |Δlogit| \(diff)")
        }
        let ref = (FamilyFixtures.references["models"] as! [String: Any])[name] as! [String: Any]
        let prompt = Fixtures.ints(FamilyFixtures.references["greedy_prompt"])
        let out = try m.generate(prompt, maxTokens: 12, stopAtEOS: false)
        #expect(out == Fixtures.ints(ref["greedy"]))
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
