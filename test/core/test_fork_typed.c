/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_fork_typed.c: the typed fork-join API (ASYNC_TASK_n in async/fork.h):
 * results of fib and quicksort at one and two workers, results carried back
 * from stolen frames under load, typed and untyped spawns mixed, a full
 * frame array, leftovers the pool syncs, and the misuse a release build
 * still refuses (a sync with nothing spawned). Built with NDEBUG, as the
 * benchmarks are: test_fork_misuse.c has the debug-build checks. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "async/async.h"
#include "watchdog.h"
#include "pool_helpers.h"

/* ---- fib ------------------------------------------------------------------ */

ASYNC_TASK_1(long, pfib, int, n)
{
	if (n < 2)
		return n;
	ASYNC_SPAWN(pfib, n - 1);
	long b = ASYNC_CALL(pfib, n - 2);
	return ASYNC_SYNC(pfib) + b;
}

static long fib_serial(int n)
{
	return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

struct fib_job {
	int n;
	long r;
};

static void fib_job(void *arg)
{
	struct fib_job *f = arg;
	f->r = pfib(async_worker_self(), f->n);
}

static void typed_fib_on(unsigned workers, int n)
{
	async_pool *p = make_pool(workers);
	long want = fib_serial(n);
	for (int round = 0; round < 3; round++) {
		struct fib_job f = { n, 0 };
		run_on_pool(p, fib_job, &f, 60, "typed fib");
		cr_assert_eq(f.r, want, "fib(%d) = %ld, want %ld", n, f.r, want);
	}
	cr_log_info("typed fib(%d) at %u workers: %llu steals", n, workers, pool_steals(p));
	async_pool_destroy(p);
}

Test(fork_typed, fib_one_worker, .timeout = 120) { typed_fib_on(1, FORK_SCALE > 1 ? 20 : 27); }
Test(fork_typed, fib_two_workers, .timeout = 120) { typed_fib_on(2, FORK_SCALE > 1 ? 20 : 27); }

/* Typed fib on two workers among jobs submitted to the same pool: one
 * worker takes the fib, the other runs the jobs and then steals frames.
 * Rounds go on until steals were seen (a loaded host may keep the thief
 * off the CPU); every result must be right in every round. */
static void count_job(void *arg)
{
	__atomic_fetch_add((int *)arg, 1, __ATOMIC_RELAXED);
}

Test(fork_typed, fib_two_workers_among_submitted_jobs_with_steals, .timeout = 300)
{
	async_pool *p = make_pool(2);
	int n = FORK_SCALE > 1 ? 20 : 27;
	long want = fib_serial(n);
	enum { JOBS = 2000 };
	static async_job jobs[JOBS];
	unsigned long long steals = 0;
	for (int round = 0; round < 50 && (round < 3 || steals == 0); round++) {
		int ran = 0;
		struct fib_job f = { n, 0 };
		async_job root;
		async_group g;
		async_group_init(&g);
		async_job_init(&root, fib_job, &f);
		cr_assert_eq(async_group_submit(p, &g, &root), 0);
		for (int i = 0; i < JOBS; i++) {
			async_job_init(&jobs[i], count_job, &ran);
			cr_assert_eq(async_group_submit(p, &g, &jobs[i]), 0);
		}
		watchdog_arm(60, "typed fib among submitted jobs");
		cr_assert_eq(async_group_wait(p, &g), 0);
		watchdog_disarm();
		cr_assert_eq(f.r, want, "fib(%d) = %ld", n, f.r);
		cr_assert_eq(__atomic_load_n(&ran, __ATOMIC_RELAXED), JOBS);
		steals = pool_steals(p);
	}
	cr_assert_gt(steals, 0, "no frame was ever stolen");
	async_pool_destroy(p);
}

/* ---- results from stolen frames under load -------------------------------- */

/* Leaves that sleep, so an idle worker surely steals; each level's result
 * depends on both halves, so a result lost or read before the thief wrote
 * it (T3 in fork.c) changes the total. */
ASYNC_TASK_2(unsigned long, slow_sum, int, depth, unsigned long, id)
{
	if (depth == 0) {
		usleep(100);
		return id;
	}
	int rc = ASYNC_SPAWN(slow_sum, depth - 1, 2 * id);
	cr_assert_eq(rc, 0);
	unsigned long b = ASYNC_CALL(slow_sum, depth - 1, 2 * id + 1);
	return ASYNC_SYNC(slow_sum) + b;
}

static void slow_root_job(void *arg)
{
	unsigned long *sum = arg;
	*sum = slow_sum(async_worker_self(), 8, 1);
}

Test(fork_typed, results_of_stolen_frames_reach_the_spawner, .timeout = 200)
{
	async_pool *p = make_pool(2);
	/* A loaded host may keep the thief off the CPU for a whole round:
	 * rounds go on until steals were seen (at least 5, at most 100). */
	unsigned long long steals = 0;
	for (int round = 0; round < 100 && (round < 5 || steals == 0); round++) {
		unsigned long sum = 0;
		run_on_pool(p, slow_root_job, &sum, 60, "typed stolen results");
		/* The leaves of a depth-8 tree rooted at id 1: ids 256..511. */
		cr_assert_eq(sum, (256ul + 511ul) * 256ul / 2ul);
		steals = pool_steals(p);
	}
	cr_assert_gt(steals, 0, "no frame was ever stolen");
	async_pool_destroy(p);
}

/* ---- quicksort (a void task) ---------------------------------------------- */

ASYNC_VOID_TASK_2(psort, int *, a, size_t, n)
{
	if (n < 32) {
		for (size_t i = 1; i < n; i++)
			for (size_t j = i; j > 0 && a[j - 1] > a[j]; j--) {
				int t = a[j];
				a[j] = a[j - 1];
				a[j - 1] = t;
			}
		return;
	}
	int pivot = a[n / 2];
	size_t i = 0, j = n - 1;
	for (;;) {
		while (a[i] < pivot)
			i++;
		while (a[j] > pivot)
			j--;
		if (i >= j)
			break;
		int t = a[i];
		a[i] = a[j];
		a[j] = t;
		i++;
		j--;
	}
	ASYNC_SPAWN(psort, a, j + 1);
	ASYNC_CALL(psort, a + j + 1, n - j - 1);
	ASYNC_SYNC(psort);
}

struct sort_job {
	int *a;
	size_t n;
};

static void sort_job(void *arg)
{
	struct sort_job *s = arg;
	psort(async_worker_self(), s->a, s->n);
}

static void typed_sort_on(unsigned workers)
{
	size_t n = FORK_SCALE > 1 ? 20000 : 400000;
	int *a = malloc(n * sizeof *a);
	cr_assert_not_null(a);
	async_pool *p = make_pool(workers);
	for (int round = 0; round < 2; round++) {
		unsigned x = 12345u + (unsigned)round;
		long long sum = 0;
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			a[i] = (int)(x >> 8) % 100000;
			sum += a[i];
		}
		struct sort_job s = { a, n };
		run_on_pool(p, sort_job, &s, 60, "typed quicksort");
		long long after = a[0];
		for (size_t i = 1; i < n; i++) {
			cr_assert_leq(a[i - 1], a[i], "unsorted at %zu", i);
			after += a[i];
		}
		cr_assert_eq(after, sum, "not a permutation");
	}
	cr_log_info("typed quicksort at %u workers: %llu steals", workers, pool_steals(p));
	async_pool_destroy(p);
	free(a);
}

