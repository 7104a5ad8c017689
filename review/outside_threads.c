/* SPDX-License-Identifier: MIT (see LICENSE) */
/* outside_threads.c: an engine whose loader/IO threads come and go (a thread
 * per asset batch, as std::async or a task-per-thread loader does) and each
 * records one span, or waits on a group (and so runs a job as a helper),
 * while a trace is on. How many outside tracks and how much memory does the
 * trace hold after R rounds of N short-lived threads? Is it bounded?
 * usage: outside_threads ROUNDS THREADS_PER_ROUND [wait] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "async/async.h"

static async_pool *pool;
static pthread_barrier_t bar;
static int use_wait;

static void job_fn(void *arg) { (void)arg; async_trace_label("load"); }

static void *loader(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&bar); /* all alive at once */
	if (use_wait) {
		async_group g; async_job j;
		async_group_init(&g);
		async_job_init(&j, job_fn, NULL);
		async_group_submit(pool, &g, &j);
		async_group_wait(pool, &g);
	}
	unsigned records = getenv("RECORDS") ? (unsigned)atoi(getenv("RECORDS")) : 1;
	for (unsigned i = 0; i < records; i++) {
		uint64_t t = async_trace_now_ns();
		int rc = async_pool_trace_record(pool, "asset batch", t, t + 10);
		if (rc != 0)
			fprintf(stderr, "record: %s\n", async_strerror(rc));
	}
	pthread_barrier_wait(&bar);
	return NULL;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = atol(line + 6);
	if (f) fclose(f);
	return kib;
}
static long vm_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmSize:", 7) == 0)
			kib = atol(line + 7);
	if (f) fclose(f);
	return kib;
}

struct tracks { unsigned char seen[1 << 16]; unsigned n, maxtrack, events; };
static int count(void *ud, const async_trace_event *ev)
{
	struct tracks *t = ud;
	t->events++;
	unsigned k = ev->track - ASYNC_TRACE_OUTSIDE;
	if (ev->track >= ASYNC_TRACE_OUTSIDE && k < (1u << 16) && !t->seen[k]) {
		t->seen[k] = 1;
		t->n++;
		if (ev->track > t->maxtrack) t->maxtrack = ev->track;
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned rounds = argc > 1 ? atoi(argv[1]) : 20, n = argc > 2 ? atoi(argv[2]) : 16;
	use_wait = argc > 3;
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 2; cfg.pin = 0;
	if (async_pool_create(&pool, &cfg) != 0) return 1;
	if (async_pool_trace_start(pool, 0) != 0) return 1;
	printf("before: rss %ld KiB, vm %ld KiB\n", rss_kib(), vm_kib());
	pthread_t *t = calloc(n, sizeof *t);
	for (unsigned r = 0; r < rounds; r++) {
		pthread_barrier_init(&bar, NULL, n);
		pthread_attr_t a;
		pthread_attr_init(&a);
		/* Loaders of different libraries ask for different stacks. */
		if (getenv("VARY_STACK"))
			pthread_attr_setstacksize(&a, (256 + 16 * r) * 1024);
		for (unsigned i = 0; i < n; i++)
			pthread_create(&t[i], &a, loader, NULL);
		pthread_attr_destroy(&a);
		for (unsigned i = 0; i < n; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&bar);
	}
	struct tracks *tr = calloc(1, sizeof *tr);
	async_pool_trace_collect(pool, count, tr);
	printf("after %u rounds of %u threads (%u threads, at most %u alive at once): "
	       "%u outside tracks (highest tid %u), %u events; rss %ld KiB, vm %ld KiB\n",
	       rounds, n, rounds * n, n, tr->n, tr->maxtrack, tr->events, rss_kib(), vm_kib());
	if (async_pool_trace_write(pool, "/tmp/review-trace-outside.json") != 0) printf("write failed\n");
	async_pool_destroy(pool);
	return 0;
}
