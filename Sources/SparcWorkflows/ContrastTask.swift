import Foundation
import SparcAttribution
import SparcModel
import SparcTensor

/// A task whose every prompt has a right and a wrong next token — in indirect-object
/// identification (IOI), the indirect object and the subject. Its metric is the logit
/// difference answer − foil at the last position (Hatefi et al. 2025, circuit discovery;
/// Wang et al. 2023 for IOI), or the accuracy answer > foil.
public struct ContrastTask: Sendable {
    public enum Metric: String, Sendable, CaseIterable {
        /// Mean over prompts of logit(answer) − logit(foil).
        case logitDifference = "logit_diff"
        /// Fraction of prompts where the answer's logit beats the foil's.
        case accuracy
    }

    public let name: String
    public let prompts: [[Int]]
    public let answers: [Int]
    public let foils: [Int]

    /// Tokenizes the prompts; the answers and foils must be single tokens for this model
    /// (with their leading space, as they follow the prompt).
    public init(name: String, prompts: [String], answers: [String], foils: [String], tokenizer: Tokenizer) throws {
        guard !prompts.isEmpty else { throw WorkflowError.invalid("task \(name) has no prompts") }
        guard prompts.count == answers.count, prompts.count == foils.count else {
            throw WorkflowError.invalid("task \(name): \(prompts.count) prompts, \(answers.count) answers and \(foils.count) foils; give one of each per prompt")
        }
        let what = name == "task" ? "task" : "task \(name)"
        func single(_ text: String, _ role: String, _ i: Int) throws -> Int {
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            guard ids.count == 1 else {
                throw WorkflowError.invalid("\(what): the \(role) of prompt \(i), \"\(text)\", is \(ids.count) tokens for this model; answers and foils must be single tokens")
            }
            return ids[0]
        }
        self.name = name
        self.prompts = prompts.map { tokenizer.encode($0) }
        self.answers = try answers.enumerated().map { try single($1, "answer", $0) }
        self.foils = try foils.enumerated().map { try single($1, "foil", $0) }
    }

    /// A task from token ids (one answer and one foil id per prompt).
    public init(name: String, prompts: [[Int]], answers: [Int], foils: [Int]) throws {
        guard !prompts.isEmpty, prompts.count == answers.count, prompts.count == foils.count else {
            throw WorkflowError.invalid("task \(name) needs one answer and one foil per prompt, and at least one prompt")
        }
        self.name = name
        self.prompts = prompts
        self.answers = answers
        self.foils = foils
    }

    /// One attribution sample per prompt, explaining the logit difference.
    public var samples: [AttributionSample] {
        prompts.indices.map { AttributionSample(ids: prompts[$0], target: .contrast(answer: answers[$0], foil: foils[$0])) }
    }

    /// logit(answer) − logit(foil) after each prompt, in batches of `batch` prompts.
    public func logitDifferences(_ model: Model, batch: Int = 16) throws -> [Double] {
        var out: [Double] = []
        out.reserveCapacity(prompts.count)
        try forEachLastLogits(model, batch: batch) { i, logits in out.append(Double(logits[answers[i]]) - Double(logits[foils[i]])) }
        return out
    }

    /// The task metric of a model, averaged over the prompts.
    public func score(_ model: Model, metric: Metric = .logitDifference) throws -> Double {
        let d = try logitDifferences(model)
        switch metric {
        case .logitDifference: return d.reduce(0, +) / Double(d.count)
        case .accuracy: return Double(d.filter { $0 > 0 }.count) / Double(d.count)
        }
    }

    /// Every metric of a model on the task, from one forward pass per batch.
    public struct Evaluation: Sendable, Codable {
        /// Mean logit(answer) − logit(foil).
        public let logitDifference: Double
        /// Fraction of prompts where the answer beats the foil.
        public let accuracy: Double
        /// Mean KL(reference ‖ model) of the next-token distributions after each prompt, in
        /// nats (0 when no reference is given): how far a circuit is from the full model.
        public let kl: Double

        public func value(_ metric: Metric) -> Double { metric == .logitDifference ? logitDifference : accuracy }
    }

    /// The task metrics of a model; with `reference` (the full model's next-token
    /// log-probabilities, from `evaluateKeepingReference`), also the KL to it.
    public func evaluate(_ model: Model, reference: [[Float]]? = nil, batch: Int = 16) throws -> Evaluation {
        try evaluate(model, reference: reference, keepLogProbabilities: false, batch: batch).evaluation
    }

    /// The full model's metrics and its next-token log-probabilities after each prompt (the
    /// reference for `evaluate`'s KL), from the same forward passes.
    public func evaluateKeepingReference(_ model: Model, batch: Int = 16) throws -> (evaluation: Evaluation, reference: [[Float]]) {
        try evaluate(model, reference: nil, keepLogProbabilities: true, batch: batch)
    }

    private func evaluate(_ model: Model, reference: [[Float]]?, keepLogProbabilities: Bool,
                          batch: Int) throws -> (evaluation: Evaluation, reference: [[Float]]) {
        var diff = 0.0, correct = 0, kl = 0.0
        var kept: [[Float]] = []
        try forEachLastLogits(model, batch: batch) { i, logits in
            let d = Double(logits[answers[i]]) - Double(logits[foils[i]])
            diff += d
            if d > 0 { correct += 1 }
            if keepLogProbabilities { kept.append(Self.logSoftmax(logits)) }
            if let p = reference?[i] {
                let q = Self.logSoftmax(logits)
                var s = 0.0
                for v in 0..<p.count where p[v] > -.infinity { s += exp(Double(p[v])) * (Double(p[v]) - Double(q[v])) }
                kl += s
            }
        }
        let n = Double(prompts.count)
        return (Evaluation(logitDifference: diff / n, accuracy: Double(correct) / n, kl: kl / n), kept)
    }

    private func forEachLastLogits(_ model: Model, batch: Int, _ body: (Int, [Float]) throws -> Void) throws {
        let step = max(batch, 1)
        for start in stride(from: 0, to: prompts.count, by: step) {
            try Interrupt.check()
            let range = start..<min(start + step, prompts.count)
            let logits = try model.lastLogits(batch: Array(prompts[range]))
            for (k, i) in range.enumerated() { try body(i, logits[k].scalars) }
        }
    }

    static func logSoftmax(_ x: [Float]) -> [Float] {
        let m = x.max() ?? 0
        let logZ = Double(m) + log(x.reduce(0.0) { $0 + exp(Double($1 - m)) })
        return x.map { Float(Double($0) - logZ) }
    }
}

public enum WorkflowError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String { if case .invalid(let m) = self { return m }; return "" }
}
