/* os_mem.h: the portability layer for aligned allocations (cache-line
 * aligned pool and worker records). POSIX has posix_memalign + free; the
 * Windows CRT has _aligned_malloc, whose blocks must go to _aligned_free. */
#ifndef ASYNC_OS_MEM_H
#define ASYNC_OS_MEM_H

#include <stdlib.h>
#ifdef _WIN32
#include <malloc.h>
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

#endif
