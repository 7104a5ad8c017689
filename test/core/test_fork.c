/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_fork.c: the split deque of fork-join frames (core/src/fork.c) and its
 * inline API (async/fork.h): order and capacity on one worker, a
 * multi-thief stress on the race for the last shared frames, fib with one
 * and two workers, and stealing/leapfrogging while workers are stopped and
 * added. Anything that could hang runs under a watchdog. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "async/async.h"
#include "watchdog.h"
#include "pool_helpers.h"

/* ---- one worker: order, state, capacity --------------------------------- */

struct order {
	int log[64];
	int n; /* only one thread writes (one worker, nobody steals) */
};

struct step {
	struct order *o;
	int id;
};

static void log_step(async_worker *w, void *arg)
{
	(void)w;
	struct step *s = arg;
	s->o->log[s->o->n++] = s->id;
}

static void order_body(void *arg)
{
	struct order *o = arg;
	async_worker *w = async_worker_self();
	cr_assert_not_null(w);
	struct step s[8];
	for (int i = 0; i < 8; i++) {
		s[i] = (struct step){ o, i };
		cr_assert_eq(async_spawn(w, log_step, &s[i]), 0);
	}
	cr_assert_eq(o->n, 0, "a spawn ran before its sync");
	for (int i = 8; i-- > 0;)
		async_sync(w); /* newest first: 7, 6, ... */
	/* Spawn/sync pairs reuse the same frame. */
	for (int i = 0; i < 1000; i++) {
		struct step k = { o, 100 };
		int before = o->n;
		cr_assert_eq(async_spawn(w, log_step, &k), 0);
		async_sync(w);
		cr_assert_eq(o->n, before + 1);
		o->n = before;
	}
}

Test(fork, one_worker_syncs_newest_first)
{
	async_pool *p = make_pool(1);
	cr_assert_null(async_worker_self(), "the main thread is not a worker");
	struct order o = { { 0 }, 0 };
	run_on_pool(p, order_body, &o, 20, "spawn/sync on one worker");
	cr_assert_eq(o.n, 8);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(o.log[i], 7 - i, "sync %d ran frame %d", i, o.log[i]);
	async_pool_destroy(p);
}

static void nothing(async_worker *w, void *arg)
{
	(void)w;
	__atomic_fetch_add((unsigned *)arg, 1, __ATOMIC_RELAXED);
}

struct capacity {
	int spawned, refused;
	unsigned ran;
};

static void capacity_body(void *arg)
{
	struct capacity *c = arg;
	async_worker *w = async_worker_self();
	for (;;) {
		int rc = async_spawn(w, nothing, &c->ran);
		if (rc != 0) {
			c->refused = rc;
			break;
		}
		c->spawned++;
		cr_assert_lt(c->spawned, 1 << 24, "the frame array never fills");
	}
	for (int i = 0; i < c->spawned; i++)
		async_sync(w);
}

Test(fork, a_full_frame_array_refuses_with_enomem_and_every_spawn_runs, .timeout = 60)
{
	async_pool *p = make_pool(2);
	struct capacity c = { 0, 0, 0 };
	run_on_pool(p, capacity_body, &c, 30, "filling the frame array");
	cr_assert_eq(c.refused, ASYNC_ENOMEM);
	cr_assert_gt(c.spawned, 1000);
	cr_assert_eq(c.ran, (unsigned)c.spawned);
	async_pool_destroy(p);
}

/* ---- many thieves against one owner ------------------------------------- */

/* The owner spawns a flat batch of frames and syncs them newest first while
 * three other workers steal: every sync of a shared frame races the thieves
 * for it (the owner's CAS taking back the split against their CAS on the
 * tail). Each frame must run exactly once, and sync must not return before
 * its frame ran (the frame's result is checked right after its sync). */
struct cell {
	unsigned hits;
	unsigned long value;
	int n;
};

static void cell_run(async_worker *w, void *arg)
{
	(void)w;
	struct cell *c = arg;
	__atomic_fetch_add(&c->hits, 1, __ATOMIC_RELAXED);
	unsigned long v = 0;
	for (int k = 0; k < c->n; k++)
		v = v * 31 + (unsigned long)k;
	c->value = v + 1; /* plain store: sync must publish it */
}

