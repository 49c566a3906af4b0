import CBLAS
import Foundation

/// Matrix products through one of two sgemm libraries (`Backend`): oneDNN's `dnnl_sgemm`
/// where it is installed (loaded at run time), OpenBLAS `cblas_sgemm` otherwise.
///
/// OpenBLAS runs single-threaded; `linear` splits large products over cores itself.
/// Measured on 2 cores: OpenBLAS's threading drops 64×576·576×576 from 85 GFLOP/s (one
/// thread) to 6.6 GFLOP/s (two), while splitting the output over two single-threaded
/// calls scales. oneDNN is called once per product and threads it itself.
public enum BLAS {
    private static let singleThreaded: Void = { openblas_set_num_threads(1) }()

    /// The kernel family OpenBLAS chose for this CPU (e.g. "Haswell", "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// The OpenBLAS kernel family for a CPU with these `/proc/cpuinfo` flags, or nil to
    /// leave the choice to OpenBLAS. OpenBLAS 0.3.21 falls back to its SSE3 "Prescott"
    /// kernels on CPUs it does not know (4.6× slower on a Xeon of family 6 model 207) and
    /// calls AVX-512 AMD Zen 4 "Zen" (AVX2 kernels, 1.4× slower); SkylakeX kernels need
    /// AVX-512 F/BW/VL/DQ/CD, and on a CPU without them they are illegal instructions.
    public static func preferredCoreType(cpuFlags flags: Set<String>) -> String? {
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains) { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    /// The flags of the first CPU in `/proc/cpuinfo` (empty where there is none).
    public static func cpuFlags(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) -> Set<String> {
        guard let line = cpuinfo?.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// Raw row-major sgemm: C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C, on the
    /// calling thread: the attention's per-(sequence, head) products call it from inside
    /// `Parallel.forEach`. With the oneDNN backend, products from `callingThreadOneDNNMinimumFLOPs`
    /// run on oneDNN's kernels (on this thread alone), smaller ones on OpenBLAS's. `linear`
    /// and its gradients pass `.openBLAS` from their own splits, which are OpenBLAS's paths
    /// (under oneDNN they take small products, calls from workers and one-thread runs; decoding
    /// relies on their rounding for results that do not depend on the batch).
    @inline(__always)
    public static func sgemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        backend: Backend = BLAS.backend
    ) {
        _ = singleThreaded
        if m == 0 || n == 0 { return }
        if backend == .oneDNN, 2 * m * n * k >= callingThreadOneDNNMinimumFLOPs,
           case .success(let dnnl) = OneDNN.shared {
            dnnl.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                       beta: beta, c: c, ldc: ldc, threads: 1)
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// One whole product on oneDNN's threads, or nil (the caller splits it over OpenBLAS) when
    /// `backend` is OpenBLAS, the product is small, or the caller is already a parallel worker.
    private static func oneDNN(_ backend: Backend, flops: Int) -> OneDNN? {
        guard backend == .oneDNN, flops >= oneDNNMinimumFLOPs, Parallel.threads > 1, !Parallel.isWorker,
              case .success(let library) = OneDNN.shared else { return nil }
        return library
    }

    /// y[m, n] (+)= x[m, k] · Wᵀ for a weight W stored `[n, k]` (PyTorch's `[out, in]`).
    /// With OpenBLAS, split over cores: by output columns when there are few rows (each
    /// core streams its share of W once), by rows otherwise.
    public static func linear(
        _ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int,
        weight w: UnsafePointer<Float>, outFeatures n: Int,
        into y: UnsafeMutablePointer<Float>, accumulate: Bool = false,
        backend: Backend = BLAS.backend
    ) {
        let beta: Float = accumulate ? 1 : 0
        let flops = 2 * m * n * k
        // Few rows (decoding: one per sequence) stream W and do little arithmetic on it: even
        // small products are split over the cores, whose memory bandwidth adds up (576×576 at
        // one row: 0.66 MFLOP but 1.3 MB of weights; generation 14.7 → 32.9 tokens/s).
        let fewRows = m < 4 * Parallel.threads * 8
        if m == 0 || n == 0 { return }
        // oneDNN on AVX2 too: the AVX2-only machine measured it at 152–155 GFLOP/s
        // against OpenBLAS's 78–91 on 256×576×1536; emulated on the AVX-512 Xeon
        // (ONEDNN_MAX_CPU_ISA=AVX2) the two tie within its noise (BENCHMARKS).
        if let dnnl = oneDNN(backend, flops: flops) {
            dnnl.sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: x, lda: k, b: w, ldb: k,
                       beta: beta, c: y, ldc: n, threads: Parallel.threads)
        } else if fewRows && flops >= 200_000 && flops < 2_000_000 {
            // Fixed blocks of columns whatever the thread count, and inside a parallel loop too:
            // OpenBLAS's small-matrix kernels round differently for other block shapes, and a
            // result must not depend on the thread count (one process vs the ranks of an MPI job).
            let width = 64, blocks = (n + width - 1) / width
            Parallel.forRanges(blocks) { range in
                for block in range {
                    let c0 = block * width
                    fewRowsProduct(x, rows: m, inFeatures: k, weight: w + c0 * k, outFeatures: min(width, n - c0),
                                   into: y + c0, ldy: n, beta: beta)
                }
            }
        } else if Parallel.threads == 1 || flops < 2_000_000 || Parallel.isWorker {
            sgemm(transB: true, m: m, n: n, k: k, a: x, lda: k, b: w, ldb: k, beta: beta, c: y, ldc: n, backend: .openBLAS)
        } else if fewRows {
            Parallel.forRanges(n, minChunk: 64) { cols in
                fewRowsProduct(x, rows: m, inFeatures: k, weight: w + cols.lowerBound * k, outFeatures: cols.count,
                               into: y + cols.lowerBound, ldy: n, beta: beta)
            }
        } else {
            Parallel.forRanges(m, minChunk: 16) { rows in
                sgemm(transB: true, m: rows.count, n: n, k: k, a: x + rows.lowerBound * k, lda: k,
                      b: w, ldb: k, beta: beta, c: y + rows.lowerBound * n, ldc: n, backend: .openBLAS)
            }
        }
    }

    /// Whether few-row products go row by row through sgemv. OpenBLAS's SkylakeX kernels
    /// include small-matrix sgemm kernels; its others (Haswell, Zen) pack W on every sgemm call,
    /// which for decoding costs more than the product itself: 57 % of a generation's time in
    /// `sgemm_incopy_HASWELL` (AVX2 emulated on the AVX-512 Xeon).
    static let fewRowsBySGEMV = coreName != "SkylakeX"

    /// y[m, n] (+)= x[m, k] · Wᵀ for a few rows m, on the calling thread, W `[n, k]` with rows
    /// `k` apart and y's rows `ldy` apart. Through sgemv, one row at a time, where sgemm would
    /// pack W: the block of W stays in cache across the rows, and each row's result is the
    /// one it gets alone (a sequence decodes the same bits batched or not).
    @inline(__always)
    static func fewRowsProduct(_ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, weight w: UnsafePointer<Float>,
                               outFeatures n: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, beta: Float,
                               bySGEMV: Bool = fewRowsBySGEMV) {
        guard bySGEMV else {
            sgemm(transB: true, m: m, n: n, k: k, a: x, lda: k, b: w, ldb: k, beta: beta, c: y, ldc: ldy, backend: .openBLAS)
            return
        }
        _ = singleThreaded
        for r in 0..<m {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, w, Int32(k), x + r * k, 1, beta, y + r * ldy, 1)
        }
    }

