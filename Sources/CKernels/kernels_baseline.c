// The kernels for any CPU the compiler targets by default (SSE2 on x86-64).
#define VARIANT(name) name##_baseline
#include "kernels_body.h"
