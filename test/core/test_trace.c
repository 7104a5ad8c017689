/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_trace.c: the pool's timeline (async/trace.h): every job once, with
 * its label, on its worker's track; outside threads' spans on tracks of
 * their own; a ring too small keeps the newest and counts the rest; steals
 * and sleeps; nothing while off; start, stop and collect while jobs run. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "async/async.h"
#include "watchdog.h"
#include "pool_helpers.h"
#include "trace_workload.h"

enum { JOBS = 1000 };

static void submit_labelled(async_pool *p, async_group *g, struct labelled *jobs, unsigned n)
{
	init_labelled(jobs, n);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(async_group_submit(p, g, &jobs[i].job), 0);
}

/* What a collect saw. */
struct seen {
	unsigned count[JOBS];
	unsigned jobs, unlabelled, spans, steals, sleeps, other;
	unsigned bad_track, bad_order;
	unsigned outside_tracks; /* bit k: ASYNC_TRACE_OUTSIDE + k seen */
	uint64_t last_end[ASYNC_TRACE_OUTSIDE + 8];
	uint64_t dropped;
	unsigned workers;
};

static int see(void *ud, const async_trace_event *ev)
{
	struct seen *s = ud;
	if (ev->end_ns < ev->begin_ns)
		s->bad_order++;
	s->dropped += ev->dropped;
	int outside = ev->track >= ASYNC_TRACE_OUTSIDE;
	if (outside ? ev->track >= ASYNC_TRACE_OUTSIDE + 8 : ev->track >= s->workers) {
		s->bad_track++;
		return 0;
	}
	if (outside)
		s->outside_tracks |= 1u << (ev->track - ASYNC_TRACE_OUTSIDE);
	/* Oldest first within a track: recorded at their end, in order. */
	if (ev->kind != ASYNC_TRACE_SPAN && ev->end_ns < s->last_end[ev->track])
		s->bad_order++;
	if (ev->end_ns > s->last_end[ev->track])
		s->last_end[ev->track] = ev->end_ns;
	unsigned i;
	switch (ev->kind) {
	case ASYNC_TRACE_JOB:
		if (sscanf(ev->name, "job-%u", &i) == 1 && i < JOBS && !outside)
			s->count[i]++, s->jobs++;
		else if (ev->name[0] == '\0')
			s->unlabelled++;
		else
			s->other++;
		break;
	case ASYNC_TRACE_SPAN: s->spans++; break;
	case ASYNC_TRACE_STEAL: s->steals++; break;
	case ASYNC_TRACE_SLEEP: s->sleeps++; break;
	default: s->other++;
	}
	return 0;
}

static struct seen *collect(async_pool *p, unsigned workers)
{
	struct seen *s = calloc(1, sizeof *s);
	s->workers = workers;
	cr_assert_eq(async_pool_trace_collect(p, see, s), 0);
	return s;
}

struct recorder {
	async_pool *p;
	unsigned n;
};

static void *record_spans(void *arg)
{
	struct recorder *r = arg;
	for (unsigned i = 0; i < r->n; i++) {
		uint64_t t = async_trace_now_ns();
		cr_assert_eq(async_pool_trace_record(r->p, "frame", t, t + 1000), 0);
	}
	return NULL;
}

/* 1,000 labelled jobs over two workers, and spans from two outside threads:
 * each job once, with its label, on a worker's track; each thread's spans on
 * a track of its own; nothing dropped. */
Test(trace, every_job_once_with_its_label_on_a_worker_track, .timeout = 120)
{
	async_pool *p = make_pool(2);
	cr_assert_eq(async_pool_trace_on(p), 0);
	cr_assert_eq(async_pool_trace_start(p, 0), 0);
	cr_assert_eq(async_pool_trace_on(p), 1);
	struct labelled *jobs = calloc(JOBS, sizeof *jobs);
	async_group g;
	async_group_init(&g);
	submit_labelled(p, &g, jobs, JOBS);
	struct recorder r = { p, 3 };
	record_spans(&r);
	pthread_t t;
	r.n = 2;
	pthread_create(&t, NULL, record_spans, &r);
	pthread_join(t, NULL);
	watchdog_arm(60, "the labelled jobs");
	cr_assert_eq(async_group_wait_asleep(p, &g), 0);
	watchdog_disarm();
	cr_assert_eq(async_pool_trace_stop(p), 0);
	cr_assert_eq(async_pool_trace_on(p), 0);
	struct seen *s = collect(p, 2);
	for (unsigned i = 0; i < JOBS; i++)
		cr_assert_eq(s->count[i], 1, "job-%u seen %u times", i, s->count[i]);
	cr_assert_eq(s->jobs, JOBS);
	cr_assert_eq(s->unlabelled + s->other, 0);
	cr_assert_eq(s->spans, 5);
	cr_assert_eq(s->outside_tracks, 3u, "two outside threads, two tracks");
	cr_assert_eq(s->bad_track + s->bad_order, 0);
	cr_assert_eq(s->dropped, 0);
	free(s);
	/* Recorded stays readable after stop: a second collect sees the same. */
	s = collect(p, 2);
	cr_assert_eq(s->jobs, JOBS);
	free(s);
	free(jobs);
	async_pool_destroy(p);
}

