// The kernels' bodies, compiled once per instruction set by kernels_<isa>.c, each with
// `VARIANT(name)` naming its copy and every function here built for that instruction set.
#include "kernel_table.h"
#include "kernels.h"

#include <math.h>
#include <string.h>

// Swift's kernels did these operations without contraction; keeping them separate keeps
// every CPU's results identical (an FMA rounds once where a multiply and an add round twice).
#pragma clang fp contract(off)

// The 16-lane values only pass between always-inlined functions of one copy, built for one
// instruction set: the ABI of 512-bit arguments that clang warns about never applies.
#pragma clang diagnostic ignored "-Wpsabi"

#define INLINE static inline __attribute__((always_inline))

// ---- 16-lane helpers ----------------------------------------------------------------

INLINE v16 splat(float x) { return (v16)x; }

// Lanes where `mask` is set take `a`, the others `b` (a comparison's mask is all ones or zeros).
INLINE v16 select16(v16i mask, v16 a, v16 b) { return (v16)((mask & (v16i)a) | (~mask & (v16i)b)); }
INLINE v16i select16i(v16i mask, v16i a, v16i b) { return (mask & a) | (~mask & b); }

INLINE v16 load16(const float *p) { v16 v; memcpy(&v, p, sizeof v); return v; }
INLINE void store16(v16 v, float *p) { memcpy(p, &v, sizeof v); }

// The first n < 16 floats at p, the other lanes set to `fill`.
INLINE v16 load_partial(const float *p, long n, float fill) {
    float lanes[16];
    for (int j = 0; j < 16; j++) lanes[j] = fill;
    memcpy(lanes, p, (size_t)n * sizeof(float));
    return load16(lanes);
}
INLINE void store_partial(v16 v, float *p, long n) {
    float lanes[16];
    store16(v, lanes);
    memcpy(p, lanes, (size_t)n * sizeof(float));
}

// Lane sums and maxima in lane order (as Swift's SIMD sum() and max() did).
INLINE float lane_sum(v16 v) { float s = -0.0f; for (int j = 0; j < 16; j++) s += v[j]; return s; }
INLINE float lane_max(v16 v) { float m = v[0]; for (int j = 1; j < 16; j++) m = v[j] > m ? v[j] : m; return m; }

// e^x: x = n·ln 2 + r (Cody–Waite, two constants), e^r by a degree-6 polynomial (Cephes'
// expf), 2^n from the exponent bits. Inputs below -87.3 give 0, above 88.7 +inf.
INLINE v16 exp16(v16 x) {
    const v16 lo = splat(-87.33654f), hi = splat(88.72283f);
    v16i nan = x != x;
    v16 xc = select16(nan, splat(0), x);
    xc = select16(xc < lo, lo, xc);
    xc = select16(xc > hi, hi, xc);
    // Round to nearest by adding 1.5·2²³: the integer lands in the low mantissa bits.
    const v16 magic = splat(12582912.0f);
    v16 shifted = xc * splat(1.442695041f) + magic;
    v16 n = shifted - magic;
    v16 r = xc - n * splat(0.693359375f);
    r = r - n * splat(-2.12194440e-4f);
    v16 p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    p = p * r * r + r + splat(1);
    // 2^n: n + 127 into the exponent field; n ∈ [-126, 128] after clamping, and n = 128
    // (x near 88.7) is finished with a second factor of 2.
    v16i ni = (v16i)shifted - 0x4B400000;
    v16i top = ni == 128;
    v16i e = select16i(top, (v16i)254, ni + 127);
    v16 result = p * (v16)(e << 23);
    result = select16(top, result * splat(2), result);
    result = select16(x < lo, splat(0), result);
    result = select16(x > hi, splat(INFINITY), result);
    return select16(nan, splat(NAN), result);
}

// ---- activations ------------------------------------------------------------------------

typedef struct { v16 f, df; } value_t;

// f(x) and f'(x) for 16 lanes.
INLINE value_t value16(int activation, v16 x) {
    const v16 one = splat(1), half = splat(0.5f);
    value_t out;
    switch (activation) {
    case SPARC_SILU: {
        v16 sig = one / (one + exp16(-x));
        out.f = x * sig;
        out.df = sig * (one + x * (one - sig));
        break;
    }
    case SPARC_GELU_TANH: {
        // tanh(u) = 1 − 2/(e^{2u} + 1).
        const v16 c = splat(0.7978845608028654f), k = splat(0.044715f);
        v16 u = c * (x + k * x * x * x);
        v16 t = one - splat(2) / (exp16(splat(2) * u) + one);
        v16 du = c * (one + splat(3) * k * x * x);
        out.f = half * x * (one + t);
        out.df = half * (one + t) + half * x * (one - t * t) * du;
        break;
    }
    case SPARC_GELU:
        for (int j = 0; j < 16; j++) {
            float cdf = 0.5f * (1 + erff(x[j] / sqrtf(2.0f)));
            float pdf = expf(-0.5f * x[j] * x[j]) / sqrtf(2 * (float)M_PI);
            out.f[j] = x[j] * cdf;
            out.df[j] = cdf + x[j] * pdf;
        }
        break;
    default: { // SPARC_RELU
        v16i negative = x < splat(0);
        out.f = select16(negative, splat(0), x);
        out.df = select16(x > splat(0), one, splat(0));
        break;
    }
    }
    return out;
}

