import Foundation
import Testing
import SparcAttribution
import SparcModel
import SparcPruning
import SparcTensor
@testable import SparcWorkflows

let tinyModel = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../SparcModelTests/Fixtures/tiny-gqa").standardized.path

func temporaryFile(_ contents: String) throws -> String {
    let path = NSTemporaryDirectory() + "sparc-workflow-\(UUID().uuidString).txt"
    try contents.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite struct BehaviourTests {
    @Test func repetitionRateCountsRepeatedWordNGrams() {
        // 9 words, 7 trigrams, 3 distinct.
        #expect(abs(Repetition.rate("a b c a b c a b c") - (1 - 3.0 / 7)) < 1e-12)
        #expect(Repetition.rate("one two three four five six") == 0)
        #expect(Repetition.rate("too short") == 0)
        // Case and punctuation do not make an n-gram new.
        #expect(Repetition.rate("The cat. the CAT, the cat!", n: 2) == 1 - 2.0 / 5)
        #expect(Repetition.rate("x x x x x", n: 1) == 0.8)
    }

    @Test func wordListFlagsWordsAndPhrasesNotSubstrings() throws {
        let path = try temporaryFile("# a comment\nbad\n\nTwo Words\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let s = try WordListScorer(path: path)
        #expect(s.hits("This is BAD, two  words here; bad.") == ["bad", "two words", "bad"])
        #expect(s.hits("a badge of two") == [])
        #expect(try s.scores(["so bad", "fine", "two words"]) == [1, 0, 1])
        let empty = try temporaryFile("# nothing\n\n")
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(throws: WorkflowError.self) { try WordListScorer(path: empty) }
        #expect(throws: WorkflowError.self) { try WordListScorer(path: "/nonexistent/list.txt") }
    }

    @Test func externalCommandReadsAndWritesJSONLines() throws {
        // One JSON line per text, even with newlines and quotes inside the text.
        let texts = ["first\nline", "a \"quoted\" one", "third"]
        #expect(try CommandScorer(command: "sed 's/.*/{\"score\": 0.25}/'").scores(texts) == [0.25, 0.25, 0.25])
        #expect(try CommandScorer(command: "awk '{ print NR }'").scores(texts) == [1, 2, 3])
        #expect(try CommandScorer(command: "grep -c quoted >/dev/null; printf '1\\n0\\n1\\n'").scores(texts) == [1, 0, 1])
        func message(_ command: String) -> String {
            do { _ = try CommandScorer(command: command).scores(texts); return "no error" } catch { return "\(error)" }
        }
        #expect(message("echo broken >&2; exit 3").contains("failed with status 3: broken"))
        #expect(message("head -n 1").contains("answered 1 lines for 3 texts"))
        #expect(message("sed 's/.*/hello/'").contains("expected a number or {\"score\": number}"))
    }
}

@Suite struct CircuitTests {
    /// A task on the tiny model whose answer is each prompt's predicted token and whose
    /// foil is a fixed other token, so the full logit difference is positive.
    func task(_ m: Model) throws -> ContrastTask {
        let prompts = [[5, 17, 40, 41], [60, 61, 62], [100, 7, 8, 9, 10], [200, 201]]
        let last = try m.lastLogits(batch: prompts)
        let answers = last.map { t in (0..<t.count).max { t[flat: $0] < t[flat: $1] }! }
        let foils = answers.map { $0 == 3 ? 4 : 3 }
        return try ContrastTask(name: "tiny", prompts: prompts, answers: answers, foils: foils)
    }

    @Test func logitDifferencesAreTheModelsLogits() throws {
        let m = try Model.load(tinyModel)
        let t = try task(m)
        let d = try t.logitDifferences(m, batch: 3)
        for (i, ids) in t.prompts.enumerated() {
            let row = try m.logits(ids)
            let v = row.shape[1], lastRow = (ids.count - 1) * v
            let expected = Double(row[flat: lastRow + t.answers[i]]) - Double(row[flat: lastRow + t.foils[i]])
            #expect(abs(d[i] - expected) < 1e-4)
        }
        #expect(abs(try t.score(m) - d.reduce(0, +) / 4) < 1e-5)
        #expect(try t.score(m, metric: .accuracy) == 1)
        #expect(t.samples.map(\.target) == (0..<4).map { AttributionTarget.contrast(answer: t.answers[$0], foil: t.foils[$0]) })
    }

    @Test func answersMustBeSingleTokens() throws {
        let m = try Model.load(tinyModel)
        #expect(throws: WorkflowError.self) {
            try ContrastTask(name: "t", prompts: ["ab"], answers: ["hello"], foils: ["b"], tokenizer: m.tokenizer)
        }
        #expect(throws: WorkflowError.self) {
            try ContrastTask(name: "t", prompts: ["ab", "cd"], answers: ["a"], foils: ["b"], tokenizer: m.tokenizer)
        }
    }

    @Test func curveEndsAreTheFullAndTheEmptiedModel() throws {
        let m = try Model.load(tinyModel)
        let t = try task(m)
        let ranking = try Attribution.attribute(m, samples: t.samples, method: .magnitude)
        let points = try CircuitSearch.curve(m, task: t, ranking: ranking, fractions: [0, 0.5, 1])
        #expect(points[2].ratio == 1)
        let emptied = try Pruning.prune(m, try Mask(like: ranking, filled: true))
        #expect(abs(points[0].score - (try t.score(emptied))) < 1e-9)
        // Keeping half of each row leaves exactly half the weights.
        let (_, half) = try CircuitSearch.circuitModel(m, ranking: ranking, kept: 0.5, per: .row)
        #expect(half.fraction == 0.5)
    }

    @Test func smallestCircuitReachesTheTarget() throws {
        let m = try Model.load(tinyModel)
        let t = try task(m)
        let ranking = try Attribution.attribute(m, samples: t.samples, method: .lrp, absolute: true)
        let r = try CircuitSearch.smallest(m, task: t, ranking: ranking, target: 0.8, grid: [0.1, 0.3, 0.6, 1], refine: 3)
        #expect(r.point.ratio >= 0.8)
        // Per-row selection rounds within each row (64 or 128 long here).
        #expect(abs(r.circuit.fraction - r.point.kept) <= 1.0 / 64)
        #expect(r.curve.contains { $0.kept == r.point.kept })
        // No evaluated point below the circuit's size reached the target at a grid step
        // both of whose neighbours bracket it.
        let smaller = r.curve.filter { $0.kept < r.point.kept }
        #expect(smaller.last.map { $0.ratio < 0.8 } ?? true)
        #expect(r.curve.map(\.kept) == r.curve.map(\.kept).sorted())
    }

    /// Every point carries all three metrics; KL to the full model is 0 for the full model,
    /// positive for a circuit, and matches the definition computed from the logits here.
    @Test func pointsCarryLogitDifferenceAccuracyAndKL() throws {
        let m = try Model.load(tinyModel)
        let t = try task(m)
        let ranking = try Attribution.attribute(m, samples: t.samples, method: .magnitude)
        let points = try CircuitSearch.curve(m, task: t, ranking: ranking, fractions: [0.3, 1])
        #expect(points[1].evaluation.kl == 0 && points[1].fraction == 1)
        let (sub, _) = try CircuitSearch.circuitModel(m, ranking: ranking, kept: 0.3, per: .row)
        var kl = 0.0
        for (i, ids) in t.prompts.enumerated() {
            func logProbabilities(_ x: Tensor) -> [Double] {
                let v = x.row(ids.count - 1).map(Double.init), top = v.max()!
                let z = top + log(v.reduce(0) { $0 + exp($1 - top) })
                return v.map { $0 - z }
            }
            let p = logProbabilities(try m.logits(ids)), q = logProbabilities(try sub.logits(ids))
            kl += zip(p, q).reduce(0) { $0 + exp($1.0) * ($1.0 - $1.1) } / Double(t.prompts.count)
            _ = i
        }
        #expect(abs(points[0].evaluation.kl - kl) <= 1e-4 * max(1, kl) && kl > 0)
        #expect(abs(points[0].evaluation.logitDifference - (try t.score(sub))) < 1e-6)
        #expect(abs(points[0].evaluation.accuracy - (try t.score(sub, metric: .accuracy))) < 1e-12)
    }

    /// Curves over several rankings combine into mean ± sample std per fraction.
    @Test func bandsAreMeanAndStandardDeviation() throws {
        let m = try Model.load(tinyModel)
        let t = try task(m)
        let map = try Attribution.attribute(m, samples: t.samples, method: .magnitude)
        let curves = try (0..<3).map { try CircuitSearch.curve(m, task: t, ranking: CircuitSearch.randomRanking(like: map, seed: UInt64($0)), fractions: [0.2, 0.6]) }
        let bands = try CircuitSearch.bands(curves)
        #expect(bands.map(\.kept) == [0.2, 0.6] && bands.allSatisfy { $0.curves == 3 })
        for (i, b) in bands.enumerated() {
            let xs = curves.map { $0[i].ratio }, mean = xs.reduce(0, +) / 3
            let std = (xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 2).squareRoot()
            let ratio = b.measures.first { $0.name == "ratio" }!
            #expect(abs(ratio.mean - mean) < 1e-12 && abs(ratio.std - std) < 1e-12)
        }
        #expect(throws: WorkflowError.self) { try CircuitSearch.bands([curves[0], Array(curves[1].prefix(1))]) }
    }

    /// A head circuit names the heads it keeps and its share of all heads; searching only
    /// part of the model leaves the rest as it was, and mean ablation differs from zeroing.
    @Test func headCircuitsListTheirHeads() throws {
        let m = try Model.load(tinyModel)
        let t = try task(m)
        let heads = try Attribution.attribute(m, samples: t.samples, method: .lrp, level: .head)
        let r = try CircuitSearch.smallest(m, task: t, ranking: heads, target: 0.5, grid: [0.25, 0.5, 0.75, 1], refine: 0, per: .global)
        let kept = CircuitSearch.components(of: r.circuit, model: m)!
        #expect(kept.count == r.circuit.count && kept.allSatisfy { $0.hasPrefix("L") && $0.contains(".H") })
        // Heads are listed however many are kept; units only up to the limit.
        #expect(CircuitSearch.components(of: r.circuit, model: m, unitLimit: 0) == kept)
        let units = try Mask(like: try Attribution.attribute(m, samples: t.samples, method: .lrp, level: .neuron), filled: true)
        #expect(CircuitSearch.components(of: units, model: m, unitLimit: units.count)?.count == units.count)
        #expect(CircuitSearch.components(of: units, model: m, unitLimit: units.count - 1) == nil)
        #expect(r.modelFraction == Double(r.circuit.count) / Double(m.config.numLayers * m.config.numHeads))
        let means = try Attribution.inputMeans(m, prompts: t.prompts)
        let zero = try CircuitSearch.curve(m, task: t, ranking: heads, fractions: [0.25], per: .global)
        let mean = try CircuitSearch.curve(m, task: t, ranking: heads, fractions: [0.25], per: .global, ablation: .mean(means))
        #expect(zero[0].score != mean[0].score && zero[0].count == mean[0].count)
    }

    @Test func randomRankingsAreSeeded() throws {
        let m = try Model.load(tinyModel)
        let map = try Attribution.attribute(m, samples: [AttributionSample(ids: [1, 2, 3])], method: .magnitude)
        let a = CircuitSearch.randomRanking(like: map, seed: 7), b = CircuitSearch.randomRanking(like: map, seed: 7)
        let c = CircuitSearch.randomRanking(like: map, seed: 8)
        let n = map.names[0]
        #expect(a[n]!.scalars == b[n]!.scalars)
        #expect(a[n]!.scalars != c[n]!.scalars)
        #expect(a[n]!.scalars.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(a.names == map.names && a[n]!.shape == map[n]!.shape)
    }
}

