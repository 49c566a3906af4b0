import Foundation

/// Work splitting over the machine's cores. OpenBLAS's own threading is switched off
/// (see `BLAS`) and sparc splits work itself, because OpenBLAS's threads collapse on the
/// small shapes of a 135M-parameter model.
public enum Parallel {
    /// Worker count: `SPARC_THREADS` if set, else the active core count.
    public static let threads: Int = {
        if let s = ProcessInfo.processInfo.environment["SPARC_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body(i)` for i in 0..<n, concurrently when n > 1 and more than one thread.
    /// Callers guarantee that different `i` touch disjoint memory: that is what lets the
    /// kernels pass raw buffers in, so `body` is handed to Dispatch as if it were Sendable.
    public static func forEach(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        if n == 1 || threads == 1 {
            for i in 0..<n { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            let work = unsafeBitCast(escapable, to: (@Sendable (Int) -> Void).self)
            let key = workerKey
            DispatchQueue.concurrentPerform(iterations: n) { i in
                let outer = pthread_getspecific(key)
                pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
                work(i)
                pthread_setspecific(key, outer)
            }
        }
    }

    /// Whether the calling thread is running a concurrent `forEach` body. `BLAS` keeps the
    /// products made there on the calling thread: the other cores are busy with the same
    /// loop, and an OpenMP library called from a foreign thread starts a thread team of its
    /// own for each such thread.
    public static var isWorker: Bool { pthread_getspecific(workerKey) != nil }

    private static let workerKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Splits 0..<total into at most `threads` contiguous ranges of at least `minChunk`
    /// items and runs `body` on each concurrently.
    public static func forRanges(_ total: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if total <= 0 { return }
        let parts = max(1, min(threads, total / max(minChunk, 1)))
        if parts == 1 { body(0..<total); return }
        forEach(parts) { p in
            let lo = total * p / parts, hi = total * (p + 1) / parts
            if lo < hi { body(lo..<hi) }
        }
    }
}
