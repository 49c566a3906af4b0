import Foundation
import Testing
@testable import SparcModel
import SparcTensor

/// Exported models reload to the same logits and tokenizer ids.
@Suite struct SavingTests {
    let ids = [1, 44, 7, 300, 12, 9, 250, 3]

    func tokenizerAgrees(_ a: Tokenizer, _ b: Tokenizer) {
        for line in Fixtures.corpus { #expect(a.encode(line) == b.encode(line), "\(line.debugDescription)") }
    }

    @Test func ggufToHuggingFaceFolderAndBack() throws {
        let dir = TempDir()
        let original = try Model.load(Fixtures.path("tiny-gqa.gguf"))
        try original.save(huggingFaceFolder: dir.file("export"))
        let back = try Model.load(dir.file("export"))
        #expect(back.parameterNames == original.parameterNames)
        #expect(try back.logits(ids).scalars == original.logits(ids).scalars)
        tokenizerAgrees(back.tokenizer, original.tokenizer)
    }

    @Test func huggingFaceToGGUFAndBack() throws {
        let dir = TempDir()
        for name in ["tiny-gqa", "tiny-tied"] {
            let original = try Model.load(Fixtures.path(name))
            try original.save(gguf: dir.file("\(name).gguf"))
            let back = try Model.load(dir.file("\(name).gguf"))
            // tiny-tied's llama3 scaling travels as llama.cpp's per-frequency factors.
            #expect(maxAbsDiff(try back.logits(ids), try original.logits(ids)) < 1e-5, "\(name)")
            tokenizerAgrees(back.tokenizer, original.tokenizer)
            for n in original.parameterNames { #expect(back.parameters[n]!.scalars == original.parameters[n]!.scalars, "\(n)") }
        }
    }

    @Test func prunedModelsExportExactly() throws {
        let dir = TempDir()
        let m = try Model.load(Fixtures.path("tiny-gqa"))
        var w = m.parameters["model.layers.1.mlp.down_proj.weight"]!
        for i in stride(from: 0, to: w.count, by: 3) { w[flat: i] = 0 }
        let pruned = try m.replacing(["model.layers.1.mlp.down_proj.weight": w])
        try pruned.save(huggingFaceFolder: dir.file("pruned"))
        #expect(try Model.load(dir.file("pruned")).logits(ids).scalars == pruned.logits(ids).scalars)
    }

    @Test func factorsFromGGUFCannotGoToConfigJSON() throws {
        let dir = TempDir()
        let m = try Model.load(Fixtures.path("tiny-tied.gguf"))
        #expect { try m.save(huggingFaceFolder: dir.file("x")) } throws: { "\($0)".contains("save it as .gguf") }
    }
}
