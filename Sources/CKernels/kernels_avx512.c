// The kernels for AVX-512 (F): 16 lanes in one zmm register.
#if defined(__x86_64__)
#define VARIANT(name) name##_avx512
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#include "kernels_body.h"
#pragma clang attribute pop
#endif
