/* SPDX-License-Identifier: MIT (see LICENSE) */
/* trace_json.c: writes the trace of a known workload (1,000 labelled jobs on
 * two workers, 4 spans from this thread, 2 from another) to the file named
 * by argv[1], for check_trace_json.py to read as Perfetto would. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "async/async.h"
#include "trace_workload.h"

enum { JOBS = 1000 };

static async_pool *pool;

static void *record(void *arg)
{
	unsigned n = *(unsigned *)arg;
	for (unsigned i = 0; i < n; i++) {
		uint64_t t = async_trace_now_ns();
		if (async_pool_trace_record(pool, "frame \"quoted\"", t, t + 1500) != 0)
			exit(2);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: trace_json FILE\n");
		return 2;
	}
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 2;
	cfg.pin = 0;
	int rc = async_pool_create(&pool, &cfg);
	if (rc == 0)
		rc = async_pool_trace_start(pool, 0);
	if (rc != 0) {
		fprintf(stderr, "trace_json: %s\n", async_strerror(rc));
		return 1;
	}
	static struct labelled jobs[JOBS];
	async_group g;
	async_group_init(&g);
	init_labelled(jobs, JOBS);
	for (unsigned i = 0; i < JOBS; i++)
		if (async_group_submit(pool, &g, &jobs[i].job) != 0)
			return 1;
	unsigned three = 3, two = 2;
	record(&three);
	/* A label in Latin-1 beside one in UTF-8: the file stays UTF-8. */
	uint64_t now = async_trace_now_ns();
	if (async_pool_trace_record(pool, "caf\xe9 \xc3\xa9t\xc3\xa9", now, now + 1000) != 0)
		return 1;
	pthread_t t;
	pthread_create(&t, NULL, record, &two);
	pthread_join(t, NULL);
	async_group_wait_asleep(pool, &g);
	async_pool_trace_stop(pool);
	rc = async_pool_trace_write(pool, argv[1]);
	async_pool_destroy(pool);
	if (rc != 0) {
		fprintf(stderr, "trace_json: write: %s\n", async_strerror(rc));
		return 1;
	}
	printf("trace_json: wrote %s\n", argv[1]);
	return 0;
}
