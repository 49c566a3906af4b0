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
        for start in stride(from: 0, to: prompts.count, by: max(batch, 1)) {
            try Interrupt.check()
            let range = start..<min(start + max(batch, 1), prompts.count)
            let logits = try model.lastLogits(batch: Array(prompts[range]))
            for (k, i) in range.enumerated() {
                out.append(Double(logits[k][flat: answers[i]]) - Double(logits[k][flat: foils[i]]))
            }
        }
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
}

public enum WorkflowError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String { if case .invalid(let m) = self { return m }; return "" }
}
