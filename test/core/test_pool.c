/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_pool.c: the pool end to end: exactly-once execution from a
 * non-worker thread, fork-join, parallel-for, resizing under load,
 * shutdown with queued work, idle CPU, errors. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32 /* portability: the Windows build runs this suite under Wine */
#include <windows.h>
#else
#include <sys/resource.h>
#endif
#include <time.h>
#include <unistd.h>

#include "async/async.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SCALE 10
#else
#define SCALE 1
#endif

static async_pool *make_pool(unsigned workers)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = workers;
	async_pool *p = NULL;
	int rc = async_pool_create(&p, &cfg);
	cr_assert_eq(rc, 0, "create: %s", async_strerror(rc));
	return p;
}

struct counted {
	async_job job;
	unsigned *hits;
	size_t i;
};

static void count_hit(void *arg)
{
	struct counted *c = arg;
	/* Release: a test that sees the count (acquire) may reuse the record. */
	__atomic_fetch_add(&c->hits[c->i], 1, __ATOMIC_RELEASE);
}

static void check_once(const unsigned *hits, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(hits[i], 1, "job %zu ran %u times", i, hits[i]);
}

Test(pool, million_jobs_from_non_worker_run_exactly_once, .timeout = 300)
{
	size_t n = 1000000 / SCALE;
	struct counted *c = calloc(n, sizeof *c);
	unsigned *hits = calloc(n, sizeof *hits);
	async_pool *p = make_pool(2);
	for (size_t i = 0; i < n; i++) {
		c[i].hits = hits;
		c[i].i = i;
		async_job_init(&c[i].job, count_hit, &c[i]);
		cr_assert_eq(async_pool_submit(p, &c[i].job), 0);
	}
	async_pool_destroy(p); /* runs everything queued, then joins */
	check_once(hits, n);
	free(c);
	free(hits);
}

Test(pool, batches_and_groups_from_non_worker)
{
	size_t n = 200000 / SCALE;
	async_job *jobs = calloc(n, sizeof *jobs);
	struct counted *c = calloc(n, sizeof *c);
	unsigned *hits = calloc(n, sizeof *hits);
	async_pool *p = make_pool(2);
	for (size_t i = 0; i < n; i++) {
		c[i].hits = hits;
		c[i].i = i;
		async_job_init(&jobs[i], count_hit, &c[i]);
	}
	for (size_t i = 0; i < n; i += 1000)
		cr_assert_eq(async_pool_submit_array(p, &jobs[i], n - i < 1000 ? n - i : 1000), 0);
	/* Groups: wait from this (non-worker) thread. */
	async_group g;
	async_group_init(&g);
	struct counted *c2 = calloc(n, sizeof *c2);
	unsigned *hits2 = calloc(n, sizeof *hits2);
	for (size_t i = 0; i < n; i++) {
		c2[i].hits = hits2;
		c2[i].i = i;
		async_job_init(&c2[i].job, count_hit, &c2[i]);
		cr_assert_eq(async_group_submit(p, &g, &c2[i].job), 0);
	}
	cr_assert_eq(async_group_wait(p, &g), 0);
	check_once(hits2, n);
	async_pool_destroy(p);
	check_once(hits, n);
	free(jobs);
	free(c);
	free(hits);
	free(c2);
	free(hits2);
}

/* Records apart from each other (each in its own allocation), named by a
 * list: each runs once, and with one worker in list order; a NULL entry or
 * a record listed twice is refused with nothing queued. */
static size_t order_next;
static size_t order_seen[64];

static void note_order(void *arg)
{
	struct counted *c = arg;
	order_seen[__atomic_fetch_add(&order_next, 1, __ATOMIC_RELAXED)] = c->i;
	__atomic_fetch_add(&c->hits[c->i], 1, __ATOMIC_RELAXED);
}

Test(pool, submit_list_runs_scattered_records_once_in_order)
{
	enum { N = 64 };
	unsigned hits[N] = { 0 };
	struct counted *c[N];
	async_job *list[N];
	async_pool *p = make_pool(1);
	for (size_t i = 0; i < N; i++) {
		c[i] = calloc(1, sizeof *c[i]);
		c[i]->hits = hits;
		c[i]->i = i;
		async_job_init(&c[i]->job, note_order, c[i]);
		list[i] = &c[i]->job;
	}
	async_job *twice[3] = { list[0], list[1], list[0] };
	cr_assert_eq(async_pool_submit_list(p, twice, 3), ASYNC_EBUSY);
	async_job *hole[2] = { list[0], NULL };
	cr_assert_eq(async_pool_submit_list(p, hole, 2), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_list(NULL, list, 1), ASYNC_EINVAL);
	cr_assert_eq(async_pool_submit_list(p, list, 0), 0);
	cr_assert_eq(async_pool_submit_list(p, list, N), 0); /* all still free */
	async_pool_destroy(p);
	check_once(hits, N);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(order_seen[i], i, "position %zu ran record %zu", i, order_seen[i]);
	for (size_t i = 0; i < N; i++)
		free(c[i]);
}

