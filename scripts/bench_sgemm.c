// sgemm throughput of the BLAS libraries sparc could use, on SmolLM2's linear shapes
// (y = x·Wᵀ, row-major, W stored [out, in]), in one process per library (they export the
// same cblas symbols). Built and run by scripts/bench_sgemm.sh; see BENCHMARKS.md.
//   -DUSE_OPENBLAS: OpenBLAS with its own threads (openblas_set_num_threads(T)), and OpenBLAS
//                   single-threaded split over T pthreads by rows (columns when rows < 64),
//                   as sparc's BLAS.linear does;
//   -DUSE_DNNL:     oneDNN's dnnl_sgemm (OpenMP threads: OMP_NUM_THREADS);
//   -DUSE_BLIS:     BLIS's cblas_sgemm (bli_thread_set_num_threads(T)).
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(USE_DNNL)
#include <dnnl.h>
#else
#include <cblas.h>
#endif
#if defined(USE_OPENBLAS)
void openblas_set_num_threads(int);
#endif
#if defined(USE_BLIS)
void bli_thread_set_num_threads(long);
#endif

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static void gemm(int m, int n, int k, const float *x, const float *w, float *y) {
#if defined(USE_DNNL)
    dnnl_sgemm('N', 'T', m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
#else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
#endif
}

struct part { int m, n, k, ldy; const float *x, *w; float *y; };
static void *run_part(void *p) { struct part *q = p; 
#if !defined(USE_DNNL)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q->m, q->n, q->k, 1.0f, q->x, q->k, q->w, q->k, 0.0f, q->y, q->ldy);
#endif
    return NULL; }

// sparc's split: T pthreads, each a single-threaded sgemm on its rows (or columns).
static void split_gemm(int threads, int m, int n, int k, const float *x, const float *w, float *y) {
    pthread_t t[16]; struct part p[16];
    int by_cols = m < 4 * threads * 8;
    for (int i = 0; i < threads; i++) {
        int total = by_cols ? n : m, lo = total * i / threads, hi = total * (i + 1) / threads;
        p[i] = by_cols ? (struct part){m, hi - lo, k, n, x, w + (long)lo * k, y + lo}
                       : (struct part){hi - lo, n, k, n, x + (long)lo * k, w, y + (long)lo * n};
        pthread_create(&t[i], NULL, run_part, &p[i]);
    }
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, split = argc > 2 && strcmp(argv[2], "split") == 0;
    const int tokens[] = {64, 256};
    const int shapes[][2] = {{576, 576}, {576, 192}, {576, 1536}, {1536, 576}};  // (in, out): q/o, k/v, gate/up, down
    const int uses[] = {2, 2, 2, 1};
#if defined(USE_OPENBLAS)
    openblas_set_num_threads(split ? 1 : threads);
#elif defined(USE_BLIS)
    bli_thread_set_num_threads(threads);
#endif
    for (int t = 0; t < 2; t++) {
        double flops = 0, seconds = 0;
        for (int s = 0; s < 4; s++) {
            int m = tokens[t], k = shapes[s][0], n = shapes[s][1];
            float *x = calloc((size_t)m * k, 4), *w = calloc((size_t)n * k, 4), *y = calloc((size_t)m * n, 4);
            for (long i = 0; i < (long)m * k; i++) x[i] = (float)(i % 7) * 0.1f;
            for (long i = 0; i < (long)n * k; i++) w[i] = (float)(i % 5) * 0.1f;
            double best = 1e9;
            for (int r = 0; r < 30; r++) {
                double t0 = now();
                if (split) split_gemm(threads, m, n, k, x, w, y); else gemm(m, n, k, x, w, y);
                double dt = now() - t0;
                if (r > 2 && dt < best) best = dt;
            }
            flops += uses[s] * 2.0 * m * n * k;
            seconds += uses[s] * best;
            free(x); free(w); free(y);
        }
        printf("%d tokens: %.1f GFLOP/s\n", tokens[t], flops / seconds / 1e9);
    }
    return 0;
}