Test(fork_typed, quicksort_one_worker, .timeout = 120) { typed_sort_on(1); }
Test(fork_typed, quicksort_two_workers, .timeout = 120) { typed_sort_on(2); }

/* ---- typed and untyped spawns mixed --------------------------------------- */

struct untyped_node {
	int depth;
	long r;
};

static void untyped_node(async_worker *w, void *arg);

/* A tree whose levels alternate: a typed level spawns an untyped child and
 * a typed one, an untyped level the reverse; each node counts its leaves.
 * The typed body interleaves the two, so it uses the w forms, which share
 * the worker's head with the untyped calls; a helper with body forms runs
 * at each typed level as well. */
ASYNC_TASK_1(long, typed_node, int, depth)
{
	if (depth == 0)
		return 1;
	struct untyped_node u = { depth - 1, 0 };
	cr_assert_eq(async_spawn(w, untyped_node, &u), 0);
	cr_assert_eq(typed_node_spawn(w, depth - 1), 0);
	long own = typed_node(w, depth - 1);
	long t = typed_node_sync(w);
	cr_assert_eq(async_sync(w), 0);
	cr_assert_eq(pfib(w, 10), 55);
	return own + t + u.r;
}

static void untyped_node(async_worker *w, void *arg)
{
	struct untyped_node *u = arg;
	if (u->depth == 0) {
		u->r = 1;
		return;
	}
	struct untyped_node a = { u->depth - 1, 0 };
	cr_assert_eq(typed_node_spawn(w, u->depth - 1), 0);
	cr_assert_eq(async_spawn(w, untyped_node, &a), 0);
	long own = typed_node(w, u->depth - 1);
	cr_assert_eq(async_sync(w), 0);
	long t = typed_node_sync(w);
	u->r = own + t + a.r;
}

