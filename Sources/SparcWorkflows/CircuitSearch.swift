import Foundation
import SparcAttribution
import SparcCluster
import SparcModel
import SparcPruning
import SparcTensor

/// Circuit discovery by relevance (Hatefi et al. 2025, Sec. "circuit discovery"): keep
/// only the most relevant components for a task, remove every other prunable one, and
/// see how much of the full model's task metric survives. The circuit is the smallest
/// such set that keeps at least a given fraction of the metric.
public enum CircuitSearch {
    public struct Point: Sendable, Codable {
        /// Fraction of the ranking's elements asked to be kept (per scope, before rounding).
        public let kept: Double
        /// Elements kept, and their fraction of the searched set (the ranking's keys).
        public let count: Int
        public let fraction: Double
        /// The pruned model's value of the chosen metric.
        public let score: Double
        /// score / the full model's score.
        public let ratio: Double
        /// Every metric of the pruned model (logit difference, accuracy, KL to the full model).
        public let evaluation: ContrastTask.Evaluation
    }

    public struct Result: Sendable {
        /// The circuit: the kept elements (prune with its complement to run it alone).
        public let circuit: Mask
        public let point: Point
        /// Every point evaluated, by size.
        public let curve: [Point]
        public let full: ContrastTask.Evaluation
        public let fullScore: Double
        /// The circuit's share of the whole model at its granularity (every block linear
        /// weight, row, unit or head), where `point.kept` is its share of the searched set.
        public let modelFraction: Double
    }

    /// The model with only the top `kept` fraction of `ranking` left (within its scope);
    /// the rest of the ranking's keys is zeroed or mean-ablated, everything else untouched.
    public static func circuitModel(_ model: Model, ranking: RelevanceMap, kept: Double, per scope: Selection.Scope,
                                    ablation: Pruning.Ablation = .zero) throws -> (Model, Mask) {
        let circuit = try select(ranking, kept: kept, per: scope)
        return (try Pruning.prune(model, circuit.complement, ablation: ablation), circuit)
    }

    /// The top `kept` fraction of the ranking (within its scope): the circuit's mask.
    static func select(_ ranking: RelevanceMap, kept: Double, per scope: Selection.Scope) throws -> Mask {
        guard kept >= 0, kept.isFinite else { throw WorkflowError.invalid("the fraction kept must be in [0, 1]") }
        return kept >= 1 ? try Mask(like: ranking, filled: true) : try Selection.extreme(ranking, k: kept, largest: true, per: scope)
    }

    /// The task metrics with only the top fraction of the ranking kept, for each fraction.
    /// The fractions are split over the ranks of `world` (each point is independent).
    public static func curve(_ model: Model, task: ContrastTask, ranking: RelevanceMap, fractions: [Double],
                             per scope: Selection.Scope = .row, metric: ContrastTask.Metric = .logitDifference,
                             ablation: Pruning.Ablation = .zero, world: World = .current,
                             progress: (Int) -> Void = { _ in }) throws -> [Point] {
        let e = try Evaluator(model, task, ranking, scope, metric, ablation)
        return try world.map(fractions.count, done: progress) { i in
            try e.evaluate(kept: fractions[i]).point
        }
    }

    /// The smallest circuit keeping at least `target` of the full metric: the grid is
    /// evaluated, then the step between the last fraction below the target and the first
    /// one reaching it is bisected `refine` times (on a log scale). Assumes the metric
    /// grows with the circuit, as it does in practice; the whole curve is returned to check.
    public static func smallest(_ model: Model, task: ContrastTask, ranking: RelevanceMap, target: Double,
                                grid: [Double] = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                                refine: Int = 5, per scope: Selection.Scope = .row,
                                metric: ContrastTask.Metric = .logitDifference, ablation: Pruning.Ablation = .zero,
                                world: World = .current, progress: (Int) -> Void = { _ in }) throws -> Result {
        guard target > 0, target.isFinite else { throw WorkflowError.invalid("the fraction of the metric to keep must be > 0") }
        let e = try Evaluator(model, task, ranking, scope, metric, ablation)
        guard e.fullScore > 0 else {
            throw WorkflowError.invalid("the full model's \(metric.rawValue) on \(task.name) is \(e.fullScore); a circuit must keep a positive metric")
        }
        // The whole grid is evaluated (the curve is part of the answer), its points split
        // over the ranks; the bisection after it is sequential, so every rank runs it alike
        // and the circuit does not depend on the number of ranks.
        let sortedGrid = grid.sorted()
        var points = try world.map(sortedGrid.count, done: progress) { i in
            try e.evaluate(kept: sortedGrid[i]).point
        }
        guard let first = points.first(where: { $0.ratio >= target }) else {
            throw WorkflowError.invalid("no circuit in the grid keeps \(String(format: "%g", target * 100)) % of the metric (best: \(String(format: "%.1f", 100 * (points.map(\.ratio).max() ?? 0))) %)")
        }
        var best = (point: first, circuit: try select(ranking, kept: first.kept, per: scope))
        var lo = points.last(where: { $0.kept < best.point.kept && $0.ratio < target })
        for _ in 0..<refine {
            guard let low = lo else { break }
            let mid = exp((log(max(low.kept, 1e-9)) + log(best.point.kept)) / 2)
            let r = try e.evaluate(kept: mid)
            points.append(r.point)
            progress(points.count)
            if r.point.ratio >= target { best = r } else { lo = r.point }
        }
        points.sort { $0.kept < $1.kept }
        let whole = try modelSize(best.circuit.granularity, model)
        return Result(circuit: best.circuit, point: best.point, curve: points, full: e.full, fullScore: e.fullScore,
                      modelFraction: whole == 0 ? 0 : Double(best.circuit.count) / Double(whole))
    }

