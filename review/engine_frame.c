/* SPDX-License-Identifier: MIT (see LICENSE) */
/* engine_frame.c: a C engine's frame loop with tracing on: per frame the game
 * thread records "frame" and "update" spans, submits labelled jobs, runs a
 * parallel_for over particles (from the game thread), and waits (helping).
 * Jobs do what engine jobs do: one waits on a sub-group (the worker helps,
 * jobs nest), one spawns/syncs job records, one runs a typed fork-join fib
 * (ASYNC_SPAWN/ASYNC_SYNC). Then writes the trace to argv[1] and prints the
 * expected counts for check_trace.py: every labelled job/chunk once.
 * usage: engine_frame FILE [frames] [ring] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "async/async.h"
#include "async/fork.h"

static async_pool *pool;
static unsigned long expected_labels; /* labelled job events to expect */
static unsigned long fib_calls;

ASYNC_TASK_1(long, fib, int, n)
{
	if (n < 2)
		return n;
	ASYNC_SPAWN(fib, n - 1);
	long b = ASYNC_CALL(fib, n - 2);
	return ASYNC_SYNC(fib) + b;
}

struct leaf { async_job job; char name[32]; volatile unsigned spin; };

static void leaf_fn(void *arg)
{
	struct leaf *l = arg;
	async_trace_label(l->name);
	for (unsigned i = 0; i < 3000; i++)
		l->spin += i;
}

struct task { async_job job; int frame, i; };

static void waits_on_subgroup(struct task *t)
{
	struct leaf kids[8];
	async_group g;
	async_group_init(&g);
	for (int k = 0; k < 8; k++) {
		snprintf(kids[k].name, sizeof kids[k].name, "sub-%d-%d-%d", t->frame, t->i, k);
		async_job_init(&kids[k].job, leaf_fn, &kids[k]);
		async_group_submit(pool, &g, &kids[k].job);
	}
	async_group_wait(pool, &g);
}

static void spawns_records(struct task *t)
{
	struct leaf kids[8];
	for (int k = 0; k < 8; k++) {
		snprintf(kids[k].name, sizeof kids[k].name, "spawn-%d-%d-%d", t->frame, t->i, k);
		async_job_init(&kids[k].job, leaf_fn, &kids[k]);
		if (async_job_spawn(&kids[k].job) != 0)
			leaf_fn(&kids[k]); /* not a job of its own */
	}
	for (int k = 7; k >= 0; k--)
		async_job_sync(&kids[k].job);
}

static void task_fn(void *arg)
{
	struct task *t = arg;
	char name[32];
	snprintf(name, sizeof name, "task-%d-%d", t->frame, t->i);
	async_trace_label(name);
	switch (t->i % 3) {
	case 0: waits_on_subgroup(t); break;
	case 1: spawns_records(t); break;
	case 2: {
		long r = fib(async_worker_self(), 18);
		if (r != 2584) abort();
		break;
	}
	}
}

static void particles(void *arg, size_t b, size_t e)
{
	char name[40];
	snprintf(name, sizeof name, "pf-%d-%zu", *(int *)arg, b);
	async_trace_label(name);
	volatile double x = 0;
	for (size_t i = b; i < e; i++)
		for (int k = 0; k < 50; k++)
			x += (double)i * k;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/tmp/engine_frame.json";
	int frames = argc > 2 ? atoi(argv[2]) : 20;
	size_t ring = argc > 3 ? strtoull(argv[3], NULL, 0) : 0;
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 3;
	cfg.pin = 0;
	if (async_pool_create(&pool, &cfg) != 0)
		return 1;
	if (async_pool_trace_start(pool, ring) != 0)
		return 1;
	enum { TASKS = 9 };
	struct task tasks[TASKS];
	unsigned long pf_chunks = 0;
	for (int f = 0; f < frames; f++) {
		uint64_t f0 = async_trace_now_ns();
		async_group g;
		async_group_init(&g);
		for (int i = 0; i < TASKS; i++) {
			tasks[i].frame = f;
			tasks[i].i = i;
			async_job_init(&tasks[i].job, task_fn, &tasks[i]);
			async_group_submit(pool, &g, &tasks[i].job);
			expected_labels += 1 + (i % 3 != 2 ? 8 : 0);
		}
		uint64_t u0 = async_trace_now_ns();
		int fa = f;
		async_parallel_for(pool, 0, 4096, 128, particles, &fa);
		pf_chunks += 4096 / 128;
		async_pool_trace_record(pool, "update", u0, async_trace_now_ns());
		async_group_wait(pool, &g);
		async_pool_trace_record(pool, "frame", f0, async_trace_now_ns());
	}
	async_pool_trace_stop(pool);
	int rc = async_pool_trace_write(pool, path);
	async_worker_stats st[16];
	int nw = async_pool_stats(pool, st, 16);
	unsigned long steals = 0, jobs = 0;
	for (int i = 0; i < nw; i++)
		steals += st[i].steals, jobs += st[i].jobs;
	async_pool_destroy(pool);
	printf("{\"labelled\": %lu, \"pf\": %lu, \"frames\": %d, \"rc\": %d, \"steals\": %lu, \"worker_jobs\": %lu}\n",
	       expected_labels, pf_chunks, frames, rc, steals, jobs);
	return rc != 0;
}
