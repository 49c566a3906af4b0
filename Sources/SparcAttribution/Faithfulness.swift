import SparcModel
import SparcTensor

/// Perturbation curves (AttnLRP paper, Sec. 4): remove input tokens in order of relevance
/// and follow the explained logit. A faithful explanation makes the logit fall fastest
/// when the most relevant tokens go first (and slowest when the least relevant go first).
public enum Faithfulness {
    public enum Order: String, Sendable { case mostRelevantFirst = "most", leastRelevantFirst = "least" }

    /// The explained quantity after removing 0, 1, …, n tokens (replaced by `replacement`,
    /// e.g. a padding or unknown token), ranked by `relevance` (one value per token).
    public static func tokenPerturbation(_ model: Model, ids: [Int], target: AttributionTarget, relevance: [Float],
                                         order: Order = .mostRelevantFirst, replacement: Int) throws -> [Double] {
        guard relevance.count == ids.count else {
            throw AttributionError.invalid("relevance has \(relevance.count) values for \(ids.count) tokens")
        }
        guard replacement >= 0 && replacement < model.config.vocabSize else {
            throw AttributionError.invalid("replacement token \(replacement) is outside the vocabulary")
        }
        let base = try model.logits(ids).row(ids.count - 1)
        let explained: (Int, Int)  // (token, foil or -1)
        switch target {
        case .predicted: explained = (base.indices.max { base[$0] < base[$1] }!, -1)
        case .token(let t): explained = (t, -1)
        case .contrast(let a, let b): explained = (a, b)
        case .languageModeling: throw AttributionError.invalid("perturbation curves explain a last-position target")
        }
        let ranked = relevance.indices.sorted {
            order == .mostRelevantFirst ? relevance[$0] > relevance[$1] : relevance[$0] < relevance[$1]
        }
        var current = ids
        var curve: [Double] = []
        for k in 0...ids.count {
            if k > 0 { current[ranked[k - 1]] = replacement }
            try Interrupt.check()
            let row = try model.logits(current).row(ids.count - 1)
            curve.append(Double(row[explained.0]) - (explained.1 >= 0 ? Double(row[explained.1]) : 0))
        }
        return curve
    }

    /// Area under a curve sampled at evenly spaced fractions 0…1 (trapezoid rule).
    public static func area(_ curve: [Double]) -> Double {
        guard curve.count > 1 else { return curve.first ?? 0 }
        let step = 1 / Double(curve.count - 1)
        return zip(curve, curve.dropFirst()).reduce(0) { $0 + ($1.0 + $1.1) / 2 * step }
    }
}
