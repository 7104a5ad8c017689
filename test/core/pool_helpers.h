/* pool_helpers.h: for the core suites that need a small unpinned pool
 * (test_fork.c, test_fork_wait.c, test_stats.c): the pool, and a way to run
 * one job on it under the watchdog. */
#ifndef ASYNC_TEST_POOL_HELPERS_H
#define ASYNC_TEST_POOL_HELPERS_H

#include <criterion/criterion.h>

#include "async/async.h"
#include "watchdog.h"

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

#endif
