import Foundation
import SparcCluster
import SparcModel

/// Printing, sequences, numbers, files, timing.
enum CoreBuiltins {
    static let all: [Builtin] = [
        Builtin("print", variadic: true, summary: "Print values separated by spaces.",
                help: "print(a, b, …) writes each value (strings without quotes) and a newline.") { a in
            if a.interpreter.speaks { a.interpreter.output(a.rest.map(\.displayString).joined(separator: " ")) }
            return .null
        },
        Builtin("len", [Parameter("x")], summary: "Length of a list, string, record or a tensor's first axis.") { a in
            switch a["x"] {
            case .list(let l): return .number(Double(l.count))
            case .string(let s): return .number(Double(s.count))
            case .record(let r): return .number(Double(r.keys.count))
            case .relevance(let r): return .number(Double(r.names.count))
            case .tensor(let t) where t.rank > 0: return .number(Double(t.shape[0]))
            default: throw a.fail("x", "a list, string, record or tensor", a["x"])
            }
        },
        Builtin("range", [Parameter("start"), Parameter("stop", default: .null), Parameter("step", default: .number(1))],
                summary: "The list start, start+step, … below stop; range(n) is 0..n-1.") { a in
            var lo = 0, hi = try a.int("start")
            if a.isGiven("stop") { lo = hi; hi = try a.int("stop") }
            let step = try a.int("step")
            guard step != 0 else { throw SparcError(.value, "range: step must not be 0") }
            let count = step > 0 ? max(0, (hi - lo + step - 1) / step) : max(0, (lo - hi - step - 1) / -step)
            guard count <= 50_000_000 else { throw SparcError(.value, "range: \(count) items is too many") }
            return .list(stride(from: lo, to: hi, by: step).map { .number(Double($0)) })
        },
        Builtin("min", variadic: true, summary: "Smallest of the arguments, of a list, or of a tensor's elements.") { a in
            try extremum(a, smallest: true)
        },
        Builtin("max", variadic: true, summary: "Largest of the arguments, of a list, or of a tensor's elements.") { a in
            try extremum(a, smallest: false)
        },
        Builtin("abs", [Parameter("x")], summary: "Absolute value of a number or of each tensor element.") { a in
            switch a["x"] {
            case .number(let n): return .number(Swift.abs(n))
            case .tensor(let t): return .tensor(TensorOps.map(t) { Swift.abs($0) })
            case .relevance(let r): return .relevance(r.mapTensors { TensorOps.map($0) { Swift.abs($0) } })
            default: throw a.fail("x", "a number, tensor or relevance map", a["x"])
            }
        },
        Builtin("round", [Parameter("x"), Parameter("digits", default: .number(0))], summary: "Round to a number of decimal digits.") { a in
            let scale = pow(10, Double(try a.int("digits")))
            return .number((try a.number("x") * scale).rounded() / scale)
        },
        Builtin("floor", [Parameter("x")], summary: "The largest whole number ≤ x.") { a in .number((try a.number("x")).rounded(.down)) },
        Builtin("sqrt", [Parameter("x")], summary: "Square root.") { a in .number((try a.number("x")).squareRoot()) },
        Builtin("exp", [Parameter("x")], summary: "e to the power x (elementwise for tensors).") { a in
            if case .tensor(let t) = a["x"] { return .tensor(TensorOps.map(t) { Foundation.exp($0) }) }
            return .number(Foundation.exp(try a.number("x")))
        },
        Builtin("log", [Parameter("x")], summary: "Natural logarithm (elementwise for tensors).") { a in
            if case .tensor(let t) = a["x"] { return .tensor(TensorOps.map(t) { Foundation.log($0) }) }
            return .number(Foundation.log(try a.number("x")))
        },
        Builtin("clock", summary: "Monotonic time in seconds, for timing parts of a script.") { _ in
            .number(Double(DispatchTime.now().uptimeNanoseconds) / 1e9)
        },
        Builtin("world", summary: "This process's place in an mpirun job: {rank, size, library} (rank 0 of 1 alone).",
                help: """
                    Under `mpirun -np N sparc script.sparc` every rank runs the script: attribute shards its samples and
                    sums the maps, sweep/curve/circuit/harvest split their evaluations, and only rank 0 prints and writes
                    files. Scripts may branch on world().rank, but every rank must reach the same collective builtins.
                    """) { _ in
            let w = World.current
            return .record(Record([("rank", .number(Double(w.rank))), ("size", .number(Double(w.size))),
                                   ("library", .string(w.communicator.library))]))
        },
        Builtin("type", [Parameter("x")], summary: "The type name of a value.") { a in .string(a["x"].typeName) },
        Builtin("number", [Parameter("x")], summary: "A string parsed as a number (\"3\", \"-0.5\", \"1e-3\"), e.g. a script argument; numbers pass through.") { a in
            switch a["x"] {
            case .number(let n): return .number(n)
            case .string(let s):
                let trimmed = s.trimmingCharacters(in: .whitespaces)
                guard let n = Double(trimmed), !trimmed.isEmpty else { throw SparcError(.value, "number: \"\(s.prefix(40))\" is not a number") }
                return .number(n)
            default: throw a.fail("x", "a string or number", a["x"])
            }
        },
        Builtin("str", [Parameter("x")], summary: "A value as text (what print shows).") { a in .string(a["x"].displayString) },
        Builtin("keys", [Parameter("record")], summary: "Field names of a record, or the names in a relevance map.") { a in
            switch a["record"] {
            case .record(let r): return .list(r.keys.map { .string($0) })
            case .relevance(let r): return .list(r.names.map { .string($0) })
            default: throw a.fail("record", "a record or relevance map", a["record"])
            }
        },
        Builtin("append", [Parameter("list"), Parameter("item")], summary: "A new list with item added at the end.") { a in
            .list(try a.list("list") + [a["item"]])
        },
        Builtin("sort", [Parameter("list"), Parameter("reverse", default: .bool(false))],
                summary: "The list sorted (numbers or strings, ascending unless reverse: true).") { a in
            let items = try a.list("list")
            var failure: SparcError?
            let sorted = items.sorted { x, y in
                guard case .bool(let less)? = try? Operators.binary("<", x, y).get() else {
                    failure = SparcError(.type, "sort: cannot compare a \(x.typeName) with a \(y.typeName)")
                    return false
                }
                return less
            }
            if let failure { throw failure }
            return .list(try a.bool("reverse") ? sorted.reversed() : sorted)
        },
        Builtin("join", [Parameter("items"), Parameter("separator", default: .string(""))], summary: "Join values' text with a separator.") { a in
            .string(try a.list("items").map(\.displayString).joined(separator: try a.string("separator")))
        },
        Builtin("replace", [Parameter("text"), Parameter("old"), Parameter("new")], summary: "The text with every occurrence of old replaced by new.") { a in
            let old = try a.string("old")
            guard !old.isEmpty else { throw SparcError(.value, "replace: old must not be empty") }
            return .string(try a.string("text").replacingOccurrences(of: old, with: try a.string("new")))
        },
        Builtin("split", [Parameter("text"), Parameter("separator", default: .null)],
                summary: "Split text on a separator (default: runs of whitespace).") { a in
            let s = try a.string("text")
            if a.isGiven("separator") {
                let sep = try a.string("separator")
                guard !sep.isEmpty else { throw SparcError(.value, "split: separator must not be empty") }
                return .list(s.components(separatedBy: sep).map { .string($0) })
            }
            return .list(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
        },
        Builtin("text", [Parameter("path")], summary: "The contents of a UTF-8 text file.") { a in
            .string(try readSourceFile(try a.string("path")).get())
        },
        Builtin("lines", [Parameter("path")], summary: "The non-empty lines of a UTF-8 text file.") { a in
            let s = try readSourceFile(try a.string("path")).get()
            return .list(s.split(separator: "\n", omittingEmptySubsequences: true)
                .map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
                .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map { .string($0) })
        },
        Builtin("dataset", [Parameter("name")], summary: "The installed path of a data entry (sparc install --list), or a scorer's command.",
                help: """
                    dataset("ptb") is the Penn Treebank test text, dataset("rtp-toxic") the RealToxicityPrompts JSON lines, dataset("profanity")
                    the word list; dataset("profanity-check") is the command to pass to toxicity(texts, command: …). Install with
                    `sparc install NAME` (into $SPARC_DATA, default ~/.cache/sparc/data).
                    """) { a in
            do { return .string(try ModelRegistry.dataset(named: try a.string("name"))) } catch let e as ModelError {
                throw SparcError(.value, "dataset: \(e)")
            }
        },
        Builtin("help", [Parameter("function")], summary: "The signature and help text of a function.") { a in
            switch a["function"] {
            case .builtin(let b): return .string(b.signature + "\n" + b.summary + (b.help.isEmpty ? "" : "\n" + b.help))
            case .function(let f): return .string(f.signature)
            default: throw a.fail("function", "a function", a["function"])
            }
        },
    ]

    private static func extremum(_ a: Arguments, smallest: Bool) throws -> Value {
        let name = smallest ? "min" : "max"
        var items = a.rest
        if items.count == 1 {
            switch items[0] {
            case .list(let l): items = l
            case .tensor(let t):
                guard t.count > 0 else { throw SparcError(.value, "\(name) of an empty tensor") }
                let s = t.scalars
                return .number(Double(smallest ? s.min()! : s.max()!))
            default: break
            }
        }
        guard !items.isEmpty else { throw SparcError(.value, "\(name) needs at least one value") }
        var best: Value = items[0]
        for v in items.dropFirst() {
            if case .bool(true) = try Operators.binary(smallest ? "<" : ">", v, best).get() { best = v }
        }
        return best
    }
}
