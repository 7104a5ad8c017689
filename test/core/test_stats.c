/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_stats.c: async_pool_queued across the external producers' stat slots
 * (submit.c): more threads than slots, threads that exit and new ones that
 * take their place, a worker of one pool submitting to another, and the
 * shutdown runner submitting to another pool. At rest the count is exact. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>

#include "async/async.h"
#include "watchdog.h"
#include "pool_helpers.h"

enum { JOBS = 64, THREADS = 40 }; /* past the 16 slots, twice over */

static void bump(void *arg)
{
	__atomic_fetch_add((unsigned *)arg, 1, __ATOMIC_SEQ_CST);
}

struct feed {
	async_pool *p;
	async_job *jobs;
	unsigned *ran;
	int refused;
};

static void *feed(void *arg)
{
	struct feed *f = arg;
	for (int i = 0; i < JOBS; i++) {
		async_job_init(&f->jobs[i], bump, f->ran);
		if (async_pool_submit(f->p, &f->jobs[i]) != 0)
			f->refused++;
	}
	return NULL;
}

/* Threads come and go (each exits holding its slot): the slots run out,
 * the rest share the locked counter, and nothing is lost or counted twice. */
Test(stats, queued_is_exact_past_the_slots_and_across_thread_exits)
{
	async_pool *p = make_pool(0); /* nothing runs: everything stays queued */
	unsigned ran = 0;
	async_job *jobs = calloc((size_t)THREADS * JOBS, sizeof *jobs);
	struct feed f[THREADS];
	for (int wave = 0; wave < 2; wave++) {
		pthread_t t[THREADS / 2];
		for (int k = 0; k < THREADS / 2; k++) {
			int i = wave * THREADS / 2 + k;
			f[i] = (struct feed){ p, &jobs[(size_t)i * JOBS], &ran, 0 };
			pthread_create(&t[k], NULL, feed, &f[i]);
		}
		for (int k = 0; k < THREADS / 2; k++)
			pthread_join(t[k], NULL);
		cr_assert_eq(async_pool_queued(p), (int64_t)(wave + 1) * THREADS / 2 * JOBS);
	}
	cr_assert_eq(async_pool_add_workers(p, 2), 2);
	watchdog_arm(60, "shutdown after the producer waves");
	cr_assert_eq(async_pool_shutdown(p), 0);
	watchdog_disarm();
	cr_assert_eq(ran, THREADS * JOBS);
	cr_assert_eq(async_pool_queued(p), 0);
	async_pool_destroy(p);
	free(jobs);
}

/* A worker of pool a (and then a's shutdown runner) is an outside producer
 * for pool b: its jobs count in b, not in a. */
struct cross {
	async_pool *b;
	async_job jobs[JOBS];
	unsigned ran;
	int refused;
};

static void submit_range_to_b(struct cross *c, int from, int to)
{
	for (int i = from; i < to; i++) {
		async_job_init(&c->jobs[i], bump, &c->ran);
		c->refused += async_pool_submit(c->b, &c->jobs[i]) != 0;
	}
}

static void submit_to_b(void *arg) { submit_range_to_b(arg, 0, JOBS / 2); }
static void submit_rest_to_b(void *arg) { submit_range_to_b(arg, JOBS / 2, JOBS); }

Test(stats, a_worker_of_one_pool_counts_as_a_producer_of_another)
{
	async_pool *a = make_pool(1), *b = make_pool(0);
	struct cross c = { .b = b };
	run_on_pool(a, submit_to_b, &c, 60, "a job submitting to another pool");
	cr_assert_eq(c.refused, 0);
	cr_assert_eq(async_pool_queued(b), JOBS / 2);
	cr_assert_eq(async_pool_queued(a), 0);
	/* a leftover of a's shutdown (no worker left to run it) submits too */
	cr_assert_eq(async_pool_stop_workers(a, 1), 1);
	async_job k;
	async_job_init(&k, submit_rest_to_b, &c);
	cr_assert_eq(async_pool_submit(a, &k), 0);
	watchdog_arm(60, "a's shutdown");
	cr_assert_eq(async_pool_shutdown(a), 0);
	watchdog_disarm();
	cr_assert_eq(c.refused, 0);
	cr_assert_eq(async_pool_queued(a), 0);
	cr_assert_eq(async_pool_queued(b), JOBS);
	cr_assert_eq(async_pool_add_workers(b, 1), 1);
	watchdog_arm(60, "b's shutdown");
	cr_assert_eq(async_pool_shutdown(b), 0);
	watchdog_disarm();
	cr_assert_eq(c.ran, JOBS);
	cr_assert_eq(async_pool_queued(b), 0);
	async_pool_destroy(a);
	async_pool_destroy(b);
}
