import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// oneDNN's `dnnl_sgemm`, loaded at run time (`dlopen("libdnnl.so.2")`, Debian's libdnnl2):
/// neither the build nor the binary needs oneDNN, and where it is installed it is the
/// faster sgemm (see `BLAS.Backend`).
///
/// oneDNN threads through OpenMP (libgomp, loaded with it). Its thread count is set per
/// call on the calling thread (`omp_set_num_threads` sets that thread's own count), so a
/// product runs on `Parallel.threads` threads or, where asked, on the calling thread only.
struct OneDNN: @unchecked Sendable {
    /// oneDNN 2.x: `dnnl_status_t dnnl_sgemm(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N,
    /// dnnl_dim_t K, float alpha, const float *A, dnnl_dim_t lda, const float *B, dnnl_dim_t ldb,
    /// float beta, float *C, dnnl_dim_t ldc)`, row-major, `dnnl_dim_t` = int64_t, 0 = success.
    typealias SGEMM = @convention(c) (CChar, CChar, Int64, Int64, Int64, Float, UnsafePointer<Float>?, Int64,
                                      UnsafePointer<Float>?, Int64, Float, UnsafeMutablePointer<Float>?, Int64) -> Int32
    typealias SetThreads = @convention(c) (Int32) -> Void
    /// `const dnnl_version_t *dnnl_version(void)`: a struct that starts with int major, minor, patch.
    typealias VersionFunction = @convention(c) () -> UnsafeRawPointer?

    static let library = "libdnnl.so.2"

    private let sgemmFunction: SGEMM
    /// Absent when oneDNN was built without OpenMP (then it picks its own thread count).
    private let setThreads: SetThreads?
    /// The OpenMP runtime oneDNN threads through, for `Parallel`'s loops (nil without one).
    let openMP: OpenMPRegions?
    /// "2.6.3".
    let version: String

    /// oneDNN, loaded on first use, or why it could not be.
    static let shared: Result<OneDNN, BLAS.BackendError> = load()

    private init(sgemm: SGEMM, setThreads: SetThreads?, openMP: OpenMPRegions?, version: String) {
        self.sgemmFunction = sgemm
        self.setThreads = setThreads
        self.openMP = openMP
        self.version = version
    }

    private static func load() -> Result<OneDNN, BLAS.BackendError> {
        // libgomp reads its environment once, when it loads (with oneDNN: sparc itself does
        // not link it); the settings are put back afterwards, so child processes do not see them.
        // The thread count needs none: every product sets it on its calling thread
        // (`omp_set_num_threads`) and every loop passes it to GOMP_parallel. That keeps setenv
        // out of the default path: oneDNN loads on the first product, which in a process
        // with several threads (a test run) may come while another thread reads the environment.
        var settings: [String: String] = [:]
        // After a region libgomp's threads spin (by default 300,000 rounds) waiting for the
        // next. `Parallel` runs its loops on the same team, so the spinning catches the next
        // loop or product without a wake-up. Only when the loops run on Dispatch's threads
        // (SPARC_PARALLEL=dispatch) would the spinning take the cores those need: measured, 2
        // cores, SmolLM2 forward at 64 / 256 tokens, 1747 / 2328 ms spinning, 241 / 916 ms
        // passive; then the policy is passive. An explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT is
        // left alone.
        let env = ProcessInfo.processInfo.environment
        if env["SPARC_PARALLEL"] == "dispatch" && env["OMP_WAIT_POLICY"] == nil && env["GOMP_SPINCOUNT"] == nil {
            settings["OMP_WAIT_POLICY"] = "passive"
        }
        for (name, value) in settings { setenv(name, value, 1) }
        let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL)
        let reason = handle == nil ? dlerror().map { String(cString: $0) } ?? "dlopen failed" : ""
        for name in settings.keys {
            if let old = env[name] { setenv(name, old, 1) } else { unsetenv(name) }
        }
        guard let handle else {
            return .failure(BLAS.BackendError("oneDNN is not loadable (\(reason)); install it with `apt-get install libdnnl2`"))
        }
        guard let sgemm = dlsym(handle, "dnnl_sgemm") else {
            return .failure(BLAS.BackendError("\(library) has no dnnl_sgemm"))
        }
        var version = "?"
        if let v = dlsym(handle, "dnnl_version"),
           let numbers = unsafeBitCast(v, to: VersionFunction.self)()?.assumingMemoryBound(to: Int32.self) {
            version = "\(numbers[0]).\(numbers[1]).\(numbers[2])"
        }
        // dlsym on a handle also searches the libraries it loaded: libgomp's symbol.
        let setThreads = dlsym(handle, "omp_set_num_threads").map { unsafeBitCast($0, to: SetThreads.self) }
        return .success(OneDNN(sgemm: unsafeBitCast(sgemm, to: SGEMM.self), setThreads: setThreads,
                               openMP: OpenMPRegions(handle), version: version))
    }

    /// Row-major C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C on `threads` threads.
    func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
               a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) {
        setThreads?(Int32(threads))
        let status = sgemmFunction(CChar(UInt8(ascii: transA ? "T" : "N")), CChar(UInt8(ascii: transB ? "T" : "N")),
                                   Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        precondition(status == 0, "dnnl_sgemm failed (status \(status)) on \(m)×\(k)·\(k)×\(n)")
    }
}

/// libgomp's parallel regions (GCC's OpenMP ABI), found through oneDNN's handle: `Parallel`
/// runs its loops on the team of threads that runs oneDNN's products, so one set of threads
/// does all the work of a pass, as PyTorch's ATen and its BLAS share one OpenMP team.
struct OpenMPRegions: @unchecked Sendable {
    typealias Region = @convention(c) (UnsafeMutableRawPointer?) -> Void
    /// `void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags)`:
    /// runs fn(data) on num_threads threads, the caller among them, and returns when all have.
    typealias Parallel = @convention(c) (Region, UnsafeMutableRawPointer?, UInt32, UInt32) -> Void
    typealias ThreadQuery = @convention(c) () -> Int32

    let parallel: Parallel
    let threadNumber: ThreadQuery
    let teamSize: ThreadQuery

    init?(_ handle: UnsafeMutableRawPointer) {
        guard let p = dlsym(handle, "GOMP_parallel"), let n = dlsym(handle, "omp_get_thread_num"),
              let t = dlsym(handle, "omp_get_num_threads") else { return nil }
        parallel = unsafeBitCast(p, to: Parallel.self)
        threadNumber = unsafeBitCast(n, to: ThreadQuery.self)
        teamSize = unsafeBitCast(t, to: ThreadQuery.self)
    }
}
