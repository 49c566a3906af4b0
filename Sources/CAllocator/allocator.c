#include "allocator.h"

// A libc header first: __GLIBC__ comes from <features.h>, which only a libc header pulls
// in. Testing it before one (as this file once did) compiled the empty fallback on glibc
// too, and every pass mapped and faulted in its buffers afresh.
#include <stdlib.h>

#ifdef __GLIBC__
#include <malloc.h>
int sparc_keep_large_buffers_in_heap(void) {
    // glibc rejects thresholds above 32 MiB (64-bit); mallopt returns 1 on success.
    return mallopt(M_MMAP_THRESHOLD, 32 << 20) && mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
}
#else
int sparc_keep_large_buffers_in_heap(void) { return 0; }
#endif
