/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_misuse.c: the pool API refuses misuse with the documented code
 * instead of crashing or hanging: a job waiting for its own group, shutdown
 * from a worker, NULL and out-of-range arguments; the defaults are real
 * numbers and a pool tells its limits. Each test also checks that the heap
 * is back where it started once its pools are gone. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <hwloc.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "async/async.h"
#include "watchdog.h"
#include "pool_helpers.h"

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#include <malloc.h>
/* Bytes the C library's heap has handed out and not had back (the
 * sanitizers' allocators do not report it; their builds find leaks
 * themselves). */
static size_t heap_in_use(void) { return mallinfo2().uordblks; }
#else
static size_t heap_in_use(void) { return 0; }
#endif

static void count_run(void *arg)
{
	if (arg != NULL)
		__atomic_fetch_add((unsigned *)arg, 1, __ATOMIC_RELAXED);
}

/* Everything a test allocated through the pool is freed. The C library
 * keeps some memory for the process's life (the machine read once, the
 * thread stacks it caches for reuse, each with its TLS vector), so the
 * baseline is taken once pools of the tests' sizes come and go with the
 * heap unchanged; then the heap may differ by less than a pool's smallest
 * record (the test framework's own bookkeeping moves by a few hundred
 * bytes), while a pool left behind holds tens of KiB. */
enum { LEAK_SLACK = 4096 };
static size_t leak_baseline(void)
{
	size_t last = 0;
	for (int i = 0; i < 50; i++) {
		async_pool *p = make_pool(1 + i % 3);
		run_on_pool(p, count_run, NULL, 30, "a warm-up pool");
		async_pool_destroy(p);
		size_t now = heap_in_use();
		if (i >= 4 && now == last)
			break;
		last = now;
	}
	return heap_in_use();
}

static void assert_no_leak(size_t before)
{
	size_t after = heap_in_use();
	cr_assert_lt(after, before + LEAK_SLACK, "heap grew by %zu bytes", after - before);
}

/* ---- a job that waits for its own group -------------------------------- */

struct selfwait {
	async_pool *p;
	async_group *g;   /* the group the job waits for */
	async_group inner; /* a group of its own, for the nested case */
	async_job job, child;
	int rc, child_rc;
	int done;
};

static void wait_own_group(void *arg)
{
	struct selfwait *s = arg;
	s->rc = async_group_wait(s->p, s->g);
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
}

/* Polls a flag, not a group wait: the test's own thread must not take part
 * in the jobs whose waits are being checked. */
static void poll_done(int *flag, const char *what)
{
	watchdog_arm(30, what);
	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE))
		sched_yield();
	watchdog_disarm();
}

Test(misuse, job_waiting_for_its_own_group_is_refused)
{
	size_t before = leak_baseline();
	async_pool *p = make_pool(2);
	async_group g;
	async_group_init(&g);
	struct selfwait s = { .p = p, .g = &g, .rc = 1 };
	async_job_init(&s.job, wait_own_group, &s);
	cr_assert_eq(async_group_submit(p, &g, &s.job), 0);
	poll_done(&s.done, "a job waiting for its own group");
	cr_assert_eq(s.rc, ASYNC_EDEADLK, "got %s", async_err_name(s.rc));
	cr_assert_eq(async_group_wait(p, &g), 0);
	async_pool_destroy(p);
	assert_no_leak(before);
}

/* The outer job (in g) waits for a child in a group of its own and, on a
 * one-worker pool, runs the child itself while it waits; the child then
 * waits for g, which the outer job beneath it on the same thread keeps
 * pending. */
static void nested_child(void *arg)
{
	struct selfwait *s = arg;
	s->child_rc = async_group_wait(s->p, s->g);
}

static void nested_outer(void *arg)
{
	struct selfwait *s = arg;
	async_group_init(&s->inner);
	async_job_init(&s->child, nested_child, s);
	if (async_group_submit(s->p, &s->inner, &s->child) == 0)
		s->rc = async_group_wait(s->p, &s->inner);
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
}

Test(misuse, job_beneath_a_job_of_the_group_is_refused)
{
	size_t before = leak_baseline();
	async_pool *p = make_pool(1);
	async_group g;
	async_group_init(&g);
	struct selfwait s = { .p = p, .g = &g, .rc = 1, .child_rc = 1 };
	async_job_init(&s.job, nested_outer, &s);
	cr_assert_eq(async_group_submit(p, &g, &s.job), 0);
	poll_done(&s.done, "a nested job waiting for its parent's group");
	cr_assert_eq(s.rc, 0, "the wait for its own child: %s", async_err_name(s.rc));
	cr_assert_eq(s.child_rc, ASYNC_EDEADLK, "got %s", async_err_name(s.child_rc));
	cr_assert_eq(async_group_wait(p, &g), 0);
	async_pool_destroy(p);
	assert_no_leak(before);
}

