/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_fork_misuse.c: the inline fork-join calls of async/fork.h misused,
 * as a debug build (NDEBUG not defined) checks them: no worker (NULL, or
 * called from a thread that is not a worker), another thread's worker, a
 * sync with nothing spawned, a typed body's head left behind by an untyped
 * spawn it did not sync first, a typed sync of another task's frame, and a
 * task called directly that returns with a spawn unsynced. Each returns its
 * documented code instead of crashing or hanging. */
#undef NDEBUG /* the checks below exist in debug builds only */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>

#include "async/async.h"
#include "watchdog.h"
#include "pool_helpers.h"

static void never(async_worker *w, void *arg)
{
	(void)w;
	(void)arg;
	cr_assert(0, "a refused spawn ran");
}

ASYNC_TASK_1(long, twice, long, x)
{
	(void)w;
	return 2 * x;
}

ASYNC_VOID_TASK_1(never_typed, int, x)
{
	(void)w;
	(void)x;
	cr_assert(0, "a refused typed spawn ran");
}

Test(fork_misuse, no_worker_on_a_thread_that_is_not_one)
{
	async_worker *w = async_worker_self();
	cr_assert_null(w);
	cr_assert_eq(async_spawn(w, never, NULL), ASYNC_ENOTWORKER);
	cr_assert_eq(async_sync(w), ASYNC_ENOTWORKER);
	cr_assert_eq(twice_spawn(w, 1), ASYNC_ENOTWORKER);
	cr_assert_eq(twice_sync(w), 0, "a typed sync without a worker returns a zeroed result");
	cr_assert_eq(never_typed_spawn(w, 1), ASYNC_ENOTWORKER);
	never_typed_sync(w); /* returns, does nothing */
	cr_assert_eq(async_fork_error(w), ASYNC_EINVAL);
}

static void grab_worker(void *arg)
{
	*(async_worker **)arg = async_worker_self();
}

Test(fork_misuse, another_threads_worker_is_refused, .timeout = 60)
{
	async_pool *p = make_pool(1);
	async_worker *other = NULL;
	run_on_pool(p, grab_worker, &other, 30, "grab a worker");
	cr_assert_not_null(other);
	/* Its deque is its owner's alone: a spawn from here would race it. */
	cr_assert_eq(async_spawn(other, never, NULL), ASYNC_ENOTWORKER);
	cr_assert_eq(async_sync(other), ASYNC_ENOTWORKER);
	cr_assert_eq(twice_spawn(other, 1), ASYNC_ENOTWORKER);
	cr_assert_eq(twice_sync(other), 0);
	async_pool_destroy(p);
}

struct results {
	int sync_rc;
	long typed;
	int typed_err;
	long pair;
};

static void body(void *arg)
{
	struct results *r = arg;
	async_worker *w = async_worker_self();
	r->sync_rc = async_sync(w);
	r->typed = twice_sync(w);
	r->typed_err = async_fork_error(w);
	/* The checks leave correct use alone. */
	cr_assert_eq(twice_spawn(w, 21), 0);
	r->pair = twice_sync(w);
}

Test(fork_misuse, a_sync_with_nothing_spawned_returns_einval, .timeout = 60)
{
	async_pool *p = make_pool(1);
	struct results r = { 1, -1, 1, 0 };
	run_on_pool(p, body, &r, 30, "sync with nothing spawned, debug build");
	cr_assert_eq(r.sync_rc, ASYNC_EINVAL);
	cr_assert_eq(r.typed, 0);
	cr_assert_eq(r.typed_err, ASYNC_EINVAL);
	cr_assert_eq(r.pair, 42);
	async_pool_destroy(p);
}

static void nothing(async_worker *w, void *arg)
{
	(void)w;
	(void)arg;
}

/* An untyped spawn left unsynced moves the worker's head under the body's
 * own copy: the body forms refuse rather than overwrite its frame. */
ASYNC_TASK_1(int, interleaved, int, unused)
{
	(void)unused;
	int dummy = 0;
	cr_assert_eq(async_spawn(w, nothing, &dummy), 0);
	int rc = ASYNC_SPAWN(twice, 1);
	long r = ASYNC_SYNC(twice);
	cr_assert_eq(r, 0);
	cr_assert_eq(async_fork_error(w), ASYNC_EINVAL, "a refused sync leaves its code");
	cr_assert_eq(async_sync(w), 0);
	ASYNC_SPAWN(twice, 4); /* synced first: fine again */
	cr_assert_eq(ASYNC_SYNC(twice), 8);
	return rc;
}

