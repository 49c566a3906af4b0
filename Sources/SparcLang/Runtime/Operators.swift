import Foundation
import SparcTensor

/// Unary and binary operators. Numbers follow IEEE arithmetic (1/0 is inf); tensors
/// work elementwise with a scalar broadcast or an equal shape; `@` is the matrix product;
/// comparisons of tensors give 0/1 tensors; `|`, `&`, `~` are logical on bools and 0/1 tensors.
enum Operators {
    /// Caps on values built by repeated doubling (`x = x + x` in a loop), which would
    /// otherwise end in a failed allocation, a trap: the sizes range() and tensors allow.
    static let maxListCount = 50_000_000
    static let maxStringBytes = 1 << 30

    static func unary(_ op: String, _ v: Value) -> Result<Value, SparcError> {
        switch (op, v) {
        case ("-", .number(let n)): return .success(.number(-n))
        case ("-", .tensor(let t)): return .success(.tensor(TensorOps.map(t) { -$0 }))
        case ("not", _): return .success(.bool(!v.isTruthy))
        case ("~", .bool(let b)): return .success(.bool(!b))
        case ("~", .tensor(let t)): return .success(.tensor(TensorOps.map(t) { $0 == 0 ? 1 : 0 }))
        case ("~", .mask(let m)): return .success(.mask(m.complement))
        case ("-", .relevance(let r)): return .success(.relevance(r.mapTensors { TensorOps.map($0) { -$0 } }))
        default: return .failure(SparcError(.type, "cannot apply \(op) to a \(v.typeName)"))
        }
    }

    static func binary(_ op: String, _ a: Value, _ b: Value) -> Result<Value, SparcError> {
        switch (a, b) {
        case (.number(let x), .number(let y)):
            if let r = numeric(op, x, y) { return .success(r) }
        case (.string(let x), .string(let y)):
            switch op {
            case "+":
                guard x.utf8.count + y.utf8.count <= maxStringBytes else {
                    return .failure(SparcError(.value, "+ would make a string of \(Tensor.formatBytes(x.utf8.count + y.utf8.count)), more than the \(Tensor.formatBytes(maxStringBytes)) allowed"))
                }
                return .success(.string(x + y))
            case "<": return .success(.bool(x < y))
            case "<=": return .success(.bool(x <= y))
            case ">": return .success(.bool(x > y))
            case ">=": return .success(.bool(x >= y))
            default: break
            }
        case (.list(let x), .list(let y)) where op == "+":
            guard x.count + y.count <= maxListCount else {
                return .failure(SparcError(.value, "+ would make a list of \(x.count + y.count) items, more than the \(maxListCount) allowed"))
            }
            return .success(.list(x + y))
        case (.bool(let x), .bool(let y)) where op == "|" || op == "&":
            return .success(.bool(op == "|" ? x || y : x && y))
        case (.mask(let x), .mask(let y)):
            let f: ((BitSet, BitSet) -> BitSet)?
            switch op {
            case "|": f = { $0 | $1 }
            case "&": f = { $0 & $1 }
            case "-": f = { $0 - $1 }
            default: f = nil
            }
            if let f { return Result { try Mask.combine(x, y, f) }.mapError { languageError($0, context: nil) }.map { .mask($0) } }
            if op == "==" { return .success(.bool(x.names == y.names && x.names.allSatisfy { x.bits[$0] == y.bits[$0] })) }
        case (.relevance(let r), .number(let v)) where [">", ">=", "<", "<="].contains(op):
            // Comparisons select elements: a mask.
            return Result {
                let t = Float(v)
                switch op {
                case ">": return .mask(try Selection.above(r, t))
                case "<=": return .mask(try Selection.above(r, t).complement)
                case "<": return .mask(try Selection.above(r.mapTensors { TensorOps.map($0) { -$0 } }, -t))
                default: return .mask(try Selection.above(r.mapTensors { TensorOps.map($0) { -$0 } }, -t).complement)
                }
            }.mapError { languageError($0, context: nil) }
        case (.relevance, .relevance) where op == "==" || op == "!=":
            return .success(.bool(equal(a, b) == (op == "==")))
        case (.relevance, _), (_, .relevance):
            return relevanceBinary(op, a, b)
        case (.tensor, _), (_, .tensor):
            if op != "==" && op != "!=" || isTensorish(a) && isTensorish(b) { return tensorBinary(op, a, b) }
        default:
            break
        }
        if op == "==" { return .success(.bool(equal(a, b))) }
        if op == "!=" { return .success(.bool(!equal(a, b))) }
        return .failure(SparcError(.type, "cannot apply \(op) to a \(a.typeName) and a \(b.typeName)"))
    }

