import SparcTensor

/// `x[i]`, `x[a:b]`, `t[i, j:k]` on lists, strings, records and tensors, and assignment
/// through them. Negative indices count from the end; slices clamp like Python's.
enum Indexing {
    enum Index {
        case single(Value)
        case slice(Value?, Value?)
    }

    static func get(_ container: Value, _ idx: [Index]) -> Result<Value, SparcError> {
        Result {
            switch container {
            case .list(let items):
                let (one, range) = try resolve1(idx, count: items.count, "list")
                return one.map { items[$0] } ?? .list(Array(items[range!]))
            case .string(let s):
                let chars = Array(s)
                let (one, range) = try resolve1(idx, count: chars.count, "string")
                return .string(one.map { String(chars[$0]) } ?? String(chars[range!]))
            case .record(let r):
                guard idx.count == 1, case .single(.string(let key)) = idx[0] else {
                    throw SparcError(.type, "records are indexed by a field name string")
                }
                guard let v = r[key] else { throw SparcError(.name, "record has no field \(key)") }
                return v
            case .tensor(let t):
                return try tensorGet(t, idx)
            case .relevance(let r):
                guard idx.count == 1, case .single(.string(let key)) = idx[0] else {
                    throw SparcError(.type, "relevance maps are indexed by a parameter or component name")
                }
                guard let t = r[key] else {
                    let hint = suggestion(for: key, among: r.names).map { "; did you mean \($0)?" } ?? ""
                    throw SparcError(.name, "relevance map has no entry \(key)\(hint)")
                }
                return .tensor(t)
            default:
                throw SparcError(.type, "a \(container.typeName) cannot be indexed")
            }
        }.mapError { $0 as! SparcError }
    }

    static func set(_ container: Value, _ idx: [Index], _ value: Value) -> Result<Value, SparcError> {
        Result {
            switch container {
            case .list(var items):
                guard idx.count == 1, case .single(let i) = idx[0] else { throw SparcError(.type, "list assignment takes one index") }
                items[try position(i, count: items.count, "list")] = value
                return .list(items)
            case .record(var r):
                guard idx.count == 1, case .single(.string(let key)) = idx[0] else {
                    throw SparcError(.type, "records are indexed by a field name string")
                }
                r[key] = value
                return .record(r)
            case .tensor(var t):
                let (flat, shape) = try tensorPositions(t, idx)
                let source: [Float]
                switch value {
                case .number(let n): source = [Float](repeating: Float(n), count: flat.count)
                case .tensor(let v):
                    guard v.count == flat.count, v.rank == 0 || v.shape == shape else {
                        throw SparcError(.value, "cannot assign a tensor of shape \(v.shape) to a selection of shape \(shape)")
                    }
                    source = v.count == 1 ? [Float](repeating: v[flat: 0], count: flat.count) : v.scalars
                default: throw SparcError(.type, "tensor elements are numbers, got \(value.typeName)")
                }
                t.withUnsafeMutableBufferPointer { p in for (k, f) in flat.enumerated() { p[f] = source[k] } }
                return .tensor(t)
            default:
                throw SparcError(.type, "a \(container.typeName) does not support indexed assignment")
            }
        }.mapError { $0 as! SparcError }
    }

    // MARK: helpers

    static func integer(_ v: Value, _ what: String) throws -> Int {
        guard case .number(let n) = v, n == n.rounded(), abs(n) < 1e15 else {
            throw SparcError(.type, "\(what) index must be a whole number, got \(v.typeName == "number" ? v.repr : v.typeName)")
        }
        return Int(n)
    }

    static func position(_ v: Value, count: Int, _ what: String) throws -> Int {
        let i = try integer(v, what)
        let j = i < 0 ? i + count : i
        guard j >= 0 && j < count else { throw SparcError(.value, "index \(i) out of range for a \(what) of length \(count)") }
        return j
    }

    static func range(_ a: Value?, _ b: Value?, count: Int, _ what: String) throws -> Range<Int> {
        func clamp(_ v: Value?, _ dflt: Int) throws -> Int {
            guard let v, !(v.typeName == "nil") else { return dflt }
            let i = try integer(v, what)
            return min(max(i < 0 ? i + count : i, 0), count)
        }
        let lo = try clamp(a, 0), hi = try clamp(b, count)
        return lo..<max(lo, hi)
    }

    private static func resolve1(_ idx: [Index], count: Int, _ what: String) throws -> (Int?, Range<Int>?) {
        guard idx.count == 1 else { throw SparcError(.type, "a \(what) takes one index, got \(idx.count)") }
        switch idx[0] {
        case .single(let v): return (try position(v, count: count, what), nil)
        case .slice(let a, let b): return (nil, try range(a, b, count: count, what))
        }
    }

    /// Flat positions selected by `idx` and the shape of the selection.
    private static func tensorPositions(_ t: Tensor, _ idx: [Index]) throws -> ([Int], [Int]) {
        guard idx.count <= t.rank else {
            throw SparcError(.value, "too many indices (\(idx.count)) for a tensor of shape \(t.shape)")
        }
        var axes: [[Int]] = []
        var shape: [Int] = []
        for (d, n) in t.shape.enumerated() {
            if d < idx.count {
                switch idx[d] {
                case .single(let v): axes.append([try position(v, count: n, "tensor")])
                case .slice(let a, let b):
                    let r = try range(a, b, count: n, "tensor")
                    axes.append(Array(r)); shape.append(r.count)
                }
            } else {
                axes.append(Array(0..<n)); shape.append(n)
            }
        }
        var strides = [Int](repeating: 1, count: t.rank)
        for d in stride(from: t.rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * t.shape[d + 1] }
        var flat: [Int] = [0]
        for (d, positions) in axes.enumerated() {
            flat = flat.flatMap { base in positions.map { base + $0 * strides[d] } }
        }
        return (flat, shape)
    }

    private static func tensorGet(_ t: Tensor, _ idx: [Index]) throws -> Value {
        let (flat, shape) = try tensorPositions(t, idx)
        if shape.isEmpty { return .number(Double(t[flat: flat[0]])) }
        return .tensor(t.withUnsafeBufferPointer { src in Tensor(shape: shape) { dst in for (k, f) in flat.enumerated() { dst[k] = src[f] } } })
    }
}