struct stress {
	int rounds, batch;
	unsigned bad_value, bad_hits;
};

static void stress_body(void *arg)
{
	struct stress *s = arg;
	async_worker *w = async_worker_self();
	struct cell *cells = calloc((size_t)s->batch, sizeof *cells);
	for (int r = 0; r < s->rounds; r++) {
		int n = 1 + (r * 7919) % s->batch;
		for (int i = 0; i < n; i++) {
			cells[i] = (struct cell){ 0, 0, (i * 13 + r) % 512 };
			cr_assert_eq(async_spawn(w, cell_run, &cells[i]), 0);
		}
		for (int i = n; i-- > 0;) {
			async_sync(w);
			if (cells[i].value == 0)
				s->bad_value++;
		}
		for (int i = 0; i < n; i++)
			if (__atomic_load_n(&cells[i].hits, __ATOMIC_RELAXED) != 1)
				s->bad_hits++;
	}
	free(cells);
}

Test(fork, many_thieves_every_frame_runs_once, .timeout = 300)
{
	async_pool *p = make_pool(4);
	struct stress s = { 20000 / FORK_SCALE, 64, 0, 0 };
	run_on_pool(p, stress_body, &s, 240, "owner against three thieves");
	cr_assert_eq(s.bad_hits, 0, "%u frames ran other than once", s.bad_hits);
	cr_assert_eq(s.bad_value, 0, "%u syncs returned before their frame ran", s.bad_value);
	unsigned long long steals = pool_steals(p);
	cr_log_info("steals: %llu", steals);
	async_pool_destroy(p);
}

/* ---- fib on the inline API ---------------------------------------------- */

struct fib {
	int n;
	long r;
};

static void fib(async_worker *w, void *arg)
{
	struct fib *f = arg;
	if (f->n < 2) {
		f->r = f->n;
		return;
	}
	struct fib a = { f->n - 1, 0 }, b = { f->n - 2, 0 };
	if (async_spawn(w, fib, &a) != 0) {
		fib(w, &a);
		fib(w, &b);
	} else {
		fib(w, &b);
		async_sync(w);
	}
	f->r = a.r + b.r;
}

/* A job that starts an inline-API tree on the worker that runs it. */
struct root {
	async_task_fn fn;
	void *arg;
};

static void root_job(void *arg)
{
	struct root *r = arg;
	async_worker *w = async_worker_self();
	cr_assert_not_null(w);
	r->fn(w, r->arg);
}

static long fib_serial(int n)
{
	return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

static void fib_on(unsigned workers, int n)
{
	async_pool *p = make_pool(workers);
	for (int round = 0; round < 3; round++) {
		struct fib f = { n, 0 };
		struct root r = { fib, &f };
		run_on_pool(p, root_job, &r, 60, "fib on the inline API");
		cr_assert_eq(f.r, fib_serial(n), "fib(%d) = %ld", n, f.r);
	}
	async_pool_destroy(p);
}

Test(fork, fib_one_worker, .timeout = 120) { fib_on(1, FORK_SCALE > 1 ? 20 : 27); }
Test(fork, fib_two_workers, .timeout = 120) { fib_on(2, FORK_SCALE > 1 ? 20 : 27); }

/* ---- stealing and leapfrogging while workers stop and start ------------- */

struct resizer {
	async_pool *p;
	int stop; /* atomic */
	unsigned rounds;
};

static void *resize_loop(void *arg)
{
	struct resizer *r = arg;
	while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST)) {
		async_pool_stop_workers(r->p, 1 + r->rounds % 2);
		usleep(200);
		async_pool_add_workers(r->p, 1 + r->rounds % 2);
		usleep(200);
		r->rounds++;
	}
	return NULL;
}

/* Record-based spawn/sync mixed in (the wrappers share the deque). */
static void fib_mixed_job(void *arg);

