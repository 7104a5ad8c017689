/* SPDX-License-Identifier: MIT (see LICENSE) */
/* os_mem.h: the portability layer for aligned allocations (cache-line
 * aligned pool and worker records) and for page-granular arrays. POSIX has posix_memalign + free; the
 * Windows CRT has _aligned_malloc, whose blocks must go to _aligned_free. */
#ifndef ASYNC_OS_MEM_H
#define ASYNC_OS_MEM_H

#include <stdlib.h>
#ifdef _WIN32
#include <malloc.h>
#include <windows.h>
#else
#include <sys/mman.h>
#endif

/* 0 on success, non-zero when out of memory (as posix_memalign). */
static inline int async_os_aligned_alloc(void **out, size_t align, size_t size)
{
#ifdef _WIN32
	*out = _aligned_malloc(size, align);
	return *out == NULL;
#else
	return posix_memalign(out, align, size);
#endif
}

static inline void async_os_aligned_free(void *p)
{
#ifdef _WIN32
	_aligned_free(p);
#else
	free(p);
#endif
}

/* Zeroed pages for a large array that is touched only as deep as it is used
 * (a worker's fork-join frames): reserved without swap on POSIX; on Windows
 * committed at once (the pages are still only zero-filled when first
 * touched). NULL when out of memory. */
static inline void *async_os_pages_alloc(size_t size)
{
#ifdef _WIN32
	return VirtualAlloc(NULL, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
#else
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return m == MAP_FAILED ? NULL : m;
#endif
}

static inline void async_os_pages_free(void *p, size_t size)
{
#ifdef _WIN32
	(void)size;
	VirtualFree(p, 0, MEM_RELEASE);
#else
	munmap(p, size);
#endif
}

#endif
