import Foundation
import SparcModel
import SparcWorkflows

/// Benchmarks beside perplexity: zero-shot multiple-choice accuracy (lm-evaluation-harness
/// style), and a check for installed data so scripts can make such measures optional.
enum EvaluationBuiltins {
    static let all: [Builtin] = [
        Builtin("zero_shot", [Parameter("m"), Parameter("items"), Parameter("task", default: .null), Parameter("limit", default: .null)],
                summary: "Zero-shot multiple-choice accuracy: {task, n, acc, acc_norm}, or with several tasks their mean and {tasks: {name: …}}.",
                help: """
                    items: a JSON-lines file (dataset("zero-shot") after `sparc install zero-shot`: boolq, openbookqa, piqa) or a
                    list of records {context, choices, gold, task}. Each choice is scored by the log-likelihood of " " + choice
                    after the context (lm-evaluation-harness's multiple_choice); acc takes the largest, acc_norm the largest per
                    character of the choice. task: only that task; limit: the first n items of each task. With several tasks,
                    acc and acc_norm are the unweighted means over tasks and n the items scored in all.
                    """) { a in
            let m = try a.model("m")
            var items = try zeroShotItems(a)
            if a.isGiven("task") {
                let task = try a.string("task")
                let known = items.reduce(into: [String]()) { if !$0.contains($1.task) { $0.append($1.task) } }
                items = items.filter { $0.task == task }
                guard !items.isEmpty else {
                    throw SparcError(.value, "zero_shot: no items of task \"\(task)\"; the items have \(known.joined(separator: ", "))")
                }
            }
            let limit = try a.optionalInt("limit", in: 1...Int(Int32.max))
            let tasks = ZeroShot.byTask(items, limit: limit)
            let bar = ProgressBar("zero_shot", total: tasks.reduce(0) { $0 + $1.items.count })
            defer { bar.finish() }
            let results: [ZeroShotResult]
            do {
                results = try ZeroShot.evaluate(m, items, limit: limit) { done, _ in bar.update(done) }
            } catch let e as WorkflowError {
                throw SparcError(.value, "zero_shot: \(e)")
            }
            guard results.count > 1 else { return .record(record(results[0])) }
            var r = record(ZeroShot.mean(results))
            r["tasks"] = .record(Record(results.map { ($0.task, .record(record($0))) }))
            return .record(r)
        },
        Builtin("installed", [Parameter("name")],
                summary: "Whether a model or data entry (sparc install --list) is installed: for measures that need optional data.") { a in
            let name = try a.string("name")
            guard let entry = ModelRegistry.installable(named: name) else {
                throw SparcError(.value, "installed: no entry named \"\(name)\"; known: \(ModelRegistry.all.map(\.name).joined(separator: ", "))")
            }
            return .bool(ModelRegistry.installedPath(of: entry) != nil)
        },
    ]

    static func record(_ r: ZeroShotResult) -> Record {
        Record([("task", .string(r.task)), ("n", .number(Double(r.count))),
                ("acc", .number(r.accuracy)), ("acc_norm", .number(r.normalizedAccuracy))])
    }

    /// Items from a path or a list of records, with errors that say which item and field.
    static func zeroShotItems(_ a: Arguments) throws -> [ZeroShotItem] {
        switch a["items"] {
        case .string(let path):
            do { return try ZeroShot.load(path: path) } catch let e as WorkflowError { throw SparcError(.value, "zero_shot: \(e)") }
        case .list(let list):
            guard !list.isEmpty else { throw SparcError(.value, "zero_shot: items is an empty list") }
            return try list.enumerated().map { i, v in
                func bad(_ what: String) -> SparcError { SparcError(.value, "zero_shot: items[\(i)]: \(what)") }
                guard case .record(let r) = v else { throw bad("must be a record {context, choices, gold}, got \(v.typeName)") }
                guard case .string(let context)? = r["context"] else { throw bad(r["context"] == nil ? "missing field context" : "context must be a string") }
                guard case .list(let cs)? = r["choices"] else { throw bad(r["choices"] == nil ? "missing field choices" : "choices must be a list of strings") }
                let choices = try cs.map { c -> String in
                    guard case .string(let s) = c else { throw bad("choices must be a list of strings") }
                    return s
                }
                guard case .number(let g)? = r["gold"] else { throw bad(r["gold"] == nil ? "missing field gold" : "gold must be a number") }
                let gold = try wholeNumber(g, "zero_shot: items[\(i)].gold", in: 0...Int(Int32.max))
                var task = "task"
                if let t = r["task"] {
                    guard case .string(let s) = t else { throw bad("task must be a string") }
                    task = s
                }
                do { return try ZeroShotItem(task: task, context: context, choices: choices, gold: gold) } catch let e as WorkflowError {
                    throw bad("\(e)")
                }
            }
        default:
            throw a.fail("items", "a path to JSON lines or a list of records", a["items"])
        }
    }
}
