/* SPDX-License-Identifier: MIT (see LICENSE) */
/* bench_core.c: benchmark bodies for the async core, and the plain ck ring
 * and deque-only baselines. See bench_core.h. */
#define _GNU_SOURCE
#include "bench_core.h"

#include <async/async.h>
#include <ck_ring.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deque.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long bench_fib_serial(int n)
{
	return n < 2 ? n : bench_fib_serial(n - 1) + bench_fib_serial(n - 2);
}

long bench_fib_tasks(int n)
{
	long a = 0, b = 0; /* S(k) = S(k-1) + S(k-2) + 1, S(0) = S(1) = 0 */
	for (int k = 2; k <= n; k++) {
		long c = a + b + 1;
		a = b;
		b = c;
	}
	return n < 2 ? 0 : b;
}

/* ---- async: one task per call ---- */

struct fib {
	int n;
	long r;
};

static void fib_task(void *p)
{
	struct fib *f = p;
	if (f->n < 2) {
		f->r = f->n;
		return;
	}
	struct fib a = { f->n - 1, 0 }, b = { f->n - 2, 0 };
	async_job ja;
	async_job_init(&ja, fib_task, &a);
	async_job_spawn(&ja);
	fib_task(&b);
	async_job_sync(&ja);
	f->r = a.r + b.r;
}

void *bench_pool_new(unsigned workers)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = workers;
	async_pool *p = NULL;
	return async_pool_create(&p, &cfg) == 0 ? p : NULL;
}

void bench_pool_free(void *pool) { async_pool_destroy(pool); }

/* Tracing on, default rings: what the traced variants cost more. */
void bench_pool_trace(void *pool) { async_pool_trace_start(pool, 0); }

/* Runs fn(arg) as one job on a worker and waits for it asleep: a helping
 * wait would add this thread to the pool's W workers, and the figures
 * compare W threads with the peers' W (their calling thread is one of W). */
static void run_on_worker(void *pool, async_job_fn fn, void *arg)
{
	async_job root;
	async_group g;
	async_group_init(&g);
	async_job_init(&root, fn, arg);
	async_group_submit(pool, &g, &root);
	async_group_wait_asleep(pool, &g);
}

/* fib(n) with root as the job that starts it on a worker. */
static long fib_on_pool(void *pool, async_job_fn root_fn, int n)
{
	struct fib f = { n, 0 };
	run_on_worker(pool, root_fn, &f);
	return f.r;
}

long bench_fib_async(void *pool, int n)
{
	return fib_on_pool(pool, fib_task, n);
}

/* ---- async, inline API (async/fork.h): the split deque's fast path ---- */

static void fib_fork(async_worker *w, void *p)
{
	struct fib *f = p;
	if (f->n < 2) {
		f->r = f->n;
		return;
	}
	struct fib a = { f->n - 1, 0 }, b = { f->n - 2, 0 };
	if (async_spawn(w, fib_fork, &a) != 0) {
		fib_fork(w, &a);
		fib_fork(w, &b);
	} else {
		fib_fork(w, &b);
		async_sync(w);
	}
	f->r = a.r + b.r;
}

static void fib_fork_root(void *p)
{
	fib_fork(async_worker_self(), p);
}

long bench_fib_fork(void *pool, int n)
{
	return fib_on_pool(pool, fib_fork_root, n);
}

/* ---- a plain Chase–Lev deque on ck_pr, one thread: the floor for a task
 * that goes through a deque (push, then pop in sync) ---- */

struct dfib {
	int n;
	long r;
};

static struct async_deque dq;

static void dfib(struct dfib *f)
{
	if (f->n < 2) {
		f->r = f->n;
		return;
	}
	struct dfib a = { f->n - 1, 0 }, b = { f->n - 2, 0 };
	async_deque_push(&dq, &a);
	dfib(&b);
	struct dfib *x = async_deque_pop(&dq); /* always &a: nobody steals */
	dfib(x);
	f->r = a.r + b.r;
}

long bench_fib_deque(int n)
{
	static int ready;
	if (!ready) {
		async_deque_init(&dq, 1024, NULL);
		ready = 1;
	}
	struct dfib f = { n, 0 };
	dfib(&f);
	return f.r;
}

/* ---- submission throughput ---- */

static struct {
	uint64_t c;
	char pad[56];
} done_count[64];

static void empty_job(void *arg)
{
	async_pool *p = arg;
	int w = async_pool_worker_index(p);
	/* Per-worker counters: no shared cache line between the workers. */
	__atomic_store_n(&done_count[w].c, done_count[w].c + 1, __ATOMIC_RELEASE);
}

static uint64_t total_done(void)
{
	uint64_t s = 0;
	for (int i = 0; i < 64; i++)
		s += __atomic_load_n(&done_count[i].c, __ATOMIC_ACQUIRE);
	return s;
}

void bench_submit_async(void *pool, size_t n, int batch)
{
	static async_job *jobs;
	static size_t cap;
	if (cap < n) {
		free(jobs);
		jobs = calloc(n, sizeof *jobs);
		cap = n;
	}
	uint64_t start = total_done();
	for (size_t i = 0; i < n; i++)
		async_job_init(&jobs[i], empty_job, pool);
	if (batch) {
		for (size_t i = 0; i < n; i += 1024)
			async_pool_submit_array(pool, &jobs[i], n - i < 1024 ? n - i : 1024);
	} else {
		for (size_t i = 0; i < n; i++)
			async_pool_submit(pool, &jobs[i]);
	}
	while (total_done() - start < n)
		;
}

