/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_engine.c: async/engine.h: threads that wait help run jobs, group
 * queries, continuations, pinned and main-thread jobs, priority levels and
 * cancellation. Every test counts its jobs (each ran, or was dropped,
 * exactly once), frees its records and ends with nothing queued. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "pool_helpers.h"
#include "pool_impl.h" /* internals: the helper slots in use */

static int load_int(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void store_int(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static int add_int(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL); }

static void finish(async_pool *p)
{
	(void)run_on_pool; /* pool_helpers.h's; these tests wait their own way */
	cr_assert_eq(async_pool_queued(p), 0, "something is still queued");
	async_pool_destroy(p);
}

static void count_job(void *arg) { add_int(arg, 1); }

/* A job that holds its worker until the gate opens. */
struct gate {
	int started, open;
};

static void gate_job(void *arg)
{
	struct gate *g = arg;
	store_int(&g->started, 1);
	while (!load_int(&g->open))
		sched_yield();
}

/* Occupies the pool's only worker with a gate job (in no group). */
static void close_gate(async_pool *p, struct gate *g, async_job *j)
{
	g->started = g->open = 0;
	async_job_init(j, gate_job, g);
	cr_assert_eq(async_pool_submit(p, j), 0);
	watchdog_arm(10, "gate job start");
	while (!load_int(&g->started))
		sched_yield();
	watchdog_disarm();
}

struct rec {
	int count;
	pthread_t thread[256];
	int order[256];
};

struct item {
	async_job job;
	struct rec *r;
	int id;
	int worker; /* async_pool_worker_index seen by the job */
	async_pool *pool;
};

static void note_job(void *arg)
{
	struct item *it = arg;
	int n = add_int(&it->r->count, 1);
	if (n < 256) {
		it->r->thread[n] = pthread_self();
		it->r->order[n] = it->id;
	}
	if (it->pool != NULL)
		it->worker = async_pool_worker_index(it->pool);
}

static struct item *items(int n, struct rec *r, async_pool *p)
{
	struct item *v = calloc((size_t)n, sizeof *v);
	cr_assert(v != NULL);
	for (int i = 0; i < n; i++) {
		v[i].r = r;
		v[i].id = i;
		v[i].pool = p;
		async_job_init(&v[i].job, note_job, &v[i]);
	}
	return v;
}

/* ---- a waiting thread helps ------------------------------------------- */

Test(help, group_wait_outside_the_pool_runs_the_jobs_when_no_worker_does)
{
	async_pool *p = make_pool(0);
	struct rec r = { 0 };
	struct item *v = items(100, &r, NULL);
	async_group g;
	async_group_init(&g);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(async_group_submit(p, &g, &v[i].job), 0);
	watchdog_arm(20, "group_wait on a pool with no worker");
	cr_assert_eq(async_group_wait(p, &g), 0);
	watchdog_disarm();
	cr_assert_eq(r.count, 100);
	for (int i = 0; i < 100; i++)
		cr_assert(pthread_equal(r.thread[i], pthread_self()), "job %d ran elsewhere", i);
	free(v);
	finish(p);
}

Test(help, group_wait_runs_jobs_while_the_workers_are_busy)
{
	async_pool *p = make_pool(1);
	struct gate gt;
	async_job gj;
	close_gate(p, &gt, &gj);
	struct rec r = { 0 };
	struct item *v = items(50, &r, p);
	async_group g;
	async_group_init(&g);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(async_group_submit(p, &g, &v[i].job), 0);
	watchdog_arm(20, "group_wait while the only worker is held");
	cr_assert_eq(async_group_wait(p, &g), 0);
	watchdog_disarm();
	cr_assert_eq(r.count, 50);
	for (int i = 0; i < 50; i++) {
		cr_assert(pthread_equal(r.thread[i], pthread_self()));
		cr_assert_eq(v[i].worker, ASYNC_ENOTWORKER, "a helper is not a worker");
	}
	store_int(&gt.open, 1);
	free(v);
	finish(p);
}

static void *open_gate_later(void *arg)
{
	usleep(20000);
	store_int(&((struct gate *)arg)->open, 1);
	return NULL;
}

Test(help, group_wait_asleep_leaves_the_jobs_to_the_workers)
{
	async_pool *p = make_pool(1);
	struct gate gt;
	async_job gj;
	close_gate(p, &gt, &gj);
	struct rec r = { 0 };
	struct item *v = items(20, &r, p);
	async_group g;
	async_group_init(&g);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(async_group_submit(p, &g, &v[i].job), 0);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, open_gate_later, &gt), 0);
	watchdog_arm(20, "group_wait_asleep");
	cr_assert_eq(async_group_wait_asleep(p, &g), 0);
	watchdog_disarm();
	pthread_join(t, NULL);
	cr_assert_eq(r.count, 20);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(v[i].worker, 0, "job %d ran outside the worker", i);
	cr_assert_eq(async_group_wait_asleep(NULL, &g), ASYNC_EINVAL);
	free(v);
	finish(p);
}

static void sum_range(void *arg, size_t b, size_t e)
{
	uint64_t s = 0;
	for (size_t i = b; i < e; i++)
		s += i;
	__atomic_fetch_add((uint64_t *)arg, s, __ATOMIC_RELAXED);
}

Test(help, parallel_for_outside_the_pool_with_no_worker_completes)
{
	async_pool *p = make_pool(0);
	uint64_t sum = 0;
	watchdog_arm(20, "parallel_for on a pool with no worker");
	cr_assert_eq(async_parallel_for(p, 0, 100000, 0, sum_range, &sum), 0);
	watchdog_disarm();
	cr_assert_eq(sum, (uint64_t)100000 * 99999 / 2);
	finish(p);
}

