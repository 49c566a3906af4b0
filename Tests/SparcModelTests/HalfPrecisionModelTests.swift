import Foundation
import SparcFormats
import SparcTensor
import Testing
@testable import SparcModel

/// F16/BF16 checkpoints keep their matrices half-precision in memory and widen them on
/// use. Widening is exact, so everything must equal, bit for bit, the same model with
/// every tensor widened to Float32 at load (what sparc did before).
@Suite struct HalfPrecisionModelTests {
    static let prompts = [[1, 17, 230, 5, 99, 383, 42], [2], Array(0..<40)]

    /// The model with every parameter widened to Float32.
    static func widened(_ m: Model) throws -> Model {
        try Model(config: m.config, tokenizer: m.tokenizer, parameters: m.parameters.mapValues { $0.float32() }, source: m.source)
    }

    /// The F32 fixture saved in F16 (a single file), as a folder.
    static func f16Folder(_ dir: TempDir) throws -> String {
        let a = try Model.load(ShardedLoadingTests.f32)
        for f in ["config.json", "tokenizer.json"] {
            try FileManager.default.copyItem(atPath: ShardedLoadingTests.f32 + "/" + f, toPath: dir.file(f))
        }
        try SafetensorsWriter.write(a.parameterNames.map { ($0, a.parameters[$0]!) }, to: dir.file("model.safetensors"), dtype: .f16)
        return dir.path
    }

    @Test func matricesStayHalfAndVectorsAreWidened() throws {
        let m = try Model.load(ShardedLoadingTests.bf16)
        for name in m.parameterNames {
            let t = m.parameters[name]!
            #expect(t.elementType == (t.rank == 2 ? .bf16 : .f32), "\(name)")
        }
        // Runtime parameters share the half-precision tensors (Llama's layouts agree).
        let q = m.runtimeParameters[ParameterKey(.query, layer: 0)]!
        #expect(q.elementType == .bf16 && q.sharesStorage(with: m.parameters["model.layers.0.self_attn.q_proj.weight"]!))
    }

    @Test func logitsEqualTheModelWidenedAtLoad() throws {
        let dir = TempDir()
        for path in [ShardedLoadingTests.bf16, try Self.f16Folder(dir)] {
            let half = try Model.load(path), wide = try Self.widened(half)
            #expect(half.parameters.values.contains { $0.elementType != .f32 })
            #expect(wide.parameters.values.allSatisfy { $0.elementType == .f32 })
            for ids in Self.prompts {
                let a = try half.logits(ids), b = try wide.logits(ids)
                #expect(a.shape == b.shape && a.scalars == b.scalars, "\(path) \(ids.count) tokens")
            }
            let batch = try half.logits(batch: Self.prompts), wideBatch = try wide.logits(batch: Self.prompts)
            for (a, b) in zip(batch, wideBatch) { #expect(a.scalars == b.scalars) }
        }
    }

    @Test func savingWritesTheValuesAndReloads() throws {
        let half = try Model.load(ShardedLoadingTests.bf16)
        let dir = TempDir()
        try half.save(huggingFaceFolder: dir.file("saved"))
        let back = try Model.load(dir.file("saved"))
        for name in half.parameterNames { #expect(back.parameters[name]!.scalars == half.parameters[name]!.scalars, "\(name)") }
        for ids in Self.prompts { #expect(try back.logits(ids).scalars == half.logits(ids).scalars) }
        // Saved in their own dtype: the matrices stay BF16 on disk and after reloading.
        let file = try SafetensorsFile(path: dir.file("saved") + "/model.safetensors")
        for name in half.parameterNames {
            #expect(file.entry(name)!.dtype == (half.parameters[name]!.rank == 2 ? "BF16" : "F32"), "\(name)")
            #expect(back.parameters[name]!.elementType == half.parameters[name]!.elementType, "\(name)")
        }
    }

    /// GGUF F16/BF16 files keep their matrices half-precision too (q and k become Float32
    /// where llama.cpp's row permutation is undone), and saving writes them back in F16.
    @Test func ggufKeepsHalfPrecision() throws {
        let dir = TempDir()
        let half = try Model.load(try Self.f16Folder(dir))
        try half.save(gguf: dir.file("model.gguf"))
        let gguf = try GGUFFile(path: dir.file("model.gguf"))
        #expect(gguf.info("blk.0.ffn_down.weight")!.type == .f16 && gguf.info("blk.0.attn_q.weight")!.type == .f16)
        let back = try Model.load(dir.file("model.gguf"))
        #expect(back.parameters["model.layers.0.mlp.down_proj.weight"]!.elementType == .f16)
        #expect(back.parameters["model.layers.0.self_attn.q_proj.weight"]!.elementType == .f32)
        for name in half.parameterNames where back.parameters[name] != nil {
            #expect(back.parameters[name]!.scalars == half.parameters[name]!.scalars, "\(name)")
        }
        for ids in Self.prompts { #expect(try back.logits(ids).scalars == half.logits(ids).scalars) }
    }
}
