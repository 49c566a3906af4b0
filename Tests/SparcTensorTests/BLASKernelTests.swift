import Testing
import SparcTensor

/// The kernel family chosen from CPU flags: AVX-512 (all five parts) → SkylakeX, AVX2 + FMA
/// → Haswell, anything older → OpenBLAS's own choice; never SkylakeX without AVX-512.
@Suite struct BLASKernelChoiceTests {
    @Test func coreTypeFollowsTheFlags() {
        let avx2: Set<String> = ["sse4_2", "avx", "avx2", "fma"]
        #expect(BLAS.preferredCoreType(cpuFlags: avx2) == "Haswell")
        #expect(BLAS.preferredCoreType(cpuFlags: avx2.union(["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"])) == "SkylakeX")
        #expect(BLAS.preferredCoreType(cpuFlags: avx2.union(["avx512f"])) == "Haswell")
        #expect(BLAS.preferredCoreType(cpuFlags: ["sse4_2", "avx"]) == nil)
        #expect(BLAS.preferredCoreType(cpuFlags: []) == nil)
    }

    @Test func flagsComeFromTheFirstProcessor() {
        let cpuinfo = "processor\t: 0\nflags\t\t: fpu avx2 fma\nbugs\t\t: x\n\nprocessor\t: 1\nflags\t\t: fpu\n"
        #expect(BLAS.cpuFlags(cpuinfo: cpuinfo) == ["fpu", "avx2", "fma"])
        #expect(BLAS.cpuFlags(cpuinfo: nil).isEmpty && BLAS.cpuFlags(cpuinfo: "garbage").isEmpty)
    }
}
