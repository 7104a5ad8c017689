/* SPDX-License-Identifier: MIT (see LICENSE) */
/* hello.c: the core at work from plain C: a pool, a batch of detached jobs,
 * a fork-join computation and a parallel-for, with what each worker did. */
#include <async/async.h>
#include <stdio.h>
#include <stdlib.h>

static long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

struct fib { int n; long r; };

static void fib_job(void *arg)
{
	struct fib *f = arg;
	if (f->n < 20) { /* below this, a task costs more than it saves */
		f->r = fib_serial(f->n);
		return;
	}
	struct fib a = { f->n - 1, 0 }, b = { f->n - 2, 0 };
	async_job ja;
	async_job_init(&ja, fib_job, &a);
	async_job_spawn(&ja); /* may be stolen by an idle worker */
	fib_job(&b);
	async_job_sync(&ja);  /* runs it here unless it was stolen */
	f->r = a.r + b.r;
}

static void square(void *arg, size_t begin, size_t end)
{
	double *v = arg;
	for (size_t i = begin; i < end; i++)
		v[i] = v[i] * v[i];
}

static unsigned long hits;
static void count(void *arg) { (void)arg; __atomic_fetch_add(&hits, 1, __ATOMIC_RELAXED); }

int main(void)
{
	async_pool_config cfg = async_pool_config_default();
	async_pool *pool;
	int rc = async_pool_create(&pool, &cfg);
	if (rc != 0) {
		fprintf(stderr, "async_pool_create: %s\n", async_strerror(rc));
		return 1;
	}
	printf("pool with %d workers\n", async_pool_worker_count(pool));

	enum { N = 100000 };
	async_job *jobs = calloc(N, sizeof *jobs);
	for (int i = 0; i < N; i++)
		async_job_init(&jobs[i], count, NULL);
	async_group g;
	async_group_init(&g);
	for (int i = 0; i < N; i++)
		async_group_submit(pool, &g, &jobs[i]);
	async_group_wait(pool, &g);
	printf("%lu detached jobs ran\n", hits);

	struct fib f = { 32, 0 };
	async_job root;
	async_job_init(&root, fib_job, &f);
	async_group_init(&g);
	async_group_submit(pool, &g, &root);
	async_group_wait(pool, &g);
	printf("fib(32) = %ld (serial: %ld)\n", f.r, fib_serial(32));

	static double v[1 << 20];
	for (size_t i = 0; i < sizeof v / sizeof *v; i++)
		v[i] = (double)i;
	async_parallel_for(pool, 0, sizeof v / sizeof *v, 0, square, v);
	printf("parallel-for: v[1000] = %.0f\n", v[1000]);

	async_worker_stats st[64];
	int n = async_pool_stats(pool, st, 64);
	for (int i = 0; i < n && i < 64; i++)
		printf("  worker %d on PU %d: %llu jobs, %llu steals, busy %.1f ms\n", st[i].index, st[i].pu,
		       (unsigned long long)st[i].jobs, (unsigned long long)st[i].steals, st[i].busy_ns / 1e6);
	async_pool_destroy(pool);
	free(jobs);
	return 0;
}