/* A thread that waits for a group on a pool without workers runs the jobs
 * itself: they are on its own track, the first outside one. */
Test(trace, jobs_a_waiting_thread_runs_are_on_its_track, .timeout = 60)
{
	async_pool *p = make_pool(0);
	cr_assert_eq(async_pool_trace_start(p, 0), 0);
	struct labelled jobs[10];
	async_group g;
	async_group_init(&g);
	submit_labelled(p, &g, jobs, 10);
	watchdog_arm(30, "group wait on a pool without workers");
	cr_assert_eq(async_group_wait(p, &g), 0);
	watchdog_disarm();
	struct seen *s = collect(p, 0);
	cr_assert_eq(s->outside_tracks, 1u);
	cr_assert_eq(s->bad_track, 0);
	cr_assert_eq(s->other, 10, "labelled jobs, all on the outside track"); /* see(): outside jobs count as other */
	free(s);
	async_pool_destroy(p);
}

struct kept {
	unsigned n;
	unsigned first, last; /* labels of the oldest and newest kept span */
	uint64_t dropped;
	int in_order;
};

static int keep_spans(void *ud, const async_trace_event *ev)
{
	struct kept *k = ud;
	unsigned i;
	if (ev->kind != ASYNC_TRACE_SPAN || sscanf(ev->name, "span-%u", &i) != 1)
		return 0;
	if (k->n == 0)
		k->first = i;
	else if (i != k->last + 1)
		k->in_order = 0;
	k->last = i;
	k->n++;
	k->dropped = ev->dropped;
	return 0;
}

static void record_numbered(async_pool *p, unsigned n)
{
	char name[32];
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof name, "span-%u", i);
		uint64_t t = async_trace_now_ns();
		cr_assert_eq(async_pool_trace_record(p, name, t, t), 0);
	}
}

/* A ring of 100 given 1,000 events keeps the newest 100, oldest first, and
 * counts 900 dropped. */
Test(trace, a_full_ring_keeps_the_newest_and_counts_the_dropped)
{
	async_pool *p = make_pool(1);
	cr_assert_eq(async_pool_trace_start(p, 100), 0);
	record_numbered(p, 1000);
	struct kept k = { 0, 0, 0, 0, 1 };
	cr_assert_eq(async_pool_trace_collect(p, keep_spans, &k), 0);
	cr_assert_eq(k.n, 100);
	cr_assert_eq(k.first, 900);
	cr_assert_eq(k.last, 999);
	cr_assert(k.in_order);
	cr_assert_eq(k.dropped, 900);
	async_pool_destroy(p);
}

struct in_job {
	async_pool *p;
};

static void record_from_job(void *arg)
{
	struct in_job *j = arg;
	async_trace_label("recorder");
	record_numbered(j->p, 1000);
}

/* The same on a worker's ring: the spans a job records go to its worker's
 * track; the newest are kept (the job's own event, recorded when it ends,
 * is the newest of all). */
Test(trace, a_full_worker_ring_keeps_the_newest, .timeout = 60)
{
	async_pool *p = make_pool(1);
	cr_assert_eq(async_pool_trace_start(p, 100), 0);
	struct in_job j = { p };
	run_on_pool(p, record_from_job, &j, 30, "a job recording 1,000 spans");
	struct kept k = { 0, 0, 0, 0, 1 };
	cr_assert_eq(async_pool_trace_collect(p, keep_spans, &k), 0);
	cr_assert_eq(k.n, 99, "the job's event took the 100th place");
	cr_assert_eq(k.last, 999);
	cr_assert_eq(k.first, 901);
	cr_assert(k.in_order);
	cr_assert_geq(k.dropped, 901);
	async_pool_destroy(p);
}

struct since {
	unsigned n;
	uint64_t min_end;
};