/* A job run by a helping thread spawns; a worker must steal the spawned
 * record from the helper's frames (the job waits until it started
 * elsewhere), so workers see what helpers hold. */
struct steal_probe {
	async_job root, kid;
	int kid_started;
	pthread_t kid_thread, root_thread;
};

static void probe_kid(void *arg)
{
	struct steal_probe *s = arg;
	s->kid_thread = pthread_self();
	store_int(&s->kid_started, 1);
}

static void probe_root(void *arg)
{
	struct steal_probe *s = arg;
	s->root_thread = pthread_self();
	async_job_init(&s->kid, probe_kid, s);
	cr_assert_eq(async_job_spawn(&s->kid), 0);
	while (!load_int(&s->kid_started))
		sched_yield();
	cr_assert_eq(async_job_sync(&s->kid), 0);
}

Test(help, workers_steal_what_a_helping_thread_spawns)
{
	async_pool *p = make_pool(2);
	for (int round = 0; round < 50; round++) {
		struct steal_probe s = { .kid_started = 0 };
		async_job_init(&s.root, probe_root, &s);
		async_group g;
		async_group_init(&g);
		/* Pinned to the main queue so this thread, helping, runs it. */
		cr_assert_eq(async_pool_submit_main(p, &g, &s.root), 0);
		watchdog_arm(20, "a spawn on a helper, stolen by a worker");
		cr_assert_eq(async_pool_help(p, &g, ASYNC_HELP_MAIN), 1);
		watchdog_disarm();
		cr_assert(pthread_equal(s.root_thread, pthread_self()));
		cr_assert(!pthread_equal(s.kid_thread, pthread_self()));
	}
	finish(p);
}

Test(help, help_with_no_group_runs_what_is_queued_and_returns)
{
	async_pool *p = make_pool(0);
	struct rec r = { 0 };
	struct item *v = items(20, &r, NULL);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(async_pool_submit(p, &v[i].job), 0);
	cr_assert_eq(async_pool_help(p, NULL, 0), 20);
	cr_assert_eq(r.count, 20);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(r.order[i], i, "oldest first");
	cr_assert_eq(async_pool_help(p, NULL, 0), 0);
	cr_assert_eq(async_pool_help(NULL, NULL, 0), ASYNC_EINVAL);
	cr_assert_eq(async_pool_help(p, NULL, 2), ASYNC_EINVAL);
	free(v);
	finish(p);
}

struct helper_arg {
	async_pool *p;
	async_group *g;
	int rc;
};

static void *helper_thread(void *arg)
{
	struct helper_arg *h = arg;
	h->rc = async_pool_help(h->p, h->g, 0);
	return NULL;
}

/* Threads of the engine's join a loaded pool as helpers until a group is
 * done, while the workers steal from each other and from them. */
static void spawn_tree(void *arg);
struct tree {
	async_job job;
	int depth;
	int *leaves;
};

static void spawn_tree(void *arg)
{
	struct tree *t = arg;
	if (t->depth == 0) {
		add_int(t->leaves, 1);
		return;
	}
	struct tree a = { .depth = t->depth - 1, .leaves = t->leaves };
	struct tree b = { .depth = t->depth - 1, .leaves = t->leaves };
	async_job_init(&a.job, spawn_tree, &a);
	async_job_init(&b.job, spawn_tree, &b);
	cr_assert_eq(async_job_spawn(&a.job), 0);
	spawn_tree(&b);
	cr_assert_eq(async_job_sync(&a.job), 0);
}

Test(help, external_threads_help_a_loaded_pool_until_their_group_is_done, .timeout = 120)
{
	async_pool *p = make_pool(2);
	for (int round = 0; round < 10; round++) {
		int leaves = 0;
		struct tree roots[16];
		async_group g;
		async_group_init(&g);
		for (int i = 0; i < 16; i++) {
			roots[i] = (struct tree){ .depth = 8, .leaves = &leaves };
			async_job_init(&roots[i].job, spawn_tree, &roots[i]);
			cr_assert_eq(async_group_submit(p, &g, &roots[i].job), 0);
		}
		pthread_t th[3];
		struct helper_arg ha[3];
		for (int i = 0; i < 3; i++) {
			ha[i] = (struct helper_arg){ p, &g, -100 };
			cr_assert_eq(pthread_create(&th[i], NULL, helper_thread, &ha[i]), 0);
		}
		watchdog_arm(60, "helpers on a loaded pool");
		for (int i = 0; i < 3; i++)
			pthread_join(th[i], NULL);
		cr_assert_eq(async_group_wait(p, &g), 0);
		watchdog_disarm();
		for (int i = 0; i < 3; i++)
			cr_assert_geq(ha[i].rc, 0, "help: %s", async_strerror(ha[i].rc));
		cr_assert_eq(leaves, 16 * 256);
	}
	finish(p);
}

/* Eight threads hold the helper slots (sleeping: their group waits for a
 * held worker); a ninth is refused with ASYNC_ELIMIT and its group_wait
 * still returns, asleep. */
