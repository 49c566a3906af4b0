import Foundation
import Testing
@testable import SparcTensor

/// Every product `BLAS` routes (linear, its two gradients, matmul) under every backend that
/// loads here, against a Double reference: odd shapes, small ones (which stay on OpenBLAS)
/// and large ones (which go to oneDNN whole). The backend is a parameter of each call, so
/// the cases run side by side without touching any global state.
@Suite struct BLASBackendTests {
    static let backends = BLAS.Backend.allCases.filter(BLAS.isAvailable)
    /// (rows m, in k, out n).
    // (1, 576, 700): a decoding-sized product, split into fixed 64-column blocks (the last one partial).
    static let shapes = [(1, 1, 1), (3, 5, 7), (2, 9, 1), (1, 576, 700), (64, 576, 192), (257, 576, 193), (33, 1536, 576)]

    @Test(.enabled(if: BLAS.isAvailable(.oneDNN), "oneDNN (libdnnl.so.2) is not loadable here: only OpenBLAS is tested"))
    func oneDNNLoads() throws {
        let dnnl = try OneDNN.shared.get()
        #expect(dnnl.version.hasPrefix("2.") || dnnl.version.hasPrefix("3."))
        #expect(BLAS.name(of: .oneDNN) == "oneDNN \(dnnl.version)")
    }

    @Test(arguments: backends, [false, true])
    func linear(backend: BLAS.Backend, accumulate: Bool) {
        for (m, k, n) in Self.shapes {
            let x = random(m * k, seed: 1), w = random(n * k, seed: 2)
            var y = random(m * n, seed: 3)
            let expected = reference(m, n, k, a: { x[$0 * k + $1] }, b: { w[$1 * k + $0] }, plus: accumulate ? y : nil)
            BLAS.linear(x, rows: m, inFeatures: k, weight: w, outFeatures: n, into: &y, accumulate: accumulate, backend: backend)
            expectClose(y, expected, "linear \(m)×\(k)→\(n) on \(backend)")
        }
    }

    @Test(arguments: backends, [false, true])
    func inputGradient(backend: BLAS.Backend, accumulate: Bool) {
        for (m, k, n) in Self.shapes {
            let dy = random(m * n, seed: 4), w = random(n * k, seed: 5)
            var dx = random(m * k, seed: 6)
            let expected = reference(m, k, n, a: { dy[$0 * n + $1] }, b: { w[$0 * k + $1] }, plus: accumulate ? dx : nil)
            BLAS.linearInputGradient(dy, rows: m, outFeatures: n, weight: w, inFeatures: k, into: &dx,
                                     accumulate: accumulate, backend: backend)
            expectClose(dx, expected, "input gradient \(m)×\(k)→\(n) on \(backend)")
        }
    }

    @Test(arguments: backends, [false, true])
    func weightGradient(backend: BLAS.Backend, accumulate: Bool) {
        for (m, k, n) in Self.shapes {
            let dy = random(m * n, seed: 7), x = random(m * k, seed: 8)
            var dw = random(n * k, seed: 9)
            let expected = reference(n, k, m, a: { dy[$1 * n + $0] }, b: { x[$0 * k + $1] }, plus: accumulate ? dw : nil)
            BLAS.linearWeightGradient(dy, x, rows: m, outFeatures: n, inFeatures: k, into: &dw,
                                      accumulate: accumulate, backend: backend)
            expectClose(dw, expected, "weight gradient \(m)×\(k)→\(n) on \(backend)")
        }
    }

    @Test(arguments: backends)
    func matmul(backend: BLAS.Backend) {
        for (m, k, n) in Self.shapes {
            let a = random(m * k, seed: 10), b = random(k * n, seed: 11)
            let product = Tensor(shape: [m, k], values: a).matmul(Tensor(shape: [k, n], values: b), backend: backend)
            #expect(product.shape == [m, n])
            expectClose(product.scalars, reference(m, n, k, a: { a[$0 * k + $1] }, b: { b[$0 * n + $1] }, plus: nil),
                        "matmul \(m)×\(k)·\(k)×\(n) on \(backend)")
        }
    }