    /// Maps combine key by key (same keys and shapes) or with a number.
    private static func relevanceBinary(_ op: String, _ a: Value, _ b: Value) -> Result<Value, SparcError> {
        guard ["+", "-", "*", "/"].contains(op), let f = floatOp(op) else {
            return .failure(SparcError(.type, "cannot apply \(op) to relevance maps (maps combine with + - * /, compare with a number to give a mask: r > 0.1)"))
        }
        switch (a, b) {
        case (.relevance(let x), .number(let y)): return .success(.relevance(x.mapTensors { TensorOps.map($0) { f($0, Float(y)) } }))
        case (.number(let x), .relevance(let y)): return .success(.relevance(y.mapTensors { TensorOps.map($0) { f(Float(x), $0) } }))
        case (.relevance(let x), .relevance(let y)):
            guard x.names == y.names, x.level == y.level else {
                return .failure(SparcError(.value, "relevance maps differ in their keys or level (\(x.level.rawValue) vs \(y.level.rawValue)): combine maps of the same model and level"))
            }
            for n in x.names where x[n]!.shape != y[n]!.shape {
                return .failure(SparcError(.value, "relevance maps differ in the shape of \(n): \(x[n]!.shape) vs \(y[n]!.shape)"))
            }
            var out = x
            for n in x.names { out.tensors[n] = TensorOps.zip(x[n]!, y[n]!, f) }
            return .success(.relevance(out))
        default:
            return .failure(SparcError(.type, "cannot apply \(op) to a \(a.typeName) and a \(b.typeName)"))
        }
    }

    private static func isTensorish(_ v: Value) -> Bool {
        switch v { case .tensor, .number: return true; default: return false }
    }

    private static func numeric(_ op: String, _ x: Double, _ y: Double) -> Value? {
        switch op {
        case "+": return .number(x + y)
        case "-": return .number(x - y)
        case "*": return .number(x * y)
        case "/": return .number(x / y)
        case "%": return .number(y == 0 ? .nan : x - y * (x / y).rounded(.down))  // sign of the divisor, as in Python
        case "**": return .number(pow(x, y))
        case "<": return .bool(x < y)
        case "<=": return .bool(x <= y)
        case ">": return .bool(x > y)
        case ">=": return .bool(x >= y)
        case "==": return .bool(x == y)
        case "!=": return .bool(x != y)
        default: return nil
        }
    }

    static func floatOp(_ op: String) -> ((Float, Float) -> Float)? {
        switch op {
        case "+": return { $0 + $1 }
        case "-": return { $0 - $1 }
        case "*": return { $0 * $1 }
        case "/": return { $0 / $1 }
        case "**": return { powf($0, $1) }
        case "%": return { x, y in y == 0 ? .nan : x - y * (x / y).rounded(.down) }
        case "<": return { $0 < $1 ? 1 : 0 }
        case "<=": return { $0 <= $1 ? 1 : 0 }
        case ">": return { $0 > $1 ? 1 : 0 }
        case ">=": return { $0 >= $1 ? 1 : 0 }
        case "==": return { $0 == $1 ? 1 : 0 }
        case "!=": return { $0 != $1 ? 1 : 0 }
        case "|": return { $0 != 0 || $1 != 0 ? 1 : 0 }
        case "&": return { $0 != 0 && $1 != 0 ? 1 : 0 }
        default: return nil
        }
    }

    private static func tensorBinary(_ op: String, _ a: Value, _ b: Value) -> Result<Value, SparcError> {
        if op == "@" {
            guard case .tensor(let x) = a, case .tensor(let y) = b else {
                return .failure(SparcError(.type, "@ needs two tensors, got a \(a.typeName) and a \(b.typeName)"))
            }
            return TensorOps.matmul(x, y)
        }
        guard let f = floatOp(op) else { return .failure(SparcError(.type, "cannot apply \(op) to tensors")) }
        switch (a, b) {
        case (.tensor(let x), .number(let y)): return .success(.tensor(TensorOps.map(x) { f($0, Float(y)) }))
        case (.number(let x), .tensor(let y)): return .success(.tensor(TensorOps.map(y) { f(Float(x), $0) }))
        case (.tensor(let x), .tensor(let y)):
            if y.rank == 0 { return .success(.tensor(TensorOps.map(x) { f($0, y[flat: 0]) })) }
            if x.rank == 0 { return .success(.tensor(TensorOps.map(y) { f(x[flat: 0], $0) })) }
            guard x.shape == y.shape else {
                return .failure(SparcError(.value, "shapes \(x.shape) and \(y.shape) differ (elementwise \(op) needs equal shapes or a scalar)"))
            }
            return .success(.tensor(TensorOps.zip(x, y, f)))
        default:
            return .failure(SparcError(.type, "cannot apply \(op) to a \(a.typeName) and a \(b.typeName)"))
        }
    }