    /// dx[m, k] (+)= dy[m, n] · W for a weight W stored `[n, k]`: the input gradient of `linear`.
    public static func linearInputGradient(
        _ dy: UnsafePointer<Float>, rows m: Int, outFeatures n: Int,
        weight w: UnsafePointer<Float>, inFeatures k: Int,
        into dx: UnsafeMutablePointer<Float>, accumulate: Bool = false,
        backend: Backend = BLAS.backend
    ) {
        let beta: Float = accumulate ? 1 : 0
        if m == 0 || k == 0 { return }
        if let dnnl = oneDNN(backend, flops: 2 * m * n * k) {
            dnnl.sgemm(transA: false, transB: false, m: m, n: k, k: n, alpha: 1, a: dy, lda: n, b: w, ldb: k,
                       beta: beta, c: dx, ldc: k, threads: Parallel.threads)
            return
        }
        Parallel.forRanges(m, minChunk: 16) { rows in
            sgemm(m: rows.count, n: k, k: n, a: dy + rows.lowerBound * n, lda: n, b: w, ldb: k,
                  beta: beta, c: dx + rows.lowerBound * k, ldc: k, backend: .openBLAS)
        }
    }

    /// dW[n, k] (+)= alpha · dyᵀ · x over the m rows: the weight gradient of `linear`.
    /// With OpenBLAS, split by output rows of dW, so each core writes its own block.
    public static func linearWeightGradient(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, rows m: Int,
        outFeatures n: Int, inFeatures k: Int,
        into dw: UnsafeMutablePointer<Float>, alpha: Float = 1, accumulate: Bool = true,
        backend: Backend = BLAS.backend
    ) {
        let beta: Float = accumulate ? 1 : 0
        if n == 0 || k == 0 { return }
        if let dnnl = oneDNN(backend, flops: 2 * m * n * k) {
            dnnl.sgemm(transA: true, transB: false, m: n, n: k, k: m, alpha: alpha, a: dy, lda: n, b: x, ldb: k,
                       beta: beta, c: dw, ldc: k, threads: Parallel.threads)
            return
        }
        Parallel.forRanges(n, minChunk: 32) { outs in
            sgemm(transA: true, m: outs.count, n: k, k: m, alpha: alpha, a: dy + outs.lowerBound, lda: n, b: x, ldb: k,
                  beta: beta, c: dw + outs.lowerBound * k, ldc: k, backend: .openBLAS)
        }
    }
}

