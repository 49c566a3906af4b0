// The element-wise kernels of one instruction set, as kernels.c dispatches to them.
#ifndef SPARC_KERNEL_TABLE_H
#define SPARC_KERNEL_TABLE_H

typedef float v16 __attribute__((ext_vector_type(16)));
typedef int v16i __attribute__((ext_vector_type(16)));

typedef struct {
    void (*exp)(float *x, long count);
    void (*softmax)(float *x, long count, long valid);
    void (*softmax_backward_causal)(const float *p, long p_stride, float *dp, long dp_stride, long rows, long offset,
                                    float scale);
    double (*log_sum_exp)(const float *x, long count);
    void (*activation)(int activation, float *x, long count);
    void (*activation_gated)(int activation, float *gate, const float *up, long count);
    void (*activation_backward)(int activation, float *d, const float *x, long count, int identity, float epsilon);
    void (*activation_gated_backward)(int activation, const float *d_product, const float *gate, const float *up,
                                      float *d_gate, float *d_up, long count, float share, int identity, float epsilon);
} kernel_table;

extern const kernel_table kernels_baseline;
#if defined(__x86_64__)
extern const kernel_table kernels_avx2;
extern const kernel_table kernels_avx512;
#endif

#endif