struct fib {
	int n;
	long r;
};

static void fib_job(void *arg)
{
	struct fib *f = arg;
	if (f->n < 2) {
		f->r = f->n;
		return;
	}
	struct fib a = { f->n - 1, 0 }, b = { f->n - 2, 0 };
	async_job ja;
	async_job_init(&ja, fib_job, &a);
	cr_assert_eq(async_job_spawn(&ja), 0);
	fib_job(&b);
	cr_assert_eq(async_job_sync(&ja), 0);
	f->r = a.r + b.r;
}

Test(pool, fork_join_fib_exact, .timeout = 120)
{
	async_pool *p = make_pool(2);
	int n = SCALE > 1 ? 20 : 27;
	long want[] = { [20] = 6765, [27] = 196418 };
	struct fib f = { n, 0 };
	async_job root;
	async_group g;
	async_group_init(&g);
	async_job_init(&root, fib_job, &f);
	cr_assert_eq(async_group_submit(p, &g, &root), 0);
	/* Asleep: a thread that waits helping runs jobs itself, outside
	 * the workers' counters read below. */
	cr_assert_eq(async_group_wait_asleep(p, &g), 0);
	cr_assert_eq(f.r, want[n]);
	async_worker_stats st[4];
	int nw = async_pool_stats(p, st, 4);
	unsigned long long jobs = 0;
	for (int i = 0; i < nw; i++)
		jobs += st[i].jobs;
	/* one job per call of fib except the root's own frame: fib(n) makes
	 * fib(n+1)-1 spawns... count the spawned jobs exactly: T(n) = T(n-1) +
	 * T(n-2) + 1 with T(0) = T(1) = 0, plus the root. */
	long t0 = 0, t1 = 0;
	for (int k = 2; k <= n; k++) {
		long t2 = t1 + t0 + 1;
		t0 = t1;
		t1 = t2;
	}
	cr_assert_eq(jobs, (unsigned long long)t1 + 1, "ran %llu jobs, want %ld", jobs, t1 + 1);
	async_pool_destroy(p);
}

static void spawn_from_non_worker_is_refused(void)
{
	async_job j;
	async_job_init(&j, count_hit, NULL);
	cr_assert_eq(async_job_spawn(&j), ASYNC_ENOTWORKER);
	cr_assert_eq(async_job_sync(&j), ASYNC_ENOTWORKER);
}

Test(pool, spawn_outside_a_worker) { spawn_from_non_worker_is_refused(); }

static void touch(void *arg, size_t b, size_t e)
{
	unsigned *hits = arg;
	cr_assert_lt(b, e);
	for (size_t i = b; i < e; i++)
		__atomic_fetch_add(&hits[i], 1, __ATOMIC_RELAXED);
}

struct pfor_case {
	async_pool *p;
	unsigned *hits;
	size_t b, e, grain;
};

static void pfor_inside(void *arg)
{
	struct pfor_case *pc = arg;
	cr_assert_eq(async_parallel_for(pc->p, pc->b, pc->e, pc->grain, touch, pc->hits), 0);
}