static int count_since(void *ud, const async_trace_event *ev)
{
	struct since *s = ud;
	s->n++;
	if (ev->end_ns < s->min_end)
		s->min_end = ev->end_ns;
	return 0;
}

static int stop_at_once(void *ud, const async_trace_event *ev)
{
	(void)ev;
	(*(unsigned *)ud)++;
	return 7;
}

/* collect_since visits what ended at or after the bound; a visitor's
 * nonzero return stops the walk and is returned. */
Test(trace, collect_since_and_a_visitor_that_stops)
{
	async_pool *p = make_pool(0);
	cr_assert_eq(async_pool_trace_start(p, 0), 0);
	for (uint64_t i = 0; i < 10; i++)
		cr_assert_eq(async_pool_trace_record(p, "x", 100 + i, 1000 + i), 0);
	struct since s = { 0, UINT64_MAX };
	cr_assert_eq(async_pool_trace_collect_since(p, 1006, count_since, &s), 0);
	cr_assert_eq(s.n, 4);
	cr_assert_eq(s.min_end, 1006);
	unsigned calls = 0;
	cr_assert_eq(async_pool_trace_collect(p, stop_at_once, &calls), 7);
	cr_assert_eq(calls, 1);
	async_pool_destroy(p);
}

static int count_jobs(void *ud, const async_trace_event *ev)
{
	if (ev->kind == ASYNC_TRACE_JOB)
		(*(unsigned *)ud)++;
	return 0;
}

/* Starting again forgets what was recorded, on the workers' tracks and the
 * outside ones, with the same ring size or another. */
Test(trace, starting_again_forgets, .timeout = 60)
{
	async_pool *p = make_pool(1);
	for (int round = 0; round < 4; round++) {
		cr_assert_eq(async_pool_trace_start(p, round == 2 ? 50 : 0), 0);
		struct kept k = { 0, 0, 0, 0, 1 };
		unsigned jobs = 0;
		cr_assert_eq(async_pool_trace_collect(p, keep_spans, &k), 0);
		cr_assert_eq(async_pool_trace_collect(p, count_jobs, &jobs), 0);
		cr_assert_eq(k.n + jobs, 0, "round %d", round);
		record_numbered(p, 40);
		struct labelled l;
		init_labelled(&l, 1);
		run_on_pool(p, run_labelled, &l, 30, "one labelled job");
		k = (struct kept){ 0, 0, 0, 0, 1 };
		cr_assert_eq(async_pool_trace_collect(p, keep_spans, &k), 0);
		cr_assert_eq(async_pool_trace_collect(p, count_jobs, &jobs), 0);
		cr_assert_eq(k.n, 40);
		cr_assert_eq(jobs, 1);
		cr_assert_eq(k.dropped, 0);
	}
	async_pool_destroy(p);
}

/* Off: jobs, labels and records leave nothing, before the first start and
 * after a stop. */
Test(trace, off_records_nothing, .timeout = 60)
{
	async_pool *p = make_pool(2);
	struct labelled *jobs = calloc(JOBS, sizeof *jobs);
	async_trace_label("not in a job");
	for (int phase = 0; phase < 2; phase++) {
		async_group g;
		async_group_init(&g);
		submit_labelled(p, &g, jobs, JOBS);
		cr_assert_eq(async_pool_trace_record(p, "x", 1, 2), 0);
		watchdog_arm(60, "jobs while tracing is off");
		cr_assert_eq(async_group_wait_asleep(p, &g), 0);
		watchdog_disarm();
		struct seen *s = collect(p, 2);
		cr_assert_eq(s->jobs + s->spans + s->steals + s->sleeps + s->unlabelled + s->other, 0,
		             "phase %d", phase);
		free(s);
		/* The second phase: after a start (which sees nothing yet) and
		 * a stop. */
		cr_assert_eq(async_pool_trace_start(p, 0), 0);
		cr_assert_eq(async_pool_trace_stop(p), 0);
	}
	free(jobs);
	async_pool_destroy(p);
}

/* Workers asleep are woken by a submission: the sleep is recorded. Steals
 * are recorded one for one with the workers' steal counters. */
static void spawn_tree(void *arg);
struct tree {
	async_job job;
	unsigned depth;
	volatile unsigned spin;
};

