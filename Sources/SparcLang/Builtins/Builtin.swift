import Foundation
import SparcModel
import SparcTensor

/// A parameter of a builtin: a name and, if it may be left out, its default.
public struct Parameter: Sendable {
    public let name: String
    public let defaultValue: Value?

    public init(_ name: String, default value: Value? = nil) {
        self.name = name
        self.defaultValue = value
    }
}

/// A function implemented in Swift, with the name, parameters and help the REPL shows.
public final class Builtin: @unchecked Sendable {
    public let name: String
    public let parameters: [Parameter]
    /// Extra positional arguments beyond `parameters` are collected (print, max, …).
    public let variadic: Bool
    /// Parameters that can only be given by name (after the variadic ones).
    public let keywordOnly: [Parameter]
    public let summary: String
    public let help: String
    let body: (Arguments) throws -> Value

    public init(_ name: String, _ parameters: [Parameter] = [], variadic: Bool = false, keywordOnly: [Parameter] = [],
                summary: String, help: String = "", body: @escaping (Arguments) throws -> Value) {
        self.name = name
        self.parameters = parameters
        self.variadic = variadic
        self.keywordOnly = keywordOnly
        self.summary = summary
        self.help = help
        self.body = body
    }

    /// `name(a, b, key: default, …)`.
    public var signature: String {
        var parts = parameters.map { p -> String in
            guard let d = p.defaultValue else { return p.name }
            return "\(p.name): \(d.repr)"
        }
        if variadic { parts.append("…") }
        parts += keywordOnly.map { "\($0.name): \($0.defaultValue?.repr ?? "…")" }
        return "\(name)(\(parts.joined(separator: ", ")))"
    }
}

/// The arguments of one builtin call, bound to parameter names, with typed accessors
/// whose errors name the function and the parameter.
public struct Arguments {
    public let builtin: Builtin
    let values: [String: Value]
    public let rest: [Value]
    let interpreter: Interpreter

    public subscript(_ name: String) -> Value { values[name] ?? .null }

    public func isGiven(_ name: String) -> Bool {
        if let v = values[name], case .null = v { return false }
        return values[name] != nil
    }

    func fail(_ name: String, _ expected: String, _ got: Value) -> SparcError {
        SparcError(.type, "\(builtin.name): \(name) must be \(expected), got \(got.typeName)")
    }

    public func number(_ name: String) throws -> Double {
        guard case .number(let n) = self[name] else { throw fail(name, "a number", self[name]) }
        return n
    }

    /// A whole-number argument (a count, size, index or seed) in `range`.
    public func int(_ name: String, in range: ClosedRange<Int> = wholeNumberRange) throws -> Int {
        try wholeNumber(try number(name), "\(builtin.name): \(name)", in: range)
    }

    public func optionalInt(_ name: String, in range: ClosedRange<Int> = wholeNumberRange) throws -> Int? {
        isGiven(name) ? try int(name, in: range) : nil
    }
    /// Calls a function value given to this builtin (a callback such as harvest's flag).
    func call(_ f: Value, _ arguments: [Value]) throws -> Value {
        try interpreter.call(f, arguments, [], at: SourceLocation(line: 1, column: 1), Source(name: "<\(builtin.name)>", text: ""))
    }

    public func optionalNumber(_ name: String) throws -> Double? { isGiven(name) ? try number(name) : nil }

    /// A sampling temperature: 0 (greedy) or more, finite.
    func temperature() throws -> Double {
        let t = try number("temperature")
        guard t.isFinite, t >= 0 else { throw SparcError(.value, "\(builtin.name): temperature must be a finite number ≥ 0, got \(formatNumber(t))") }
        return t
    }

    public func string(_ name: String) throws -> String {
        guard case .string(let s) = self[name] else { throw fail(name, "a string", self[name]) }
        return s
    }

    /// A path to write to. Files are written beside the target and renamed over it, which
    /// would replace a device (`save(x, "/dev/null")` run as root): only new paths,
    /// regular files and folders are accepted.
    func outputPath(_ name: String) throws -> String {
        let path = try string(name)
        var info = stat()
        if lstat(path, &info) == 0 {
            let kind = info.st_mode & S_IFMT
            guard kind == S_IFREG || kind == S_IFDIR || kind == S_IFLNK else {
                throw SparcError(.value, "\(builtin.name): \(path) is a device, socket or pipe, not a file to write")
            }
        }
        return path
    }

    public func bool(_ name: String) throws -> Bool {
        guard case .bool(let b) = self[name] else { throw fail(name, "true or false", self[name]) }
        return b
    }

