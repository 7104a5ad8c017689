/* SPDX-License-Identifier: MIT (see LICENSE) */
/* detached.c: detached worker-ish threads (a fire-and-forget loader) each
 * record spans while a trace is on; a new thread may get a dead one's
 * thread-local address, which trace.c takes as the thread's identity, and
 * so writes the dead thread's ring. Under TSan: is that a race? */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include "async/async.h"
static async_pool *pool;
static int done;
static void *loader(void *arg)
{
	(void)arg;
	for (int i = 0; i < 50; i++) {
		uint64_t t = async_trace_now_ns();
		async_pool_trace_record(pool, "load", t, t + 1);
	}
	__atomic_add_fetch(&done, 1, __ATOMIC_RELEASE);
	return NULL;
}
static int count(void *ud, const async_trace_event *ev) { if (ev->track >= ASYNC_TRACE_OUTSIDE) (*(unsigned *)ud)++; return 0; }
int main(void)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 1; cfg.pin = 0;
	async_pool_create(&pool, &cfg);
	async_pool_trace_start(pool, 0);
	for (int i = 0; i < 200; i++) {
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		pthread_create(&t, &a, loader, NULL);
		pthread_attr_destroy(&a);
		while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) <= i)
			usleep(100);
		usleep(200);
	}
	unsigned n = 0;
	async_pool_trace_collect(pool, count, &n);
	printf("detached: %u outside events (10000 recorded)\n", n);
	async_pool_destroy(pool);
	return 0;
}