    /// Structural equality, with an explicit work list: nested lists and records are
    /// compared without recursion, however deep.
    static func equal(_ a: Value, _ b: Value) -> Bool {
        var pending = [(a, b)]
        while let (x, y) = pending.popLast() {
            switch (x, y) {
            case (.list(let l), .list(let r)):
                guard l.count == r.count else { return false }
                if sameStorage(l, r) { continue }  // one list compared with itself (x == x)
                pending.append(contentsOf: zip(l, r))
            case (.record(let l), .record(let r)):
                guard l.keys.count == r.keys.count else { return false }
                for k in l.keys {
                    guard let lv = l[k], let rv = r[k] else { return false }
                    pending.append((lv, rv))
                }
            default:
                if !equalLeaf(x, y) { return false }
            }
        }
        return true
    }

    private static func sameStorage(_ l: [Value], _ r: [Value]) -> Bool {
        l.withUnsafeBufferPointer { p in r.withUnsafeBufferPointer { q in p.baseAddress == q.baseAddress } }
    }

    /// Equality of values that hold no other values.
    private static func equalLeaf(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.function(let x), .function(let y)): return x === y
        case (.builtin(let x), .builtin(let y)): return x === y
        case (.model(let x), .model(let y)): return x === y
        case (.tensor(let x), .tensor(let y)): return x.shape == y.shape && sameElements(x, y)
        case (.relevance(let x), .relevance(let y)):
            return x.level == y.level && x.names == y.names
                && x.names.allSatisfy { x[$0]!.shape == y[$0]!.shape && sameElements(x[$0]!, y[$0]!) }
        default: return false
        }
    }

    /// Elementwise equality without copying the tensors out.
    private static func sameElements(_ a: Tensor, _ b: Tensor) -> Bool {
        a.count == b.count && a.withUnsafeBufferPointer { p in b.withUnsafeBufferPointer { q in p.elementsEqual(q) } }
    }
}

/// Elementwise maps, selection and products on tensors, for the operators and builtins.
enum TensorOps {
    static func map(_ t: Tensor, _ f: (Float) -> Float) -> Tensor {
        t.withUnsafeBufferPointer { src in Tensor(shape: t.shape) { dst in for i in 0..<src.count { dst[i] = f(src[i]) } } }
    }

    static func zip(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in Tensor(shape: a.shape) { dst in for i in 0..<x.count { dst[i] = f(x[i], y[i]) } } }
        }
    }

    /// Row `index` along the first axis: a number for 1-D tensors, else a tensor.
    static func select(_ t: Tensor, index: Int) -> Value {
        if t.rank == 1 { return .number(Double(t[flat: index])) }
        let inner = Array(t.shape.dropFirst())
        let n = Tensor.elementCount(inner)
        return .tensor(t.withUnsafeBufferPointer { src in
            Tensor(shape: inner) { $0.baseAddress!.update(from: src.baseAddress! + index * n, count: n) }
        })
    }

    /// `@`: matrix × matrix, matrix × vector, vector × matrix, vector · vector.
    static func matmul(_ a: Tensor, _ b: Tensor) -> Result<Value, SparcError> {
        guard a.rank >= 1, a.rank <= 2, b.rank >= 1, b.rank <= 2 else {
            return .failure(SparcError(.value, "@ needs 1-D or 2-D tensors, got shapes \(a.shape) and \(b.shape)"))
        }
        let a2 = a.rank == 1 ? a.reshaped([1, a.shape[0]]) : a
        let b2 = b.rank == 1 ? b.reshaped([b.shape[0], 1]) : b
        guard a2.shape[1] == b2.shape[0] else {
            return .failure(SparcError(.value, "@: inner dimensions differ: shapes \(a.shape) and \(b.shape)"))
        }
        let c: Tensor
        do { c = try a2.checkedMatmul(b2) } catch { return .failure(languageError(error, context: "@")) }
        switch (a.rank, b.rank) {
        case (1, 1): return .success(.number(Double(c[flat: 0])))
        case (1, 2): return .success(.tensor(c.reshaped([b.shape[1]])))
        case (2, 1): return .success(.tensor(c.reshaped([a.shape[0]])))
        default: return .success(.tensor(c))
        }
    }
}

import SparcAttribution
import SparcPruning

extension RelevanceMap {
    /// The same map with every tensor transformed.
    func mapTensors(_ f: (Tensor) -> Tensor) -> RelevanceMap {
        var out = self
        for n in names { out.tensors[n] = f(tensors[n]!) }
        return out
    }
}