/* A job that is not in g waits for g while g has a job queued: it runs it
 * (one worker) and returns 0. Fails if a finished job of g were still
 * counted as running on the worker. */
struct later {
	async_pool *p;
	async_group *g;
	async_job job, member;
	unsigned ran;
	int rc, done;
};


static void wait_other_group(void *arg)
{
	struct later *l = arg;
	async_job_init(&l->member, count_run, &l->ran);
	l->rc = async_group_submit(l->p, l->g, &l->member);
	if (l->rc == 0)
		l->rc = async_group_wait(l->p, l->g);
	__atomic_store_n(&l->done, 1, __ATOMIC_RELEASE);
}

Test(misuse, waiting_for_another_group_after_a_grouped_job_works)
{
	size_t before = leak_baseline();
	async_pool *p = make_pool(1);
	async_group g;
	async_group_init(&g);
	unsigned first = 0;
	async_job a;
	async_job_init(&a, count_run, &first);
	cr_assert_eq(async_group_submit(p, &g, &a), 0);
	cr_assert_eq(async_group_wait(p, &g), 0);
	cr_assert_eq(first, 1);
	struct later l = { .p = p, .g = &g, .rc = 1 };
	async_job_init(&l.job, wait_other_group, &l);
	cr_assert_eq(async_pool_submit(p, &l.job), 0);
	poll_done(&l.done, "a detached job waiting for a group");
	cr_assert_eq(l.rc, 0, "got %s", async_err_name(l.rc));
	cr_assert_eq(l.ran, 1);
	async_pool_destroy(p);
	assert_no_leak(before);
}

/* ---- shutdown and destroy from inside the pool ------------------------- */

struct inside {
	async_pool *p;
	async_job job;
	int rc, done;
};

static void shut_from_job(void *arg)
{
	struct inside *in = arg;
	in->rc = async_pool_shutdown(in->p);
	async_pool_destroy(in->p); /* does nothing here */
	__atomic_store_n(&in->done, 1, __ATOMIC_RELEASE);
}

Test(misuse, shutdown_from_a_worker_says_it_was_called_on_a_worker)
{
	size_t before = leak_baseline();
	async_pool *p = make_pool(1);
	struct inside in = { .p = p, .rc = 1 };
	async_job_init(&in.job, shut_from_job, &in);
	cr_assert_eq(async_pool_submit(p, &in.job), 0);
	poll_done(&in.done, "shutdown from a worker");
	cr_assert_eq(in.rc, ASYNC_EONWORKER, "got %s", async_err_name(in.rc));
	cr_assert_str_eq(async_strerror(in.rc), "called from a worker of this pool");
	/* The pool still runs jobs: neither call shut it down nor freed it. */
	unsigned ran = 0;
	async_group g;
	async_group_init(&g);
	async_job j;
	async_job_init(&j, count_run, &ran);
	cr_assert_eq(async_group_submit(p, &g, &j), 0);
	cr_assert_eq(async_group_wait(p, &g), 0);
	cr_assert_eq(ran, 1);
	async_pool_destroy(p);
	assert_no_leak(before);
}

/* With no worker, the job runs in shutdown's own drain, on the calling
 * thread: shutting down again from there is refused the same way. */
Test(misuse, shutdown_from_a_job_that_shutdown_runs_is_refused)
{
	size_t before = leak_baseline();
	async_pool *p = make_pool(0);
	struct inside in = { .p = p, .rc = 1 };
	async_job_init(&in.job, shut_from_job, &in);
	cr_assert_eq(async_pool_submit(p, &in.job), 0);
	watchdog_arm(30, "shutdown running a job that shuts down");
	cr_assert_eq(async_pool_shutdown(p), 0);
	watchdog_disarm();
	cr_assert_eq(in.done, 1);
	cr_assert_eq(in.rc, ASYNC_EONWORKER, "got %s", async_err_name(in.rc));
	async_pool_destroy(p);
	assert_no_leak(before);
}

/* ---- NULL, zero and out-of-range arguments ----------------------------- */

struct onworker {
	int spawn_null, sync_null, sync_unspawned;
	async_job unspawned;
	int done;
};

static void bad_forkjoin(void *arg)
{
	struct onworker *o = arg;
	o->spawn_null = async_job_spawn(NULL);
	o->sync_null = async_job_sync(NULL);
	async_job_init(&o->unspawned, count_run, NULL);
	o->sync_unspawned = async_job_sync(&o->unspawned);
	__atomic_store_n(&o->done, 1, __ATOMIC_RELEASE);
}