static void fib_mixed(async_worker *w, void *arg)
{
	struct fib *f = arg;
	if (f->n < 2) {
		f->r = f->n;
		return;
	}
	struct fib a = { f->n - 1, 0 }, b = { f->n - 2, 0 }, c = { 0, 0 };
	if (f->n % 3 == 0) {
		async_job ja;
		async_job_init(&ja, fib_mixed_job, &a);
		cr_assert_eq(async_job_spawn(&ja), 0);
		fib_mixed(w, &b);
		cr_assert_eq(async_job_sync(&ja), 0);
	} else {
		cr_assert_eq(async_spawn(w, fib_mixed, &a), 0);
		cr_assert_eq(async_spawn(w, fib_mixed, &c), 0); /* fib(0): two outstanding */
		fib_mixed(w, &b);
		async_sync(w);
		async_sync(w);
	}
	f->r = a.r + b.r + c.r;
}

/* The record-based way in: the worker comes from the thread. */
static void fib_mixed_job(void *arg)
{
	fib_mixed(async_worker_self(), arg);
}

static void leapfrog_under_resize(unsigned workers)
{
	async_pool *p = make_pool(workers);
	struct resizer r = { p, 0, 0 };
	pthread_t t;
	pthread_create(&t, NULL, resize_loop, &r);
	int n = FORK_SCALE > 1 ? 18 : 24;
	for (int round = 0; round < 20 / FORK_SCALE + 2; round++) {
		struct fib f = { n, 0 };
		struct root r = { round % 2 ? fib : fib_mixed, &f };
		run_on_pool(p, root_job, &r, 60,
		            "fib while workers are stopped and added (lost frame or wake-up)");
		cr_assert_eq(f.r, fib_serial(n));
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	unsigned long long steals = pool_steals(p);
	cr_log_info("resize rounds %u, steals %llu", r.rounds, steals);
	async_pool_destroy(p);
}

Test(fork, steal_and_leapfrog_while_workers_stop_and_start_2, .timeout = 300) { leapfrog_under_resize(2); }
Test(fork, steal_and_leapfrog_while_workers_stop_and_start_4, .timeout = 300) { leapfrog_under_resize(4); }

/* A frame stolen by a thief that itself spawns: the owner's sync must wait
 * for it (leapfrogging), and sees the thief's writes. Forced by making the
 * first frame slow so an idle worker surely takes the second. */
struct slow {
	unsigned long sum;
	int depth;
};

static void slow_tree(async_worker *w, void *arg)
{
	struct slow *s = arg;
	if (s->depth == 0) {
		usleep(200);
		s->sum = 1;
		return;
	}
	struct slow a = { 0, s->depth - 1 }, b = { 0, s->depth - 1 };
	cr_assert_eq(async_spawn(w, slow_tree, &a), 0);
	slow_tree(w, &b);
	async_sync(w);
	s->sum = a.sum + b.sum;
}

Test(fork, sync_of_a_stolen_frame_waits_and_sees_its_writes, .timeout = 120)
{
	async_pool *p = make_pool(2);
	/* 256 leaves of 200 us each on two workers: the idle one steals. A
	 * loaded host (a parallel test run, Wine) may keep the thief off the
	 * CPU for a whole round, so rounds go on until a steal was seen (at
	 * least 5, at most 100): the check below stays meaningful either way. */
	unsigned long long steals = 0;
	for (int round = 0; round < 100 && (round < 5 || steals == 0); round++) {
		struct slow s = { 0, 8 };
		struct root r = { slow_tree, &s };
		run_on_pool(p, root_job, &r, 60, "sync of stolen frames");
		cr_assert_eq(s.sum, 256);
		steals = pool_steals(p);
	}
	cr_assert_gt(steals, 0, "no frame was ever stolen");
	async_pool_destroy(p);
}

/* ---- records spawned by a job are offered at once ----------------------- */

/* Two records spawned by one job, each waiting (bounded) until the other has
 * started: they both finish "met" only if they ran at the same time. A Lace
 * owner shares private frames only at its own spawns and syncs, which the
 * long first part does not make, so a record left private would wait for
 * the owner while the idle worker sleeps (seen from Lua's awaitAll). */
struct meet {
	int started[2];
	int met[2];
};

struct meet_part {
	struct meet *m;
	int i;
};

static void meet_fn(void *arg)
{
	struct meet_part *p = arg;
	__atomic_store_n(&p->m->started[p->i], 1, __ATOMIC_SEQ_CST);
	/* Bounded by the clock, not by rounds: how long a round takes varies
	 * (a short bound gave up before a woken worker arrived under Wine). */
	time_t deadline = time(NULL) + 10;
	for (unsigned long spins = 0;; spins++) {
		if (__atomic_load_n(&p->m->started[1 - p->i], __ATOMIC_SEQ_CST)) {
			p->m->met[p->i] = 1;
			return;
		}
		if ((spins & 1023) == 0) {
			struct timespec ts = { 0, 1000 };
			nanosleep(&ts, NULL);
			if (time(NULL) > deadline)
				return;
		}
	}
}

static void meet_parent(void *arg)
{
	struct meet *m = arg;
	struct meet_part parts[2] = { { m, 0 }, { m, 1 } };
	async_job jobs[2];
	for (int i = 0; i < 2; i++) {
		async_job_init(&jobs[i], meet_fn, &parts[i]);
		cr_assert_eq(async_job_spawn(&jobs[i]), 0);
	}
	for (int i = 1; i >= 0; i--)
		cr_assert_eq(async_job_sync(&jobs[i]), 0);
}

Test(fork, records_spawned_by_a_job_run_on_an_idle_worker_meanwhile, .timeout = 300)
{
	/* A fresh pool each round, used at once (as async.load then a call),
	 * and a warm one after a pause: the other worker mid-spin or asleep. */
	for (int round = 0; round < 24 / FORK_SCALE + 2; round++) {
		async_pool *p = make_pool(2);
		if (round & 1)
			usleep(5000);
		struct meet m = { { 0, 0 }, { 0, 0 } };
		run_on_pool(p, meet_parent, &m, 120, "records spawned by a job");
		cr_assert(m.met[0] && m.met[1], "round %d: the two records did not run at the same time (%d, %d)",
		          round, m.met[0], m.met[1]);
		async_pool_destroy(p);
	}
}

/* ---- a sleeping worker is woken for a spawned frame ---------------------- */

/* The spawn's fast path does not look at the sleeper count: a worker about
 * to sleep leaves a request (movesplit) on every deque, and the owner's
 * next spawn publishes the frame and wakes it (fork.c F4). Here the other
 * worker is surely asleep when the frame is spawned, and the spawner then
 * waits for that frame without another spawn or sync: it finishes only if
 * the sleeper was woken and stole it. */
struct wake_cell {
	int ran;
	int met;
};

static void wake_mark(async_worker *w, void *arg)
{
	(void)w;
	__atomic_store_n(&((struct wake_cell *)arg)->ran, 1, __ATOMIC_SEQ_CST);
}

static void wake_spawner(void *arg)
{
	struct wake_cell *c = arg;
	async_worker *w = async_worker_self();
	cr_assert_not_null(w);
	usleep(20000); /* far past the spin: the other worker sleeps */
	cr_assert_eq(async_spawn(w, wake_mark, c), 0);
	time_t deadline = time(NULL) + 10;
	for (unsigned long spins = 0;; spins++) {
		if (__atomic_load_n(&c->ran, __ATOMIC_SEQ_CST)) {
			c->met = 1;
			break;
		}
		if ((spins & 1023) == 0) {
			struct timespec ts = { 0, 1000 };
			nanosleep(&ts, NULL);
			if (time(NULL) > deadline)
				break;
		}
	}
	async_sync(w); /* runs the frame here if nobody took it */
}

Test(fork, a_sleeping_worker_is_woken_for_a_spawned_frame, .timeout = 300)
{
	async_pool *p = make_pool(2);
	for (int round = 0; round < 6; round++) {
		struct wake_cell c = { 0, 0 };
		run_on_pool(p, wake_spawner, &c, 60, "a sleeper woken for a spawned frame");
		cr_assert(c.ran, "round %d: the frame never ran", round);
		cr_assert(c.met, "round %d: the sleeping worker was not woken for the frame", round);
	}
	async_pool_destroy(p);
}