// What f passes back: f'(x), or under the identity rule (AttnLRP Eq. 9) f(x)/(x + ε).
INLINE value_t passed16(int activation, v16 x, int identity, float epsilon) {
    value_t v = value16(activation, x);
    if (identity) v.df = v.f / (x + splat(epsilon));
    return v;
}

// Runs `body` over 16-lane chunks; the tail goes through a zero-padded chunk.
#define CHUNKS(count, ...)                                                     \
    for (long i = 0; i < (count); i += 16) {                                   \
        long n = (count) - i < 16 ? (count) - i : 16;                          \
        __VA_ARGS__                                                            \
    }
#define LOAD(p) (n == 16 ? load16((p) + i) : load_partial((p) + i, n, 0))
#define STORE(v, p) do { if (n == 16) store16((v), (p) + i); else store_partial((v), (p) + i, n); } while (0)

static void VARIANT(exp)(float *x, long count) {
    CHUNKS(count, { STORE(exp16(LOAD(x)), x); })
}

static void VARIANT(activation)(int activation, float *x, long count) {
    CHUNKS(count, { STORE(value16(activation, LOAD(x)).f, x); })
}

static void VARIANT(activation_gated)(int activation, float *gate, const float *up, long count) {
    CHUNKS(count, { STORE(value16(activation, LOAD(gate)).f * LOAD(up), gate); })
}

static void VARIANT(activation_backward)(int activation, float *d, const float *x, long count, int identity, float epsilon) {
    CHUNKS(count, { STORE(LOAD(d) * passed16(activation, LOAD(x), identity, epsilon).df, d); })
}

static void VARIANT(activation_gated_backward)(int activation, const float *d_product, const float *gate, const float *up,
                                            float *d_gate, float *d_up, long count, float share, int identity, float epsilon) {
    CHUNKS(count, {
        v16 dp = LOAD(d_product) * splat(share), g = LOAD(gate), u = LOAD(up);
        value_t v = passed16(activation, g, identity, epsilon);
        STORE(dp * u * v.df, d_gate);
        STORE(dp * v.f, d_up);
    })
}

// ---- softmax ----------------------------------------------------------------------------

static void VARIANT(softmax)(float *x, long count, long valid) {
    if (valid <= 0) { memset(x, 0, (size_t)count * sizeof(float)); return; }
    long full = valid / 16 * 16, tail = valid - full;
    v16 vmax = splat(-INFINITY);
    for (long i = 0; i < full; i += 16) { v16 v = load16(x + i); vmax = select16(vmax < v, v, vmax); }
    if (tail > 0) { v16 v = load_partial(x + full, tail, -INFINITY); vmax = select16(vmax < v, v, vmax); }
    v16 m = splat(lane_max(vmax));
    v16 sum = splat(0);
    for (long i = 0; i < full; i += 16) {
        v16 e = exp16(load16(x + i) - m);
        store16(e, x + i);
        sum += e;
    }
    v16 tail_values = splat(0);
    if (tail > 0) {
        // Padding lanes hold -inf, whose exponential is 0: they add nothing to the sum.
        tail_values = exp16(load_partial(x + full, tail, -INFINITY) - m);
        sum += tail_values;
    }
    v16 inv = splat(1 / lane_sum(sum));
    for (long i = 0; i < full; i += 16) store16(load16(x + i) * inv, x + i);
    if (tail > 0) store_partial(tail_values * inv, x + full, tail);
    if (valid < count) memset(x + valid, 0, (size_t)(count - valid) * sizeof(float));
}

static void VARIANT(softmax_backward_causal)(const float *p, long p_stride, float *dp, long dp_stride, long rows,
                                             long offset, float scale) {
    long columns = offset + rows;
    for (long i = 0; i < rows; i++) {
        const float *pr = p + i * p_stride;
        float *dr = dp + i * dp_stride;
        long valid = offset + i + 1, full = valid / 16 * 16;
        v16 acc = splat(0);
        for (long j = 0; j < full; j += 16) acc += load16(pr + j) * load16(dr + j);
        float dot = lane_sum(acc);
        for (long j = full; j < valid; j++) dot += pr[j] * dr[j];
        const v16 vdot = splat(dot), vscale = splat(scale);
        for (long j = 0; j < full; j += 16) store16(load16(pr + j) * (load16(dr + j) - vdot) * vscale, dr + j);
        for (long j = full; j < valid; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
        if (valid < columns) memset(dr + valid, 0, (size_t)(columns - valid) * sizeof(float));
    }
}

static double VARIANT(log_sum_exp)(const float *x, long count) {
    float m = -INFINITY;
    for (long i = 0; i < count; i++) m = x[i] > m ? x[i] : m;
    double s = 0;
    const v16 vm = splat(m);
    long i = 0;
    for (; i + 16 <= count; i += 16) s += (double)lane_sum(exp16(load16(x + i) - vm));
    for (; i < count; i++) s += (double)exp16(splat(x[i] - m))[0];
    return (double)m + log(s);
}

const kernel_table VARIANT(kernels) = {
    VARIANT(exp), VARIANT(softmax), VARIANT(softmax_backward_causal), VARIANT(log_sum_exp), VARIANT(activation),
    VARIANT(activation_gated), VARIANT(activation_backward), VARIANT(activation_gated_backward),
};
