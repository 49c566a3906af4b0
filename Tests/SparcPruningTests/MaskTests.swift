import Foundation
import Testing
@testable import SparcPruning
import SparcAttribution
import SparcModel
import SparcTensor

let tinyModel = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../SparcModelTests/Fixtures/tiny-gqa").standardized.path

/// A weight-level map with random values (and deliberate ties) over two small tensors.
func randomMap(seed: UInt64, ties: Bool = false) -> RelevanceMap {
    var rng = Xoshiro256(seed: seed)
    func t(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape) { for i in 0..<$0.count { $0[i] = ties ? Float(rng.next() % 5) : rng.nextFloat() * 2 - 1 } }
    }
    return RelevanceMap(names: ["a.weight", "b.weight"], tensors: ["a.weight": t([7, 9]), "b.weight": t([5, 13])],
                        method: .lrp, level: .weight, sampleCount: 1, explained: [])
}

@Suite struct MaskAlgebraTests {
    @Test(arguments: 0..<20)
    func algebraicLaws(seed: Int) throws {
        let map = randomMap(seed: UInt64(seed))
        let a = try Selection.extreme(map, k: 0.3, largest: true)
        let b = try Selection.extreme(map, k: 0.5, largest: false, per: .row)
        let c = try Selection.above(map, 0.2)
        func same(_ x: Mask, _ y: Mask) -> Bool { x.names.allSatisfy { x.bits[$0] == y.bits[$0] } }
        // De Morgan, difference, complement, inclusion–exclusion.
        #expect(same((try Mask.combine(a, b, |)).complement, try Mask.combine(a.complement, b.complement, &)))
        #expect(same((try Mask.combine(a, b, &)).complement, try Mask.combine(a.complement, b.complement, |)))
        #expect(same(try Mask.combine(a, b, -), try Mask.combine(a, b.complement, &)))
        #expect(same(a.complement.complement, a))
        #expect(try Mask.combine(a, b, |).count + Mask.combine(a, b, &).count == a.count + b.count)
        #expect(a.count + a.complement.count == a.size)
        #expect(same(try Mask.combine(try Mask.combine(a, b, |), c, &), try Mask.combine(try Mask.combine(a, c, &), try Mask.combine(b, c, &), |)))
    }

