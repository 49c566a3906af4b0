import Foundation

/// Work splitting over the machine's cores. OpenBLAS's own threading is switched off
/// (see `BLAS`) and sparc splits work itself, because OpenBLAS's threads collapse on the
/// small shapes of a 135M-parameter model.
///
/// With oneDNN as the BLAS backend the loops run on oneDNN's OpenMP team, otherwise on
/// Dispatch's threads. One team for the products and the element-wise work between them
/// means no second set of threads to wake for each (a pass makes ~600 products and ~2000
/// loops), and none spinning on the cores the other set needs.
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
            if let team = openMP {
                // Inside a region every thread of the team is busy with the outer loop.
                if isWorker { for i in 0..<n { work(i) } } else { run(n, on: team, work) }
                return
            }
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

    /// oneDNN's OpenMP runtime when oneDNN is the backend (`SPARC_PARALLEL=dispatch` keeps
    /// Dispatch, for comparison).
    static let openMP: OpenMPRegions? = {
        guard ProcessInfo.processInfo.environment["SPARC_PARALLEL"] != "dispatch", BLAS.backend == .oneDNN else { return nil }
        return (try? OneDNN.shared.get())?.openMP
    }()

    /// What one OpenMP region runs: thread t of T takes jobs t, t + T, … (jobs of one loop are
    /// alike, and `forRanges` makes one per thread).
    private final class Loop {
        let count: Int
        let work: @Sendable (Int) -> Void
        init(count: Int, work: @escaping @Sendable (Int) -> Void) { self.count = count; self.work = work }
    }

    private static func run(_ n: Int, on team: OpenMPRegions, _ work: @escaping @Sendable (Int) -> Void) {
        let loop = Loop(count: n, work: work)
        withExtendedLifetime(loop) {
            team.parallel({ raw in
                let loop = Unmanaged<Loop>.fromOpaque(raw!).takeUnretainedValue()
                let team = Parallel.openMP!
                let t = Int(team.threadNumber()), size = Int(team.teamSize())
                let key = Parallel.workerKey, outer = pthread_getspecific(key)
                pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
                for i in stride(from: t, to: loop.count, by: size) { loop.work(i) }
                pthread_setspecific(key, outer)
            }, Unmanaged.passUnretained(loop).toOpaque(), UInt32(min(threads, n)), 0)
        }
    }

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