static void spawn_tree(void *arg)
{
	struct tree *t = arg;
	if (t->depth == 0) {
		for (unsigned i = 0; i < 2000; i++)
			t->spin += i;
		return;
	}
	struct tree a = { .depth = t->depth - 1 }, b = { .depth = t->depth - 1 };
	async_job_init(&a.job, spawn_tree, &a);
	async_job_init(&b.job, spawn_tree, &b);
	int ra = async_job_spawn(&a.job);
	spawn_tree(&b);
	if (ra == 0)
		async_job_sync(&a.job);
	else
		spawn_tree(&a);
}

Test(trace, sleeps_and_steals_are_recorded, .timeout = 120)
{
	async_pool *p = make_pool(2);
	cr_assert_eq(async_pool_trace_start(p, 0), 0);
	struct tree root = { .depth = 12 };
	unsigned long long before = pool_steals(p);
	for (int round = 0; round < 20; round++) {
		run_on_pool(p, spawn_tree, &root, 60, "a spawn tree");
		if (pool_steals(p) > before)
			break;
	}
	usleep(50 * 1000); /* far past the idle spin: both workers sleep */
	run_on_pool(p, spawn_tree, &root, 60, "a spawn tree after a pause");
	cr_assert_eq(async_pool_trace_stop(p), 0);
	struct seen *s = collect(p, 2);
	cr_assert_gt(s->sleeps, 0);
	/* One for one while the rings kept everything (a slow machine may
	 * need many trees for a steal, and fill them). */
	if (s->dropped == 0)
		cr_assert_eq(s->steals, (unsigned)(pool_steals(p) - before));
	else
		cr_assert_leq(s->steals, (unsigned)(pool_steals(p) - before));
	cr_assert_gt(s->steals, 0, "no steal in 21 trees of 4,096 leaves");
	cr_assert_eq(s->bad_track + s->bad_order, 0);
	free(s);
	async_pool_destroy(p);
}

/* Labels: cut at 47 bytes, and before a character the cut would split. */
static void label_long(void *arg)
{
	(void)arg;
	/* 46 ASCII bytes, then a two-byte character across the cut. */
	async_trace_label("0123456789012345678901234567890123456789012345\xc3\xa9tail");
}

static void label_twice(void *arg)
{
	(void)arg;
	async_trace_label("first");
	async_trace_label("second");
}

static int grab_names(void *ud, const async_trace_event *ev)
{
	char(*names)[ASYNC_TRACE_NAME_SIZE] = ud;
	if (ev->kind != ASYNC_TRACE_JOB)
		return 0;
	int i = names[0][0] == '\0' ? 0 : 1;
	memcpy(names[i], ev->name, ASYNC_TRACE_NAME_SIZE);
	return 0;
}

Test(trace, labels_are_cut_whole_and_the_last_wins, .timeout = 60)
{
	async_pool *p = make_pool(1);
	cr_assert_eq(async_pool_trace_start(p, 0), 0);
	run_on_pool(p, label_long, NULL, 30, "a job with a long label");
	run_on_pool(p, label_twice, NULL, 30, "a job labelled twice");
	char names[2][ASYNC_TRACE_NAME_SIZE] = { { 0 } };
	cr_assert_eq(async_pool_trace_collect(p, grab_names, names), 0);
	cr_assert_str_eq(names[0], "0123456789012345678901234567890123456789012345");
	cr_assert_str_eq(names[1], "second");
	async_pool_destroy(p);
}

/* A job that hands its result over itself, as the Lua layer's calls do:
 * it ends its event, says it is done, then waits until the test has stopped
 * and collected the trace. */
struct handover {
	int done, collected, ended;
};

static void handover_job(void *arg)
{
	struct handover *h = arg;
	async_trace_label("handed-over");
	async_trace_job_done();
	async_trace_job_done(); /* a second call records nothing more */
	__atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&h->collected, __ATOMIC_ACQUIRE))
		usleep(100);
	async_trace_label("too late"); /* the event is recorded: no effect */
	__atomic_store_n(&h->ended, 1, __ATOMIC_RELEASE);
}

static int count_handed(void *ud, const async_trace_event *ev)
{
	if (ev->kind == ASYNC_TRACE_JOB && strcmp(ev->name, "handed-over") == 0)
		++*(unsigned *)ud;
	if (ev->kind == ASYNC_TRACE_JOB && strcmp(ev->name, "too late") == 0)
		*(unsigned *)ud += 100;
	return 0;
}