static void range_noop(void *arg, size_t b, size_t e) { (void)arg, (void)b, (void)e; }

Test(misuse, null_and_out_of_range_arguments_are_einval)
{
	size_t before = leak_baseline();
	cr_assert_eq(async_pool_worker_index(NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_worker_count(NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_limits(NULL, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_shutdown(NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_add_workers(NULL, 1), ASYNC_EINVAL);
	cr_assert_eq(async_pool_stop_workers(NULL, 1), ASYNC_EINVAL);
	cr_assert_eq(async_pool_stats(NULL, NULL, 0), ASYNC_EINVAL);
	cr_assert_eq(async_pool_queued(NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit(NULL, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_array(NULL, NULL, 0), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_list(NULL, NULL, 0), ASYNC_EINVAL);
	cr_assert_eq(async_group_submit(NULL, NULL, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_group_wait(NULL, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_parallel_for(NULL, 0, 1, 0, range_noop, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_job_spawn(NULL), ASYNC_ENOTWORKER, "spawn off a worker");
	async_job_init(NULL, count_run, NULL); /* ignored, no crash */
	async_pool_destroy(NULL);

	async_pool *p = make_pool(1);
	async_limits lim;
	cr_assert_eq(async_pool_limits(p, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_stats(p, NULL, 4), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_array(p, NULL, 3), ASYNC_EINVAL);
	async_job *list[2] = { NULL, NULL };
	cr_assert_eq(async_pool_submit_list(p, list, 2), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_list(p, NULL, 2), ASYNC_EINVAL);
	async_group g;
	async_group_init(&g);
	cr_assert_eq(async_group_submit(p, NULL, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_group_submit(p, &g, NULL), ASYNC_EINVAL);
	async_job nofn;
	async_job_init(&nofn, NULL, NULL);
	cr_assert_eq(async_group_submit(p, &g, &nofn), ASYNC_EINVAL);
	cr_assert_eq(async_group_wait(p, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_group_wait(p, &g), 0, "nothing was accepted into the group");
	cr_assert_eq(async_parallel_for(p, 0, 10, 0, NULL, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_parallel_for(p, 10, 5, 0, range_noop, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_parallel_for(p, 5, 5, 0, range_noop, NULL), 0, "an empty range");
	cr_assert_eq(async_pool_add_workers(p, 0), 0);
	cr_assert_eq(async_pool_stop_workers(p, 0), 0);
	cr_assert_eq(async_pool_limits(p, &lim), 0);

	struct onworker o = { .spawn_null = 1, .sync_null = 1, .sync_unspawned = 1 };
	async_job j;
	async_job_init(&j, bad_forkjoin, &o);
	cr_assert_eq(async_pool_submit(p, &j), 0);
	poll_done(&o.done, "spawn and sync of bad records");
	cr_assert_eq(o.spawn_null, ASYNC_EINVAL);
	cr_assert_eq(o.sync_null, ASYNC_EINVAL);
	cr_assert_eq(o.sync_unspawned, ASYNC_EINVAL);
	async_pool_destroy(p);
	assert_no_leak(before);
}

/* ---- limits and defaults ------------------------------------------------ */

static unsigned hwloc_count(hwloc_obj_type_t type)
{
	hwloc_topology_t t;
	cr_assert_eq(hwloc_topology_init(&t), 0);
	cr_assert_eq(hwloc_topology_load(t), 0);
	int n = hwloc_get_nbobjs_by_type(t, type);
	hwloc_topology_destroy(t);
	return n > 0 ? (unsigned)n : 0;
}

Test(misuse, defaults_are_the_machines_real_numbers)
{
	async_pool_config cfg = async_pool_config_default();
	unsigned cores = hwloc_count(HWLOC_OBJ_CORE), pus = hwloc_count(HWLOC_OBJ_PU);
	cr_assert_gt(cores, 0);
	cr_assert_eq(cfg.workers, cores, "workers %u, physical cores %u", cfg.workers, cores);
	unsigned max = 4 * pus > 64 ? 4 * pus : 64;
	if (max > ASYNC_MAX_WORKERS)
		max = ASYNC_MAX_WORKERS;
	cr_assert_eq(cfg.max_workers, max, "max_workers %u, PUs %u", cfg.max_workers, pus);
	cr_assert_leq(cfg.workers, cfg.max_workers);
	cr_assert_eq(async_pool_config_default().workers, cfg.workers, "the same on every call");
}

Test(misuse, limits_tell_the_pools_bounds_and_the_maximum_is_enforced)
{
	size_t before = leak_baseline();
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 0;
	cfg.pin = 0;
	async_pool *p = (async_pool *)1;
	cfg.max_workers = 0;
	cr_assert_eq(async_pool_create(&p, &cfg), ASYNC_EINVAL, "max_workers 0");
	cr_assert_null(p);
	cfg.max_workers = ASYNC_MAX_WORKERS + 1;
	cr_assert_eq(async_pool_create(&p, &cfg), ASYNC_EINVAL, "max_workers past the maximum");
	cfg.max_workers = 65536;
	cr_assert_eq(async_pool_create(&p, &cfg), ASYNC_EINVAL);
	cfg.max_workers = 2;
	cfg.workers = 3;
	cr_assert_eq(async_pool_create(&p, &cfg), ASYNC_EINVAL, "more workers than max_workers");

	cfg.workers = 1;
	cfg.max_workers = 3;
	cr_assert_eq(async_pool_create(&p, &cfg), 0);
	async_limits lim;
	memset(&lim, 0xff, sizeof lim);
	cr_assert_eq(async_pool_limits(p, &lim), 0);
	cr_assert_eq(lim.max_workers, 3);
	cr_assert_gt(lim.spawn_depth, 0);
	cr_assert_eq(async_pool_add_workers(p, 10), 2, "up to the pool's max_workers");
	cr_assert_eq(async_pool_add_workers(p, 1), ASYNC_ELIMIT);
	async_pool_destroy(p);

	/* The maximum itself is accepted (slots cost memory, not threads). */
	cfg.workers = 0;
	cfg.max_workers = ASYNC_MAX_WORKERS;
	cr_assert_eq(async_pool_create(&p, &cfg), 0);
	cr_assert_eq(async_pool_limits(p, &lim), 0);
	cr_assert_eq(lim.max_workers, ASYNC_MAX_WORKERS);
	async_pool_destroy(p);
	assert_no_leak(before);
}

/* spawn_depth is the real bound: that many unsynced spawns fit, one more
 * is refused with ASYNC_ENOMEM. */
struct depth {
	unsigned n;
	unsigned accepted;
	int next_rc;
	unsigned ran;
	int done;
};

static void count_task(async_worker *w, void *arg)
{
	(void)w;
	(*(unsigned *)arg)++;
}

static void spawn_to_the_limit(void *arg)
{
	struct depth *d = arg;
	async_worker *w = async_worker_self();
	while (d->accepted < d->n && async_spawn(w, count_task, &d->ran) == 0)
		d->accepted++;
	d->next_rc = async_spawn(w, count_task, &d->ran);
	unsigned synced = d->accepted + (d->next_rc == 0);
	for (unsigned i = 0; i < synced; i++)
		async_sync(w);
	__atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
}

Test(misuse, spawn_depth_is_the_frames_a_worker_holds)
{
	size_t before = leak_baseline();
	async_pool *p = make_pool(1);
	async_limits lim;
	cr_assert_eq(async_pool_limits(p, &lim), 0);
	struct depth d = { .n = lim.spawn_depth, .next_rc = 1 };
	async_job j;
	async_job_init(&j, spawn_to_the_limit, &d);
	cr_assert_eq(async_pool_submit(p, &j), 0);
	poll_done(&d.done, "spawning to the frame limit");
	cr_assert_eq(d.accepted, lim.spawn_depth);
	cr_assert_eq(d.next_rc, ASYNC_ENOMEM, "got %s", async_err_name(d.next_rc));
	cr_assert_eq(d.ran, lim.spawn_depth);
	async_pool_destroy(p);
	assert_no_leak(before);
}

Test(misuse, every_code_has_its_own_name_and_message)
{
	const int codes[] = {
#define CODE(name, value, msg) ASYNC_##name,
		ASYNC_ERRNO_MAP(CODE)
#undef CODE
	};
	size_t n = sizeof codes / sizeof *codes;
	for (size_t i = 0; i < n; i++) {
		cr_assert_lt(codes[i], 0);
		cr_assert_str_neq(async_strerror(codes[i]), "unknown error");
		for (size_t k = 0; k < i; k++) {
			cr_assert_neq(codes[i], codes[k]);
			cr_assert_str_neq(async_strerror(codes[i]), async_strerror(codes[k]));
			cr_assert_str_neq(async_err_name(codes[i]), async_err_name(codes[k]));
		}
	}
	cr_assert_str_eq(async_err_name(ASYNC_EDEADLK), "ASYNC_EDEADLK");
	cr_assert_str_eq(async_err_name(ASYNC_EONWORKER), "ASYNC_EONWORKER");
}
