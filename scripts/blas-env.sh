# Sourced by test.sh (and usable by hand: `. scripts/blas-env.sh`): picks OpenBLAS's
# kernels from the CPU's flags when OPENBLAS_CORETYPE is not set. OpenBLAS 0.3.21 falls
# back to its SSE3 "Prescott" kernels on CPUs it does not know (measured 4.6× slower
# than its AVX-512 kernels on a 2-core Xeon, family 6 model 207) and calls AMD Zen 4 "Zen"
# (AVX2 kernels), and it reads the variable only when the library loads. SkylakeX
# kernels need AVX-512 F/BW/VL/DQ/CD: forcing them on an AVX2-only CPU crashes.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -r /proc/cpuinfo ]; then
    _flags=$(grep -m1 '^flags' /proc/cpuinfo)
    _has() { case " $_flags " in *" $1 "*) return 0;; *) return 1;; esac; }
    if _has avx512f && _has avx512bw && _has avx512vl && _has avx512dq && _has avx512cd; then
        export OPENBLAS_CORETYPE=SkylakeX
    elif _has avx2 && _has fma; then
        export OPENBLAS_CORETYPE=Haswell
    fi
    unset _flags
    unset -f _has
fi
