/* SPDX-License-Identifier: MIT (see LICENSE) */
/* pool_helpers.h: for the core suites that need a small unpinned pool
 * (test_fork*.c, test_stats.c): the pool, a way to run one job on it under
 * the watchdog, the pool's steals, and the fork-join suites' scale. */
#ifndef ASYNC_TEST_POOL_HELPERS_H
#define ASYNC_TEST_POOL_HELPERS_H

#include <criterion/criterion.h>

#include "async/async.h"
#include "watchdog.h"

/* Sanitizers slow fork-join down about 8x: the fork-join suites shrink
 * their problems by this. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define FORK_SCALE 8
#else
#define FORK_SCALE 1
#endif

static async_pool *make_pool(unsigned workers)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = workers;
	cfg.max_workers = 8;
	cfg.pin = 0;
	async_pool *p = NULL;
	int rc = async_pool_create(&p, &cfg);
	cr_assert_eq(rc, 0, "create: %s", async_strerror(rc));
	return p;
}

/* Runs body(arg) as one job on the pool and waits for it, asleep: these
 * suites test the workers, so this thread must not run the body itself. */
static void run_on_pool(async_pool *p, async_job_fn body, void *arg, unsigned seconds, const char *what)
{
	async_group g;
	async_group_init(&g);
	async_job j;
	async_job_init(&j, body, arg);
	cr_assert_eq(async_group_submit(p, &g, &j), 0);
	watchdog_arm(seconds, what);
	cr_assert_eq(async_group_wait_asleep(p, &g), 0);
	watchdog_disarm();
}

/* Frames stolen so far, all workers together. */
static inline unsigned long long pool_steals(async_pool *p)
{
	async_worker_stats st[8];
	int nw = async_pool_stats(p, st, 8);
	unsigned long long steals = 0;
	for (int i = 0; i < nw; i++)
		steals += st[i].steals;
	return steals;
}

#endif
