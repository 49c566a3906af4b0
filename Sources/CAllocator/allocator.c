#include "allocator.h"

#ifdef __GLIBC__
#include <malloc.h>
void sparc_keep_large_buffers_in_heap(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc rejects values above 32 MiB (64-bit)
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
}
#else
void sparc_keep_large_buffers_in_heap(void) {}
#endif
