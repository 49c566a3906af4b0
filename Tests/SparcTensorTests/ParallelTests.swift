import Foundation
import Testing
@testable import SparcTensor

@Suite struct ParallelTests {
    /// With oneDNN as the backend the loops run on its OpenMP team; otherwise on Dispatch.
    @Test func loopsRunWhereTheBackendSays() {
        if BLAS.backend == .oneDNN && ProcessInfo.processInfo.environment["SPARC_PARALLEL"] != "dispatch" {
            #expect(Parallel.openMP != nil, "oneDNN is the backend but its OpenMP runtime was not found")
        } else {
            #expect(Parallel.openMP == nil)
        }
    }

    /// Every index exactly once, on more than one thread when there are several, each of them
    /// a worker; a loop inside a loop runs whole on its worker.
    @Test(arguments: [1, 2, 3, 7, 64, 1001])
    func everyIndexOnceAcrossThreads(count: Int) {
        var hits = [Int](repeating: 0, count: count)
        var threadOf = [UInt](repeating: 0, count: count)
        var inner = [Int](repeating: 0, count: count)
        var workers = [Bool](repeating: false, count: count)
        hits.withUnsafeMutableBufferPointer { h in
            threadOf.withUnsafeMutableBufferPointer { t in
                inner.withUnsafeMutableBufferPointer { n in
                    workers.withUnsafeMutableBufferPointer { w in
                        let (h, t, n, w) = (h.baseAddress!, t.baseAddress!, n.baseAddress!, w.baseAddress!)
                        Parallel.forEach(count) { i in
                            h[i] += 1
                            t[i] = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(bitPattern: UInt(pthread_self()))))
                            w[i] = Parallel.isWorker
                            var sum = 0
                            Parallel.forEach(5) { j in sum += j }  // serial inside a worker
                            n[i] = sum
                        }
                    }
                }
            }
        }
        #expect(hits.allSatisfy { $0 == 1 })
        #expect(inner.allSatisfy { $0 == 10 })
        if count > 1 && Parallel.threads > 1 {
            #expect(workers.allSatisfy { $0 })
            #expect(Set(threadOf).count > 1, "\(count) jobs ran on one thread")
        }
        #expect(!Parallel.isWorker)
    }

    /// forRanges covers 0..<total in disjoint ranges of at least minChunk items.
    @Test func rangesCoverTheTotal() {
        for (total, minChunk) in [(1, 1), (10, 3), (1000, 16), (7, 100)] {
            var covered = [Int](repeating: 0, count: total)
            covered.withUnsafeMutableBufferPointer { c in
                let base = c.baseAddress!
                Parallel.forRanges(total, minChunk: minChunk) { r in
                    #expect(r.count >= min(minChunk, total))
                    for i in r { base[i] += 1 }
                }
            }
            #expect(covered.allSatisfy { $0 == 1 }, "total \(total), min chunk \(minChunk)")
        }
    }
}
