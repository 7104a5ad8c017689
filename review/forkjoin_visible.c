/* SPDX-License-Identifier: MIT (see LICENSE) */
/* forkjoin_visible.c: one job runs a typed fork-join fib (ASYNC_SPAWN/SYNC,
 * as bench/fj_async.c does) over 2 workers with the trace on. Does the
 * timeline show the workers busy? Prints, per worker track, the time covered
 * by job events against the job's wall time, and the steal instants. */
#include <stdio.h>
#include <stdlib.h>
#include "async/async.h"
#include "async/fork.h"

ASYNC_TASK_1(long, fib, int, n)
{
	if (n < 2)
		return n;
	ASYNC_SPAWN(fib, n - 1);
	long b = ASYNC_CALL(fib, n - 2);
	return ASYNC_SYNC(fib) + b;
}

static long result;
static void root(void *arg) { async_trace_label("fib-root"); result = fib(async_worker_self(), *(int *)arg); }

struct cover { uint64_t job_ns[8]; unsigned jobs[8], steals[8]; };
static int see(void *ud, const async_trace_event *ev)
{
	struct cover *c = ud;
	if (ev->track >= 8) return 0;
	if (ev->kind == ASYNC_TRACE_JOB) c->job_ns[ev->track] += ev->end_ns - ev->begin_ns, c->jobs[ev->track]++;
	if (ev->kind == ASYNC_TRACE_STEAL) c->steals[ev->track]++;
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 32;
	async_pool *p;
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 2; cfg.pin = 0;
	if (async_pool_create(&p, &cfg) != 0) return 1;
	async_pool_trace_start(p, 0);
	async_group g; async_job j;
	async_group_init(&g);
	async_job_init(&j, root, &n);
	uint64_t t0 = async_trace_now_ns();
	async_group_submit(p, &g, &j);
	async_group_wait_asleep(p, &g);
	uint64_t wall = async_trace_now_ns() - t0;
	async_pool_trace_stop(p);
	struct cover c = { { 0 } };
	async_pool_trace_collect(p, see, &c);
	async_worker_stats st[8];
	async_pool_stats(p, st, 8);
	printf("fib(%d) = %ld in %.1f ms\n", n, result, wall / 1e6);
	for (int w = 0; w < 2; w++)
		printf("worker %d: job events %u covering %.1f ms (%.0f%% of the wall time); steal instants %u; "
		       "stats: busy %.1f ms, steals %llu\n", w, c.jobs[w], c.job_ns[w] / 1e6, 100.0 * c.job_ns[w] / wall,
		       c.steals[w], st[w].busy_ns / 1e6, (unsigned long long)st[w].steals);
	async_pool_trace_write(p, "/tmp/rt-fib.json");
	async_pool_destroy(p);
	return 0;
}
