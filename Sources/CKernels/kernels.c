// Dispatch: the first call picks the kernels of the best instruction set this CPU has.
#include "kernels.h"
#include "kernel_table.h"

#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static const kernel_table *const variants[] = {
    &kernels_baseline,
#if defined(__x86_64__)
    &kernels_avx2,
    &kernels_avx512,
#endif
};
static const char *const variant_names[] = {"baseline", "AVX2", "AVX-512"};
static const int variant_count = sizeof variants / sizeof variants[0];

// The best variant this CPU runs.
static int best_supported(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2")) return 1;
#endif
    return 0;
}

// -1 until chosen. Every variant computes the same results, so a race to choose is harmless.
static _Atomic int chosen = -1;

// The best supported variant, or a lower one named by SPARC_KERNELS ("baseline", "avx2",
// "avx512": to measure what a CPU without AVX-512 would run).
static int initial_choice(void) {
    int best = best_supported();
    const char *asked = getenv("SPARC_KERNELS");
    if (asked == NULL) return best;
    int v = strcmp(asked, "baseline") == 0 ? 0 : strcmp(asked, "avx2") == 0 ? 1 : strcmp(asked, "avx512") == 0 ? 2 : best;
    return v < best ? v : best;
}

static const kernel_table *table(void) {
    int v = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (v < 0) {
        v = initial_choice();
        atomic_store_explicit(&chosen, v, memory_order_relaxed);
    }
    return variants[v];
}

const char *sparc_kernels_variant(void) {
    (void)table();
    return variant_names[atomic_load_explicit(&chosen, memory_order_relaxed)];
}

int sparc_kernels_use(int variant) {
    if (variant < 0 || variant >= variant_count || variant > best_supported()) return 0;
    atomic_store_explicit(&chosen, variant, memory_order_relaxed);
    return 1;
}

void sparc_exp(float *x, long count) { table()->exp(x, count); }
void sparc_softmax(float *x, long count, long valid) { table()->softmax(x, count, valid); }
void sparc_softmax_backward_causal(const float *p, long p_stride, float *dp, long dp_stride, long rows, long offset,
                                   float scale) {
    table()->softmax_backward_causal(p, p_stride, dp, dp_stride, rows, offset, scale);
}
double sparc_log_sum_exp(const float *x, long count) { return table()->log_sum_exp(x, count); }
void sparc_activation(int activation, float *x, long count) { table()->activation(activation, x, count); }
void sparc_activation_gated(int activation, float *gate, const float *up, long count) {
    table()->activation_gated(activation, gate, up, count);
}
void sparc_activation_backward(int activation, float *d, const float *x, long count, int identity, float epsilon) {
    table()->activation_backward(activation, d, x, count, identity, epsilon);
}
void sparc_activation_gated_backward(int activation, const float *d_product, const float *gate, const float *up,
                                     float *d_gate, float *d_up, long count, float share, int identity, float epsilon) {
    table()->activation_gated_backward(activation, d_product, gate, up, d_gate, d_up, count, share, identity, epsilon);
}

#pragma clang fp contract(off)

static inline float fold_one(const float *d, const float *w, int absolute, float scale, long i) {
    float v = w ? w[i] * d[i] : d[i];
    return (absolute ? fabsf(v) : v) * scale;
}

static inline void fold_scalar(const float *d, const float *w, int absolute, float scale, float *acc, long i, int mode) {
    float v = fold_one(d, w, absolute, scale, i);
    acc[i] = mode == SPARC_FOLD_ADD ? acc[i] + v : v;
}

void sparc_fold(const float *d, const float *w, int absolute, float scale, float *acc, long count, int mode) {
    long i = 0;
#if defined(__x86_64__)
    // Scalar up to a 16-byte boundary of acc (streaming stores need it), then 4 lanes a step.
    while (i < count && ((unsigned long)(acc + i) & 15) != 0) { fold_scalar(d, w, absolute, scale, acc, i, mode); i++; }
    const __m128 s = _mm_set1_ps(scale), sign = _mm_set1_ps(-0.0f);
    for (; i + 4 <= count; i += 4) {
        __m128 v = _mm_loadu_ps(d + i);
        if (w) v = _mm_mul_ps(_mm_loadu_ps(w + i), v);
        if (absolute) v = _mm_andnot_ps(sign, v);
        v = _mm_mul_ps(v, s);
        if (mode == SPARC_FOLD_ADD) _mm_store_ps(acc + i, _mm_add_ps(_mm_load_ps(acc + i), v));
        else if (mode == SPARC_FOLD_ASSIGN) _mm_store_ps(acc + i, v);
        else _mm_stream_ps(acc + i, v);
    }
    if (mode == SPARC_FOLD_ASSIGN_STREAMING) _mm_sfence();
#endif
    for (; i < count; i++) fold_scalar(d, w, absolute, scale, acc, i, mode);
}