struct mixed_job {
	int depth;
	long r;
};

static void mixed_job(void *arg)
{
	struct mixed_job *m = arg;
	m->r = typed_node(async_worker_self(), m->depth);
}

static void mixed_on(unsigned workers)
{
	async_pool *p = make_pool(workers);
	int depth = FORK_SCALE > 1 ? 7 : 10;
	long want = 1;
	for (int i = 0; i < depth; i++)
		want *= 3;
	for (int round = 0; round < 3; round++) {
		struct mixed_job m = { depth, 0 };
		run_on_pool(p, mixed_job, &m, 60, "typed and untyped mixed");
		cr_assert_eq(m.r, want, "%ld leaves, want %ld", m.r, want);
	}
	async_pool_destroy(p);
}

Test(fork_typed, typed_and_untyped_spawns_mixed_one_worker, .timeout = 120) { mixed_on(1); }
Test(fork_typed, typed_and_untyped_spawns_mixed_two_workers, .timeout = 120) { mixed_on(2); }

/* ---- a full frame array --------------------------------------------------- */

ASYNC_TASK_2(long, times3, long, x, long, pad)
{
	(void)w;
	return 3 * x + pad;
}

struct capacity {
	int spawned;
	int refused;
	int wrong;
};

static void capacity_job(void *arg)
{
	struct capacity *c = arg;
	async_worker *w = async_worker_self();
	for (;;) {
		int rc = times3_spawn(w, c->spawned, 7);
		if (rc != 0) {
			c->refused = rc;
			break;
		}
		c->spawned++;
		cr_assert_lt(c->spawned, 1 << 24, "the frame array never fills");
	}
	/* Past the array's end the spawns ran at once (their syncs return
	 * the results kept in their frames); the refused one wrote its
	 * arguments into the spare slot: the frames below must be intact. */
	for (int i = c->spawned; i-- > 0;)
		if (times3_sync(w) != 3L * i + 7)
			c->wrong++;
	cr_assert_eq(async_fork_error(w), 0);
}

Test(fork_typed, past_the_frame_array_spawns_run_at_once_then_refuse_with_enomem, .timeout = 60)
{
	async_pool *p = make_pool(2);
	struct capacity c = { 0, 0, 0 };
	run_on_pool(p, capacity_job, &c, 30, "filling the frame array, typed");
	cr_assert_eq(c.refused, ASYNC_ENOMEM);
	cr_assert_eq(c.spawned, ASYNC_FRAMES_MAX);
	cr_assert_eq(c.wrong, 0, "%d wrong results", c.wrong);
	async_pool_destroy(p);
}

/* A recursion deeper than the frame array with no fallback for a full one:
 * a chain of spawns, each spawned before its parent's sync. */
ASYNC_TASK_1(long, chain, int, depth)
{
	if (depth == 0)
		return 0;
	ASYNC_SPAWN(chain, depth - 1);
	return ASYNC_SYNC(chain) + 1;
}