    /// A product asked for from inside a parallel loop stays on the calling thread (no
    /// OpenMP team per Dispatch thread) and is still right.
    @Test(arguments: backends)
    func insideAParallelLoop(backend: BLAS.Backend) {
        let (m, k, n) = (64, 576, 192), parts = 4
        let x = random(m * k, seed: 12), w = random(n * k, seed: 13)
        let expected = reference(m, n, k, a: { x[$0 * k + $1] }, b: { w[$1 * k + $0] }, plus: nil)
        var ys = [Float](repeating: .nan, count: parts * m * n)
        #expect(!Parallel.isWorker)
        ys.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            Parallel.forEach(parts) { p in
                BLAS.linear(x, rows: m, inFeatures: k, weight: w, outFeatures: n, into: base + p * m * n, backend: backend)
            }
        }
        for p in 0..<parts { expectClose(Array(ys[p * m * n ..< (p + 1) * m * n]), expected, "part \(p) on \(backend)") }
    }

    /// Decoding's few-row products, through sgemm or row by row through sgemv (the path of
    /// OpenBLAS cores without small-matrix kernels): right against a Double reference, and
    /// through sgemv each row is bit for bit the product of that row alone.
    @Test(arguments: [false, true])
    func fewRowProducts(bySGEMV: Bool) {
        let k = 576
        for (m, n) in [(1, 64), (3, 37), (16, 64)] {
            for beta: Float in [0, 1] {
                let x = random(m * k, seed: 11), w = random(n * k, seed: 12), start = random(m * n, seed: 13)
                var y = start
                let expected = reference(m, n, k, a: { x[$0 * k + $1] }, b: { w[$1 * k + $0] }, plus: beta == 1 ? start : nil)
                y.withUnsafeMutableBufferPointer { yp in
                    BLAS.fewRowsProduct(x, rows: m, inFeatures: k, weight: w, outFeatures: n, into: yp.baseAddress!, ldy: n,
                                        beta: beta, bySGEMV: bySGEMV)
                }
                expectClose(y, expected, "few rows \(m)×\(k)→\(n), beta \(beta), sgemv \(bySGEMV)")
                guard bySGEMV else { continue }
                for r in 0..<m {
                    var alone = Array(start[(r * n)..<((r + 1) * n)])
                    let row = Array(x[(r * k)..<((r + 1) * k)])
                    alone.withUnsafeMutableBufferPointer { yp in
                        BLAS.fewRowsProduct(row, rows: 1, inFeatures: k, weight: w, outFeatures: n, into: yp.baseAddress!, ldy: n,
                                            beta: beta, bySGEMV: true)
                    }
                    #expect(alone == Array(y[(r * n)..<((r + 1) * n)]), "row \(r) of \(m)")
                }
            }
        }
    }

    /// The attention's per-head products: `BLAS.sgemm` on the calling thread, from inside a
    /// parallel loop, with padded leading dimensions and every transpose. Right against a
    /// Double reference under every backend; with oneDNN, small products are OpenBLAS's bit
    /// for bit and those from `callingThreadOneDNNMinimumFLOPs` oneDNN's on one thread.
    @Test(arguments: backends, [false, true])
    func callingThreadProducts(backend: BLAS.Backend, transA: Bool) throws {
        // (m, n, k): a query block against 128 keys (2.1 MFLOP), a few rows (below 0.5 MFLOP).
        for (m, n, k) in [(128, 128, 64), (4, 128, 64), (37, 70, 64)] {
            #expect((2 * m * n * k >= BLAS.callingThreadOneDNNMinimumFLOPs) == (m == 128))
            for transB in [false, true] {
                let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 1, ldc = n + 2
                let a = random((transA ? k : m) * lda, seed: 17), b = random((transB ? n : k) * ldb, seed: 18)
                let start = random(m * ldc, seed: 19)
                var outputs = [[Float]](repeating: start, count: 3)
                outputs.withUnsafeMutableBufferPointer { outs in
                    Parallel.forEach(3) { i in
                        outs[i].withUnsafeMutableBufferPointer { c in
                            let use: BLAS.Backend = i == 0 ? backend : .openBLAS
                            if i == 2, case .success(let dnnl) = OneDNN.shared {
                                dnnl.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                                           beta: 1, c: c.baseAddress!, ldc: ldc, threads: 1)
                                return
                            }
                            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                                       beta: 1, c: c.baseAddress!, ldc: ldc, backend: use)
                        }
                    }
                }
                let product = reference(m, n, k, a: { transA ? a[$1 * lda + $0] : a[$0 * lda + $1] },
                                        b: { transB ? b[$1 * ldb + $0] : b[$0 * ldb + $1] }, plus: nil)
                var got: [Float] = [], expected: [Double] = []
                for i in 0..<m {
                    for j in 0..<n {
                        got.append(outputs[0][i * ldc + j])
                        expected.append(0.5 * product[i * n + j] + Double(start[i * ldc + j]))
                    }
                    for j in n..<ldc { #expect(outputs[0][i * ldc + j] == start[i * ldc + j]) }
                }
                let shape = "\(transA ? "T" : "N")\(transB ? "T" : "N") \(m)×\(k)·\(k)×\(n) on \(backend)"
                expectClose(got, expected, "calling-thread sgemm " + shape)
                if backend == .oneDNN {
                    let routed = 2 * m * n * k >= BLAS.callingThreadOneDNNMinimumFLOPs ? outputs[2] : outputs[1]
                    let same = outputs[0] == routed
                    #expect(same, "calling-thread sgemm \(shape): not the library the rule picks")
                }
            }
        }
    }

    @Test func workersKnowTheyAreWorkers() {
        guard Parallel.threads > 1 else { return }
        var seen = [Bool](repeating: false, count: 8)
        seen.withUnsafeMutableBufferPointer { s in
            let base = s.baseAddress!
            Parallel.forEach(8) { i in base[i] = Parallel.isWorker }
        }
        #expect(seen.allSatisfy { $0 })
        #expect(!Parallel.isWorker)
    }

    /// oneDNN's own sgemm, transposes, alpha, beta and padded leading dimensions, on one and
    /// two threads.
    @Test(.enabled(if: BLAS.isAvailable(.oneDNN), "oneDNN (libdnnl.so.2) is not loadable here"),
          arguments: [false, true], [false, true])
    func oneDNNSgemm(transA: Bool, transB: Bool) throws {
        let dnnl = try OneDNN.shared.get()
        for (m, k, n) in [(1, 1, 1), (3, 5, 7), (65, 130, 33)] {
            for threads in [1, 2] {
                let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 1, ldc = n + 2
                let a = random((transA ? k : m) * lda, seed: 14), b = random((transB ? n : k) * ldb, seed: 15)
                var c = random(m * ldc, seed: 16)
                let old = c
                dnnl.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                           beta: 2, c: &c, ldc: ldc, threads: threads)
                let product = reference(m, n, k, a: { transA ? a[$1 * lda + $0] : a[$0 * lda + $1] },
                                        b: { transB ? b[$1 * ldb + $0] : b[$0 * ldb + $1] }, plus: nil)
                var got: [Float] = [], expected: [Double] = []
                for i in 0..<m {
                    for j in 0..<n {
                        got.append(c[i * ldc + j])
                        expected.append(0.5 * product[i * n + j] + 2 * Double(old[i * ldc + j]))
                    }
                    // The padding past n is left alone.
                    for j in n..<ldc { #expect(c[i * ldc + j] == old[i * ldc + j]) }
                }
                expectClose(got, expected, "dnnl_sgemm \(transA ? "T" : "N")\(transB ? "T" : "N") \(m)×\(k)·\(k)×\(n), \(threads) threads")
            }
        }
    }
}