Test(help, a_ninth_helping_thread_is_refused_and_its_wait_still_returns, .timeout = 120)
{
	async_pool *p = make_pool(1);
	struct gate gt = { 0 };
	async_job gj;
	async_job_init(&gj, gate_job, &gt);
	async_group held, small;
	async_group_init(&held);
	async_group_init(&small);
	cr_assert_eq(async_group_submit(p, &held, &gj), 0);
	pthread_t th[8];
	struct helper_arg ha[8];
	for (int i = 0; i < 8; i++) {
		ha[i] = (struct helper_arg){ p, &held, -100 };
		cr_assert_eq(pthread_create(&th[i], NULL, helper_thread, &ha[i]), 0);
	}
	watchdog_arm(30, "eight helpers");
	while (__atomic_load_n(&p->helping, __ATOMIC_ACQUIRE) != 0xffu)
		sched_yield();
	cr_assert_eq(async_pool_help(p, NULL, 0), ASYNC_ELIMIT);
	cr_assert_eq(async_pool_run_main(p, 0), ASYNC_ELIMIT);
	int n = 0;
	async_job j;
	async_job_init(&j, count_job, &n);
	cr_assert_eq(async_group_submit(p, &small, &j), 0);
	store_int(&gt.open, 1); /* the worker runs j after the gate */
	cr_assert_eq(async_group_wait(p, &small), 0);
	cr_assert_eq(n, 1);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	watchdog_disarm();
	for (int i = 0; i < 8; i++)
		cr_assert_geq(ha[i].rc, 0);
	cr_assert_eq(p->helping, 0u);
	finish(p);
}

static void slow_count_job(void *arg)
{
	usleep(100);
	add_int(arg, 1);
}

/* Shutdown while other threads help: it waits for them, and every job
 * they or it took runs once. */
Test(help, shutdown_waits_for_helping_threads_and_loses_nothing, .timeout = 120)
{
	for (int round = 0; round < 20; round++) {
		async_pool *p = make_pool(round % 2);
		enum { N = 300 };
		int *hits = calloc(N, sizeof *hits);
		async_job *js = calloc(N, sizeof *js);
		async_group g;
		async_group_init(&g);
		for (int i = 0; i < N; i++) {
			async_job_init(&js[i], slow_count_job, &hits[i]);
			cr_assert_eq(async_group_submit(p, &g, &js[i]), 0);
		}
		pthread_t th[2];
		struct helper_arg ha[2];
		for (int i = 0; i < 2; i++) {
			ha[i] = (struct helper_arg){ p, &g, -100 };
			cr_assert_eq(pthread_create(&th[i], NULL, helper_thread, &ha[i]), 0);
		}
		watchdog_arm(30, "shutdown beside helping threads");
		/* Both inside, each job long enough that they are still running
		 * one when the queue runs dry. */
		while (__atomic_load_n(&p->helping, __ATOMIC_ACQUIRE) != 3u && async_group_done(&g) != 1)
			sched_yield();
		cr_assert_eq(async_pool_shutdown(p), 0);
		cr_assert_eq(p->helping, 0u, "shutdown returned while a thread helped");
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		watchdog_disarm();
		for (int i = 0; i < N; i++)
			cr_assert_eq(hits[i], 1, "job %d ran %d times", i, hits[i]);
		free(hits);
		free(js);
		finish(p);
	}
}

/* ---- async_group_done -------------------------------------------------- */

Test(group_done, says_whether_the_group_finished_without_blocking)
{
	async_pool *p = make_pool(1);
	struct gate gt = { 0 };
	async_job gj;
	async_job_init(&gj, gate_job, &gt);
	async_group g;
	async_group_init(&g);
	cr_assert_eq(async_group_done(&g), 1, "an empty group is done");
	cr_assert_eq(async_group_submit(p, &g, &gj), 0);
	cr_assert_eq(async_group_done(&g), 0);
	store_int(&gt.open, 1);
	watchdog_arm(20, "polling async_group_done");
	while (async_group_done(&g) != 1)
		sched_yield();
	watchdog_disarm();
	cr_assert_eq(load_int(&gt.started), 1);
	cr_assert_eq(async_group_done(NULL), ASYNC_EINVAL);
	finish(p);
}

/* ---- continuations ----------------------------------------------------- */

struct stage {
	int *done_before; /* the count the continuation checks */
	int expect;
	int *seen_ok;
	int *ran;
};


static void stage_cont(void *arg)
{
	struct stage *s = arg;
	if (load_int(s->done_before) == s->expect)
		add_int(s->seen_ok, 1);
	add_int(s->ran, 1);
}

Test(then, runs_after_every_job_of_the_group_without_a_waiting_thread)
{
	async_pool *p = make_pool(2);
	enum { N = 200, C = 4 };
	int done = 0, ok = 0, ran = 0;
	async_job *jobs = calloc(N, sizeof *jobs);
	async_job conts[C];
	struct stage st = { &done, N, &ok, &ran };
	async_group g, into;
	async_group_init(&g);
	async_group_init(&into);
	for (int i = 0; i < N; i++) {
		async_job_init(&jobs[i], count_job, &done);
		cr_assert_eq(async_group_submit(p, &g, &jobs[i]), 0);
	}
	for (int i = 0; i < C; i++) {
		async_job_init(&conts[i], stage_cont, &st);
		cr_assert_eq(async_group_then(p, &g, &conts[i], &into), 0);
	}
	watchdog_arm(20, "continuations");
	cr_assert_eq(async_group_wait(p, &into), 0);
	watchdog_disarm();
	cr_assert_eq(ran, C);
	cr_assert_eq(ok, C, "a continuation ran before its group finished");
	cr_assert_eq(async_group_done(&g), 1);
	free(jobs);
	finish(p);
}

Test(then, on_a_finished_group_is_queued_at_once)
{
	async_pool *p = make_pool(1);
	int n = 0;
	async_job j;
	async_job_init(&j, count_job, &n);
	async_group g, into;
	async_group_init(&g);
	async_group_init(&into);
	cr_assert_eq(async_group_then(p, &g, &j, &into), 0);
	watchdog_arm(20, "a continuation of a finished group");
	cr_assert_eq(async_group_wait(p, &into), 0);
	watchdog_disarm();
	cr_assert_eq(n, 1);
	finish(p);
}

