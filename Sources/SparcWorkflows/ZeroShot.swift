import Foundation
import SparcModel
import SparcTensor

/// One multiple-choice item: the prompt as the task formats it, the candidate
/// continuations (without the leading space) and the index of the right one.
public struct ZeroShotItem: Sendable, Equatable {
    public let task: String
    public let context: String
    public let choices: [String]
    public let gold: Int

    public init(task: String, context: String, choices: [String], gold: Int) throws {
        guard !choices.isEmpty else { throw WorkflowError.invalid("zero-shot item of \(task): no choices") }
        guard choices.indices.contains(gold) else {
            throw WorkflowError.invalid("zero-shot item of \(task): gold \(gold) is not an index of its \(choices.count) choices")
        }
        self.task = task
        self.context = context
        self.choices = choices
        self.gold = gold
    }
}

/// How one task (or the mean over several) went.
public struct ZeroShotResult: Sendable {
    public let task: String
    public let count: Int
    /// Fraction of items whose highest log-likelihood choice is the gold one.
    public let accuracy: Double
    /// The same with each log-likelihood divided by its choice's length in characters.
    public let normalizedAccuracy: Double
}

/// Zero-shot multiple-choice accuracy as lm-evaluation-harness computes it (its
/// `multiple_choice` output type): every choice is scored by the log-likelihood of
/// `" " + choice` after the context, and the argmax is the model's answer.
///
/// Items are read from sparc's normalised JSON lines: one object a line with
/// `context` (the task's prompt, e.g. BoolQ's `"{passage}\nQuestion: {question}?\nAnswer:"`),
/// `choices` (strings), `gold` (0-based index) and optionally `task` (default: the file's
/// name). `sparc install zero-shot` writes such a file from the harness's task templates.
public enum ZeroShot {
    /// The harness's `target_delimiter` between context and choice.
    public static let targetDelimiter = " "

    // MARK: reading items

