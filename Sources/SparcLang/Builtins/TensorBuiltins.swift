import Foundation
import SparcTensor

/// Creating, reshaping and reducing tensors.
enum TensorBuiltins {
    static let all: [Builtin] = [
        Builtin("tensor", [Parameter("values")], summary: "A tensor from a (nested) list of numbers.") { a in
            .tensor(try a.tensor("values"))
        },
        Builtin("zeros", variadic: true, summary: "A tensor of zeros: zeros(2, 3) or zeros([2, 3]).") { a in
            .tensor(try Tensor(checkedZeros: try shapeArgument(a)))
        },
        Builtin("ones", variadic: true, summary: "A tensor of ones: ones(2, 3) or ones([2, 3]).") { a in
            .tensor(try Tensor(checkedShape: try shapeArgument(a)) { $0.update(repeating: 1) })
        },
        Builtin("arange", [Parameter("start"), Parameter("stop", default: .null), Parameter("step", default: .number(1))],
                summary: "A 1-D tensor start, start+step, … below stop; arange(n) is 0..n-1.") { a in
            var lo = 0.0, hi = try a.finite("start")
            if a.isGiven("stop") { lo = hi; hi = try a.finite("stop") }
            let step = try a.finite("step")
            guard step != 0 else { throw SparcError(.value, "arange: step must not be 0") }
            // The quotient of finite numbers can still overflow to inf (arange(-1e308, 1e308)).
            let steps = max(0, ((hi - lo) / step).rounded(.up))
            guard steps <= Double(Tensor.allocationLimit / MemoryLayout<Float>.stride) else {
                throw SparcError(.value, "arange: \(formatNumber(steps)) elements need more than the \(Tensor.formatBytes(Tensor.allocationLimit)) allowed for one tensor")
            }
            let n = Int(steps)
            return .tensor(try Tensor(checkedShape: [n]) { p in for i in 0..<n { p[i] = Float(lo + Double(i) * step) } })
        },
        Builtin("rand", variadic: true, keywordOnly: [Parameter("seed", default: .number(0))],
                summary: "Uniform random numbers in [0, 1): rand(2, 3, seed: 0).",
                help: "The same seed gives the same tensor on every machine (xoshiro256**).") { a in
            .tensor(try randomTensor(a, shape: try shapeArgument(a)))
        },
        Builtin("shape", [Parameter("t")], summary: "The shape of a tensor, as a list.") { a in
            .list(try a.tensor("t").shape.map { .number(Double($0)) })
        },
        Builtin("reshape", [Parameter("t")], variadic: true, summary: "The same elements with a new shape; one dimension may be -1.") { a in
            let t = try a.tensor("t")
            var shape = try dims(a.rest.count == 1 ? (a.rest[0].listValue ?? a.rest) : a.rest, allowInfer: true, "reshape")
            if let k = shape.firstIndex(of: -1) {
                guard shape.filter({ $0 == -1 }).count == 1 else { throw SparcError(.value, "reshape: only one dimension may be -1, got \(shape)") }
                var known = shape
                known.remove(at: k)
                let size = try Tensor.checkedElementCount(known, allocating: false)
                guard size > 0, t.count % size == 0 else { throw SparcError(.value, "reshape: cannot fit \(t.count) elements into \(shape)") }
                shape[k] = t.count / size
            }
            let size = try Tensor.checkedElementCount(shape, allocating: false)
            guard size == t.count else {
                throw SparcError(.value, "reshape: shape \(shape) holds \(size) elements, the tensor has \(t.count)")
            }
            return .tensor(t.reshaped(shape))
        },
        Builtin("transpose", [Parameter("t"), Parameter("a", default: .number(0)), Parameter("b", default: .number(1))],
                summary: "Swap two axes (default the first two): the transpose of a matrix.") { a in
            let t = try a.tensor("t")
            guard t.rank >= 2 else { return .tensor(t) }
            let x = try axis(try a.int("a"), t.rank), y = try axis(try a.int("b"), t.rank)
            return .tensor(swapAxes(t, x, y))
        },
        Builtin("sum", [Parameter("x"), Parameter("axis", default: .null)], summary: "Sum of a list or of tensor elements (optionally along an axis).") { a in
            if case .list(let l) = a["x"] {
                return try l.reduce(Value.number(0)) { try Operators.binary("+", $0, $1).get() }
            }
            return try reduce(a, name: "sum") { xs in xs.reduce(0, +) }
        },
        Builtin("mean", [Parameter("x"), Parameter("axis", default: .null)], summary: "Mean of tensor elements (optionally along an axis).") { a in
            if case .list(let l) = a["x"] {
                guard !l.isEmpty else { throw SparcError(.value, "mean of an empty list") }
                let total = try l.reduce(Value.number(0)) { try Operators.binary("+", $0, $1).get() }
                return try Operators.binary("/", total, .number(Double(l.count))).get()
            }
            return try reduce(a, name: "mean") { xs in xs.reduce(0, +) / Double(xs.count) }
        },
        Builtin("argmax", [Parameter("t"), Parameter("axis", default: .null)], summary: "Index of the largest element (optionally along an axis).") { a in
            try reduce(a, name: "argmax", input: "t") { xs in Double(xs.indices.max { xs[$0] < xs[$1] || (xs[$0] == xs[$1] && $0 > $1) } ?? 0) }
        },
        Builtin("norm", [Parameter("t")], summary: "Euclidean (Frobenius) norm of a tensor.") { a in
            .number(try a.tensor("t").scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
        },
        Builtin("topk", [Parameter("t"), Parameter("k"), Parameter("per", default: .string("global"))],
                summary: "Tensor: the k largest values along the last axis, {values, indices}. Relevance map: a mask of the k most relevant elements (k < 1: a fraction; per: global, layer or row).") { a in
            if case .relevance = a["t"] {
                return try PruningBuiltins.topk(Arguments(builtin: a.builtin, values: a.values.merging(["r": a["t"]]) { $1 }, rest: a.rest, interpreter: a.interpreter))
            }
            let t = try a.tensor("t")
            guard t.rank >= 1, let n = t.shape.last, n >= 1 else {
                throw SparcError(.value, "topk: the tensor has no elements to choose from (shape \(t.shape))")
            }
            let k = try a.int("k", in: 1...n)
            let rows = t.count / n
            var values: [Float] = [], indices: [Float] = []
            values.reserveCapacity(rows * k); indices.reserveCapacity(rows * k)
            let all = t.scalars
            for r in 0..<rows {
                let row = all[(r * n)..<((r + 1) * n)]
                let order = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(k)
                values += order.map { row[$0] }; indices += order.map { Float($0 - r * n) }
            }
            let shape = Array(t.shape.dropLast()) + [k]
            return .record(Record([("values", .tensor(Tensor(shape: shape, values: values))),
                                   ("indices", .tensor(Tensor(shape: shape, values: indices)))]))
        },
    ]

    // MARK: helpers

    static func dims(_ values: [Value], allowInfer: Bool = false, _ context: String) throws -> [Int] {
        guard values.count <= maxTensorRank else {
            throw SparcError(.value, "\(context): \(values.count) dimensions; a tensor has at most \(maxTensorRank)")
        }
        return try values.map { v in
            guard case .number(let n) = v else { throw SparcError(.type, "\(context): a dimension must be a number, got \(v.typeName)") }
            return try wholeNumber(n, "\(context): a dimension", in: (allowInfer ? -1 : 0)...wholeNumberRange.upperBound)
        }
    }

    /// A shape from `zeros(2, 3)` or `zeros([2, 3])`, checked against the allocation limit.
    static func shapeArgument(_ a: Arguments) throws -> [Int] {
        let shape = try dims(a.rest.count == 1 ? (a.rest[0].listValue ?? a.rest) : a.rest, a.builtin.name)
        _ = try Tensor.checkedElementCount(shape)
        return shape
    }

    static func axis(_ i: Int, _ rank: Int) throws -> Int {
        let j = i < 0 ? i + rank : i
        guard j >= 0 && j < rank else { throw SparcError(.value, "axis \(i) out of range for a tensor of rank \(rank)") }
        return j
    }

    static func swapAxes(_ t: Tensor, _ x: Int, _ y: Int) -> Tensor {
        var shape = t.shape
        shape.swapAt(x, y)
        var inStrides = [Int](repeating: 1, count: t.rank)
        for d in stride(from: t.rank - 2, through: 0, by: -1) { inStrides[d] = inStrides[d + 1] * t.shape[d + 1] }
        var strides = inStrides
        strides.swapAt(x, y)
        return t.withUnsafeBufferPointer { src in
            Tensor(shape: shape) { dst in
                var index = [Int](repeating: 0, count: shape.count)
                for k in 0..<dst.count {
                    var off = 0
                    for d in 0..<shape.count { off += index[d] * strides[d] }
                    dst[k] = src[off]
                    var d = shape.count - 1
                    while d >= 0 { index[d] += 1; if index[d] < shape[d] { break }; index[d] = 0; d -= 1 }
                }
            }
        }
    }

    /// A whole-tensor reduction to a number, or along `axis` to a tensor.
    static func reduce(_ a: Arguments, name: String, input: String = "x", _ f: ([Double]) -> Double) throws -> Value {
        let t = try a.tensor(input)
        guard t.count > 0 else { throw SparcError(.value, "\(name) of an empty tensor") }
        guard a.isGiven("axis") else { return .number(f(t.scalars.map(Double.init))) }
        let ax = try axis(try a.int("axis"), t.rank)
        // The tensor has elements, so these products are at most its count.
        let outer = t.shape[..<ax].reduce(1, *), n = t.shape[ax], inner = t.shape[(ax + 1)...].reduce(1, *)
        let s = t.scalars
        var out: [Float] = []
        out.reserveCapacity(outer * inner)
        for o in 0..<outer {
            for i in 0..<inner { out.append(Float(f((0..<n).map { Double(s[(o * n + $0) * inner + i]) }))) }
        }
        var shape = t.shape
        shape.remove(at: ax)
        return shape.isEmpty ? .number(Double(out[0])) : .tensor(Tensor(shape: shape, values: out))
    }

    /// Reproducible uniform numbers in [0, 1).
    static func randomTensor(_ a: Arguments, shape: [Int]) throws -> Tensor {
        var random = Xoshiro256(seed: UInt64(bitPattern: Int64(try a.int("seed"))))
        return try Tensor(checkedShape: shape) { dst in for i in 0..<dst.count { dst[i] = random.nextFloat() } }
    }
}

extension Value {
    var listValue: [Value]? { if case .list(let l) = self { return l }; return nil }
}


extension Arguments {
    /// A number argument that must be finite (not nan or ±inf).
    func finite(_ name: String) throws -> Double {
        let n = try number(name)
        guard n.isFinite else { throw SparcError(.value, "\(builtin.name): \(name) must be a finite number, got \(formatNumber(n))") }
        return n
    }
}

extension Tensor {
    /// A tensor filled by `fill`, its shape checked against the allocation limit first.
    init(checkedShape shape: [Int], fill: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        self = try Tensor(checkedZeros: shape)
        try withUnsafeMutableBufferPointer(fill)
    }
}
