// The kernels for AVX2: 16 lanes in two ymm registers.
#if defined(__x86_64__)
#define VARIANT(name) name##_avx2
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#include "kernels_body.h"
#pragma clang attribute pop
#endif