@Suite struct ChartTests {
    @Test func compositionCountsEachComponentAndHead() throws {
        let m = try Model.load(tinyModel)
        let c = m.config
        let map = try Attribution.attribute(m, samples: [AttributionSample(ids: [1, 2, 3])], method: .magnitude)
        var mask = try Mask(like: map)
        let q = "model.layers.0.self_attn.q_proj.weight"
        // Select all of head 1's q_proj rows in layer 0.
        var bits = mask.bits[q]!
        let cols = mask.shapes[q]![1]
        for r in c.headDim..<(2 * c.headDim) { for k in 0..<cols { bits[r * cols + k] = true } }
        mask.bits[q] = bits
        let byComponent = try Composition.byComponent(mask, model: m)
        #expect(byComponent.columnLabels == ["q", "k", "v", "o", "gate", "up", "down"])
        #expect(byComponent.values[0][0] == 1.0 / Double(c.numHeads))
        #expect(byComponent.values[0].dropFirst().allSatisfy { $0 == 0 } && byComponent.values[1].allSatisfy { $0 == 0 })
        let byHead = try Composition.byHead(mask, model: m)
        // Head 1's weights: its q rows, its k/v group's rows, its o_proj columns.
        let own = Double(c.headDim * cols)
        let total = own + 2 * Double(c.headDim * c.hiddenSize) + Double(c.hiddenSize * c.headDim)
        #expect(abs(byHead.values[0][1] - own / total) < 1e-12)
        #expect(byHead.values[0][0] == 0 && byHead.values[0][2] == 0)
    }

    @Test func chartsAreWellFormedSVG() throws {
        let svg = Charts.lines([Charts.Series(name: "lrp <a>", points: [(0.1, 1), (0.5, 2), (1, 4)]),
                                Charts.Series(name: "random", points: [(0.1, 0), (0.5, -1), (1, 3)])],
                               title: "t", xLabel: "kept", yLabel: "ratio", logX: true)
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 2)
        #expect(svg.contains("lrp &lt;a&gt;") && !svg.contains("<a>"))
        let heat = Charts.heatmap([[0, 0.5], [1, 0.25]], rowLabels: ["layer 0", "layer 1"], columnLabels: ["q", "k"], title: "h")
        #expect(heat.components(separatedBy: "<rect x=").count - 1 == 4)
        #expect(heat.contains("rgb(155,0,0)") && heat.contains("rgb(255,255,255)"))  // the peak darkest, the minimum white
    }
}
