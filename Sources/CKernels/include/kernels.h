// Element-wise kernels of the forward pass and the LRP backward: exp-based non-linearities
// and softmax. They are in C because Swift compiles its generic SIMD mask operations
// (`replacing(with:where:)`, `pointwiseMax`) to per-lane scalar code with stack spills: a
// profile of a 2048-token forward put 38 % of its time in Swift's softmax. Each function
// is built three times (AVX-512, AVX2, baseline x86-64) and the first call picks the one
// the CPU runs; all three do the same float operations in the same order, without fused
// multiply-adds, so results do not depend on the CPU.
#ifndef SPARC_KERNELS_H
#define SPARC_KERNELS_H

/// Activations, numbered as SparcModel's `Activation` enum maps them.
enum {
    SPARC_SILU = 0,       // x·σ(x)
    SPARC_GELU_TANH = 1,  // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    SPARC_GELU = 2,       // x·Φ(x) (erf)
    SPARC_RELU = 3,       // max(x, 0)
};

/// e^x for `count` floats, in place (relative error about 2 ulp; NaN stays NaN).
void sparc_exp(float *x, long count);

/// In place softmax of one row; entries at index ≥ `valid` become 0 (the causal mask).
void sparc_softmax(float *x, long count, long valid);

/// The softmax Jacobian applied to `rows` rows of a causal attention block whose first row
/// is query `offset` (it sees keys 0…offset; the block has offset + rows columns), in place:
/// dP[i, j] ← scale · P[i, j] · (dP[i, j] − Σ_{j' ≤ c} P[i, j'] dP[i, j']) for j ≤ c = offset + i,
/// 0 after. Rows are `p_stride` and `dp_stride` floats apart.
void sparc_softmax_backward_causal(const float *p, long p_stride, float *dp, long dp_stride, long rows, long offset,
                                   float scale);

/// log Σ exp(x) of one row, computed stably (the sum in double).
double sparc_log_sum_exp(const float *x, long count);

/// x ← f(x).
void sparc_activation(int activation, float *x, long count);

/// gate ← f(gate) ⊙ up (the gated product of SwiGLU / GeGLU).
void sparc_activation_gated(int activation, float *gate, const float *up, long count);

/// d ← d ⊙ (what f passes back at the pre-activation x): f'(x), or under the identity rule
/// (`identity` ≠ 0) f(x) / (x + epsilon).
void sparc_activation_backward(int activation, float *d, const float *x, long count, int identity, float epsilon);

/// Backward of m = f(gate) ⊙ up: dp = dProduct · share; dGate ← dp · up · (what f passes
/// back at gate), dUp ← dp · f(gate). `d_up` may alias `d_product`.
void sparc_activation_gated_backward(int activation, const float *d_product, const float *gate, const float *up,
                                     float *d_gate, float *d_up, long count, float share, int identity, float epsilon);

/// The instruction set of the kernels in use: "AVX-512", "AVX2" or "baseline".
const char *sparc_kernels_variant(void);

/// Uses variant 0 (baseline), 1 (AVX2) or 2 (AVX-512) from now on; returns 0 (and changes
/// nothing) when this CPU cannot run it. For tests and benchmarks.
int sparc_kernels_use(int variant);

/// How `sparc_fold` writes: add to acc, assign it, or assign it with non-temporal stores (a
/// fresh accumulator written once: hundreds of MB of it would only evict the cache).
enum { SPARC_FOLD_ADD = 0, SPARC_FOLD_ASSIGN = 1, SPARC_FOLD_ASSIGN_STREAMING = 2 };

/// acc (+)= scale · f(d) over `count` floats, f(d) = w ⊙ d (d alone when w is NULL), |·| of it
/// when `absolute`, computed as (w·d)·scale and added as acc + that. Memory-bound, so one
/// SSE2 copy serves every CPU, with the same float operations in the same order.
void sparc_fold(const float *d, const float *w, int absolute, float scale, float *acc, long count, int mode);

#endif
