#!/usr/bin/env bash
# Compares the sgemm libraries on SmolLM2's linear shapes (scripts/bench_sgemm.c): OpenBLAS
# (its own threads, and single-threaded split over pthreads as sparc does), oneDNN and BLIS.
# Needs libopenblas-dev, libdnnl-dev, libblis-dev. Usage: bash scripts/bench_sgemm.sh [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")"
threads=${1:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gcc -O2 -DUSE_OPENBLAS bench_sgemm.c -I/usr/include/x86_64-linux-gnu/openblas-pthread $(pkg-config --cflags --libs openblas) -lpthread -o "$out/openblas"
gcc -O2 -DUSE_DNNL bench_sgemm.c -ldnnl -lpthread -o "$out/dnnl"
gcc -O2 -DUSE_BLIS -Wl,-rpath,/usr/lib/x86_64-linux-gnu/blis-openmp bench_sgemm.c -I/usr/include/x86_64-linux-gnu/blis-openmp -L/usr/lib/x86_64-linux-gnu/blis-openmp -lblis -lpthread -o "$out/blis"
. ./blas-env.sh  # the OpenBLAS kernels sparc would choose on this CPU
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); AVX-512: $(grep -qw avx512f /proc/cpuinfo && echo yes || echo no); OpenBLAS kernels: ${OPENBLAS_CORETYPE:-the library default}; $threads threads"
echo "== OpenBLAS, its own threads";                 "$out/openblas" "$threads"
echo "== OpenBLAS single-threaded, split as sparc does"; "$out/openblas" "$threads" split
echo "== oneDNN dnnl_sgemm";                          OMP_NUM_THREADS=$threads "$out/dnnl" "$threads"
echo "== BLIS";                                       OMP_NUM_THREADS=$threads BLIS_NUM_THREADS=$threads "$out/blis" "$threads"
