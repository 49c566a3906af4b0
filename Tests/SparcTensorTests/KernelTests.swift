import Foundation
import Testing
@testable import SparcTensor

@Suite struct KernelTests {
    @Test func expMatchesFoundationWithinTwoUlp() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let mine = Kernels.exp(x), ref = Float(Foundation.exp(Double(x)))
            worst = max(worst, abs(mine - ref) / ref)
            x += 0.0137
        }
        #expect(worst < 3e-7)
        #expect(Kernels.exp(-200) == 0)
        #expect(Kernels.exp(200) == .infinity)
        #expect(Kernels.exp(.nan).isNaN)
        #expect(Kernels.exp(-.infinity) == 0)
        let big: Float = 88.7  // n = 128 after range reduction: the two-factor scaling path
        let bigRef = Float(Foundation.exp(Double(big)))
        #expect(abs(Kernels.exp(big) - bigRef) / bigRef < 3e-7)
    }

    /// f and f' in Double, the references of the C activation kernels.
    static func reference(_ a: Kernels.Activation, _ x: Double) -> (f: Double, df: Double) {
        switch a {
        case .silu:
            let s = 1 / (1 + Foundation.exp(-x))
            return (x * s, s * (1 + x * (1 - s)))
        case .geluTanh:
            let c = (2 / Double.pi).squareRoot(), u = c * (x + 0.044715 * x * x * x), t = tanh(u)
            return (0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))
        case .gelu:
            let cdf = 0.5 * (1 + erf(x / 2.0.squareRoot())), pdf = Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
            return (x * cdf, cdf + x * pdf)
        case .relu:
            return (max(x, 0), x > 0 ? 1 : 0)
        }
    }

    @Test(arguments: [Kernels.Activation.silu, .geluTanh, .gelu, .relu])
    func activationsMatchDoubleReferences(_ a: Kernels.Activation) {
        let n = 37  // two full 16-lane chunks and a tail
        let x = (0..<n).map { Float($0) * 0.3 - 5.3 }
        let up = (0..<n).map { Float($0 % 5) * 0.4 - 0.9 }
        let d = (0..<n).map { 1 - Float($0) * 0.05 }
        func close(_ got: Float, _ want: Double) -> Bool { abs(Double(got) - want) <= 2e-6 * max(1, abs(want)) }
        var f = x
        f.withUnsafeMutableBufferPointer { Kernels.activation(a, $0.baseAddress!, count: n) }
        var gated = x
        gated.withUnsafeMutableBufferPointer { Kernels.gatedActivation(a, $0.baseAddress!, up, count: n) }
        var dPlain = d, dIdentity = d
        dPlain.withUnsafeMutableBufferPointer { Kernels.activationBackward(a, $0.baseAddress!, preActivation: x, count: n, identityEpsilon: nil) }
        dIdentity.withUnsafeMutableBufferPointer { Kernels.activationBackward(a, $0.baseAddress!, preActivation: x, count: n, identityEpsilon: 1e-10) }
        var dGate = [Float](repeating: 0, count: n), dUp = d  // dUp aliases dProduct, as in the MLP
        dUp.withUnsafeMutableBufferPointer { du in
            Kernels.gatedActivationBackward(a, du.baseAddress!, gate: x, up: up, dGate: &dGate, dUp: du.baseAddress!,
                                            count: n, share: 0.5, identityEpsilon: nil)
        }
        for i in 0..<n {
            let (rf, rdf) = Self.reference(a, Double(x[i]))
            #expect(close(f[i], rf), "f(\(x[i]))")
            #expect(close(gated[i], rf * Double(up[i])))
            #expect(close(dPlain[i], Double(d[i]) * rdf), "f'(\(x[i]))")
            #expect(close(dIdentity[i], Double(d[i]) * rf / (Double(x[i]) + 1e-10)))
            #expect(close(dGate[i], 0.5 * Double(d[i]) * Double(up[i]) * rdf))
            #expect(close(dUp[i], 0.5 * Double(d[i]) * rf))
        }
    }

    /// The AVX-512, AVX2 and baseline copies of the C kernels do the same float operations in
    /// the same order: bit-identical results on every CPU.
    @Test func everyInstructionSetGivesTheSameBits() {
        let n = 1000
        var x = (0..<n).map { i -> Float in sin(Float(i) * 0.77) * Float(i % 97) }
        x[7] = .nan
        x[8] = .infinity
        let up = (0..<n).map { cos(Float($0)) }
        func run() -> [[UInt32]] {
            var outs: [[Float]] = []
            var e = x
            Kernels.exp(&e, count: n)
            outs.append(e)
            var sm = x.map { $0.isFinite ? $0 : 0 }
            Kernels.softmax(&sm, count: n, valid: n - 3)
            outs.append(sm)
            for a in [Kernels.Activation.silu, .geluTanh, .gelu, .relu] {
                var f = x, g = x, d = up, dg = [Float](repeating: 0, count: n), du = up
                Kernels.activation(a, &f, count: n)
                Kernels.gatedActivation(a, &g, up, count: n)
                Kernels.activationBackward(a, &d, preActivation: x, count: n, identityEpsilon: 1e-10)
                Kernels.gatedActivationBackward(a, up, gate: x, up: up, dGate: &dg, dUp: &du, count: n, share: 0.5, identityEpsilon: nil)
                outs += [f, g, d, dg, du]
            }
            outs.append([Float(Kernels.logSumExp(sm, count: n))])
            return outs.map { $0.map(\.bitPattern) }
        }
        let best = Kernels.instructionSet
        defer { Kernels.useInstructionSet(best == "AVX-512" ? 2 : best == "AVX2" ? 1 : 0) }
        #expect(Kernels.useInstructionSet(0))
        let baseline = run()
        for level in 1...2 where Kernels.useInstructionSet(level) {
            #expect(run() == baseline, "instruction set \(Kernels.instructionSet)")
        }
        #expect(!Kernels.useInstructionSet(3))
    }

    @Test func multiplyAdd() {
        let n = 37
        var a = (0..<n).map { Float($0) * 0.3 - 5 }
        let b = (0..<n).map { Float($0) * 0.1 }
        let before = a
        a.withUnsafeMutableBufferPointer { p in b.withUnsafeBufferPointer { Kernels.multiply(p.baseAddress!, by: $0.baseAddress!, count: n) } }
        for i in 0..<n { #expect(a[i] == before[i] * b[i]) }
        a.withUnsafeMutableBufferPointer { p in b.withUnsafeBufferPointer { Kernels.add(p.baseAddress!, $0.baseAddress!, count: n) } }
        for i in 0..<n { #expect(a[i] == before[i] * b[i] + b[i]) }
    }

    /// Every path of the weight-gradient fold (one d streamed into a fresh accumulator, several
    /// d's a block at a time, adding) gives the bits of the plain formula, one d after another.
    @Test(arguments: [(1, 3), (200_003, 1), (200_003, 3)])
    func foldMatchesTheFormula(count n: Int, ds k: Int) {
        var random = Xoshiro256(seed: 7)
        func values() -> [Float] { (0..<n).map { _ in random.nextFloat() * 4 - 2 } }
        let ds = (0..<k).map { _ in values() }, w = values(), start = values(), scale: Float = 1 / 3
        for (times, absolute) in [(true, false), (true, true), (false, false), (false, true)] {
            for assign in [true, false] {
                var acc = start
                var expected = start
                for (j, d) in ds.enumerated() {
                    for i in 0..<n {
                        let v = times ? w[i] * d[i] : d[i]
                        let f = (absolute ? abs(v) : v) * scale
                        expected[i] = assign && j == 0 ? f : expected[i] + f
                    }
                }
                // Offset by one float, so the streaming path starts unaligned.
                let pointers = ds.map { d in UnsafeMutablePointer<Float>.allocate(capacity: n + 1) }
                defer { pointers.forEach { $0.deallocate() } }
                for (p, d) in zip(pointers, ds) { p.initialize(from: d, count: n) }
                let out = UnsafeMutablePointer<Float>.allocate(capacity: n + 1)
                defer { out.deallocate() }
                (out + 1).initialize(from: acc, count: n)
                w.withUnsafeBufferPointer { wp in
                    Kernels.fold(pointers.map { UnsafePointer($0) }, times: times ? wp.baseAddress! : nil, absolute: absolute,
                                 scale: scale, into: out + 1, count: n, assign: assign)
                }
                acc = Array(UnsafeBufferPointer(start: out + 1, count: n))
                // Counted, not compared as arrays: a failing == of 200,000 floats makes the test
                // library diff the two collections.
                let differing = zip(acc, expected).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "times \(times) absolute \(absolute) assign \(assign) d's \(k)")
            }
        }
    }

    @Test(arguments: [1, 5, 16, 37])
    func softmaxBackwardMatchesNaive(rows: Int) {
        var p = [Float](repeating: 0, count: rows * rows)
        for i in 0..<rows {
            p.withUnsafeMutableBufferPointer { buf in
                for j in 0...i { buf[i * rows + j] = sin(Float(i * 7 + j)) }
                Kernels.softmax(buf.baseAddress! + i * rows, count: rows, valid: i + 1)
            }
        }
        let dp0 = (0..<(rows * rows)).map { cos(Float($0) * 0.37) }
        var dp = dp0
        Kernels.softmaxBackwardCausal(p, stride: rows, &dp, stride: rows, rows: rows, scale: 0.125)
        for i in 0..<rows {
            var dot = 0.0
            for j in 0...i { dot += Double(p[i * rows + j]) * Double(dp0[i * rows + j]) }
            for j in 0..<rows {
                let want = j <= i ? 0.125 * Double(p[i * rows + j]) * (Double(dp0[i * rows + j]) - dot) : 0
                #expect(abs(Double(dp[i * rows + j]) - want) < 1e-6)
            }
        }
        // A block of the last rows alone (queries offset…rows−1, P read with its full stride,
        // dP packed at the block's width) gives the same rows.
        let offset = rows / 2, b = rows - offset
        var block = [Float](repeating: 9, count: b * rows)
        for i in 0..<b { for j in 0..<rows { block[i * rows + j] = dp0[(offset + i) * rows + j] } }
        p.withUnsafeBufferPointer { pp in
            Kernels.softmaxBackwardCausal(pp.baseAddress! + offset * rows, stride: rows, &block, stride: rows, rows: b,
                                          offset: offset, scale: 0.125)
        }
        for i in 0..<b { for j in 0..<rows { #expect(block[i * rows + j] == dp[(offset + i) * rows + j]) } }
    }

    @Test func softmaxNormalisesAndMasks() {
        var x: [Float] = (0..<40).map { sin(Float($0)) * 4 }
        x.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, count: 40, valid: 23) }
        let s = x[0..<23].reduce(0, +)
        #expect(abs(s - 1) < 1e-6)
        #expect(x[23...].allSatisfy { $0 == 0 })
        let raw = (0..<23).map { Double(sin(Float($0)) * 4) }
        let z = raw.map { Foundation.exp($0) }.reduce(0, +)
        for i in 0..<23 { #expect(abs(Double(x[i]) - Foundation.exp(raw[i]) / z) < 1e-6) }
    }

    @Test func rmsNormAndLogSumExp() {
        let x: [Float] = (0..<50).map { Float($0 % 7) - 3.1 }
        let w: [Float] = (0..<50).map { 1 + Float($0) / 100 }
        var y = [Float](repeating: 0, count: 50)
        let inv = y.withUnsafeMutableBufferPointer { Kernels.rmsNorm(x, weight: w, eps: 1e-5, into: $0.baseAddress!, count: 50) }
        let ms = x.map { Double($0 * $0) }.reduce(0, +) / 50
        let expectedInv = 1 / (ms + 1e-5).squareRoot()
        #expect(abs(Double(inv) - expectedInv) < 1e-6)
        for i in 0..<50 { #expect(abs(Double(y[i]) - Double(w[i]) * Double(x[i]) * expectedInv) < 1e-5) }
        let lse = Kernels.logSumExp(x, count: 50)
        let ref = Foundation.log(x.map { Foundation.exp(Double($0)) }.reduce(0, +))
        #expect(abs(lse - ref) < 1e-6)
    }
}

@Suite struct MatrixTests {
    func naive(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int, bTransposed: Bool) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k {
            c[i * n + j] += Double(a[i * k + p]) * Double(bTransposed ? b[j * k + p] : b[p * n + j])
        } } }
        return c
    }

    @Test(arguments: [(1, 300, 70), (3, 64, 64), (200, 96, 130), (257, 33, 1000)])
    func linearMatchesNaive(shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let x = (0..<(m * k)).map { Float(($0 * 37) % 101) / 101 - 0.5 }
        let w = (0..<(n * k)).map { Float(($0 * 53) % 97) / 97 - 0.5 }
        var y = [Float](repeating: 1, count: m * n)
        y.withUnsafeMutableBufferPointer { BLAS.linear(x, rows: m, inFeatures: k, weight: w, outFeatures: n, into: $0.baseAddress!, accumulate: true) }
        let ref = naive(x, w, m: m, k: k, n: n, bTransposed: true)
        for i in 0..<(m * n) { #expect(abs(Double(y[i]) - (ref[i] + 1)) < 1e-4) }
    }

    @Test func matmulOfTensors() {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3, 2], values: [7, 8, 9, 10, 11, 12])
        #expect(a.matmul(b).scalars == [58, 64, 139, 154])
        #expect(a.matmul(b).shape == [2, 2])
    }
}