extension Tensor {
    /// Matrix product of 2-D tensors: `[m, k] @ [k, n] → [m, n]`.
    public func matmul(_ other: Tensor, backend: BLAS.Backend = BLAS.backend) -> Tensor {
        precondition(rank == 2 && other.rank == 2 && shape[1] == other.shape[0],
                     "matmul shapes \(shape) and \(other.shape) do not agree")
        let m = shape[0], k = shape[1], n = other.shape[1]
        var out = Tensor(zeros: [m, n])
        // Nothing to multiply (and an empty operand may have no buffer worth pointing into).
        if m == 0 || n == 0 || k == 0 { return out }
        withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { c in
                    BLAS.product(m: m, n: n, k: k, a: a.baseAddress!, b: b.baseAddress!, c: c.baseAddress!, backend: backend)
                }
            }
        }
        return out
    }
}

extension BLAS {
    /// C[m, n] = A[m, k] · B[k, n], all row-major and dense: `Tensor.matmul`.
    static func product(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                        c: UnsafeMutablePointer<Float>, backend: Backend) {
        if let dnnl = oneDNN(backend, flops: 2 * m * n * k) {
            dnnl.sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n,
                       beta: 0, c: c, ldc: n, threads: Parallel.threads)
            return
        }
        Parallel.forRanges(m, minChunk: 16) { rows in
            sgemm(m: rows.count, n: n, k: k, a: a + rows.lowerBound * k, lda: k,
                  b: b, ldb: n, c: c + rows.lowerBound * n, ldc: n, backend: .openBLAS)
        }
    }
}

// MARK: - The backend

