import Foundation
import SparcAttribution
import SparcModel
import SparcPruning
import SparcTensor

/// A value of the language. Lists and records have value semantics (assignment copies);
/// tensors share storage until written (copy-on-write); models are immutable.
public enum Value: @unchecked Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case list([Value])
    case record(Record)
    case function(Function)
    case builtin(Builtin)
    case tensor(Tensor)
    case model(Model)
    case relevance(RelevanceMap)
    case mask(Mask)

    public var typeName: String {
        switch self {
        case .null: return "nil"
        case .bool: return "bool"
        case .number: return "number"
        case .string: return "string"
        case .list: return "list"
        case .record: return "record"
        case .function, .builtin: return "function"
        case .tensor: return "tensor"
        case .model: return "model"
        case .relevance: return "relevance"
        case .mask: return "mask"
        }
    }

    public var isTruthy: Bool {
        switch self {
        case .null: return false
        case .bool(let b): return b
        case .number(let n): return n != 0
        case .string(let s): return !s.isEmpty
        case .list(let l): return !l.isEmpty
        default: return true
        }
    }
}

/// A record: named fields in insertion order.
public struct Record: Sendable {
    public private(set) var keys: [String] = []
    public private(set) var fields: [String: Value] = [:]

    public init() {}
    public init(_ pairs: [(String, Value)]) { for (k, v) in pairs { self[k] = v } }

    public subscript(key: String) -> Value? {
        get { fields[key] }
        set {
            if let v = newValue {
                if fields.updateValue(v, forKey: key) == nil { keys.append(key) }
            } else if fields.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }
}

/// A user-defined function: its declaration and the scope it closes over.
public final class Function: @unchecked Sendable {
    let decl: FunctionDecl
    let closure: Environment
    let source: Source

    init(decl: FunctionDecl, closure: Environment, source: Source) {
        self.decl = decl
        self.closure = closure
        self.source = source
    }

    public var signature: String {
        "\(decl.name)(" + decl.parameters.map { $0.defaultValue == nil ? $0.name : "\($0.name): …" }.joined(separator: ", ") + ")"
    }
}

// MARK: - formatting

/// Numbers print like integers when they are whole.
public func formatNumber(_ v: Double) -> String {
    if v.isNaN { return "nan" }
    if v.isInfinite { return v > 0 ? "inf" : "-inf" }
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return "\(v)"
}

extension Value {
    /// The text `print` shows: strings bare, everything else as in the REPL.
    public var displayString: String {
        if case .string(let s) = self { return s }
        return repr
    }

    /// The REPL's rendering of a value.
    public var repr: String {
        var out = ""
        var budget = Value.reprBudget
        render(into: &out, depth: 0, budget: &budget)
        return out
    }

    /// Most values one rendering shows: a list holding itself many times over
    /// (`x = [x, x]` in a loop) would otherwise print exponentially much.
    static let reprBudget = 10_000
    /// Deeper lists and records print as `[…]` / `{…}`: printing recurses once per level.
    static let reprDepth = 100

    private func render(into out: inout String, depth: Int, budget: inout Int) {
        budget -= 1
        switch self {
        case .null: out += "nil"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += formatNumber(n)
        case .string(let s): out += quote(s)
        case .list(let items):
            guard depth < Value.reprDepth, budget > 0 else { out += items.isEmpty ? "[]" : "[…]"; return }
            let shown = items.count > 200 ? 100 : items.count
            out += "["
            for (i, item) in items.prefix(shown).enumerated() {
                if i > 0 { out += ", " }
                if budget <= 0 { out += "…"; break }
                item.render(into: &out, depth: depth + 1, budget: &budget)
            }
            if shown < items.count { out += ", … (\(items.count) items)" }
            out += "]"
        case .record(let r):
            guard depth < Value.reprDepth, budget > 0 else { out += r.keys.isEmpty ? "{}" : "{…}"; return }
            out += "{"
            for (i, k) in r.keys.enumerated() {
                if i > 0 { out += ", " }
                if budget <= 0 { out += "…"; break }
                out += "\(k): "
                r.fields[k, default: .null].render(into: &out, depth: depth + 1, budget: &budget)
            }
            out += "}"
        case .function(let f): out += "<fn \(f.signature)>"
        case .builtin(let b): out += "<builtin \(b.signature)>"
        case .tensor(let t): out += TensorFormatter.format(t)
        case .model(let m): out += m.summaryLine
        case .relevance(let r): out += r.summaryLine
        case .mask(let m): out += "<mask \(m.granularity.rawValue): \(m.count) of \(m.size) selected (\(String(format: "%.2f", 100 * m.fraction))%), \(m.names.count) tensors>"
        }
    }
}

func quote(_ s: String) -> String {
    var out = "\""
    for c in s {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "{": out += "\\{"
        case "}": out += "\\}"
        default: out.append(c)
        }
    }
    return out + "\""
}

extension Model {
    var summaryLine: String {
        let c = config
        let millions = String(format: "%.1fM", Double(parameterCount) / 1e6)
        return "<model \(URL(fileURLWithPath: source).lastPathComponent): \(c.architecture), \(c.numLayers) layers, hidden \(c.hiddenSize), \(millions) parameters>"
    }
}

extension RelevanceMap {
    var summaryLine: String {
        let elements = tensors.values.reduce(0) { $0 + $1.count }
        return "<relevance \(method.rawValue) \(level.rawValue): \(names.count) tensors, \(elements) values, \(sampleCount) sample\(sampleCount == 1 ? "" : "s")>"
    }
}