@Suite struct TensorTests {
    @Test func copyOnWriteSharesUntilWritten() {
        let a = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        var b = a
        #expect(a.sharesStorage(with: b))
        b[flat: 0] = 9
        #expect(!a.sharesStorage(with: b))
        #expect(a.scalars == [1, 2, 3, 4])
        #expect(b.scalars == [9, 2, 3, 4])
    }

    @Test func reshapeKeepsElements() {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let r = a.reshaped([3, 2])
        #expect(r.shape == [3, 2])
        #expect(r.row(1) == [3, 4])
        #expect(r.sharesStorage(with: a))
    }

    @Test func parallelRangesCoverEverythingOnce() {
        var hits = [Int](repeating: 0, count: 1001)
        hits.withUnsafeMutableBufferPointer { p in
            Parallel.forRanges(1001, minChunk: 10) { r in for i in r { p[i] += 1 } }
        }
        #expect(hits.allSatisfy { $0 == 1 })
    }
}

@Suite struct TensorLimitTests {
    @Test func checkedElementCountRejectsOverflowNegativeAndHuge() throws {
        #expect(try Tensor.checkedElementCount([2, 3]) == 6)
        #expect(try Tensor.checkedElementCount([1_000_000_000, 0, 1_000_000_000_000]) == 0)
        #expect(throws: TensorError.shapeOverflow(shape: [1 << 40, 1 << 40])) { try Tensor.checkedElementCount([1 << 40, 1 << 40]) }
        #expect(throws: TensorError.negativeDimension(shape: [3, -1])) { try Tensor.checkedElementCount([3, -1]) }
        let huge = [100_000, 100_000]
        #expect(throws: TensorError.tooLarge(shape: huge, bytes: 40_000_000_000, limit: Tensor.allocationLimit)) {
            try Tensor.checkedElementCount(huge)
        }
        // Reshaping an existing buffer is no allocation.
        #expect(try Tensor.checkedElementCount(huge, allocating: false) == 10_000_000_000)
        #expect("\(TensorError.tooLarge(shape: huge, bytes: 40_000_000_000, limit: 2 << 30))"
            == "shape [100000, 100000] needs 37.3 GiB, more than the 2.0 GiB allowed for one tensor (set SPARC_MAX_ALLOCATION to change it)")
        #expect(Tensor.elementCount([Int.max, 2, 0]) == 0)
    }

    @Test func allocationLimitParsesSizes() {
        #expect(Tensor.allocationLimit == 2 << 30 || ProcessInfo.processInfo.environment["SPARC_MAX_ALLOCATION"] != nil)
        #expect(Tensor.parseByteCount("512M") == 512 << 20)
        #expect(Tensor.parseByteCount("8g") == 8 << 30)
        #expect(Tensor.parseByteCount("1048576") == 1 << 20)
        #expect(Tensor.parseByteCount("lots") == nil)
        #expect(Tensor.parseByteCount("99999999999999999G") == nil)
        #expect(Tensor.parseByteCount("-5") == nil)
    }

    @Test func matmulOfEmptyOperands() throws {
        let a = try Tensor(checkedZeros: [0, 1_000_000_000]), b = try Tensor(checkedZeros: [1_000_000_000, 0])
        #expect(try a.checkedMatmul(b).shape == [0, 0])
        #expect(throws: TensorError.self) { try b.checkedMatmul(a) }
        let c = Tensor(shape: [2, 0], values: []).matmul(Tensor(shape: [0, 3], values: []))
        #expect(c.shape == [2, 3] && c.scalars == [0, 0, 0, 0, 0, 0])
    }
}