extension BLAS {
    /// The sgemm library behind `linear`, its gradients and `Tensor.matmul`.
    ///
    /// Measured at 2 threads on SmolLM2's linear shapes (scripts/bench_sgemm.sh, 64 / 256
    /// tokens): oneDNN 2.6.3 174 / 225 GFLOP/s against OpenBLAS split over sparc's threads
    /// 120 / 190 (AVX-512 Xeon); on an AVX2-only machine 152–155 against 78–91. End to end
    /// (`sparc bench`, best of 3 alternating rounds on a shared 2-core AVX-512 Xeon): forward
    /// 64 / 256 tokens 115 / 429 ms against 151 / 465 ms on OpenBLAS, forward + LRP 287 / 1026
    /// against 410 / 1185 ms.
    public enum Backend: String, Sendable, CaseIterable {
        case openBLAS = "openblas"
        case oneDNN = "onednn"
    }

    /// Why the requested backend cannot be used.
    public struct BackendError: Error, CustomStringConvertible, Equatable, Sendable {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// The backend chosen at start-up: `SPARC_BLAS=onednn|openblas` if set, else oneDNN where
    /// it loads and OpenBLAS otherwise. An explicit request that cannot be met is an error
    /// (the CLI reports it at start-up; `backend` falls back to OpenBLAS).
    public static let backendChoice: Result<Backend, BackendError> =
        chooseBackend(requested: ProcessInfo.processInfo.environment["SPARC_BLAS"],
                      oneDNNLoadError: { OneDNN.shared.failure })

    /// The backend in use.
    public static var backend: Backend { (try? backendChoice.get()) ?? .openBLAS }

    /// The backend in use, as people name it: "oneDNN 2.6.3", "OpenBLAS SkylakeX".
    public static var backendName: String { name(of: backend) }

    public static func name(of backend: Backend) -> String {
        switch backend {
        case .openBLAS: return "OpenBLAS \(coreName)"
        case .oneDNN: return "oneDNN \((try? OneDNN.shared.get())?.version ?? "(not loadable)")"
        }
    }

    /// Whether `backend` can run here (loads oneDNN on first ask).
    public static func isAvailable(_ backend: Backend) -> Bool {
        backend == .openBLAS || OneDNN.shared.failure == nil
    }

    /// The choice rule. `oneDNNLoadError` loads oneDNN (only when the choice needs it) and
    /// returns why it could not, or nil.
    static func chooseBackend(requested: String?, oneDNNLoadError: () -> BackendError?) -> Result<Backend, BackendError> {
        let request = requested?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        if request.isEmpty {
            return .success(oneDNNLoadError() == nil ? .oneDNN : .openBLAS)
        }
        guard let backend = Backend(rawValue: request) else {
            let known = Backend.allCases.map(\.rawValue).joined(separator: ", ")
            return .failure(BackendError("SPARC_BLAS=\(requested!) is not a BLAS backend (\(known))"))
        }
        if backend == .oneDNN, let error = oneDNNLoadError() {
            return .failure(BackendError("SPARC_BLAS=onednn, but \(error.description)"))
        }
        return .success(backend)
    }

    /// Products below this many FLOPs stay on the OpenBLAS path (single-threaded below
    /// 2 MFLOP): oneDNN's per-call cost and thread wake-up outweigh its faster kernels there.
    static let oneDNNMinimumFLOPs = 2_000_000

    /// Products run on one calling thread (`sgemm`: the attention's per-head products) go to
    /// oneDNN from this many FLOPs. Measured single-threaded on the attention's shapes (query
    /// blocks of 128 rows against up to 2048 keys, head size 64; AMD EPYC Zen 5, AVX-512):
    /// oneDNN 215–238 GFLOP/s, OpenBLAS SkylakeX 197–209, OpenBLAS Haswell 119; from 0.5
    /// MFLOP oneDNN was at least as fast on every shape tried, below it OpenBLAS's
    /// small-matrix kernels win (4 × 128 keys: SkylakeX 175, oneDNN 63 GFLOP/s).
    static let callingThreadOneDNNMinimumFLOPs = 500_000
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
