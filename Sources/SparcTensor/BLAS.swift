import CBLAS
import Foundation

/// Matrix products through OpenBLAS `cblas_sgemm`.
///
/// OpenBLAS runs single-threaded; `linear` splits large products over cores itself.
/// Measured on 2 cores: OpenBLAS's threading drops 64×576·576×576 from 85 GFLOP/s (one
/// thread) to 6.6 GFLOP/s (two), while splitting the output over two single-threaded
/// calls scales.
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

    /// Raw row-major sgemm: C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C.
    /// Runs on the calling thread.
    @inline(__always)
    public static func sgemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = singleThreaded
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[m, n] (+)= x[m, k] · Wᵀ for a weight W stored `[n, k]` (PyTorch's `[out, in]`),
    /// split over cores: by output columns when there are few rows (each core streams
    /// its share of W once), by rows otherwise.
    public static func linear(
        _ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int,
        weight w: UnsafePointer<Float>, outFeatures n: Int,
        into y: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) {
        let beta: Float = accumulate ? 1 : 0
        let flops = 2 * m * n * k
        if Parallel.threads == 1 || flops < 2_000_000 {
            sgemm(transB: true, m: m, n: n, k: k, a: x, lda: k, b: w, ldb: k, beta: beta, c: y, ldc: n)
        } else if m < 4 * Parallel.threads * 8 {
            Parallel.forRanges(n, minChunk: 64) { cols in
                sgemm(transB: true, m: m, n: cols.count, k: k, a: x, lda: k,
                      b: w + cols.lowerBound * k, ldb: k, beta: beta, c: y + cols.lowerBound, ldc: n)
            }
        } else {
            Parallel.forRanges(m, minChunk: 16) { rows in
                sgemm(transB: true, m: rows.count, n: n, k: k, a: x + rows.lowerBound * k, lda: k,
                      b: w, ldb: k, beta: beta, c: y + rows.lowerBound * n, ldc: n)
            }
        }
    }
}

extension Tensor {
    /// Matrix product of 2-D tensors: `[m, k] @ [k, n] → [m, n]`.
    public func matmul(_ other: Tensor) -> Tensor {
        precondition(rank == 2 && other.rank == 2 && shape[1] == other.shape[0],
                     "matmul shapes \(shape) and \(other.shape) do not agree")
        let m = shape[0], k = shape[1], n = other.shape[1]
        var out = Tensor(zeros: [m, n])
        // Nothing to multiply (and an empty operand may have no buffer worth pointing into).
        if m == 0 || n == 0 || k == 0 { return out }
        withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { c in
                    Parallel.forRanges(m, minChunk: 16) { rows in
                        BLAS.sgemm(m: rows.count, n: n, k: k, a: a.baseAddress! + rows.lowerBound * k, lda: k,
                                   b: b.baseAddress!, ldb: n, c: c.baseAddress! + rows.lowerBound * n, ldc: n)
                    }
                }
            }
        }
        return out
    }
}

extension BLAS {
    /// dx[m, k] (+)= dy[m, n] · W for a weight W stored `[n, k]`: the input gradient of `linear`.
    public static func linearInputGradient(
        _ dy: UnsafePointer<Float>, rows m: Int, outFeatures n: Int,
        weight w: UnsafePointer<Float>, inFeatures k: Int,
        into dx: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) {
        let beta: Float = accumulate ? 1 : 0
        Parallel.forRanges(m, minChunk: 16) { rows in
            sgemm(m: rows.count, n: k, k: n, a: dy + rows.lowerBound * n, lda: n, b: w, ldb: k,
                  beta: beta, c: dx + rows.lowerBound * k, ldc: k)
        }
    }

    /// dW[n, k] (+)= dyᵀ · x over the m rows: the weight gradient of `linear`.
    /// Split by output rows of dW, so each core writes its own block.
    public static func linearWeightGradient(
        _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, rows m: Int,
        outFeatures n: Int, inFeatures k: Int,
        into dw: UnsafeMutablePointer<Float>, accumulate: Bool = true
    ) {
        let beta: Float = accumulate ? 1 : 0
        Parallel.forRanges(n, minChunk: 32) { outs in
            sgemm(transA: true, m: outs.count, n: k, k: m, a: dy + outs.lowerBound, lda: n, b: x, ldb: k,
                  beta: beta, c: dw + outs.lowerBound * k, ldc: k)
        }
    }
}