    @Test func topkSizesScopesAndTies() throws {
        let map = randomMap(seed: 7, ties: true)   // values in {0,…,4}: many ties
        let total = 7 * 9 + 5 * 13
        #expect(try Selection.extreme(map, k: 10, largest: true).count == 10)
        #expect(try Selection.extreme(map, k: 0.25, largest: true).count == Int((0.25 * Double(total)).rounded()))
        #expect(try Selection.extreme(map, k: 1000, largest: true).count == total)
        #expect(try Selection.extreme(map, k: 0, largest: true).count == 0)
        // Per layer: k in each tensor; per row: k in each row.
        let perLayer = try Selection.extreme(map, k: 4, largest: false, per: .layer)
        #expect(perLayer.bits["a.weight"]!.cardinality == 4 && perLayer.bits["b.weight"]!.cardinality == 4)
        let perRow = try Selection.extreme(map, k: 2, largest: true, per: .row)
        #expect(perRow.count == 2 * (7 + 5))
        for r in 0..<7 { #expect((0..<9).filter { perRow.bits["a.weight"]![r * 9 + $0] }.count == 2) }
        // Chosen elements are never smaller than unchosen ones; ties go to earlier positions.
        let top = try Selection.extreme(map, k: 30, largest: true)
        var chosen: [Float] = [], rest: [Float] = []
        for n in map.names { for i in 0..<map[n]!.count { (top.bits[n]![i] ? { chosen.append(map[n]![flat: i]) } : { rest.append(map[n]![flat: i]) })() } }
        #expect(chosen.min()! >= rest.max()!)
        let boundary = chosen.min()!
        var seenUnchosenTie = false
        for n in map.names { for i in 0..<map[n]!.count where map[n]![flat: i] == boundary {
            if !top.bits[n]![i] { seenUnchosenTie = true } else { #expect(!seenUnchosenTie, "a later tie was chosen before an earlier one") }
        } }
    }

    /// Setting a range a word at a time equals setting its bits one by one, across word edges;
    /// the set bits are visited in order.
    @Test func bitRangesSetWordAtATime() {
        var rng = Xoshiro256(seed: 3)
        for _ in 0..<50 {
            let count = 1 + Int(rng.next() % 300)
            let lo = Int(rng.next() % UInt64(count)), hi = lo + Int(rng.next() % UInt64(count - lo + 1))
            let pick = (0..<count).map { _ in rng.next() % 3 == 0 }
            var fast = BitSet(count: count), slow = BitSet(count: count)
            fast[0] = true; slow[0] = true   // bits already set stay set
            fast.set(lo..<hi) { pick[$0] }
            for i in lo..<hi where pick[i] { slow[i] = true }
            #expect(fast == slow)
            var seen: [Int] = []
            fast.forEachSetBit { seen.append($0) }
            #expect(seen == (0..<count).filter { slow[$0] })
        }
    }

    @Test func nanIsNeverPreferred() throws {
        var map = randomMap(seed: 3)
        map.tensors["a.weight"]![flat: 0] = .nan
        #expect(!(try Selection.extreme(map, k: 5, largest: true)).bits["a.weight"]![0])
        #expect(!(try Selection.extreme(map, k: 5, largest: false)).bits["a.weight"]![0])
    }

    @Test func combiningDifferentMasksIsAnError() throws {
        let w = try Selection.extreme(randomMap(seed: 1), k: 3, largest: true)
        let other = RelevanceMap(names: ["model.layers.0.self_attn"], tensors: ["model.layers.0.self_attn": Tensor(shape: [4], values: [1, 2, 3, 4])],
                                 method: .lrp, level: .head, sampleCount: 1, explained: [])
        let h = try Selection.extreme(other, k: 1, largest: true)
        #expect { try Mask.combine(w, h, |) } throws: { "\($0)".contains("cannot combine a weight mask with a head mask") }
        let shifted = RelevanceMap(names: ["a.weight", "c.weight"], tensors: ["a.weight": Tensor(zeros: [7, 9]), "c.weight": Tensor(zeros: [5, 13])],
                                   method: .lrp, level: .weight, sampleCount: 1, explained: [])
        #expect { try Mask.combine(w, try Selection.extreme(shifted, k: 1, largest: true), &) } throws: { "\($0)".contains("different models") }
    }

    @Test func normalizeDividesByThePeak() throws {
        let map = randomMap(seed: 5)
        let layer = Selection.normalize(map, per: .layer)
        for n in map.names { #expect(abs(layer[n]!.scalars.map { abs($0) }.max()! - 1) < 1e-6) }
        let global = Selection.normalize(map, per: .global)
        #expect(abs(map.names.map { global[$0]!.scalars.map { abs($0) }.max()! }.max()! - 1) < 1e-6)
    }
}

@Suite struct PruningTests {
    @Test func prunedLogitsEqualHandZeroedWeights() throws {
        let m = try Model.load(tinyModel)
        let map = try Attribution.attribute(m, samples: [AttributionSample(ids: [3, 17, 99, 5])], level: .weight)
        let mask = try Selection.extreme(map, k: 0.3, largest: false)
        let pruned = try Pruning.prune(m, mask)
        var replaced: [String: Tensor] = [:]
        for n in mask.names {
            var t = m.parameters[n]!
            let bits = mask.bits[n]!
            for i in 0..<t.count where bits[i] { t[flat: i] = 0 }
            replaced[n] = t
        }
        let byHand = try m.replacing(replaced)
        let ids = [1, 40, 77, 3, 9, 200]
        #expect(try pruned.logits(ids).scalars == byHand.logits(ids).scalars)
        #expect(abs(Pruning.sparsity(pruned) - mask.fraction) < 1e-9)
        #expect(Pruning.sparsity(m) == 0)
        // Untouched tensors are shared with the original.
        #expect(pruned.parameters["model.embed_tokens.weight"]!.sharesStorage(with: m.parameters["model.embed_tokens.weight"]!))
        #expect(!pruned.parameters["model.layers.0.mlp.up_proj.weight"]!.sharesStorage(with: m.parameters["model.layers.0.mlp.up_proj.weight"]!))
    }

    @Test func neuronAndHeadPruningRemoveRowsColumnsAndSlices() throws {
        let m = try Model.load(tinyModel)
        let c = m.config
        var neuronBits = BitSet(count: c.intermediateSize)
        neuronBits[5] = true
        let neurons = Mask(granularity: .neuron, names: ["model.layers.1.mlp"], shapes: ["model.layers.1.mlp": [c.intermediateSize]],
                           bits: ["model.layers.1.mlp": neuronBits])
        let p = try Pruning.prune(m, neurons)
        #expect(p.parameters["model.layers.1.mlp.gate_proj.weight"]!.row(5).allSatisfy { $0 == 0 })
        #expect(p.parameters["model.layers.1.mlp.up_proj.weight"]!.row(5).allSatisfy { $0 == 0 })
        let down = p.parameters["model.layers.1.mlp.down_proj.weight"]!
        #expect((0..<c.hiddenSize).allSatisfy { down[flat: $0 * c.intermediateSize + 5] == 0 })
        #expect(p.parameters["model.layers.1.mlp.gate_proj.weight"]!.row(4) == m.parameters["model.layers.1.mlp.gate_proj.weight"]!.row(4))

        var headBits = BitSet(count: c.numHeads)
        headBits[2] = true
        let heads = Mask(granularity: .head, names: ["model.layers.0.self_attn"], shapes: ["model.layers.0.self_attn": [c.numHeads]],
                         bits: ["model.layers.0.self_attn": headBits])
        let ph = try Pruning.prune(m, heads)
        let o = ph.parameters["model.layers.0.self_attn.o_proj.weight"]!, qDim = c.numHeads * c.headDim
        for r in 0..<c.hiddenSize { for j in 0..<qDim {
            let expected = (j / c.headDim == 2) ? 0 : m.parameters["model.layers.0.self_attn.o_proj.weight"]![flat: r * qDim + j]
            #expect(o[flat: r * qDim + j] == expected)
        } }
        let wrong = Mask(granularity: .head, names: ["model.layers.0.self_attn"], shapes: ["model.layers.0.self_attn": [9]],
                         bits: ["model.layers.0.self_attn": BitSet(count: 9, filled: true)])
        #expect { try Pruning.prune(m, wrong) } throws: { "\($0)".contains("it is for another model") }
    }
}

/// Masks of other families name their own components and checkpoint layouts.
@Suite struct FamilyPruningTests {
    static let families = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../SparcModelTests/Fixtures/families").standardized.path

    /// GPT-2 stores Conv1D weights `[in, out]`: MLP unit i is column i of `c_fc.weight`,
    /// entry i of `c_fc.bias` and row i of `mlp.c_proj.weight`.
    @Test func gpt2NeuronsAreConv1DColumnsAndRows() throws {
        let m = try Model.load(FamilyPruningTests.families + "/gpt2")
        let c = m.config, d = c.hiddenSize, f = c.intermediateSize
        var bits = BitSet(count: f)
        bits[7] = true
        let key = m.components.mlp(1)
        #expect(key == "transformer.h.1.mlp")
        let p = try Pruning.prune(m, Mask(granularity: .neuron, names: [key], shapes: [key: [f]], bits: [key: bits]))
        let fc = p.parameters["transformer.h.1.mlp.c_fc.weight"]!, proj = p.parameters["transformer.h.1.mlp.c_proj.weight"]!
        let original = m.parameters["transformer.h.1.mlp.c_fc.weight"]!
        for i in 0..<d { for j in 0..<f { #expect(fc[flat: i * f + j] == (j == 7 ? 0 : original[flat: i * f + j])) } }
        #expect(p.parameters["transformer.h.1.mlp.c_fc.bias"]![flat: 7] == 0)
        #expect(proj.row(7).allSatisfy { $0 == 0 } && proj.row(6) == m.parameters["transformer.h.1.mlp.c_proj.weight"]!.row(6))
        // Untouched tensors are shared, and the pruned model runs.
        #expect(p.parameters["transformer.h.0.mlp.c_fc.weight"]!.sharesStorage(with: m.parameters["transformer.h.0.mlp.c_fc.weight"]!))
        _ = try p.logits([1, 2, 3])
    }

    /// Removing a head zeroes its columns of OPT's `out_proj`; the logits equal those of
    /// the model with the same columns zeroed by hand.
    @Test func optHeadsAreOutputProjectionColumns() throws {
        let m = try Model.load(FamilyPruningTests.families + "/opt-post")
        let c = m.config
        var bits = BitSet(count: c.numHeads)
        bits[1] = true
        let key = m.components.attention(0)
        let p = try Pruning.prune(m, Mask(granularity: .head, names: [key], shapes: [key: [c.numHeads]], bits: [key: bits]))
        var o = m.parameters["model.decoder.layers.0.self_attn.out_proj.weight"]!
        let rows = o.shape[0], cols = o.shape[1]
        o.withUnsafeMutableBufferPointer { w in for r in 0..<rows { for j in c.headDim..<(2 * c.headDim) { w[r * cols + j] = 0 } } }
        let byHand = try m.replacing(["model.decoder.layers.0.self_attn.out_proj.weight": o])
        #expect(try p.logits([5, 6, 7, 8]).scalars == byHand.logits([5, 6, 7, 8]).scalars)
        // A Llama component name is not an OPT component.
        let foreign = Mask(granularity: .head, names: ["model.layers.0.self_attn"], shapes: ["model.layers.0.self_attn": [c.numHeads]],
                           bits: ["model.layers.0.self_attn": bits])
        #expect { try Pruning.prune(m, foreign) } throws: { "\($0)".contains("unexpected component") }
        let negative = Mask(granularity: .neuron, names: ["model.decoder.layers.-1.mlp"], shapes: ["model.decoder.layers.-1.mlp": [c.intermediateSize]],
                            bits: ["model.decoder.layers.-1.mlp": BitSet(count: c.intermediateSize, filled: true)])
        #expect { try Pruning.prune(m, negative) } throws: { "\($0)".contains("unexpected component") }
    }

    /// Gemma 3: a head is its columns of `o_proj` (before the post-attention norm), a neuron
    /// its row of `down_proj`; the pruned model's logits equal the model zeroed by hand.
    @Test func gemma3HeadsAndNeuronsAreOutputProjectionSlices() throws {
        let m = try Model.load(FamilyPruningTests.families + "/gemma3-window")
        let c = m.config
        var heads = BitSet(count: c.numHeads), units = BitSet(count: c.intermediateSize)
        heads[2] = true
        units[5] = true
        let a = m.components.attention(1), f = m.components.mlp(2)
        #expect(a == "model.layers.1.self_attn" && f == "model.layers.2.mlp")
        let p = try Pruning.prune(try Pruning.prune(m, Mask(granularity: .head, names: [a], shapes: [a: [c.numHeads]], bits: [a: heads])),
                                  Mask(granularity: .neuron, names: [f], shapes: [f: [c.intermediateSize]], bits: [f: units]))
        var o = m.parameters["model.layers.1.self_attn.o_proj.weight"]!, down = m.parameters["model.layers.2.mlp.down_proj.weight"]!
        let cols = o.shape[1], d = c.hiddenSize, hd = c.headDim, width = c.intermediateSize
        o.withUnsafeMutableBufferPointer { w in for r in 0..<d { for j in (2 * hd)..<(3 * hd) { w[r * cols + j] = 0 } } }
        down.withUnsafeMutableBufferPointer { w in for r in 0..<d { w[r * width + 5] = 0 } }
        let byHand = try m.replacing(["model.layers.1.self_attn.o_proj.weight": o, "model.layers.2.mlp.down_proj.weight": down])
        let ids = [5, 6, 7, 8, 9, 10, 11]
        #expect(try p.logits(ids).scalars == byHand.logits(ids).scalars)
        #expect(try p.logits(ids).scalars != m.logits(ids).scalars)
        // Weight maps over every group name the Gemma norms (q/k and post norms too).
        let r = try Attribution.attribute(m, samples: [AttributionSample(ids: ids)], parameters: .all)
        #expect(r.names == m.parameterNames && r["model.layers.0.self_attn.q_norm.weight"]!.shape == [c.headDim])
    }

    /// A weight-level LRP map of GPT-2 is keyed by the checkpoint's names and shapes, and
    /// masks made from it prune those tensors.
    @Test func gpt2WeightMasksFollowTheCheckpoint() throws {
        let m = try Model.load(FamilyPruningTests.families + "/gpt2")
        let r = try Attribution.attribute(m, samples: [AttributionSample(ids: [3, 14, 15, 92, 65])])
        #expect(r.names.contains("transformer.h.0.attn.c_attn.weight") && r["transformer.h.0.attn.c_attn.weight"]!.shape == [64, 192])
        let low = try Selection.extreme(r, k: 0.3, largest: false, per: .row)
        let p = try Pruning.prune(m, low)
        #expect(abs(Pruning.sparsity(p) - 0.3) < 0.01)
    }
}