    public static func load(path: String) throws -> [ZeroShotItem] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WorkflowError.invalid("zero-shot: cannot read \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw WorkflowError.invalid("zero-shot: \(path) is not UTF-8 text") }
        let fallbackTask = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        var items: [ZeroShotItem] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { continue }
            let location = "zero-shot: \(path):\(i + 1)"
            let fields: Line
            do { fields = try JSONDecoder().decode(Line.self, from: Data(line.utf8)) } catch let e as WorkflowError {
                throw WorkflowError.invalid("\(location): \(e)")
            } catch {
                throw WorkflowError.invalid("\(location): not a JSON object")
            }
            do {
                items.append(try ZeroShotItem(task: fields.task ?? fallbackTask, context: fields.context, choices: fields.choices, gold: fields.gold))
            } catch let e as WorkflowError {
                throw WorkflowError.invalid("\(location): \(e)")
            }
        }
        guard !items.isEmpty else { throw WorkflowError.invalid("zero-shot: \(path) has no items") }
        return items
    }

    /// One line of the file, with an error that names the missing or mistyped field.
    private struct Line: Decodable {
        let task: String?
        let context: String
        let choices: [String]
        let gold: Int

        enum Key: String, CodingKey { case task, context, choices, gold }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: Key.self)
            func field<T: Decodable>(_ key: Key, _ what: String) throws -> T {
                guard c.contains(key) else { throw WorkflowError.invalid("missing field \"\(key.rawValue)\" (\(what))") }
                guard let v = try? c.decode(T.self, forKey: key) else { throw WorkflowError.invalid("field \"\(key.rawValue)\" must be \(what)") }
                return v
            }
            task = c.contains(.task) ? try field(.task, "a string") as String : nil
            context = try field(.context, "a string")
            choices = try field(.choices, "a list of strings")
            gold = try field(.gold, "the index of the right choice, from 0")
        }
    }

    // MARK: scoring

    /// Context and continuation token ids as the harness's `_encode_pair` makes them:
    /// trailing whitespace of the context moves to the continuation, the concatenation
    /// is encoded whole, and the continuation is what follows the context's own token
    /// count (so a merge across the boundary is charged to the continuation). No BOS/EOS
    /// is added (the harness encodes with `add_special_tokens=False`); an empty context
    /// becomes the BOS token (else EOS), the harness's prefix token.
    public static func encodePair(context: String, continuation: String, tokenizer: Tokenizer) throws -> (context: [Int], continuation: [Int]) {
        var context = context, continuation = continuation
        let trimmed = String(context.reversed().drop(while: { $0.isWhitespace }).reversed())
        if trimmed.count < context.count {
            continuation = String(context.dropFirst(trimmed.count)) + continuation
            context = trimmed
        }
        if context.isEmpty {
            guard let prefix = tokenizer.bosTokenId ?? tokenizer.eosTokenId else {
                throw WorkflowError.invalid("zero-shot: empty context and the tokenizer has no BOS or EOS token to start from")
            }
            return ([prefix], tokenizer.encode(continuation, addSpecialTokens: false))
        }
        let whole = tokenizer.encode(context + continuation, addSpecialTokens: false)
        let contextIds = tokenizer.encode(context, addSpecialTokens: false)
        return (contextIds, Array(whole.dropFirst(contextIds.count)))
    }

    /// The log-likelihood (nats) of each choice after the item's context, one batched
    /// forward pass for all choices. Longer inputs keep their last `maxPositions + 1`
    /// tokens, as the harness truncates on the left.
    public static func logLikelihoods(_ model: Model, _ item: ZeroShotItem) throws -> [Double] {
        let limit = model.config.maxPositions
        var inputs: [[Int]] = [], continuations: [[Int]] = []
        for choice in item.choices {
            let (ctx, cont) = try encodePair(context: item.context, continuation: targetDelimiter + choice, tokenizer: model.tokenizer)
            guard !cont.isEmpty else {
                throw WorkflowError.invalid("zero-shot item of \(item.task): the choice \"\(choice)\" adds no tokens to the context")
            }
            guard cont.count <= limit else {
                throw WorkflowError.invalid("zero-shot item of \(item.task): a choice of \(cont.count) tokens exceeds the model's context length (\(limit))")
            }
            let sequence = ctx + cont
            inputs.append(Array(sequence.suffix(limit + 1).dropLast()))
            continuations.append(cont)
        }
        let vocab = model.config.vocabSize
        let logits = try model.logits(batch: inputs)
        return zip(zip(inputs, continuations), logits).map { pair, l in
            let (input, cont) = pair
            // The last continuation token is predicted at the input's last position.
            let first = input.count - cont.count
            return l.withUnsafeBufferPointer { p -> Double in
                var sum = 0.0
                for (j, token) in cont.enumerated() {
                    let row = p.baseAddress! + (first + j) * vocab
                    sum += Double(row[token]) - Kernels.logSumExp(row, count: vocab)
                }
                return sum
            }
        }
    }

    /// The first index of the largest value (numpy's argmax, which the harness uses).
    static func argmax(_ xs: [Double]) -> Int {
        var best = 0
        for i in xs.indices where xs[i] > xs[best] { best = i }
        return best
    }

    /// The harness's answers: by raw log-likelihood, and by log-likelihood per character
    /// of the choice (`len(choice)` in Python: Unicode scalars, without the delimiter).
    public static func predictions(_ item: ZeroShotItem, logLikelihoods: [Double]) -> (plain: Int, normalized: Int) {
        // An empty choice (Python would divide by zero) counts as one character.
        let normalized = zip(logLikelihoods, item.choices).map { ll, c in ll / Double(max(1, c.unicodeScalars.count)) }
        return (argmax(logLikelihoods), argmax(normalized))
    }

    /// Accuracy on each task among the items (the first `limit` items of each task when
    /// given), in the order the tasks first appear. `progress` gets items done and total.
    public static func evaluate(_ model: Model, _ items: [ZeroShotItem], limit: Int? = nil,
                                progress: (Int, Int) -> Void = { _, _ in }) throws -> [ZeroShotResult] {
        guard !items.isEmpty else { throw WorkflowError.invalid("zero-shot: no items") }
        if let limit, limit < 1 { throw WorkflowError.invalid("zero-shot: limit must be at least 1") }
        let tasks = byTask(items, limit: limit)
        let total = tasks.reduce(0) { $0 + $1.items.count }
        var done = 0
        return try tasks.map { task, taskItems in
            var right = 0, rightNormalized = 0
            for item in taskItems {
                try Interrupt.check()
                let (plain, normalized) = predictions(item, logLikelihoods: try logLikelihoods(model, item))
                if plain == item.gold { right += 1 }
                if normalized == item.gold { rightNormalized += 1 }
                done += 1
                progress(done, total)
            }
            let n = Double(taskItems.count)
            return ZeroShotResult(task: task, count: taskItems.count, accuracy: Double(right) / n,
                                  normalizedAccuracy: Double(rightNormalized) / n)
        }
    }

    /// The items of each task in the order the tasks first appear, the first `limit` of each.
    public static func byTask(_ items: [ZeroShotItem], limit: Int? = nil) -> [(task: String, items: [ZeroShotItem])] {
        var order: [String] = [], groups: [String: [ZeroShotItem]] = [:]
        for item in items {
            if groups[item.task] == nil { order.append(item.task) }
            if let limit, groups[item.task, default: []].count >= limit { continue }
            groups[item.task, default: []].append(item)
        }
        return order.map { ($0, groups[$0]!) }
    }

    /// The unweighted mean over tasks (how the paper averages its tasks).
    public static func mean(_ results: [ZeroShotResult]) -> ZeroShotResult {
        let k = Double(max(1, results.count))
        return ZeroShotResult(task: "mean", count: results.reduce(0) { $0 + $1.count },
                              accuracy: results.reduce(0) { $0 + $1.accuracy } / k,
                              normalizedAccuracy: results.reduce(0) { $0 + $1.normalizedAccuracy } / k)
    }
}
