/* SPDX-License-Identifier: MIT (see LICENSE) */
/* two_pools.c: the game thread records its spans to two traced pools (render
 * and io), alternately, as an engine with two pools does. The outside ring
 * cache holds one pool, so each record to the other takes the trace mutex.
 * Meanwhile a tool thread writes the trace of io to a file: how long does the
 * game thread's record then take? (async_pool_trace_record: "never blocks but
 * at a thread's first record after a start".) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "async/async.h"
static async_pool *a, *b;
static int stop;
static void *writer(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
		async_pool_trace_write(b, "/tmp/rt-two-pools.json");
	return NULL;
}
static void measure(const char *what, int alternate)
{
	enum { N = 200000 };
	uint64_t worst = 0, t0 = async_trace_now_ns();
	for (int i = 0; i < N; i++) {
		uint64_t s = async_trace_now_ns();
		async_pool_trace_record(alternate && (i & 1) ? b : a, "span", s, s);
		uint64_t d = async_trace_now_ns() - s;
		if (d > worst) worst = d;
	}
	printf("%-45s %6.0f ns a record, worst %8.3f ms\n", what, (double)(async_trace_now_ns() - t0) / N, worst / 1e6);
}
int main(void)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 1; cfg.pin = 0;
	async_pool_create(&a, &cfg);
	async_pool_create(&b, &cfg);
	async_pool_trace_start(a, 0);
	async_pool_trace_start(b, 0);
	measure("one pool", 0);
	measure("two pools alternately", 1);
	pthread_t t;
	pthread_create(&t, NULL, writer, NULL);
	measure("one pool, other pool's trace being written", 0);
	measure("two pools alternately, io's trace being written", 1);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	async_pool_destroy(a);
	async_pool_destroy(b);
	return 0;
}
