// glibc allocator tuning that Swift's Glibc module does not expose (malloc.h).
#ifndef SPARC_ALLOCATOR_H
#define SPARC_ALLOCATOR_H

/// Large allocations are served from one heap that is never trimmed, so big tensors are
/// reused rather than mapped and unmapped on every call (set before main, see allocator.c).
/// Returns 1 where the allocator took the settings (glibc), 0 elsewhere.
int sparc_keep_large_buffers_in_heap(void);

#endif