Test(then, continuations_start_in_the_order_registered)
{
	async_pool *p = make_pool(0);
	struct rec r = { 0 };
	struct item *v = items(6, &r, NULL);
	async_group g;
	async_group_init(&g);
	cr_assert_eq(async_group_submit(p, &g, &v[0].job), 0);
	for (int i = 1; i < 6; i++)
		cr_assert_eq(async_group_then(p, &g, &v[i].job, NULL), 0);
	cr_assert_eq(async_group_done(&g), 0, "its job has not run");
	cr_assert_eq(async_pool_help(p, NULL, 0), 6);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(r.order[i], i);
	free(v);
	finish(p);
}

/* Stage k + 1's jobs are continuations of stage k's group, counted in
 * stage k + 1's: a dependency chain on a loaded pool. */
Test(then, chains_groups_into_stages_under_load, .timeout = 120)
{
	async_pool *p = make_pool(2);
	enum { S = 8, W = 64 };
	int count[S] = { 0 }, ok = 0, ran = 0;
	struct stage st[S];
	async_group grp[S];
	async_job *jobs = calloc(S * W, sizeof *jobs);
	for (int s = 0; s < S; s++)
		async_group_init(&grp[s]);
	for (int s = 0; s < S; s++) {
		st[s] = (struct stage){ s > 0 ? &count[s - 1] : &count[0], s > 0 ? W : 0, &ok, &count[s] };
		for (int i = 0; i < W; i++) {
			async_job *j = &jobs[s * W + i];
			async_job_init(j, stage_cont, &st[s]);
			if (s == 0)
				cr_assert_eq(async_group_submit(p, &grp[0], j), 0);
			else
				cr_assert_eq(async_group_then(p, &grp[s - 1], j, &grp[s]), 0);
		}
	}
	(void)ran;
	watchdog_arm(60, "chained stages");
	cr_assert_eq(async_group_wait(p, &grp[S - 1]), 0);
	watchdog_disarm();
	for (int s = 0; s < S; s++)
		cr_assert_eq(count[s], W, "stage %d", s);
	/* Stage 0 checks count[0] == 0, true only before its own jobs ran:
	 * the first job of it sees 0; every later stage must see W. */
	cr_assert_geq(ok, (S - 1) * W + 1);
	free(jobs);
	finish(p);
}

/* A registration racing with the group's last job: never lost, never
 * queued twice. */
/* A frame loop waits on the last stage of a chain, then reinitialises
 * the stages for the next frame. The thread that queued a stage's
 * continuation must be done with that stage's group by then: a count it
 * dropped late would land on the next frame's group, which would read as
 * done with a job still queued. */
Test(then, a_chain_s_groups_are_free_once_its_last_stage_is_done, .timeout = 120)
{
	async_pool *p = make_pool(2);
	int n = 0, early = 0;
	async_group s1, s2, s3;
	async_job a, c1, c2, held;
	watchdog_arm(100, "chains reused each frame");
	for (int frame = 0; frame < 20000 && early == 0; frame++) {
		async_group_init(&s1);
		async_group_init(&s2);
		async_group_init(&s3);
		async_job_init(&a, count_job, &n);
		async_job_init(&c1, count_job, &n);
		async_job_init(&c2, count_job, &n);
		cr_assert_eq(async_group_submit(p, &s1, &a), 0);
		cr_assert_eq(async_group_then(p, &s1, &c1, &s2), 0);
		cr_assert_eq(async_group_then(p, &s2, &c2, &s3), 0);
		cr_assert_eq(async_group_wait(p, &s3), 0);
		/* The next frame's s2, held open by a job only this thread runs. */
		async_group_init(&s2);
		async_job_init(&held, count_job, &n);
		cr_assert_eq(async_pool_submit_main(p, &s2, &held), 0);
		for (int i = 0; i < 50; i++)
			sched_yield();
		early += async_group_done(&s2);
		cr_assert_eq(async_pool_run_main(p, 0), 1);
		cr_assert_eq(async_group_wait(p, &s2), 0);
		cr_assert_eq(async_group_wait(p, &s1), 0);
	}
	watchdog_disarm();
	cr_assert_eq(early, 0, "a reinitialised group read as done with its job queued");
	finish(p);
}

Test(then, registered_while_the_group_finishes_runs_exactly_once, .timeout = 120)
{
	async_pool *p = make_pool(2);
	for (int i = 0; i < 3000; i++) {
		int a = 0, b = 0;
		async_job ja, jb;
		async_job_init(&ja, count_job, &a);
		async_job_init(&jb, count_job, &b);
		async_group g, into;
		async_group_init(&g);
		async_group_init(&into);
		cr_assert_eq(async_group_submit(p, &g, &ja), 0);
		cr_assert_eq(async_group_then(p, &g, &jb, &into), 0);
		watchdog_arm(20, "a racing continuation");
		cr_assert_eq(async_group_wait(p, &into), 0);
		cr_assert_eq(async_group_wait(p, &g), 0);
		watchdog_disarm();
		cr_assert_eq(a, 1);
		cr_assert_eq(b, 1, "round %d", i);
	}
	finish(p);
}

