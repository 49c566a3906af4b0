import Foundation
import Testing
@testable import SparcAttribution
import SparcModel
@testable import SparcPruning
import SparcTensor

/// A BF16 model (matrices kept half-precision, widened on use) attributes and prunes
/// exactly as the same model widened to Float32 at load: widening is exact, so the
/// relevances, pruned weights and logits must agree bit for bit.
@Suite struct HalfPrecisionPruningTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../SparcModelTests/Fixtures/sharded/bf16-shards").standardized.path
    static let samples: [AttributionSample] = (0..<3).map { i in
        AttributionSample(ids: (0..<(5 + 3 * i)).map { ($0 * 37 + i * 11) % 250 + 3 }, target: i == 1 ? .contrast(answer: 17, foil: 42) : .predicted)
    }

    static func models() throws -> (half: Model, wide: Model) {
        let half = try Model.load(path)
        let wide = try Model(config: half.config, tokenizer: half.tokenizer,
                             parameters: half.parameters.mapValues { $0.float32() }, source: half.source)
        #expect(half.parameters.values.contains { $0.elementType == .bf16 })
        return (half, wide)
    }

    @Test(arguments: [(AttributionMethod.lrp, AttributionLevel.weight), (.lrp, .neuron), (.gradient, .row), (.wanda, .weight)])
    func relevancesEqualTheWidenedModel(_ method: AttributionMethod, _ level: AttributionLevel) throws {
        let (half, wide) = try Self.models()
        let a = try Attribution.attribute(half, samples: Self.samples, method: method, level: level, batchSize: 2)
        let b = try Attribution.attribute(wide, samples: Self.samples, method: method, level: level, batchSize: 2)
        #expect(a.names == b.names && !a.names.isEmpty)
        #expect(a.explained == b.explained)
        for name in a.names { #expect(a[name]!.scalars == b[name]!.scalars, "\(name)") }
    }

    @Test func pruningEqualsTheWidenedModel() throws {
        let (half, wide) = try Self.models()
        let map = try Attribution.attribute(half, samples: Self.samples, method: .lrp, level: .weight, batchSize: 2)
        let mask = try Selection.extreme(map, k: 0.3, largest: false, per: .global)
        let prunedHalf = try Pruning.prune(half, mask), prunedWide = try Pruning.prune(wide, mask)
        for name in half.parameterNames {
            #expect(prunedHalf.parameters[name]!.scalars == prunedWide.parameters[name]!.scalars, "\(name)")
        }
        // Pruned matrices are written in Float32; untouched ones stay shared and half-precision.
        let pruned = Set(mask.names)
        for name in half.parameterNames where half.parameters[name]!.rank == 2 {
            let t = prunedHalf.parameters[name]!
            #expect(pruned.contains(name) ? t.elementType == .f32 : t.sharesStorage(with: half.parameters[name]!), "\(name)")
        }
        #expect(Pruning.sparsity(prunedHalf) == Pruning.sparsity(prunedWide) && Pruning.sparsity(prunedHalf) > 0.25)
        for s in Self.samples { #expect(try prunedHalf.logits(s.ids).scalars == prunedWide.logits(s.ids).scalars) }

        // Saved and reloaded, the pruned half model computes the same logits.
        let dir = NSTemporaryDirectory() + "sparc-half-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try prunedHalf.save(huggingFaceFolder: dir)
        let back = try Model.load(dir)
        for s in Self.samples { #expect(try back.logits(s.ids).scalars == prunedWide.logits(s.ids).scalars) }
    }

    @Test func rowPruningAndMeanAblationEqualTheWidenedModel() throws {
        let (half, wide) = try Self.models()
        let map = try Attribution.attribute(half, samples: Self.samples, method: .lrp, level: .neuron, batchSize: 2)
        let mask = try Selection.extreme(map, k: 0.4, largest: false, per: .global)
        let means = try Attribution.inputMeans(half, prompts: Self.samples.map(\.ids), batchSize: 2)
        #expect(means == (try Attribution.inputMeans(wide, prompts: Self.samples.map(\.ids), batchSize: 2)))
        let a = try Pruning.prune(half, mask, ablation: .mean(means)), b = try Pruning.prune(wide, mask, ablation: .mean(means))
        #expect(a.parameterNames == b.parameterNames)
        for name in a.parameterNames { #expect(a.parameters[name]!.scalars == b.parameters[name]!.scalars, "\(name)") }
        for s in Self.samples { #expect(try a.logits(s.ids).scalars == b.logits(s.ids).scalars) }
    }
}
