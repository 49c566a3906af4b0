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
        }.mapError { languageError($0, context: nil) }
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
                let sel = try selection(t, idx)
                switch value {
                case .number(let x):
                    t.withUnsafeMutableBufferPointer { p in
                        sel.forEachRun { dst, _, n in (p.baseAddress! + dst).update(repeating: Float(x), count: n) }
                    }
                case .tensor(let v):
                    guard v.count == sel.count, v.rank == 0 || v.shape == sel.shape else {
                        throw SparcError(.value, "cannot assign a tensor of shape \(v.shape) to a selection of shape \(sel.shape)")
                    }
                    v.withUnsafeBufferPointer { from in
                        t.withUnsafeMutableBufferPointer { p in
                            sel.forEachRun { dst, k, n in (p.baseAddress! + dst).update(from: from.baseAddress! + k, count: n) }
                        }
                    }
                default: throw SparcError(.type, "tensor elements are numbers, got \(value.typeName)")
                }
                return .tensor(t)
            default:
                throw SparcError(.type, "a \(container.typeName) does not support indexed assignment")
            }
        }.mapError { languageError($0, context: nil) }
    }

    // MARK: helpers

    static func integer(_ v: Value, _ what: String) throws -> Int {
        guard case .number(let n) = v else { throw SparcError(.type, "\(what) index must be a whole number, got \(v.typeName)") }
        return try wholeNumber(n, "\(what) index")
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

    /// A rectangular part of a tensor: per axis, the first position and how many; axes
    /// given a single index are dropped from `shape`. Walked as contiguous runs, so no
    /// per-axis index lists are built (an axis may be a billion long) and an empty
    /// selection does no work at all.
    struct TensorSelection {
        let dims: [Int], strides: [Int], starts: [Int], counts: [Int]
        let shape: [Int]
        /// Elements selected (at most the tensor's count, so no overflow).
        var count: Int { counts.contains(0) ? 0 : counts.reduce(1, *) }

        /// `body(offset in the tensor, offset in the selection, run length)` for each run
        /// along the last axis, in row-major order.
        func forEachRun(_ body: (Int, Int, Int) -> Void) {
            let rank = dims.count
            if rank == 0 { body(0, 0, 1); return }
            guard count > 0 else { return }
            let run = counts[rank - 1]
            var position = [Int](repeating: 0, count: rank - 1)  // odometer over the outer axes
            var done = 0
            while true {
                var offset = starts[rank - 1] * strides[rank - 1]
                for d in 0..<(rank - 1) { offset += (starts[d] + position[d]) * strides[d] }
                body(offset, done, run)
                done += run
                var d = rank - 2
                while d >= 0 {
                    position[d] += 1
                    if position[d] < counts[d] { break }
                    position[d] = 0
                    d -= 1
                }
                if d < 0 { return }
            }
        }
    }

    static func selection(_ t: Tensor, _ idx: [Index]) throws -> TensorSelection {
        guard idx.count <= t.rank else {
            throw SparcError(.value, "too many indices (\(idx.count)) for a tensor of shape \(t.shape)")
        }
        var starts: [Int] = [], counts: [Int] = [], shape: [Int] = []
        for (d, n) in t.shape.enumerated() {
            if d < idx.count {
                switch idx[d] {
                case .single(let v): starts.append(try position(v, count: n, "tensor")); counts.append(1)
                case .slice(let a, let b):
                    let r = try range(a, b, count: n, "tensor")
                    starts.append(r.lowerBound); counts.append(r.count); shape.append(r.count)
                }
            } else {
                starts.append(0); counts.append(n); shape.append(n)
            }
        }
        var strides = [Int](repeating: 1, count: t.rank)
        for d in stride(from: t.rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * t.shape[d + 1] }
        return TensorSelection(dims: t.shape, strides: strides, starts: starts, counts: counts, shape: shape)
    }

    private static func tensorGet(_ t: Tensor, _ idx: [Index]) throws -> Value {
        let sel = try selection(t, idx)
        if sel.shape.isEmpty {
            var at = 0
            sel.forEachRun { src, _, _ in at = src }
            return .number(Double(t[flat: at]))
        }
        // A part of an existing tensor: never larger than it, so no allocation check.
        return .tensor(t.withUnsafeBufferPointer { src in
            Tensor(shape: sel.shape) { dst in
                sel.forEachRun { from, to, n in (dst.baseAddress! + to).update(from: src.baseAddress! + from, count: n) }
            }
        })
    }
}