Test(then, refuses_bad_arguments)
{
	async_pool *p = make_pool(1), *q = make_pool(0);
	int n = 0;
	async_job j, k;
	async_job_init(&j, count_job, &n);
	async_job_init(&k, count_job, &n);
	async_group g, other;
	async_group_init(&g);
	async_group_init(&other);
	cr_assert_eq(async_group_then(NULL, &g, &j, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_group_then(p, NULL, &j, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_group_then(p, &g, NULL, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_group_then(p, &g, &j, &g), ASYNC_EINVAL);
	cr_assert_eq(async_group_submit(q, &other, &k), 0); /* other is q's */
	cr_assert_eq(async_group_then(p, &other, &j, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_group_then(p, &g, &j, &other), ASYNC_EINVAL);
	cr_assert_eq(async_pool_help(p, &other, 0), ASYNC_EINVAL);
	cr_assert_eq(async_group_wait(q, &other), 0);
	cr_assert_eq(n, 1);
	finish(p);
	finish(q);
}

/* ---- pinned and main-thread jobs ---------------------------------------- */

Test(pinned, a_job_submitted_to_a_worker_runs_on_that_worker, .timeout = 120)
{
	async_pool *p = make_pool(2);
	struct rec r = { 0 };
	enum { N = 100 };
	struct item *v = items(2 * N, &r, p);
	async_group g;
	async_group_init(&g);
	for (int i = 0; i < 2 * N; i++)
		cr_assert_eq(async_pool_submit_to(p, (unsigned)(i % 2), &g, &v[i].job), 0);
	watchdog_arm(20, "pinned jobs");
	cr_assert_eq(async_group_wait(p, &g), 0);
	watchdog_disarm();
	cr_assert_eq(r.count, 2 * N);
	for (int i = 0; i < 2 * N; i++)
		cr_assert_eq(v[i].worker, i % 2, "job %d ran on worker %d", i, v[i].worker);
	free(v);
	finish(p);
}

Test(pinned, an_index_without_a_running_worker_is_refused)
{
	async_pool *p = make_pool(2);
	int n = 0;
	async_job j;
	async_job_init(&j, count_job, &n);
	cr_assert_eq(async_pool_submit_to(p, 5, NULL, &j), ASYNC_EINVAL, "slot never started");
	cr_assert_eq(async_pool_submit_to(p, 8, NULL, &j), ASYNC_EINVAL, "past max_workers");
	cr_assert_eq(async_pool_submit_to(NULL, 0, NULL, &j), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_to(p, 0, NULL, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_stop_workers(p, 1), 1);
	/* Accepted while worker 1 has not exited yet (then it, or another
	 * worker once it left, runs the job), refused from its exit on. */
	watchdog_arm(20, "a stopped worker's slot");
	int accepted = 0, rc;
	while ((rc = async_pool_submit_to(p, 1, NULL, &j)) == 0) {
		accepted++;
		while (load_int(&n) != accepted)
			sched_yield();
	}
	watchdog_disarm();
	cr_assert_eq(rc, ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_to(p, 0, NULL, &j), 0);
	async_pool_destroy(p);
	cr_assert_eq(n, accepted + 1);
}

Test(pinned, jobs_pinned_to_a_worker_that_stops_run_elsewhere)
{
	async_pool *p = make_pool(2);
	struct gate gt = { 0 };
	async_job gj;
	async_job_init(&gj, gate_job, &gt);
	int n = 0;
	async_job js[10];
	async_group g;
	async_group_init(&g);
	cr_assert_eq(async_pool_submit_to(p, 1, NULL, &gj), 0);
	for (int i = 0; i < 10; i++) {
		async_job_init(&js[i], count_job, &n);
		cr_assert_eq(async_pool_submit_to(p, 1, &g, &js[i]), 0);
	}
	watchdog_arm(20, "gate on worker 1");
	while (!load_int(&gt.started))
		sched_yield();
	cr_assert_eq(async_pool_stop_workers(p, 1), 1); /* worker 1, the newest */
	store_int(&gt.open, 1);
	cr_assert_eq(async_group_wait(p, &g), 0);
	watchdog_disarm();
	cr_assert_eq(n, 10);
	finish(p);
}

Test(main_queue, jobs_run_only_when_the_engine_drains_them_oldest_first)
{
	async_pool *p = make_pool(2);
	struct rec r = { 0 };
	struct item *v = items(10, &r, NULL);
	async_group g;
	async_group_init(&g);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(async_pool_submit_main(p, &g, &v[i].job), 0);
	/* The workers run other work meanwhile, never these. */
	int n = 0;
	async_job other[50];
	async_group og;
	async_group_init(&og);
	for (int i = 0; i < 50; i++) {
		async_job_init(&other[i], count_job, &n);
		cr_assert_eq(async_group_submit(p, &og, &other[i]), 0);
	}
	cr_assert_eq(async_group_wait(p, &og), 0);
	cr_assert_eq(load_int(&r.count), 0);
	cr_assert_eq(async_group_done(&g), 0);
	cr_assert_eq(async_pool_run_main(p, 3), 3);
	cr_assert_eq(r.count, 3);
	cr_assert_eq(async_pool_run_main(p, 0), 7);
	cr_assert_eq(async_pool_run_main(p, 0), 0);
	cr_assert_eq(async_group_done(&g), 1);
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(r.order[i], i);
		cr_assert(pthread_equal(r.thread[i], pthread_self()));
	}
	cr_assert_eq(async_pool_run_main(NULL, 0), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_main(NULL, NULL, &v[0].job), ASYNC_EINVAL);
	free(v);
	finish(p);
}

struct main_helper {
	async_pool *p;
	async_group *g;
	int rc;
};

static void *help_main_thread(void *arg)
{
	struct main_helper *h = arg;
	h->rc = async_pool_help(h->p, h->g, ASYNC_HELP_MAIN);
	return NULL;
}

/* A thread helping with ASYNC_HELP_MAIN, asleep because its group waits
 * for a held worker, wakes for a main-thread job submitted meanwhile. */
Test(main_queue, a_sleeping_helper_wakes_for_a_main_thread_job)
{
	async_pool *p = make_pool(1);
	struct gate gt;
	async_job gj, pinned;
	close_gate(p, &gt, &gj); /* on the worker, so the helper cannot take it */
	int n = 0;
	async_job_init(&pinned, count_job, &n);
	async_group g;
	async_group_init(&g);
	/* The group's job waits behind the gate, where only the worker runs it. */
	cr_assert_eq(async_pool_submit_to(p, 0, &g, &pinned), 0);
	struct main_helper h = { p, &g, -100 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, help_main_thread, &h), 0);
	watchdog_arm(20, "a main-thread job for a sleeping helper");
	while (__atomic_load_n(&p->helping, __ATOMIC_ACQUIRE) == 0)
		sched_yield();
	usleep(20000); /* asleep, most likely: either way it must run it */
	struct rec r = { 0 };
	struct item *v = items(1, &r, NULL);
	cr_assert_eq(async_pool_submit_main(p, &g, &v[0].job), 0);
	while (load_int(&r.count) == 0)
		sched_yield();
	watchdog_disarm();
	store_int(&gt.open, 1);
	pthread_join(t, NULL); /* and then its writes are seen */
	cr_assert(pthread_equal(r.thread[0], t));
	cr_assert_eq(h.rc, 1);
	cr_assert_eq(n, 1);
	free(v);
	finish(p);
}

Test(main_queue, shutdown_runs_what_is_left_on_the_calling_thread)
{
	async_pool *p = make_pool(1);
	struct rec r = { 0 };
	struct item *v = items(5, &r, NULL);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(async_pool_submit_main(p, NULL, &v[i].job), 0);
	cr_assert_eq(async_pool_shutdown(p), 0);
	cr_assert_eq(r.count, 5);
	for (int i = 0; i < 5; i++)
		cr_assert(pthread_equal(r.thread[i], pthread_self()));
	cr_assert_eq(async_pool_submit_main(p, NULL, &v[0].job), ASYNC_ESHUTDOWN);
	free(v);
	finish(p);
}

/* A thread helping on a group whose job is a main-thread job cannot run
 * it; shutdown, which waits for helpers, runs it meanwhile instead of
 * waiting for a helper that waits for it. */
Test(main_queue, shutdown_runs_the_main_thread_job_a_helper_waits_for, .timeout = 60)
{
	async_pool *p = make_pool(1);
	struct rec r = { 0 };
	struct item *v = items(1, &r, NULL);
	async_group g;
	async_group_init(&g);
	cr_assert_eq(async_pool_submit_main(p, &g, &v[0].job), 0);
	struct helper_arg h = { p, &g, -100 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, helper_thread, &h), 0);
	watchdog_arm(20, "shutdown with a helper waiting for a main-thread job");
	while (__atomic_load_n(&p->helping, __ATOMIC_ACQUIRE) == 0)
		sched_yield();
	cr_assert_eq(async_pool_shutdown(p), 0);
	pthread_join(t, NULL);
	watchdog_disarm();
	cr_assert_eq(h.rc, 0, "the helper ran nothing: the job was the main thread's");
	cr_assert_eq(r.count, 1);
	cr_assert(pthread_equal(r.thread[0], pthread_self()));
	free(v);
	finish(p);
}

struct submitter {
	async_pool *p;
	async_group *g;
	async_job *next;
};

static void submit_next(void *arg)
{
	struct submitter *s = arg;
	cr_assert_eq(async_group_submit(s->p, s->g, s->next), 0);
}

static void *run_main_later(void *arg)
{
	usleep(20000); /* the waiter asleep, most likely: either way it must finish */
	async_pool_run_main(arg, 0);
	return NULL;
}

/* No worker: the waiting thread runs the group's jobs. Another thread
 * drains the main queue, whose job submits the group's second job; that
 * job is left in the drainer's slot when it returns, and must wake the
 * sleeping waiter, which alone would run it. */
Test(help, a_sleeping_helper_wakes_for_what_another_helper_leaves, .timeout = 60)
{
	async_pool *p = make_pool(0);
	int n = 0;
	async_group g;
	async_group_init(&g);
	async_job first, second;
	struct submitter s = { p, &g, &second };
	async_job_init(&first, submit_next, &s);
	async_job_init(&second, count_job, &n);
	cr_assert_eq(async_pool_submit_main(p, &g, &first), 0);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, run_main_later, p), 0);
	watchdog_arm(20, "a job left by a helper for a sleeping one");
	cr_assert_eq(async_group_wait(p, &g), 0);
	watchdog_disarm();
	pthread_join(t, NULL);
	cr_assert_eq(n, 1);
	finish(p);
}

