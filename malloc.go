package main

/*
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

// kgo_malloc_maps reports whether malloc(n) maps its block (1) or takes it from the heap (0);
// -1 where the C library cannot tell (not glibc 2.33 or later).
static int kgo_malloc_maps(size_t n) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 before = mallinfo2();
    void *volatile p = malloc(n); // volatile: the compiler may not leave the pair out
    struct mallinfo2 after = mallinfo2();
    free(p);
    return after.hblks > before.hblks;
#else
    (void) n;
    return -1;
#endif
}
*/
import "C"

import "sync"

// hostMallocBlock is the size of the block raiseMmapThreshold allocates and frees: that of the
// buffer Fluent Bit's C kinesis_streams output allocates for every flush.
const hostMallocBlock = 5 << 20

var raiseOnce sync.Once

// raiseMmapThreshold allocates and frees one block of hostMallocBlock bytes with the C
// allocator, once per process. In glibc, freeing a block that was mapped raises the size from
// which later allocations are mapped (to at most 32 MiB), unless a program or
// MALLOC_MMAP_THRESHOLD_ fixed it: Fluent Bit's chunks, about 2 MB each, then come from the heap
// and are used again, instead of being mapped, zeroed by the kernel and unmapped (with TLB
// shootdowns) for each chunk. The C output does the same with its flush buffer. Other C
// libraries map and unmap the block, nothing else.
func raiseMmapThreshold() {
	raiseOnce.Do(func() { C.free(C.malloc(hostMallocBlock)) })
}

// mallocMaps reports whether the C allocator maps a block of n bytes, and false for ok where it
// cannot tell.
func mallocMaps(n int) (maps, ok bool) {
	r := C.kgo_malloc_maps(C.size_t(n))
	return r == 1, r >= 0
}
