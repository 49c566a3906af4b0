import Foundation
import Testing
@testable import SparcTensor

@Suite struct AllocatorTests {
    /// Minor page faults of the calling thread so far (Linux's RUSAGE_THREAD: tests running
    /// in parallel, loading oneDNN for one, fault pages in too).
    static func minorFaults() -> Int {
        var usage = rusage()
        getrusage(1, &usage)  // RUSAGE_THREAD (not in Swift's Glibc module)
        return usage.ru_minflt
    }

    /// Large buffers freed and allocated again come back from the heap with their pages
    /// mapped: writing them the second time faults (almost) nothing in. By default glibc maps
    /// such buffers afresh, or trims the heap once more than twice the last one is free, and
    /// 4 × 8 MiB would take ~8192 faults every round.
    @Test func largeBuffersAreReusedWithoutPageFaults() {
        #if canImport(Glibc)
        #expect(TensorStorage.keepsBuffersInTheHeap)
        #endif
        let count = 2 << 20  // 8 MiB of floats
        func writeOnce() {
            let buffers = (0..<4).map { _ in TensorStorage(count: count, zeroed: false) }
            for storage in buffers {
                let p = storage.pointer
                for i in stride(from: 0, to: count, by: 1024) { p[i] = Float(i) }
            }
            withExtendedLifetime(buffers) {}
        }
        writeOnce()
        // The fewest of three tries: the heap is shared with the tests running alongside, and
        // one of them may take the freed chunks in between (then ours grow the heap once).
        let faults = (0..<3).map { _ in
            let before = Self.minorFaults()
            for _ in 0..<4 { writeOnce() }
            return Self.minorFaults() - before
        }.min()!
        #if canImport(Glibc)
        // Sixteen fresh mappings would take ≥ 32768.
        #expect(faults < 1024, "reused 8 MiB buffers took \(faults) page faults")
        #endif
    }

    @Test func buffersAreCacheLineAligned() {
        for count in [0, 1, 3, 17, 1000, 1 << 20] {
            let storages = (0..<4).map { _ in TensorStorage(count: count, zeroed: true) }
            for s in storages {
                #expect(Int(bitPattern: s.pointer) % 64 == 0, "\(count) floats at \(s.pointer)")
                #expect((0..<count).allSatisfy { s.pointer[$0] == 0 })
            }
        }
    }
}