/* ---- priorities ---------------------------------------------------------- */

struct plog {
	int n;
	int level[4096];
	int id[4096];
	int low_left;   /* low jobs not yet run */
	async_pool *p;
};

struct pjob {
	async_job job;
	struct plog *log;
	int level, id;
	int stream; /* a high job that resubmits itself while low work is left */
};

static void prio_job(void *arg)
{
	struct pjob *j = arg;
	struct plog *l = j->log;
	int n = add_int(&l->n, 1);
	if (n < 4096) {
		l->level[n] = j->level;
		l->id[n] = j->id;
	}
	if (j->level == ASYNC_PRIO_LOW)
		add_int(&l->low_left, -1);
	if (j->stream && load_int(&l->low_left) > 0)
		cr_assert_eq(async_pool_submit_prio(l->p, NULL, &j->job, ASYNC_PRIO_HIGH), 0);
}

Test(prio, jobs_of_a_level_start_in_submission_order)
{
	async_pool *p = make_pool(1);
	struct gate gt;
	async_job gj;
	close_gate(p, &gt, &gj);
	static struct plog l;
	l = (struct plog){ .p = p };
	enum { N = 30 };
	struct pjob js[3 * N];
	async_group g;
	async_group_init(&g);
	for (int i = 0; i < 3 * N; i++) {
		js[i] = (struct pjob){ .log = &l, .level = i % 3, .id = i };
		async_job_init(&js[i].job, prio_job, &js[i]);
		cr_assert_eq(async_pool_submit_prio(p, &g, &js[i].job, i % 3), 0);
	}
	store_int(&gt.open, 1);
	/* Polled, not waited on: a waiting thread would help, and the
	 * order is the one worker's. */
	watchdog_arm(20, "priority jobs");
	while (async_group_done(&g) != 1)
		sched_yield();
	watchdog_disarm();
	cr_assert_eq(l.n, 3 * N);
	int last[3] = { -1, -1, -1 };
	for (int i = 0; i < 3 * N; i++) {
		cr_assert_gt(l.id[i], last[l.level[i]], "level %d out of order", l.level[i]);
		last[l.level[i]] = l.id[i];
	}
	/* High first: of the first 8 jobs the worker took, 6 are high. */
	int high = 0;
	for (int i = 0; i < 8; i++)
		high += l.level[i] == ASYNC_PRIO_HIGH;
	cr_assert_geq(high, 6);
	cr_assert_eq(async_pool_submit_prio(p, NULL, &js[0].job, -1), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_prio(p, NULL, &js[0].job, 3), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_prio(NULL, NULL, &js[0].job, 0), ASYNC_EINVAL);
	finish(p);
}