Test(trace, a_job_that_hands_over_its_result_is_in_the_trace_first, .timeout = 60)
{
	async_pool *p = make_pool(1);
	cr_assert_eq(async_pool_trace_start(p, 0), 0);
	struct handover h = { 0 };
	async_job j;
	async_job_init(&j, handover_job, &h);
	cr_assert_eq(async_pool_submit(p, &j), 0);
	while (!__atomic_load_n(&h.done, __ATOMIC_ACQUIRE))
		usleep(100);
	cr_assert_eq(async_pool_trace_stop(p), 0);
	unsigned n = 0;
	cr_assert_eq(async_pool_trace_collect(p, count_handed, &n), 0);
	__atomic_store_n(&h.collected, 1, __ATOMIC_RELEASE);
	cr_assert_eq(n, 1, "the job, once, before it returned (saw %u)", n);
	while (!__atomic_load_n(&h.ended, __ATOMIC_ACQUIRE))
		usleep(100);
	async_pool_destroy(p);
	async_trace_job_done(); /* outside a job: nothing */
}

Test(trace, misuse)
{
	cr_assert_eq(async_pool_trace_start(NULL, 0), ASYNC_EINVAL);
	cr_assert_eq(async_pool_trace_stop(NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_trace_on(NULL), 0);
	cr_assert_eq(async_pool_trace_record(NULL, "x", 1, 2), ASYNC_EINVAL);
	cr_assert_eq(async_pool_trace_collect(NULL, see, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_trace_write(NULL, "x"), ASYNC_EINVAL);
	async_pool *p = make_pool(0);
	cr_assert_eq(async_pool_trace_record(p, "x", 2, 1), ASYNC_EINVAL);
	cr_assert_eq(async_pool_trace_collect(p, NULL, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_trace_write(p, NULL), ASYNC_EINVAL);
	/* Before any start: nothing to visit, and an empty file is written. */
	unsigned calls = 0;
	cr_assert_eq(async_pool_trace_collect(p, stop_at_once, &calls), 0);
	cr_assert_eq(calls, 0);
	cr_assert_eq(async_pool_trace_write(p, "/nonexistent-dir/trace.json"), ASYNC_EIO);
	async_pool_destroy(p);
}

/* ---- on and off while jobs run (the TSan stage runs this) ---------------- */

struct churn {
	async_pool *p;
	int stop;
	unsigned collected;
	unsigned bad;
};

static void *submitter(void *arg)
{
	struct churn *c = arg;
	enum { BATCH = 64 };
	struct labelled *jobs = calloc(BATCH, sizeof *jobs);
	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		async_group g;
		async_group_init(&g);
		submit_labelled(c->p, &g, jobs, BATCH);
		async_group_wait(c->p, &g); /* helps: jobs on this thread's track too */
		uint64_t t = async_trace_now_ns();
		async_pool_trace_record(c->p, "frame", t, t + 10);
	}
	free(jobs);
	return NULL;
}

static int check_event(void *ud, const async_trace_event *ev)
{
	struct churn *c = ud;
	c->collected++;
	unsigned i;
	int named = ev->name[0] == '\0' || strcmp(ev->name, "frame") == 0 || strcmp(ev->name, "steal") == 0 ||
	            strcmp(ev->name, "sleep") == 0 || (sscanf(ev->name, "job-%u", &i) == 1 && i < 64);
	if (ev->end_ns < ev->begin_ns || ev->kind > ASYNC_TRACE_SPAN || !named ||
	    (ev->track >= 2 && ev->track < ASYNC_TRACE_OUTSIDE) || ev->track >= ASYNC_TRACE_OUTSIDE + 4)
		c->bad++;
	return 0;
}

Test(trace, start_stop_and_collect_while_jobs_run, .timeout = 300)
{
	async_pool *p = make_pool(2);
	struct churn c = { p, 0, 0, 0 };
	pthread_t t[2];
	for (int k = 0; k < 2; k++)
		pthread_create(&t[k], NULL, submitter, &c);
	watchdog_arm(240, "tracing on and off while jobs run");
	for (int round = 0; round < 200; round++) {
		/* Sizes that change every few rounds retire rings in use. */
		cr_assert_eq(async_pool_trace_start(p, round % 8 < 4 ? 256 : 512), 0);
		for (int k = 0; k < 3; k++) {
			usleep(500); /* a start forgets: let some events in */
			cr_assert_eq(async_pool_trace_collect(p, check_event, &c), 0);
		}
		if (round % 2 == 0)
			cr_assert_eq(async_pool_trace_stop(p), 0);
		cr_assert_eq(async_pool_trace_collect_since(p, async_trace_now_ns() - 1000000, check_event, &c), 0);
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	watchdog_disarm();
	cr_assert_eq(c.bad, 0, "%u malformed of %u events", c.bad, c.collected);
	cr_assert_gt(c.collected, 0);
	cr_log_info("events collected while running: %u", c.collected);
	async_pool_destroy(p);
}

/* ---- a thread that records to two pools --------------------------------- */

struct blocker {
	async_pool *p;
	int entered, release;
};

/* Holds the pool's trace lock (a collect's visitor runs under it) until
 * released, as a long async_pool_trace_write does. */
static int block_in_visit(void *ud, const async_trace_event *ev)
{
	(void)ev;
	struct blocker *b = ud;
	__atomic_store_n(&b->entered, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&b->release, __ATOMIC_ACQUIRE))
		usleep(100);
	return 1;
}

static void *collect_blocking(void *arg)
{
	struct blocker *b = arg;
	async_pool_trace_collect(b->p, block_in_visit, b);
	return NULL;
}

struct two_pools {
	async_pool *render, *io;
	int phase; /* 1: first records made; 2: go on; 3: done */
};

static void *record_in_turn(void *arg)
{
	struct two_pools *tp = arg;
	async_pool_trace_record(tp->render, "frame", 1, 2);
	async_pool_trace_record(tp->io, "load", 1, 2);
	__atomic_store_n(&tp->phase, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&tp->phase, __ATOMIC_ACQUIRE) != 2)
		usleep(100);
	for (int i = 0; i < 100; i++) {
		async_pool_trace_record(tp->render, "frame", 1, 2);
		async_pool_trace_record(tp->io, "load", 1, 2);
	}
	__atomic_store_n(&tp->phase, 3, __ATOMIC_RELEASE);
	return NULL;
}

/* An engine's game thread records spans to its render pool and its io pool
 * in turn while a tool writes the io pool's trace: after each pool's first
 * record, records wait for no lock (they did: the thread's cached ring was
 * the last pool's only, so each switch took the other pool's trace lock and
 * waited out the whole write). The game thread is a thread of its own here,
 * so that a wait is a failure after 10 s, not a hang. */
Test(trace, records_to_two_pools_in_turn_wait_for_no_collect, .timeout = 60)
{
	async_pool *render = make_pool(0), *io = make_pool(0);
	cr_assert_eq(async_pool_trace_start(render, 0), 0);
	cr_assert_eq(async_pool_trace_start(io, 0), 0);
	struct two_pools tp = { render, io, 0 };
	pthread_t game;
	pthread_create(&game, NULL, record_in_turn, &tp);
	while (__atomic_load_n(&tp.phase, __ATOMIC_ACQUIRE) != 1)
		usleep(100);
	struct blocker b = { io, 0, 0 };
	pthread_t tool;
	pthread_create(&tool, NULL, collect_blocking, &b);
	while (!__atomic_load_n(&b.entered, __ATOMIC_ACQUIRE))
		usleep(100);
	__atomic_store_n(&tp.phase, 2, __ATOMIC_RELEASE);
	for (int ms = 0; ms < 10000 && __atomic_load_n(&tp.phase, __ATOMIC_ACQUIRE) != 3; ms++)
		usleep(1000);
	int done = __atomic_load_n(&tp.phase, __ATOMIC_ACQUIRE) == 3;
	__atomic_store_n(&b.release, 1, __ATOMIC_RELEASE);
	pthread_join(tool, NULL);
	pthread_join(game, NULL);
	cr_assert(done, "records waited for another pool's collect");
	/* Each pool's spans on its own trace, none lost. */
	struct since s = { 0, UINT64_MAX };
	cr_assert_eq(async_pool_trace_collect(io, count_since, &s), 0);
	cr_assert_eq(s.n, 101);
	s = (struct since){ 0, UINT64_MAX };
	cr_assert_eq(async_pool_trace_collect(render, count_since, &s), 0);
	cr_assert_eq(s.n, 101);
	async_pool_destroy(render);
	async_pool_destroy(io);
}

/* ---- typed fork-join tasks a thief runs ---------------------------------- */

#include "async/fork.h"

ASYNC_TASK_1(long, tfib, int, n)
{
	if (n < 2)
		return n;
	ASYNC_SPAWN(tfib, n - 1);
	long b = ASYNC_CALL(tfib, n - 2);
	return ASYNC_SYNC(tfib) + b;
}

static void tfib_root(void *arg)
{
	async_trace_label("fib");
	*(long *)arg = tfib(async_worker_self(), 27 - (FORK_SCALE > 1 ? 5 : 0));
}

struct busy {
	uint64_t job_ns[2];
	unsigned steals[2];
};

static int busy_of(void *ud, const async_trace_event *ev)
{
	struct busy *b = ud;
	if (ev->track < 2 && ev->kind == ASYNC_TRACE_JOB)
		b->job_ns[ev->track] += ev->end_ns - ev->begin_ns;
	if (ev->track < 2 && ev->kind == ASYNC_TRACE_STEAL)
		b->steals[ev->track]++;
	return 0;
}

/* One job runs a typed fork-join tree (ASYNC_SPAWN/ASYNC_SYNC) on two
 * workers: a worker that stole part of it shows that part as an event on
 * its track (it showed a steal instant and then nothing, as if idle, while
 * it ran the stolen subtree). */
Test(trace, a_stolen_fork_join_task_is_an_event_on_the_thiefs_track, .timeout = 120)
{
	async_pool *p = make_pool(2);
	struct busy b;
	memset(&b, 0, sizeof b);
	for (int round = 0; round < 40 && b.steals[0] + b.steals[1] == 0; round++) {
		cr_assert_eq(async_pool_trace_start(p, 0), 0);
		long r = 0;
		run_on_pool(p, tfib_root, &r, 60, "a typed fork-join tree");
		cr_assert_gt(r, 0);
		cr_assert_eq(async_pool_trace_stop(p), 0);
		memset(&b, 0, sizeof b);
		cr_assert_eq(async_pool_trace_collect(p, busy_of, &b), 0);
	}
	cr_assert_gt(b.steals[0] + b.steals[1], 0, "no steal in 40 trees");
	/* The root job ran on one worker; each worker that stole shows time
	 * in events. */
	for (int w = 0; w < 2; w++)
		if (b.steals[w] > 0)
			cr_assert_gt(b.job_ns[w], 0, "worker %d stole %u times and shows no work", w, b.steals[w]);
	async_pool_destroy(p);
}

/* ---- labels in another encoding, labels from jobs without an event ------- */

static void label_latin1(void *arg)
{
	(void)arg;
	/* 52 bytes of Latin-1 "©" (0xA9): not UTF-8, and every byte looks like
	 * a continuation byte. */
	char name[53];
	memset(name, 0xA9, 52);
	name[52] = '\0';
	async_trace_label(name);
}

/* A long label that is not UTF-8 is cut at 47 bytes like any other (the
 * file turns its bytes into U+FFFD); it was cut back to nothing, looking
 * for the start of a UTF-8 character that was not there. */
Test(trace, a_long_label_in_latin1_is_kept, .timeout = 60)
{
	async_pool *p = make_pool(1);
	cr_assert_eq(async_pool_trace_start(p, 0), 0);
	run_on_pool(p, label_latin1, NULL, 30, "a job with a long Latin-1 label");
	char names[2][ASYNC_TRACE_NAME_SIZE] = { { 0 } };
	cr_assert_eq(async_pool_trace_collect(p, grab_names, names), 0);
	cr_assert_eq(strlen(names[0]), ASYNC_TRACE_NAME_SIZE - 1, "kept %zu bytes", strlen(names[0]));
	async_pool_destroy(p);
}

static async_pool *label_io;

static void io_decompress(void *arg)
{
	(void)arg;
	async_trace_label("decompress");
}

static void render_cull(void *arg)
{
	(void)arg;
	async_trace_label("cull");
	async_group g;
	async_job j;
	async_group_init(&g);
	async_job_init(&j, io_decompress, NULL);
	cr_assert_eq(async_group_submit(label_io, &g, &j), 0);
	cr_assert_eq(async_group_wait(label_io, &g), 0); /* runs io_decompress here */
}

/* A traced render job waits for an untraced io pool's job, which runs on
 * the same thread and labels itself: that label names no event; it renamed
 * the render job's. */
Test(trace, a_label_in_a_job_without_an_event_names_no_other_job, .timeout = 60)
{
	async_pool *render = make_pool(1);
	label_io = make_pool(0);
	cr_assert_eq(async_pool_trace_start(render, 0), 0);
	run_on_pool(render, render_cull, NULL, 30, "a render job waiting for an io job");
	char names[2][ASYNC_TRACE_NAME_SIZE] = { { 0 } };
	cr_assert_eq(async_pool_trace_collect(render, grab_names, names), 0);
	cr_assert_str_eq(names[0], "cull");
	cr_assert_str_eq(names[1], "", "one job event only");
	async_pool_destroy(render);
	async_pool_destroy(label_io);
}

/* ---- a ring size that cannot be had ------------------------------------- */

/* A size no allocator gives (about 2^64 bytes a ring) is refused by start
 * with ASYNC_ENOMEM, and nothing records; start said 0, recorded nothing,
 * and each job tried the allocation again. Not under the sanitizers, whose
 * allocators abort on a request this size instead of returning NULL. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
Test(trace, a_ring_size_that_cannot_be_allocated_is_refused_by_start, .timeout = 60)
{
	async_pool *p = make_pool(2);
	cr_assert_eq(async_pool_trace_start(p, SIZE_MAX / 72 - 2), ASYNC_ENOMEM);
	cr_assert_eq(async_pool_trace_on(p), 0);
	/* The pool still traces with a size it can have. */
	cr_assert_eq(async_pool_trace_start(p, 0), 0);
	struct labelled l;
	init_labelled(&l, 1);
	run_on_pool(p, run_labelled, &l, 30, "one labelled job");
	unsigned jobs = 0;
	cr_assert_eq(async_pool_trace_collect(p, count_jobs, &jobs), 0);
	cr_assert_eq(jobs, 1);
	async_pool_destroy(p);
}
#endif

