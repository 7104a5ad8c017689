/* SPDX-License-Identifier: MIT (see LICENSE) */
/* churn.c: tracing controlled from several threads at once while an engine
 * runs: two game-ish threads submit and wait (helping) and record spans;
 * three "tool" threads start (sizes 0/1/64/1000), stop, collect, collect_since
 * and write the file; one thread adds and stops workers; jobs label
 * themselves with NULL, long, non-UTF-8 names; finally the pool is destroyed
 * while the trace is on and jobs are still queued.
 * usage: churn SECONDS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "async/async.h"

static async_pool *pool;
static int stop_flag; /* atomics below */
static unsigned long events, bad, writes, write_fail;

static const char *labels[] = {
	NULL, "", "physics", "caf\xe9", "\xff\xfe\xfd",
	"\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9",
	"a very long label that goes on and on past forty-seven bytes, like a path /assets/level3/terrain.bin",
	"quote\" back\\slash \n newline \t tab",
};

struct work { async_job job; int k; volatile unsigned spin; };
static void work_fn(void *arg)
{
	struct work *w = arg;
	async_trace_label(labels[w->k % 8]);
	for (unsigned i = 0; i < 500; i++) w->spin += i;
	if (w->k % 5 == 0) {
		uint64_t t = async_trace_now_ns();
		async_pool_trace_record(pool, labels[(w->k / 5) % 8], t, async_trace_now_ns());
	}
}

static void *game(void *arg)
{
	(void)arg;
	struct work ws[32];
	int k = 0;
	while (!__atomic_load_n(&stop_flag, __ATOMIC_ACQUIRE)) {
		uint64_t f0 = async_trace_now_ns();
		async_group g;
		async_group_init(&g);
		for (int i = 0; i < 32; i++) {
			ws[i].k = k++;
			async_job_init(&ws[i].job, work_fn, &ws[i]);
			async_group_submit(pool, &g, &ws[i].job);
		}
		async_group_wait(pool, &g);
		async_pool_trace_record(pool, "frame", f0, async_trace_now_ns());
	}
	return NULL;
}

static int check(void *ud, const async_trace_event *ev)
{
	(void)ud;
	__atomic_add_fetch(&events, 1, __ATOMIC_RELAXED);
	if (ev->end_ns < ev->begin_ns || ev->kind > 3 || memchr(ev->name, 0, sizeof ev->name) == NULL)
		__atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
	return 0;
}

static void *tool(void *arg)
{
	long id = (long)arg;
	static const size_t sizes[] = { 0, 1, 64, 1000 };
	char path[64];
	snprintf(path, sizeof path, "/tmp/rt-churn-%ld.json", id);
	for (unsigned r = 0; !__atomic_load_n(&stop_flag, __ATOMIC_ACQUIRE); r++) {
		switch ((r + id) % 5) {
		case 0: async_pool_trace_start(pool, sizes[(r / 5 + id) % 4]); break;
		case 1: async_pool_trace_collect(pool, check, NULL); break;
		case 2: async_pool_trace_collect_since(pool, async_trace_now_ns() - 1000000, check, NULL); break;
		case 3:
			__atomic_add_fetch(&writes, 1, __ATOMIC_RELAXED);
			if (async_pool_trace_write(pool, path) != 0)
				__atomic_add_fetch(&write_fail, 1, __ATOMIC_RELAXED);
			break;
		case 4: if (r % 3 == 0) async_pool_trace_stop(pool); break;
		}
		usleep(200);
	}
	return NULL;
}

static void *scaler(void *arg)
{
	(void)arg;
	for (unsigned r = 0; !__atomic_load_n(&stop_flag, __ATOMIC_ACQUIRE); r++) {
		if (r % 2) async_pool_add_workers(pool, 2);
		else async_pool_stop_workers(pool, 2);
		usleep(2000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int secs = argc > 1 ? atoi(argv[1]) : 5;
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 2; cfg.max_workers = 6; cfg.pin = 0;
	if (async_pool_create(&pool, &cfg) != 0) return 1;
	pthread_t g[2], t[3], s;
	for (long i = 0; i < 2; i++) pthread_create(&g[i], NULL, game, NULL);
	for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, tool, (void *)i);
	pthread_create(&s, NULL, scaler, NULL);
	sleep(secs);
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++) pthread_join(g[i], NULL);
	for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
	pthread_join(s, NULL);
	/* Destroy while tracing, with jobs queued and a worker asked to stop. */
	async_pool_trace_start(pool, 16);
	static struct work left[256];
	for (int i = 0; i < 256; i++) {
		left[i].k = i;
		async_job_init(&left[i].job, work_fn, &left[i]);
		async_pool_submit(pool, &left[i].job);
	}
	async_pool_stop_workers(pool, 1);
	async_pool_destroy(pool);
	printf("churn: %lu events collected, %lu malformed, %lu writes (%lu failed)\n", events, bad, writes, write_fail);
	return bad != 0 || write_fail != 0;
}