/* A plain ck ring: the producer enqueues pointers into an SPMC ring, the
 * consumers spin on it. No sleeping, no stealing: the raw hand-off cost. */
struct ring_ctx {
	ck_ring_t ring;
	ck_ring_buffer_t *buf;
	uint64_t consumed[8][8];
	int stop;
};

static void *ring_consumer(void *arg)
{
	struct ring_ctx **pp = arg;
	struct ring_ctx *r = pp[0];
	int id = (int)(intptr_t)pp[1];
	void *x;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (ck_ring_dequeue_spmc(&r->ring, r->buf, &x))
			__atomic_store_n(&r->consumed[id][0], r->consumed[id][0] + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

void bench_submit_ckring(size_t n, int threads)
{
	struct ring_ctx r;
	memset(&r, 0, sizeof r);
	unsigned size = 1u << 16;
	r.buf = calloc(size, sizeof *r.buf);
	ck_ring_init(&r.ring, size);
	pthread_t t[8];
	void *args[8][2];
	for (int i = 0; i < threads; i++) {
		args[i][0] = &r;
		args[i][1] = (void *)(intptr_t)i;
		pthread_create(&t[i], NULL, ring_consumer, args[i]);
	}
	for (size_t i = 0; i < n; i++)
		while (!ck_ring_enqueue_spmc(&r.ring, r.buf, (void *)(i + 1)))
			;
	for (;;) {
		uint64_t s = 0;
		for (int i = 0; i < threads; i++)
			s += __atomic_load_n(&r.consumed[i][0], __ATOMIC_ACQUIRE);
		if (s >= n)
			break;
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	free(r.buf);
}

/* ---- parallel-for ---- */

void bench_pfor_serial(const float *in, float *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = bench_poly(in[i]);
}

struct pfor_arg {
	const float *in;
	float *out;
};

static void pfor_body(void *arg, size_t b, size_t e)
{
	struct pfor_arg *a = arg;
	for (size_t i = b; i < e; i++)
		a->out[i] = bench_poly(a->in[i]);
}

struct pfor_root {
	void *pool;
	struct pfor_arg a;
	size_t n;
};

static void pfor_root(void *arg)
{
	struct pfor_root *r = arg;
	async_parallel_for(r->pool, 0, r->n, 0, pfor_body, &r->a);
}

/* From a worker: called from this thread, parallel_for would run ranges
 * here too. */
void bench_pfor_async(void *pool, const float *in, float *out, size_t n)
{
	struct pfor_root r = { pool, { in, out }, n };
	run_on_worker(pool, pfor_root, &r);
}

/* ---- idle ---- */

/* The idle pool's own workers' CPU clocks, taken as each starts: the
 * process's CPU (getrusage RUSAGE_SELF, as this measured before) also
 * counted the OpenMP and oneTBB peers' threads, alive and waking in the
 * same process after their benchmarks (0.12-0.15 % of a core in bench/run.sh
 * against 0.013-0.023 % for BM_idle run alone). */
#define IDLE_MAX 64
static clockid_t idle_clock[IDLE_MAX];
static unsigned idle_workers;

static void idle_worker_start(void *userdata, unsigned worker)
{
	(void)userdata;
	if (worker < IDLE_MAX && pthread_getcpuclockid(pthread_self(), &idle_clock[worker]) == 0)
		__atomic_fetch_add(&idle_workers, 1, __ATOMIC_RELEASE);
}

void *bench_idle_pool_new(unsigned workers)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = workers;
	cfg.on_worker_start = idle_worker_start;
	__atomic_store_n(&idle_workers, 0, __ATOMIC_RELAXED);
	async_pool *p = NULL;
	return async_pool_create(&p, &cfg) == 0 ? p : NULL;
}

static double cpu_seconds(void)
{
	double s = 0;
	unsigned n = __atomic_load_n(&idle_workers, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n && i < IDLE_MAX; i++) {
		struct timespec ts;
		if (clock_gettime(idle_clock[i], &ts) == 0)
			s += ts.tv_sec + ts.tv_nsec / 1e9;
	}
	return s;
}

double bench_idle_cpu(void *pool, double seconds)
{
	(void)pool;
	usleep(20000); /* let the workers finish spinning */
	double c0 = cpu_seconds();
	usleep((useconds_t)(seconds * 1e6));
	return cpu_seconds() - c0;
}

struct wake {
	uint64_t t_run;
};

static void wake_job(void *arg)
{
	__atomic_store_n(&((struct wake *)arg)->t_run, now_ns(), __ATOMIC_RELEASE);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void bench_wake_latency(void *pool, int samples, double *median_ns, double *p99_ns)
{
	uint64_t *lat = calloc((size_t)samples, sizeof *lat);
	for (int i = 0; i < samples; i++) {
		usleep(2000); /* long past the spin: the workers are asleep */
		struct wake w = { 0 };
		async_job j;
		async_job_init(&j, wake_job, &w);
		uint64_t t0 = now_ns();
		async_pool_submit(pool, &j);
		while (__atomic_load_n(&w.t_run, __ATOMIC_ACQUIRE) == 0)
			;
		lat[i] = w.t_run - t0;
	}
	qsort(lat, (size_t)samples, sizeof *lat, cmp_u64);
	*median_ns = (double)lat[samples / 2];
	*p99_ns = (double)lat[(samples * 99) / 100];
	free(lat);
}
