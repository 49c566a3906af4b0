#include "allocator.h"

// A libc header first: __GLIBC__ comes from <features.h>, which only a libc header pulls
// in. Testing it before one (as this file once did) compiled the empty fallback on glibc
// too, and every pass mapped and faulted in its buffers afresh.
#include <stdlib.h>

#ifdef __GLIBC__
#include <malloc.h>

static int settings_taken;

// Before main, while the process has one thread: with one arena every thread allocates from
// the main heap, which obeys the trim threshold. A thread's own arena is a chain of 64 MiB
// heaps, and glibc unmaps any of them that falls wholly free whatever the threshold, so the
// next pass faults that memory in again.
__attribute__((constructor)) static void keep_large_buffers_in_heap(void) {
    settings_taken = mallopt(M_ARENA_MAX, 1)
        && mallopt(M_MMAP_THRESHOLD, 32 << 20)  // glibc rejects values above 32 MiB (64-bit)
        && mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
}

int sparc_keep_large_buffers_in_heap(void) { return settings_taken; }
#else
int sparc_keep_large_buffers_in_heap(void) { return 0; }
#endif
