import Foundation
import SparcAttribution
import SparcModel
import SparcPruning
import SparcTensor

/// Circuit discovery by relevance (Hatefi et al. 2025, Sec. "circuit discovery"): keep
/// only the most relevant components for a task, remove every other prunable one, and
/// see how much of the full model's task metric survives. The circuit is the smallest
/// such set that keeps at least a given fraction of the metric.
public enum CircuitSearch {
    public struct Point: Sendable {
        /// Fraction of the ranking's elements kept (the circuit's size).
        public let kept: Double
        /// The pruned model's metric.
        public let score: Double
        /// score / the full model's score.
        public let ratio: Double
    }

    public struct Result: Sendable {
        /// The circuit: the kept elements (prune with its complement to run it alone).
        public let circuit: Mask
        public let point: Point
        /// Every point evaluated, by size.
        public let curve: [Point]
        public let fullScore: Double
    }

    /// The model with only the top `kept` fraction of `ranking` left (within its scope).
    public static func circuitModel(_ model: Model, ranking: RelevanceMap, kept: Double, per scope: Selection.Scope) throws -> (Model, Mask) {
        guard kept >= 0, kept.isFinite else { throw WorkflowError.invalid("the fraction kept must be in [0, 1]") }
        let circuit = kept >= 1 ? try Mask(like: ranking, filled: true) : try Selection.extreme(ranking, k: kept, largest: true, per: scope)
        return (try Pruning.prune(model, circuit.complement), circuit)
    }

    /// The task metric with only the top fraction of the ranking kept, for each fraction.
    public static func curve(_ model: Model, task: ContrastTask, ranking: RelevanceMap, fractions: [Double],
                             per scope: Selection.Scope = .row, metric: ContrastTask.Metric = .logitDifference,
                             fullScore: Double? = nil, progress: (Int) -> Void = { _ in }) throws -> [Point] {
        let full = try fullScore ?? task.score(model, metric: metric)
        var points: [Point] = []
        for (i, f) in fractions.enumerated() {
            points.append(try evaluate(model, task, ranking, kept: f, scope, metric, full: full).point)
            progress(i + 1)
        }
        return points
    }

    /// One circuit: its mask and its point on the curve.
    static func evaluate(_ model: Model, _ task: ContrastTask, _ ranking: RelevanceMap, kept: Double, _ scope: Selection.Scope,
                         _ metric: ContrastTask.Metric, full: Double) throws -> (point: Point, circuit: Mask) {
        let (sub, circuit) = try circuitModel(model, ranking: ranking, kept: kept, per: scope)
        let s = try task.score(sub, metric: metric)
        return (Point(kept: kept, score: s, ratio: full == 0 ? 0 : s / full), circuit)
    }

    /// The smallest circuit keeping at least `target` of the full metric: the grid is
    /// evaluated, then the step between the last fraction below the target and the first
    /// one reaching it is bisected `refine` times (on a log scale). Assumes the metric
    /// grows with the circuit, as it does in practice; the whole curve is returned to check.
    public static func smallest(_ model: Model, task: ContrastTask, ranking: RelevanceMap, target: Double,
                                grid: [Double] = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                                refine: Int = 5, per scope: Selection.Scope = .row,
                                metric: ContrastTask.Metric = .logitDifference, progress: (Int) -> Void = { _ in }) throws -> Result {
        guard target > 0, target.isFinite else { throw WorkflowError.invalid("the fraction of the metric to keep must be > 0") }
        let full = try task.score(model, metric: metric)
        guard full > 0 else {
            throw WorkflowError.invalid("the full model's \(metric.rawValue) on \(task.name) is \(full); a circuit must keep a positive metric")
        }
        // The whole grid is evaluated (the curve is part of the answer); the mask of the
        // smallest circuit reaching the target so far is kept, not selected again.
        var points: [Point] = []
        var hi: (point: Point, circuit: Mask)?
        for kept in grid.sorted() {
            let e = try evaluate(model, task, ranking, kept: kept, scope, metric, full: full)
            points.append(e.point)
            if hi == nil && e.point.ratio >= target { hi = e }
            progress(points.count)
        }
        guard var best = hi else {
            throw WorkflowError.invalid("no circuit in the grid keeps \(String(format: "%g", target * 100)) % of the metric (best: \(String(format: "%.1f", 100 * (points.map(\.ratio).max() ?? 0))) %)")
        }
        var lo = points.last(where: { $0.kept < best.point.kept && $0.ratio < target })
        for _ in 0..<refine {
            guard let low = lo else { break }
            let mid = exp((log(low.kept) + log(best.point.kept)) / 2)
            let e = try evaluate(model, task, ranking, kept: mid, scope, metric, full: full)
            points.append(e.point)
            progress(points.count)
            if e.point.ratio >= target { best = e } else { lo = e.point }
        }
        points.sort { $0.kept < $1.kept }
        return Result(circuit: best.circuit, point: best.point, curve: points, fullScore: full)
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
