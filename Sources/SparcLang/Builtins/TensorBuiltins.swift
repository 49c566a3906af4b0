import Foundation
import SparcTensor

/// Creating, reshaping and reducing tensors.
enum TensorBuiltins {
    static let all: [Builtin] = [
        Builtin("tensor", [Parameter("values")], summary: "A tensor from a (nested) list of numbers.") { a in
            .tensor(try a.tensor("values"))
        },
        Builtin("zeros", variadic: true, summary: "A tensor of zeros: zeros(2, 3) or zeros([2, 3]).") { a in
            .tensor(Tensor(zeros: try shapeArgument(a)))
        },
        Builtin("ones", variadic: true, summary: "A tensor of ones: ones(2, 3) or ones([2, 3]).") { a in
            .tensor(TensorOps.map(Tensor(zeros: try shapeArgument(a))) { _ in 1 })
        },
        Builtin("arange", [Parameter("start"), Parameter("stop", default: .null), Parameter("step", default: .number(1))],
                summary: "A 1-D tensor start, start+step, … below stop; arange(n) is 0..n-1.") { a in
            var lo = 0.0, hi = try a.number("start")
            if a.isGiven("stop") { lo = hi; hi = try a.number("stop") }
            let step = try a.number("step")
            guard step != 0, step.isFinite else { throw SparcError(.value, "arange: step must be a non-zero number") }
            let n = max(0, Int(((hi - lo) / step).rounded(.up)))
            guard n <= 100_000_000 else { throw SparcError(.value, "arange: \(n) elements is too many") }
            return .tensor(Tensor(shape: [n], values: (0..<n).map { Float(lo + Double($0) * step) }))
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
            var shape = try dims(a.rest.count == 1 ? (a.rest[0].listValue ?? a.rest) : a.rest, allowInfer: true)
            if let k = shape.firstIndex(of: -1) {
                let known = shape.enumerated().filter { $0.offset != k }.map(\.element).reduce(1, *)
                guard known > 0, t.count % known == 0 else { throw SparcError(.value, "reshape: cannot fit \(t.count) elements into \(shape)") }
                shape[k] = t.count / known
            }
            guard Tensor.elementCount(shape) == t.count else {
                throw SparcError(.value, "reshape: shape \(shape) holds \(Tensor.elementCount(shape)) elements, the tensor has \(t.count)")
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
            let t = try a.tensor("t"), k = try a.int("k")
            guard t.rank >= 1, let n = t.shape.last, k >= 1, k <= n else {
                throw SparcError(.value, "topk: k must be in 1...\(t.shape.last ?? 0)")
            }
            let rows = t.count / n
            var values: [Float] = [], indices: [Float] = []
            for r in 0..<rows {
                let row = Array(t.scalars[(r * n)..<((r + 1) * n)])
                let order = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(k)
                values += order.map { row[$0] }; indices += order.map { Float($0) }
            }
            let shape = Array(t.shape.dropLast()) + [k]
            return .record(Record([("values", .tensor(Tensor(shape: shape, values: values))),
                                   ("indices", .tensor(Tensor(shape: shape, values: indices)))]))
        },
    ]

    // MARK: helpers

    static func dims(_ values: [Value], allowInfer: Bool = false) throws -> [Int] {
        try values.map { v in
            guard case .number(let n) = v, n == n.rounded(), n >= (allowInfer ? -1 : 0), n <= 1e9 else {
                throw SparcError(.value, "a dimension must be a whole number ≥ 0, got \(v.repr)")
            }
            return Int(n)
        }
    }

    static func shapeArgument(_ a: Arguments) throws -> [Int] {
        let shape = try dims(a.rest.count == 1 ? (a.rest[0].listValue ?? a.rest) : a.rest)
        guard Tensor.elementCount(shape) <= 500_000_000 else { throw SparcError(.value, "\(a.builtin.name): shape \(shape) is too large") }
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
        return Tensor(shape: shape) { dst in for i in 0..<dst.count { dst[i] = random.nextFloat() } }
    }
}

extension Value {
    var listValue: [Value]? { if case .list(let l) = self { return l }; return nil }
}