/* ---- outside threads that come and go ----------------------------------- */

static void *record_once(void *arg)
{
	async_pool_trace_record(arg, "load", 1, 2);
	return NULL;
}

static int outside_tracks(void *ud, const async_trace_event *ev)
{
	unsigned *max = ud;
	if (ev->track >= ASYNC_TRACE_OUTSIDE && ev->track - ASYNC_TRACE_OUTSIDE + 1 > *max)
		*max = ev->track - ASYNC_TRACE_OUTSIDE + 1;
	return 0;
}

/* 40 loader threads, one after the other (each with its own stack size, as
 * threads of different libraries have), each record a span: the ring of a
 * thread that exited is taken by the next, so the trace holds a ring or two,
 * not 40 (4.5 MiB each by default, kept until the pool's destruction). */
Test(trace, a_thread_that_exited_leaves_its_ring_to_the_next, .timeout = 60)
{
	async_pool *p = make_pool(0);
	cr_assert_eq(async_pool_trace_start(p, 0), 0);
	for (unsigned i = 0; i < 40; i++) {
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, (256 + 16 * i) * 1024);
		pthread_t t;
		cr_assert_eq(pthread_create(&t, &a, record_once, p), 0);
		pthread_join(t, NULL);
		pthread_attr_destroy(&a);
	}
	unsigned tracks = 0;
	cr_assert_eq(async_pool_trace_collect(p, outside_tracks, &tracks), 0);
	cr_assert_leq(tracks, 2, "%u outside tracks for 40 threads never alive together", tracks);
	struct since s = { 0, UINT64_MAX };
	cr_assert_eq(async_pool_trace_collect(p, count_since, &s), 0);
	cr_assert_eq(s.n, 40, "each thread's span kept");
	async_pool_destroy(p);
}