Test(pool, parallel_for_touches_every_index_once)
{
	async_pool *p = make_pool(2);
	size_t n = 1000003;
	size_t grains[] = { 0, 1000, 7, n * 2 };
	for (unsigned g = 0; g < 4; g++) {
		unsigned *hits = calloc(n, sizeof *hits);
		size_t b = 3;
		size_t grain = SCALE > 1 && grains[g] == 7 ? 100 : grains[g];
		cr_assert_eq(async_parallel_for(p, b, n, grain, touch, hits), 0);
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(hits[i], i >= b ? 1u : 0u, "grain %zu index %zu: %u", grain, i, hits[i]);
		free(hits);
	}
	/* From inside a job (a worker joins in rather than waiting). */
	unsigned *hits = calloc(n, sizeof *hits);
	struct pfor_case pc = { p, hits, 0, n, 4096 };
	async_job j;
	async_group grp;
	async_group_init(&grp);
	async_job_init(&j, pfor_inside, &pc);
	async_group_submit(p, &grp, &j);
	async_group_wait(p, &grp);
	check_once(hits, n);
	free(hits);
	cr_assert_eq(async_parallel_for(p, 5, 5, 0, touch, NULL), 0);
	cr_assert_eq(async_parallel_for(p, 5, 4, 0, touch, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_parallel_for(p, 0, 4, 0, NULL, NULL), ASYNC_EINVAL);
	async_pool_destroy(p);
}

struct feeder {
	async_pool *p;
	struct counted *c;
	size_t n;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	for (size_t i = 0; i < f->n; i++) {
		cr_assert_eq(async_pool_submit(f->p, &f->c[i].job), 0);
		if (i % 512 == 0)
			sched_yield();
	}
	return NULL;
}

static void spin_job(void *arg)
{
	count_hit(arg);
	volatile unsigned x = 0;
	for (int i = 0; i < 200; i++)
		x += (unsigned)i;
}

Test(pool, add_and_stop_workers_under_load_lose_and_duplicate_nothing, .timeout = 300)
{
	size_t n = 400000 / SCALE;
	struct counted *c = calloc(n, sizeof *c);
	unsigned *hits = calloc(n, sizeof *hits);
	for (size_t i = 0; i < n; i++) {
		c[i].hits = hits;
		c[i].i = i;
		async_job_init(&c[i].job, spin_job, &c[i]);
	}
	async_pool *p = make_pool(2);
	struct feeder f = { p, c, n };
	pthread_t t;
	pthread_create(&t, NULL, feed, &f);
	unsigned rng = 7;
	for (int round = 0; round < 200; round++) {
		rng = rng * 1103515245u + 12345u;
		if ((rng >> 16) & 1)
			cr_assert_geq(async_pool_add_workers(p, 1 + (rng >> 20) % 3), 1);
		else
			cr_assert_geq(async_pool_stop_workers(p, 1 + (rng >> 20) % 3), 0);
		usleep(200);
	}
	/* Stopping everyone mid-load must not lose the queued jobs. */
	async_pool_stop_workers(p, 1000);
	cr_assert_eq(async_pool_worker_count(p), 0);
	usleep(1000);
	cr_assert_eq(async_pool_add_workers(p, 2), 2);
	pthread_join(t, NULL);
	async_pool_destroy(p);
	check_once(hits, n);
	free(c);
	free(hits);
}

static void slow_hit(void *arg)
{
	count_hit(arg);
	usleep(2000);
}

Test(pool, stop_finishes_current_job_and_no_stale_stop_requests)
{
	async_pool *p = make_pool(2);
	cr_assert_eq(async_pool_worker_count(p), 2);
	cr_assert_eq(async_pool_stop_workers(p, 5), 2, "asks only the workers that exist");
	cr_assert_eq(async_pool_worker_count(p), 0);
	cr_assert_eq(async_pool_stop_workers(p, 3), 0);
	/* A worker added now must stay: no leftover stop request may hit it. */
	cr_assert_eq(async_pool_add_workers(p, 1), 1);
	usleep(20000);
	cr_assert_eq(async_pool_worker_count(p), 1);
	unsigned hits[64] = { 0 };
	struct counted c[64];
	for (int i = 0; i < 64; i++) {
		c[i].hits = hits;
		c[i].i = (size_t)i;
		async_job_init(&c[i].job, slow_hit, &c[i]);
		async_pool_submit(p, &c[i].job);
	}
	usleep(5000);
	/* The worker is inside a 2 ms job: it finishes it, its deque goes back
	 * to the queue, and a new worker runs the rest. */
	cr_assert_eq(async_pool_stop_workers(p, 1), 1);
	cr_assert_eq(async_pool_add_workers(p, 1), 1);
	async_pool_destroy(p);
	check_once(hits, 64);
}

/* Stopping the last worker, then submitting: the job stays queued until a
 * worker is added, even though the stopped worker was spinning (it had just
 * run a job) and finds the new job before it notices its stop. */
Test(pool, a_job_submitted_after_the_last_worker_stops_waits_for_a_new_one, .timeout = 120)
{
	async_pool *p = make_pool(1);
	unsigned hits[2] = { 0 };
	struct counted warm = { .hits = hits, .i = 0 }, late = { .hits = hits, .i = 1 };
	int ran_early = 0;
	for (int round = 0; round < 100; round++) {
		__atomic_store_n(&hits[0], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&hits[1], 0, __ATOMIC_RELAXED);
		async_job_init(&warm.job, count_hit, &warm);
		cr_assert_eq(async_pool_submit(p, &warm.job), 0);
		while (__atomic_load_n(&hits[0], __ATOMIC_ACQUIRE) == 0)
			sched_yield(); /* the worker goes on spinning after it */
		cr_assert_eq(async_pool_stop_workers(p, 1), 1);
		async_job_init(&late.job, count_hit, &late);
		cr_assert_eq(async_pool_submit(p, &late.job), 0);
		usleep(1000);
		ran_early += __atomic_load_n(&hits[1], __ATOMIC_ACQUIRE) != 0;
		cr_assert_eq(async_pool_add_workers(p, 1), 1);
		while (__atomic_load_n(&hits[1], __ATOMIC_ACQUIRE) == 0)
			sched_yield();
	}
	cr_assert_eq(ran_early, 0, "a stopped worker started %d of 100 jobs submitted after its stop", ran_early);
	async_pool_destroy(p);
}

/* async_pool_queued counts external jobs in per-thread slots, and past
 * ASYNC_PRODUCERS (16) threads in a shared counter: with no workers, the
 * count is exact whichever way each thread counted, for two pools a thread
 * alternates between, and a refused submit takes its count back. */
enum { QTHREADS = 24, QJOBS = 40 };
struct producer_arg {
	async_pool *p[2];
	struct counted *c; /* 2 * QJOBS records */
};

static void *produce_into_two(void *arg)
{
	struct producer_arg *a = arg;
	for (int i = 0; i < 2 * QJOBS; i++)
		cr_assert_eq(async_pool_submit(a->p[i & 1], &a->c[i].job), 0);
	return NULL;
}

Test(pool, queued_counts_every_producer_thread)
{
	for (int round = 0; round < 2; round++) { /* a new pool may reuse the address */
		async_pool *p[2] = { make_pool(0), make_pool(0) };
		unsigned *hits = calloc(QTHREADS * 2 * QJOBS, sizeof *hits);
		struct counted *c = calloc(QTHREADS * 2 * QJOBS, sizeof *c);
		struct producer_arg a[QTHREADS];
		pthread_t t[QTHREADS];
		for (int i = 0; i < QTHREADS * 2 * QJOBS; i++) {
			c[i].hits = hits;
			c[i].i = (size_t)i;
			async_job_init(&c[i].job, count_hit, &c[i]);
		}
		for (int k = 0; k < QTHREADS; k++) {
			a[k] = (struct producer_arg){ { p[0], p[1] }, &c[k * 2 * QJOBS] };
			pthread_create(&t[k], NULL, produce_into_two, &a[k]);
		}
		for (int k = 0; k < QTHREADS; k++)
			pthread_join(t[k], NULL);
		for (int k = 0; k < 2; k++) {
			cr_assert_eq(async_pool_queued(p[k]), QTHREADS * QJOBS);
			cr_assert_eq(async_pool_shutdown(p[k]), 0);
			cr_assert_eq(async_pool_queued(p[k]), 0);
			cr_assert_eq(async_pool_submit(p[k], &c[k].job), ASYNC_ESHUTDOWN);
			cr_assert_eq(async_pool_queued(p[k]), 0, "a refused submit stays counted");
			async_pool_destroy(p[k]);
		}
		check_once(hits, QTHREADS * 2 * QJOBS);
		free(c);
		free(hits);
	}
}

Test(pool, shutdown_runs_all_queued_work)
{
	/* No workers at all: shutdown runs the queue on the calling thread. */
	async_pool *p = make_pool(0);
	unsigned hits[1000] = { 0 };
	struct counted c[1000];
	for (int i = 0; i < 1000; i++) {
		c[i].hits = hits;
		c[i].i = (size_t)i;
		async_job_init(&c[i].job, count_hit, &c[i]);
		cr_assert_eq(async_pool_submit(p, &c[i].job), 0);
	}
	cr_assert_eq(async_pool_queued(p), 1000);
	cr_assert_eq(async_pool_shutdown(p), 0);
	check_once(hits, 1000);
	cr_assert_eq(async_pool_submit(p, &c[0].job), ASYNC_ESHUTDOWN);
	cr_assert_eq(async_pool_add_workers(p, 1), ASYNC_ESHUTDOWN);
	cr_assert_eq(async_pool_shutdown(p), 0, "shutdown is idempotent");
	async_pool_destroy(p);

	/* One worker with slow jobs queued behind each other. */
	unsigned hits2[100] = { 0 };
	p = make_pool(1);
	for (int i = 0; i < 100; i++) {
		c[i].hits = hits2;
		c[i].i = (size_t)i;
		async_job_init(&c[i].job, slow_hit, &c[i]);
		async_pool_submit(p, &c[i].job);
	}
	async_pool_destroy(p);
	check_once(hits2, 100);
}

static double cpu_seconds(void)
{
#ifdef _WIN32 /* portability: process CPU time (100 ns units) */
	FILETIME created, exited, kernel, user;
	GetProcessTimes(GetCurrentProcess(), &created, &exited, &kernel, &user);
	ULARGE_INTEGER k = { .LowPart = kernel.dwLowDateTime, .HighPart = kernel.dwHighDateTime };
	ULARGE_INTEGER u = { .LowPart = user.dwLowDateTime, .HighPart = user.dwHighDateTime };
	return (double)(k.QuadPart + u.QuadPart) / 1e7;
#else
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
#endif
}

Test(pool, idle_pool_uses_under_ten_percent_of_a_core)
{
	async_pool *p = make_pool(2);
	unsigned hits[1] = { 0 };
	struct counted c = { .hits = hits, .i = 0 };
	async_job_init(&c.job, count_hit, &c);
	async_pool_submit(p, &c.job); /* wake them once, then let them go idle */
	usleep(50000);
	double before = cpu_seconds();
	usleep(200000);
	double used = cpu_seconds() - before;
	cr_log_info("idle pool: %.2f ms CPU over 200 ms", used * 1e3);
	cr_assert_lt(used, 0.020, "idle pool used %.1f ms of CPU in 200 ms", used * 1e3);
	cr_assert_eq(__atomic_load_n(&hits[0], __ATOMIC_ACQUIRE), 1);
	async_pool_destroy(p);
}

#ifdef __linux__ /* portability: reads the names from /proc */
Test(pool, workers_are_named_for_perf_and_top)
{
	async_pool *p = make_pool(2);
	DIR *d = opendir("/proc/self/task");
	cr_assert_not_null(d);
	int found = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char path[300], name[32] = "";
		snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(name, sizeof name, f) != NULL)
			found += strncmp(name, "async-w0", 8) == 0 || strncmp(name, "async-w1", 8) == 0;
		fclose(f);
	}
	closedir(d);
	cr_assert_eq(found, 2);
	async_pool_destroy(p);
}
#endif