/// SPARC_BLAS parsing and the fall-back, with oneDNN's availability given, not probed.
@Suite struct BLASBackendChoiceTests {
    let loads: () -> BLAS.BackendError? = { nil }
    let missing: () -> BLAS.BackendError? = { BLAS.BackendError("oneDNN is not loadable (libdnnl.so.2: cannot open)") }

    @Test func defaultIsOneDNNWhereItLoadsElseOpenBLAS() {
        #expect(BLAS.chooseBackend(requested: nil, oneDNNLoadError: loads) == .success(.oneDNN))
        #expect(BLAS.chooseBackend(requested: nil, oneDNNLoadError: missing) == .success(.openBLAS))
        #expect(BLAS.chooseBackend(requested: " ", oneDNNLoadError: missing) == .success(.openBLAS))
    }

    @Test func explicitRequestsWin() {
        #expect(BLAS.chooseBackend(requested: "openblas", oneDNNLoadError: loads) == .success(.openBLAS))
        #expect(BLAS.chooseBackend(requested: "OneDNN", oneDNNLoadError: loads) == .success(.oneDNN))
        #expect(BLAS.chooseBackend(requested: "OpenBLAS", oneDNNLoadError: missing) == .success(.openBLAS))
    }

    @Test func openBLASNeverLoadsOneDNN() {
        var probed = false
        _ = BLAS.chooseBackend(requested: "openblas", oneDNNLoadError: { probed = true; return nil })
        #expect(!probed)
    }

    @Test func unmetRequestsAreErrorsThatSayWhy() throws {
        let unavailable = try #require(BLAS.chooseBackend(requested: "onednn", oneDNNLoadError: missing).failure)
        #expect(unavailable.description.contains("SPARC_BLAS=onednn") && unavailable.description.contains("libdnnl.so.2"))
        let unknown = try #require(BLAS.chooseBackend(requested: "mkl", oneDNNLoadError: loads).failure)
        #expect(unknown.description.contains("SPARC_BLAS=mkl") && unknown.description.contains("openblas, onednn"))
    }

    @Test func theChoiceInUseHasAName() {
        #expect(BLAS.backendName.hasPrefix(BLAS.backend == .oneDNN ? "oneDNN " : "OpenBLAS "))
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// Uniform values in [-1, 1) from a fixed seed (a 64-bit LCG: reproducible, no global state).
private func random(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed &* 6364136223846793005 &+ 1442695040888963407
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Double(state >> 11) / Double(1 << 53) * 2 - 1)
    }
}

/// C[m, n] = Σ_p a(i, p) · b(p, j) (+ plus) in Double.
private func reference(_ m: Int, _ n: Int, _ k: Int, a: (Int, Int) -> Float, b: (Int, Int) -> Float, plus: [Float]?) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var sum = plus.map { Double($0[i * n + j]) } ?? 0
            for p in 0..<k { sum += Double(a(i, p)) * Double(b(p, j)) }
            c[i * n + j] = sum
        }
    }
    return c
}

/// max |got − expected| ≤ 1e-5 · max |expected|.
private func expectClose(_ got: [Float], _ expected: [Double], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.count == expected.count, "\(what): \(got.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
    let scale = max(expected.map(abs).max() ?? 0, 1e-30)
    let error = zip(got, expected).map { abs(Double($0) - $1) }.max() ?? 0
    #expect(error <= 1e-5 * scale, "\(what): relative error \(error / scale)", sourceLocation: sourceLocation)
}