static void interleaved_job(void *arg)
{
	*(int *)arg = interleaved(async_worker_self(), 0);
}

Test(fork_misuse, a_body_form_after_an_unsynced_untyped_spawn_is_refused, .timeout = 60)
{
	async_pool *p = make_pool(1);
	int rc = 0;
	run_on_pool(p, interleaved_job, &rc, 30, "body forms interleaved with untyped spawns");
	cr_assert_eq(rc, ASYNC_EINVAL);
	async_pool_destroy(p);
}

/* A task whose arguments cannot be mistaken for twice's. */
ASYNC_TASK_2(long, measure, const char *, s, long, plus)
{
	(void)w;
	long n = plus;
	while (*s++ != '\0')
		n++;
	return n;
}

struct crossed {
	long wrong, wrong_err, right, right_err;
	long untyped_r, untyped_err, untyped_rc;
	int ran;
};

static void count(async_worker *w, void *arg)
{
	(void)w;
	++*(int *)arg;
}

/* Syncs that name another task than the one on top: the frame holds other
 * arguments (and another function), so the sync refuses it and leaves it for
 * the right sync. */
static void crossed_job(void *arg)
{
	struct crossed *c = arg;
	async_worker *w = async_worker_self();
	twice_spawn(w, 21);
	measure_spawn(w, "hello", 1);
	c->wrong = twice_sync(w); /* measure's frame is on top */
	c->wrong_err = async_fork_error(w);
	c->right = measure_sync(w) + twice_sync(w);
	c->right_err = async_fork_error(w);
	async_spawn(w, count, &c->ran);
	c->untyped_r = twice_sync(w); /* an untyped frame is on top */
	c->untyped_err = async_fork_error(w);
	c->untyped_rc = async_sync(w);
}

Test(fork_misuse, a_typed_sync_of_another_tasks_frame_is_refused, .timeout = 60)
{
	async_pool *p = make_pool(1);
	struct crossed c = { -1, 1, -1, 1, -1, 1, 1, 0 };
	run_on_pool(p, crossed_job, &c, 30, "typed syncs of the wrong task");
	cr_assert_eq(c.wrong, 0);
	cr_assert_eq(c.wrong_err, ASYNC_EINVAL);
	cr_assert_eq(c.right, 6 + 42, "the refused frames still sync right");
	cr_assert_eq(c.right_err, 0);
	cr_assert_eq(c.untyped_r, 0);
	cr_assert_eq(c.untyped_err, ASYNC_EINVAL);
	cr_assert_eq(c.untyped_rc, 0);
	cr_assert_eq(c.ran, 1);
	async_pool_destroy(p);
}

/* Returns with its spawn unsynced (rule 3). */
ASYNC_TASK_1(long, forgetful, long, x)
{
	ASYNC_SPAWN(twice, x);
	return 1;
}

struct left {
	long call, mine, err, after;
};

/* Called directly, forgetful is no job: nothing would sync its leftover
 * before the caller's own sync took it as its own (twice(50) for twice(5)). */
static void left_job(void *arg)
{
	struct left *l = arg;
	async_worker *w = async_worker_self();
	twice_spawn(w, 5);
	l->call = forgetful(w, 50);
	l->err = async_fork_error(w);
	l->mine = twice_sync(w);
	l->after = async_fork_error(w);
}

Test(fork_misuse, a_task_called_directly_that_leaves_a_spawn_is_flagged, .timeout = 60)
{
	async_pool *p = make_pool(1);
	struct left l = { -1, -1, 1, 1 };
	run_on_pool(p, left_job, &l, 30, "a directly called task leaves a spawn");
	cr_assert_eq(l.call, 1);
	cr_assert_eq(l.err, ASYNC_EINVAL);
	cr_assert_eq(l.mine, 10, "the caller's sync gets its own spawn's result");
	cr_assert_eq(l.after, 0);
	async_pool_destroy(p);
}
