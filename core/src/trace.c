/* SPDX-License-Identifier: MIT (see LICENSE) */
/* trace.c: the pool's timeline (async/trace.h). Placeholder implementations
 * that record nothing, so that the interface can be built against. */
#include "pool_impl.h"
#include "async/trace.h"

int async_pool_trace_start(async_pool *pool, size_t events_per_thread)
{
	(void)events_per_thread;
	return pool == NULL ? ASYNC_EINVAL : 0;
}

int async_pool_trace_stop(async_pool *pool)
{
	return pool == NULL ? ASYNC_EINVAL : 0;
}

int async_pool_trace_on(const async_pool *pool)
{
	(void)pool;
	return 0;
}

void async_trace_label(const char *name)
{
	(void)name;
}

uint64_t async_trace_now_ns(void)
{
	return now_ns();
}

int async_pool_trace_record(async_pool *pool, const char *name, uint64_t begin_ns, uint64_t end_ns)
{
	(void)name;
	return pool == NULL || end_ns < begin_ns ? ASYNC_EINVAL : 0;
}

int async_pool_trace_collect_since(async_pool *pool, uint64_t since_ns, async_trace_visit_fn fn, void *ud)
{
	(void)since_ns;
	(void)ud;
	return pool == NULL || fn == NULL ? ASYNC_EINVAL : 0;
}

int async_pool_trace_collect(async_pool *pool, async_trace_visit_fn fn, void *ud)
{
	return async_pool_trace_collect_since(pool, 0, fn, ud);
}

int async_pool_trace_write(async_pool *pool, const char *path)
{
	(void)path;
	return pool == NULL || path == NULL ? ASYNC_EINVAL : ASYNC_EIO;
}