/* Under a high stream that never runs dry (each high job resubmits itself
 * while low work is left), every 8 jobs the one worker takes include a low
 * one and a normal one while those levels have work. Counted, not timed. */
Test(prio, low_and_normal_are_not_starved_by_a_steady_high_load)
{
	async_pool *p = make_pool(1);
	struct gate gt;
	async_job gj;
	close_gate(p, &gt, &gj);
	static struct plog l;
	enum { HIGH = 16, LOW = 20, NORMAL = 20 };
	l = (struct plog){ .p = p, .low_left = LOW };
	struct pjob hs[HIGH], ls[LOW], ns[NORMAL];
	for (int i = 0; i < HIGH; i++) {
		hs[i] = (struct pjob){ .log = &l, .level = ASYNC_PRIO_HIGH, .id = i, .stream = 1 };
		async_job_init(&hs[i].job, prio_job, &hs[i]);
		cr_assert_eq(async_pool_submit_prio(p, NULL, &hs[i].job, ASYNC_PRIO_HIGH), 0);
	}
	async_group g;
	async_group_init(&g);
	for (int i = 0; i < LOW; i++) {
		ls[i] = (struct pjob){ .log = &l, .level = ASYNC_PRIO_LOW, .id = i };
		async_job_init(&ls[i].job, prio_job, &ls[i]);
		cr_assert_eq(async_pool_submit_prio(p, &g, &ls[i].job, ASYNC_PRIO_LOW), 0);
		ns[i] = (struct pjob){ .log = &l, .level = ASYNC_PRIO_NORMAL, .id = i };
		async_job_init(&ns[i].job, prio_job, &ns[i]);
		cr_assert_eq(async_pool_submit_prio(p, &g, &ns[i].job, ASYNC_PRIO_NORMAL), 0);
	}
	store_int(&gt.open, 1);
	/* Polled: a waiting thread would help, and the rule is per worker. */
	watchdog_arm(30, "low jobs under a high stream");
	while (async_group_done(&g) != 1)
		sched_yield();
	/* The stream stops once the lows ran; shutdown drains it. */
	async_pool_shutdown(p);
	watchdog_disarm();
	int n = l.n < 4096 ? l.n : 4096;
	int low_seen = 0, normal_seen = 0;
	for (int i = 0; i < n; i++) {
		low_seen += l.level[i] == ASYNC_PRIO_LOW;
		normal_seen += l.level[i] == ASYNC_PRIO_NORMAL;
		if (i >= 8 && low_seen < LOW) {
			int lo = 0, no = 0;
			for (int k = i - 7; k <= i; k++) {
				lo += l.level[k] == ASYNC_PRIO_LOW;
				no += l.level[k] == ASYNC_PRIO_NORMAL;
			}
			cr_assert_geq(lo, 1, "8 takes without a low one, ending at %d", i);
			if (normal_seen < NORMAL)
				cr_assert_geq(no, 1, "8 takes without a normal one, ending at %d", i);
		}
	}
	cr_log_info("%d jobs taken under the high stream", n);
	cr_assert_eq(low_seen, LOW);
	cr_assert_eq(normal_seen, NORMAL);
	finish(p);
}

/* ---- cancellation ------------------------------------------------------------ */