    public func list(_ name: String) throws -> [Value] {
        guard case .list(let l) = self[name] else { throw fail(name, "a list", self[name]) }
        return l
    }

    public func tensor(_ name: String) throws -> Tensor {
        switch self[name] {
        case .tensor(let t): return t
        case .number(let n): return Tensor(shape: [], values: [Float(n)])
        case .list(let l): return try tensorFromList(l, context: "\(builtin.name): \(name)")
        default: throw fail(name, "a tensor", self[name])
        }
    }

    public func model(_ name: String) throws -> Model {
        guard case .model(let m) = self[name] else { throw fail(name, "a model (from load_model)", self[name]) }
        return m
    }

    /// Token ids from a string (encoded with the model's tokenizer) or a list of ids.
    public func tokens(_ name: String, model: Model) throws -> [Int] {
        switch self[name] {
        case .string(let s): return model.tokenizer.encode(s)
        case .list:
            guard let ids = self[name].tokenIDs(vocabulary: model.config.vocabSize) else {
                throw SparcError(.value, "\(builtin.name): \(name) must be text or a list of token ids in 0..<\(model.config.vocabSize)")
            }
            return ids
        default: throw fail(name, "text or a list of token ids", self[name])
        }
    }
}

/// Whole numbers a Double holds exactly: the widest range a script's number can name.
public let wholeNumberRange = -(1 << 53)...(1 << 53)

/// A number from a script used as a count, size, index or seed, checked before it becomes
/// an Int (a NaN, an infinity or 1e300 would trap): finite, whole and within `range`.
/// `what` names the argument in the error ("topk: k"). Every builtin and index that
/// turns a script's number into an Int goes through here.
func wholeNumber(_ n: Double, _ what: String, in range: ClosedRange<Int> = wholeNumberRange) throws -> Int {
    guard n.isFinite, n == n.rounded() else {
        throw SparcError(.value, "\(what) must be a whole number, got \(formatNumber(n))")
    }
    let lo = max(range.lowerBound, wholeNumberRange.lowerBound), hi = min(range.upperBound, wholeNumberRange.upperBound)
    guard n >= Double(lo), n <= Double(hi) else {
        let bounds = hi < wholeNumberRange.upperBound ? (lo == hi ? "\(lo)" : "in \(lo)...\(hi)")
                   : n < Double(lo) ? "at least \(lo)" : "at most 2^53"
        throw SparcError(.value, "\(what) must be \(bounds), got \(formatNumber(n))")
    }
    return Int(n)
}

/// A tensor from nested lists of numbers (rectangular).
func tensorFromList(_ items: [Value], context: String) throws -> Tensor {
    var shape: [Int] = []
    var flat: [Float] = []
    func walk(_ v: Value, depth: Int) throws {
        // Nesting is recursion here; no real tensor has this many axes.
        guard depth <= maxTensorRank else { throw SparcError(.value, "\(context): lists nested more than \(maxTensorRank) deep (a tensor has at most \(maxTensorRank) axes)") }
        switch v {
        case .number(let n):
            guard depth == shape.count else { throw SparcError(.value, "\(context): ragged nested list (not rectangular)") }
            flat.append(Float(n))
        case .list(let l):
            if depth == shape.count {
                guard flat.isEmpty || depth < shape.count else { throw SparcError(.value, "\(context): ragged nested list (not rectangular)") }
                shape.append(l.count)
            } else if depth > shape.count || shape[depth] != l.count {
                throw SparcError(.value, "\(context): ragged nested list (not rectangular)")
            }
            for x in l { try walk(x, depth: depth + 1) }
        case .tensor(let t) where t.rank == 0:
            flat.append(t[flat: 0])
        default:
            throw SparcError(.type, "\(context): lists for tensors may hold only numbers, got \(v.typeName)")
        }
    }
    try walk(.list(items), depth: 0)
    guard flat.count == (try Tensor.checkedElementCount(shape)) else { throw SparcError(.value, "\(context): ragged nested list (not rectangular)") }
    return Tensor(shape: shape, values: flat)
}

/// The most axes a tensor may have (shapes, nested lists and index lists are walked per axis).
let maxTensorRank = 32

extension Value {
    /// A list of whole numbers in 0..<vocabulary as token ids; nil if it is anything else.
    func tokenIDs(vocabulary: Int) -> [Int]? {
        guard case .list(let items) = self else { return nil }
        var ids: [Int] = []
        ids.reserveCapacity(items.count)
        for v in items {
            guard case .number(let n) = v, n == n.rounded(), n >= 0, n < Double(vocabulary) else { return nil }
            ids.append(Int(n))
        }
        return ids
    }
}