ASYNC_TASK_1(long, fan, int, n)
{
	/* n spawns outstanding at once, then their syncs: past the array's
	 * end when n > 16,384. */
	for (int i = 0; i < n; i++)
		ASYNC_SPAWN(chain, 1);
	long sum = 0;
	for (int i = 0; i < n; i++)
		sum += ASYNC_SYNC(chain);
	return sum;
}

static void overflow_job(void *arg)
{
	long *r = arg;
	async_worker *w = async_worker_self();
	r[0] = fan(w, 30000);
	r[1] = async_fork_error(w);
}

Test(fork_typed, spawns_past_the_frame_array_need_no_fallback, .timeout = 60)
{
	for (unsigned workers = 1; workers <= 2; workers++) {
		async_pool *p = make_pool(workers);
		long r[2] = { 0, 1 };
		run_on_pool(p, overflow_job, r, 30, "typed spawns past the frame array");
		cr_assert_eq(r[0], 30000);
		cr_assert_eq(r[1], 0);
		async_pool_destroy(p);
	}
}

/* ---- leftovers ------------------------------------------------------------ */

ASYNC_VOID_TASK_1(bump, int *, n)
{
	(void)w;
	(*n)++;
}

static void leftover_job(void *arg)
{
	async_worker *w = async_worker_self();
	for (int i = 0; i < 10; i++)
		cr_assert_eq(bump_spawn(w, arg), 0);
	/* Returns with ten typed frames unsynced: the pool runs them. */
}

Test(fork_typed, typed_spawns_left_unsynced_are_run_by_the_pool, .timeout = 60)
{
	async_pool *p = make_pool(1);
	int n = 0;
	run_on_pool(p, leftover_job, &n, 30, "typed leftovers");
	cr_assert_eq(n, 10);
	async_pool_destroy(p);
}

/* ---- misuse a release build refuses --------------------------------------- */

struct misuse {
	int untyped_rc;
	long typed_r;
	int typed_err;
	int err_after;
	int nested_rc;
	int parent_ran;
};

static void mark(async_worker *w, void *arg)
{
	(void)w;
	(*(int *)arg)++;
}

/* A record run inside the job (async_job_spawn/sync) that syncs once more
 * than it spawned: the extra sync must not pop the frame its parent job
 * spawned below it. */
static void oversync(void *arg)
{
	*(int *)arg = async_sync(async_worker_self());
}

static void misuse_job(void *arg)
{
	struct misuse *m = arg;
	async_worker *w = async_worker_self();
	m->untyped_rc = async_sync(w);
	m->typed_r = pfib_sync(w);
	m->typed_err = async_fork_error(w);
	m->err_after = async_fork_error(w);
	/* Three frames below the record: its sync takes back the upper half
	 * of the shared part, leaving two of them private under its floor. */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(async_spawn(w, mark, &m->parent_ran), 0);
	async_job inner;
	async_job_init(&inner, oversync, &m->nested_rc);
	cr_assert_eq(async_job_spawn(&inner), 0);
	cr_assert_eq(async_job_sync(&inner), 0);
	cr_assert_eq(m->parent_ran, 0, "the nested sync ran its parent's frame");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(async_sync(w), 0);
}

Test(fork_typed, a_sync_with_nothing_spawned_is_refused, .timeout = 60)
{
	async_pool *p = make_pool(1);
	struct misuse m = { 1, -1, 1, 1, 1, 0 };
	run_on_pool(p, misuse_job, &m, 30, "sync with nothing spawned");
	cr_assert_eq(m.untyped_rc, ASYNC_EINVAL);
	cr_assert_eq(m.typed_r, 0, "a typed sync with nothing spawned returns a zeroed result");
	cr_assert_eq(m.typed_err, ASYNC_EINVAL);
	cr_assert_eq(m.err_after, 0, "async_fork_error clears the code");
	cr_assert_eq(m.nested_rc, ASYNC_EINVAL);
	cr_assert_eq(m.parent_ran, 3);
	async_pool_destroy(p);
}