static void resubmit_self(void *arg)
{
	struct counted *c = arg;
	count_hit(c);
}

Test(pool, errors_are_codes_not_crashes)
{
	cr_assert_eq(async_pool_create(NULL, NULL), ASYNC_EINVAL);
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 10;
	cfg.max_workers = 4;
	async_pool *p = (async_pool *)1;
	cr_assert_eq(async_pool_create(&p, &cfg), ASYNC_EINVAL);
	cr_assert_null(p);
	cr_assert_eq(async_pool_submit(NULL, NULL), ASYNC_EINVAL);
	p = make_pool(0);
	cr_assert_eq(async_pool_submit(p, NULL), ASYNC_EINVAL);
	async_job j;
	async_job_init(&j, NULL, NULL);
	cr_assert_eq(async_pool_submit(p, &j), ASYNC_EINVAL, "a job without a function");
	unsigned hits[1] = { 0 };
	struct counted c = { .hits = hits, .i = 0 };
	async_job_init(&c.job, resubmit_self, &c);
	cr_assert_eq(async_pool_submit(p, &c.job), 0);
	cr_assert_eq(async_pool_submit(p, &c.job), ASYNC_EBUSY, "queued twice");
	cr_assert_eq(async_group_wait(p, NULL), ASYNC_EINVAL);
	cr_assert_eq(async_group_init(NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_worker_index(p), ASYNC_ENOTWORKER);
	cr_assert_eq(async_pool_worker_count(NULL), ASYNC_EINVAL);
	cr_assert_eq(async_pool_add_workers(p, 100000), 64 > 0 ? async_pool_worker_count(p) : 0);
	cr_assert_eq(async_pool_add_workers(p, 1), ASYNC_ELIMIT);
	async_pool_destroy(p);
	cr_assert_eq(hits[0], 1);
	/* Every code has a message and a name. */
	int codes[] = { ASYNC_EINVAL, ASYNC_ENOMEM, ASYNC_ESHUTDOWN, ASYNC_ELIMIT, ASYNC_ETHREAD,
	                ASYNC_ENOTWORKER, ASYNC_EBUSY, ASYNC_ETOPOLOGY };
	for (unsigned i = 0; i < sizeof codes / sizeof *codes; i++) {
		cr_assert_str_neq(async_strerror(codes[i]), "unknown error");
		cr_assert_eq(strncmp(async_err_name(codes[i]), "ASYNC_E", 7), 0);
	}
	cr_assert_str_eq(async_strerror(12345), "unknown error");
	cr_assert_str_eq(async_strerror(0), "success");
}

struct hooks {
	unsigned started, stopped;
};

static void on_start(void *ud, unsigned w)
{
	(void)w;
	__atomic_fetch_add(&((struct hooks *)ud)->started, 1, __ATOMIC_RELAXED);
}
static void on_stop(void *ud, unsigned w)
{
	(void)w;
	__atomic_fetch_add(&((struct hooks *)ud)->stopped, 1, __ATOMIC_RELAXED);
}

struct where {
	async_job job;
	async_pool *p;
	int index;
};

static void record_index(void *arg)
{
	struct where *w = arg;
	w->index = async_pool_worker_index(w->p);
}

Test(pool, worker_hooks_and_index)
{
	struct hooks h = { 0, 0 };
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 2;
	cfg.on_worker_start = on_start;
	cfg.on_worker_stop = on_stop;
	cfg.userdata = &h;
	cfg.pin = 0;
	async_pool *p;
	cr_assert_eq(async_pool_create(&p, &cfg), 0);
	struct where w = { .p = p, .index = -100 };
	async_group g;
	async_group_init(&g);
	async_job_init(&w.job, record_index, &w);
	async_group_submit(p, &g, &w.job);
	async_group_wait_asleep(p, &g); /* so a worker runs it */
	cr_assert(w.index == 0 || w.index == 1, "index %d", w.index);
	async_pool_stop_workers(p, 1);
	async_pool_add_workers(p, 2);
	async_pool_destroy(p);
	/* The add may call off the stop before the worker acts on it: then
	 * it starts one thread, not two. */
	cr_assert(h.started == 3 || h.started == 4, "started %d", h.started);
	cr_assert_eq(h.stopped, h.started);
}

static unsigned release_flag;

static void held_hit(void *arg)
{
	count_hit(arg);
	while (!__atomic_load_n(&release_flag, __ATOMIC_ACQUIRE))
		usleep(100);
}

/* Stop then add while every worker is inside a long job: each stop is still
 * pending when the add comes, so the add calls it off instead of taking a
 * new slot. Before stop requests could be withdrawn, the stopping workers
 * held their slots until their jobs ended and the add failed with
 * ASYNC_ELIMIT once max_workers slots were held. */
Test(pool, stop_then_add_reuses_the_stopping_worker, .timeout = 60)
{
	struct hooks h = { 0, 0 };
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 2;
	cfg.max_workers = 4;
	cfg.on_worker_start = on_start;
	cfg.on_worker_stop = on_stop;
	cfg.userdata = &h;
	async_pool *p;
	cr_assert_eq(async_pool_create(&p, &cfg), 0);
	unsigned hits[2] = { 0, 0 };
	struct counted c[2];
	for (int i = 0; i < 2; i++) {
		c[i].hits = hits;
		c[i].i = (size_t)i;
		async_job_init(&c[i].job, held_hit, &c[i]);
		async_pool_submit(p, &c[i].job);
	}
	/* Both workers are held inside a job until the rounds are done. */
	while (__atomic_load_n(&hits[0], __ATOMIC_RELAXED) + __atomic_load_n(&hits[1], __ATOMIC_RELAXED) < 2)
		usleep(100);
	for (int round = 0; round < 1000; round++) {
		cr_assert_eq(async_pool_stop_workers(p, 1), 1);
		cr_assert_eq(async_pool_worker_count(p), 1);
		cr_assert_eq(async_pool_add_workers(p, 1), 1, "round %d", round);
		cr_assert_eq(async_pool_worker_count(p), 2);
	}
	cr_assert_eq(__atomic_load_n(&h.started, __ATOMIC_RELAXED), 2, "no thread was started");
	__atomic_store_n(&release_flag, 1, __ATOMIC_RELEASE);
	async_pool_destroy(p);
	check_once(hits, 2);
	cr_assert_eq(h.stopped, 2);
}