    /// Evaluates circuits of one ranking against the full model.
    private struct Evaluator {
        let model: Model, task: ContrastTask, ranking: RelevanceMap
        let scope: Selection.Scope, metric: ContrastTask.Metric, ablation: Pruning.Ablation
        let reference: [[Float]], full: ContrastTask.Evaluation
        var fullScore: Double { full.value(metric) }

        init(_ model: Model, _ task: ContrastTask, _ ranking: RelevanceMap, _ scope: Selection.Scope,
             _ metric: ContrastTask.Metric, _ ablation: Pruning.Ablation) throws {
            self.model = model; self.task = task; self.ranking = ranking
            self.scope = scope; self.metric = metric; self.ablation = ablation
            (full, reference) = try task.evaluateKeepingReference(model)
        }

        func evaluate(kept: Double) throws -> (point: Point, circuit: Mask) {
            let (sub, circuit) = try circuitModel(model, ranking: ranking, kept: kept, per: scope, ablation: ablation)
            let e = try task.evaluate(sub, reference: reference)
            let s = e.value(metric)
            return (Point(kept: kept, count: circuit.count, fraction: circuit.fraction, score: s, ratio: fullScore == 0 ? 0 : s / fullScore, evaluation: e), circuit)
        }
    }

    // MARK: curves over several reference sets

    /// Mean and standard deviation of one measure over several curves at one fraction.
    public struct Band: Sendable {
        public let kept: Double
        public let curves: Int
        /// (mean, sample standard deviation) by measure: ratio, score, logit_diff, accuracy, kl.
        public let measures: [(name: String, mean: Double, std: Double)]
    }

    /// Curves of several rankings (one per reference set, the paper's 6 × 128 prompts)
    /// on the same fractions, as mean ± std per fraction.
    public static func bands(_ curves: [[Point]]) throws -> [Band] {
        guard let first = curves.first, !first.isEmpty else { throw WorkflowError.invalid("no curves to combine") }
        guard curves.allSatisfy({ $0.map(\.kept) == first.map(\.kept) }) else {
            throw WorkflowError.invalid("curves to combine must share their fractions")
        }
        let measures: [(String, (Point) -> Double)] = [
            ("ratio", \.ratio), ("score", \.score), ("logit_diff", \.evaluation.logitDifference),
            ("accuracy", \.evaluation.accuracy), ("kl", \.evaluation.kl),
        ]
        return first.indices.map { i in
            Band(kept: first[i].kept, curves: curves.count, measures: measures.map { name, f in
                let (mean, std) = meanAndStandardDeviation(curves.map { f($0[i]) })
                return (name, mean, std)
            })
        }
    }

    /// The mean and the sample standard deviation (0 for fewer than two values).
    public static func meanAndStandardDeviation(_ xs: [Double]) -> (mean: Double, std: Double) {
        let mean = xs.reduce(0, +) / Double(xs.count)
        let variance = xs.count < 2 ? 0 : xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count - 1)
        return (mean, variance.squareRoot())
    }

    // MARK: what a circuit is made of

    /// How many elements the whole model has at a granularity: its block linear weights,
    /// their rows, its MLP units and attention channels, or its heads.
    public static func modelSize(_ granularity: Mask.Granularity, _ model: Model) throws -> Int {
        let c = model.config, linear = Attribution.linearWeightNames(model).compactMap { model.layout.tensor(named: $0) }
        switch granularity {
        case .weight: return linear.reduce(0) { $0 + $1.shape.reduce(1, *) }
        case .row: return linear.reduce(0) { $0 + $1.pieces.reduce(0) { $0 + $1.shape[0] } }
        case .neuron: return c.numLayers * (c.intermediateSize + c.numHeads * c.headDim)
        case .head: return c.numLayers * c.numHeads
        }
    }

    /// The heads (`L3.H5`) or units (`L3.mlp.17`, `L3.attn.40`) a component mask keeps,
    /// in layer order; nil for weight and row masks, or for unit masks keeping more than
    /// `unitLimit` (a model's heads are few enough to read, so they are always listed).
    public static func components(of mask: Mask, model: Model, unitLimit: Int = 64) -> [String]? {
        guard mask.granularity == .head || (mask.granularity == .neuron && mask.count <= unitLimit) else { return nil }
        var out: [String] = []
        for n in mask.names {
            guard let (layer, kind) = model.components.parse(n, layers: model.config.numLayers), let b = mask.bits[n] else { continue }
            for i in 0..<b.count where b[i] {
                switch (mask.granularity, kind) {
                case (.head, _): out.append("L\(layer).H\(i)")
                case (_, .mlp): out.append("L\(layer).mlp.\(i)")
                case (_, .attention): out.append("L\(layer).attn.\(i)")
                }
            }
        }
        return out
    }

    /// A ranking of uniform noise shaped like `map`: its top-k is a random mask of that size,
    /// the baseline every relevance ranking must beat.
    public static func randomRanking(like map: RelevanceMap, seed: UInt64) -> RelevanceMap {
        var rng = Xoshiro256(seed: seed)
        var out = map
        out.provenance["random_seed"] = String(seed)
        for n in map.names {
            out.tensors[n] = Tensor(shape: map[n]!.shape) { p in for i in 0..<p.count { p[i] = rng.nextFloat() } }
        }
        return out
    }
}