Test(cancel, queued_jobs_do_not_run_and_their_group_still_finishes)
{
	async_pool *p = make_pool(1);
	struct gate gt;
	async_job gj;
	close_gate(p, &gt, &gj);
	struct rec r = { 0 };
	enum { N = 40 };
	struct item *v = items(N, &r, NULL);
	async_group g;
	async_group_init(&g);
	for (int i = 0; i < N; i++) {
		/* Every path a job can wait in: plain, each level, pinned. */
		int rc;
		switch (i % 4) {
		case 0: rc = async_group_submit(p, &g, &v[i].job); break;
		case 1: rc = async_pool_submit_prio(p, &g, &v[i].job, ASYNC_PRIO_HIGH); break;
		case 2: rc = async_pool_submit_prio(p, &g, &v[i].job, ASYNC_PRIO_LOW); break;
		default: rc = async_pool_submit_to(p, 0, &g, &v[i].job); break;
		}
		cr_assert_eq(rc, 0);
	}
	for (int i = 0; i < N; i += 2)
		cr_assert_eq(async_job_cancel(p, &v[i].job), 0);
	cr_assert_eq(async_job_cancel(p, &v[0].job), 0, "cancelled twice");
	cr_assert_eq(async_pool_submit(p, &v[0].job), ASYNC_EBUSY, "still the pool's");
	store_int(&gt.open, 1);
	watchdog_arm(20, "a group with cancelled jobs");
	cr_assert_eq(async_group_wait(p, &g), 0);
	watchdog_disarm();
	cr_assert_eq(r.count, N / 2);
	for (int i = 0; i < N / 2; i++)
		cr_assert_eq(r.order[i] % 2, 1, "cancelled job %d ran", r.order[i]);
	cr_assert_eq(async_job_cancel(p, &v[0].job), ASYNC_EINVAL, "dropped: not queued");
	cr_assert_eq(async_job_cancel(p, &v[1].job), ASYNC_EBUSY, "ran");
	free(v);
	finish(p);
}

Test(cancel, main_thread_jobs_and_continuations_can_be_cancelled)
{
	async_pool *p = make_pool(1);
	int n = 0;
	async_job m, c, first;
	async_job_init(&m, count_job, &n);
	async_job_init(&c, count_job, &n);
	async_job_init(&first, count_job, &n);
	async_group g, into;
	async_group_init(&g);
	async_group_init(&into);
	cr_assert_eq(async_pool_submit_main(p, &into, &m), 0);
	cr_assert_eq(async_pool_submit_main(p, &g, &first), 0);
	cr_assert_eq(async_group_then(p, &g, &c, &into), 0);
	cr_assert_eq(async_job_cancel(p, &m), 0);
	cr_assert_eq(async_job_cancel(p, &c), 0);
	cr_assert_eq(async_pool_run_main(p, 0), 2, "two taken, one of them dropped");
	watchdog_arm(20, "cancelled continuation");
	cr_assert_eq(async_group_wait(p, &into), 0);
	watchdog_disarm();
	cr_assert_eq(n, 1);
	finish(p);
}

static void slow_job(void *arg)
{
	struct gate *g = arg;
	gate_job(g);
}

Test(cancel, a_started_job_is_busy_and_bad_records_are_refused)
{
	async_pool *p = make_pool(1);
	struct gate gt = { 0 };
	async_job j, never;
	async_job_init(&j, slow_job, &gt);
	async_job_init(&never, count_job, &gt);
	cr_assert_eq(async_pool_submit(p, &j), 0);
	watchdog_arm(20, "start");
	while (!load_int(&gt.started))
		sched_yield();
	watchdog_disarm();
	cr_assert_eq(async_job_cancel(p, &j), ASYNC_EBUSY);
	store_int(&gt.open, 1);
	cr_assert_eq(async_job_cancel(p, &never), ASYNC_EINVAL, "never submitted");
	cr_assert_eq(async_job_cancel(NULL, &never), ASYNC_EINVAL);
	cr_assert_eq(async_job_cancel(p, NULL), ASYNC_EINVAL);
	finish(p);
}

/* Cancel against start on a loaded pool: exactly one wins, every time. */
Test(cancel, races_with_the_start_and_exactly_one_wins, .timeout = 120)
{
	async_pool *p = make_pool(2);
	enum { N = 4000 };
	int *ran = calloc(N, sizeof *ran);
	async_job *js = calloc(N, sizeof *js);
	int *rc = calloc(N, sizeof *rc);
	async_group g;
	async_group_init(&g);
	for (int i = 0; i < N; i++) {
		async_job_init(&js[i], count_job, &ran[i]);
		cr_assert_eq(async_group_submit(p, &g, &js[i]), 0);
		if (i >= 3)
			rc[i - 3] = async_job_cancel(p, &js[i - 3]);
	}
	watchdog_arm(30, "cancel races");
	cr_assert_eq(async_group_wait(p, &g), 0);
	watchdog_disarm();
	int cancelled = 0;
	for (int i = 0; i + 3 < N; i++) {
		cr_assert(rc[i] == 0 || rc[i] == ASYNC_EBUSY, "job %d: %d", i, rc[i]);
		cr_assert_eq(ran[i], rc[i] == 0 ? 0 : 1, "job %d: cancel said %d", i, rc[i]);
		cancelled += rc[i] == 0;
	}
	cr_log_info("cancelled %d of %d, 3 behind the submitter", cancelled, N - 3);
	/* Again, cancelling from the newest back while the workers start from
	 * the oldest: the two meet somewhere in the middle. */
	for (int i = 0; i < N; i++) {
		ran[i] = 0;
		async_job_init(&js[i], count_job, &ran[i]);
		cr_assert_eq(async_group_submit(p, &g, &js[i]), 0);
	}
	for (int i = N; i-- > 0;)
		rc[i] = async_job_cancel(p, &js[i]);
	watchdog_arm(30, "cancel races, from the back");
	cr_assert_eq(async_group_wait(p, &g), 0);
	watchdog_disarm();
	cancelled = 0;
	for (int i = 0; i < N; i++) {
		cr_assert(rc[i] == 0 || rc[i] == ASYNC_EBUSY, "job %d: %d", i, rc[i]);
		cr_assert_eq(ran[i], rc[i] == 0 ? 0 : 1, "job %d: cancel said %d", i, rc[i]);
		cancelled += rc[i] == 0;
	}
	cr_log_info("cancelled %d of %d, from the back", cancelled, N);
	free(ran);
	free(js);
	free(rc);
	finish(p);
}