static uint64_t cull_waited_at;

static void io_hands_over(void *arg)
{
	(void)arg;
	async_trace_job_done(); /* a job that hands its result over itself */
}

static void render_cull_waits(void *arg)
{
	(void)arg;
	async_group g;
	async_job j;
	async_group_init(&g);
	async_job_init(&j, io_hands_over, NULL);
	cr_assert_eq(async_group_submit(label_io, &g, &j), 0);
	cr_assert_eq(async_group_wait(label_io, &g), 0); /* runs io_hands_over here */
	cull_waited_at = async_trace_now_ns();
}

static int job_end_of(void *ud, const async_trace_event *ev)
{
	if (ev->kind == ASYNC_TRACE_JOB)
		*(uint64_t *)ud = ev->end_ns;
	return 0;
}

/* The same for async_trace_job_done: the untraced io job's call records no
 * event, and leaves the render job's to end when the render job does (it
 * recorded the render job's event then, ended before the job had waited). */
Test(trace, job_done_in_a_job_without_an_event_ends_no_other_job, .timeout = 60)
{
	async_pool *render = make_pool(1);
	label_io = make_pool(0);
	cr_assert_eq(async_pool_trace_start(render, 0), 0);
	run_on_pool(render, render_cull_waits, NULL, 30, "a render job waiting for an io job");
	uint64_t end = 0;
	cr_assert_eq(async_pool_trace_collect(render, job_end_of, &end), 0);
	cr_assert_geq(end, cull_waited_at, "the render job's event ended before its wait did");
	async_pool_destroy(render);
	async_pool_destroy(label_io);
}
