/* SPDX-License-Identifier: MIT (see LICENSE) */
/* fj_async.c: Lace's fork-join programs (fj.h) on our typed tasks
 * (ASYNC_TASK_n and the body forms ASYNC_SPAWN/SYNC/CALL, async/fork.h).
 * Each program runs as one job on the pool. No program holds 32,768
 * unsynced spawns on a worker, so spawns' codes go unchecked, as a typed
 * spawn allows. */
#include "fj.h"

#include <limits.h>
#include <stdatomic.h>

#include "async/async.h"

struct root {
	long (*fn)(async_worker *w, void *arg);
	void *arg;
	long r;
};

static void root_job(void *arg)
{
	struct root *r = arg;
	r->r = r->fn(async_worker_self(), r->arg);
}

static long on_pool(void *pool, long (*fn)(async_worker *, void *), void *arg)
{
	struct root r = { fn, arg, 0 };
	async_group g;
	async_group_init(&g);
	async_job j;
	async_job_init(&j, root_job, &r);
	/* Asleep: a helping wait would add this thread to the W workers. */
	if (async_group_submit(pool, &g, &j) != 0 || async_group_wait_asleep(pool, &g) != 0)
		return -1;
	return r.r;
}

/* ---- fib ---- */

ASYNC_TASK_1(long, fib, int, n)
{
	if (n < 2)
		return n;
	ASYNC_SPAWN(fib, n - 1);
	long b = ASYNC_CALL(fib, n - 2);
	return ASYNC_SYNC(fib) + b;
}

static long fib_root(async_worker *w, void *arg) { return fib(w, *(int *)arg); }
long fj_fib_async(void *pool, int n) { return on_pool(pool, fib_root, &n); }

/* ---- nqueens: a task per free column of the next row ---- */

ASYNC_TASK_4(long, queens, unsigned, all, unsigned, cols, unsigned, d1, unsigned, d2)
{
	if (cols == all)
		return 1;
	unsigned avail = fj_queens_free(all, cols, d1, d2);
	long sum = 0;
	int spawned = 0;
	while (avail != 0) {
		unsigned bit = avail & -avail;
		avail ^= bit;
		unsigned c = cols | bit, l = (d1 | bit) << 1, r = (d2 | bit) >> 1;
		if (avail == 0) {
			sum += ASYNC_CALL(queens, all, c, l, r); /* the last one here */
		} else {
			ASYNC_SPAWN(queens, all, c, l, r);
			spawned++;
		}
	}
	while (spawned-- > 0)
		sum += ASYNC_SYNC(queens);
	return sum;
}

static long queens_root(async_worker *w, void *arg)
{
	int n = *(int *)arg;
	return queens(w, (1u << n) - 1, 0, 0, 0);
}
long fj_queens_async(void *pool, int n) { return on_pool(pool, queens_root, &n); }

/* ---- cilksort: sort four quarters, merge pairs, merge the halves ---- */

/* Merges a[0, na) and b[0, nb) into d: the longer run's middle element
 * splits both (a binary search in the shorter), the halves in parallel. */
ASYNC_VOID_TASK_5(merge, const fj_elm *, a, long, na, const fj_elm *, b, long, nb, fj_elm *, d)
{
	long i, j;
	if (fj_merge_step(&a, &na, &b, &nb, d, &i, &j))
		return;
	ASYNC_SPAWN(merge, a, i, b, j, d);
	ASYNC_CALL(merge, a + i + 1, na - i - 1, b + j, nb - j, d + i + j + 1);
	ASYNC_SYNC(merge);
}

ASYNC_VOID_TASK_3(cilksort, fj_elm *, a, fj_elm *, tmp, long, n)
{
	if (n < FJ_SORT_QUICK) {
		fj_seqsort(a, n);
		return;
	}
	long q = n / 4, last = n - 3 * q;
	for (int k = 0; k < 3; k++)
		ASYNC_SPAWN(cilksort, a + k * q, tmp + k * q, q);
	ASYNC_CALL(cilksort, a + 3 * q, tmp + 3 * q, last);
	for (int k = 0; k < 3; k++)
		ASYNC_SYNC(cilksort);
	ASYNC_SPAWN(merge, a, q, a + q, q, tmp);
	ASYNC_CALL(merge, a + 2 * q, q, a + 3 * q, last, tmp + 2 * q);
	ASYNC_SYNC(merge);
	ASYNC_CALL(merge, tmp, 2 * q, tmp + 2 * q, q + last, a);
}

struct sort_args {
	fj_elm *a, *tmp;
	long n;
};

static long sort_root(async_worker *w, void *arg)
{
	struct sort_args *s = arg;
	cilksort(w, s->a, s->tmp, s->n);
	return 0;
}

long fj_sort_async(void *pool, fj_elm *a, fj_elm *tmp, long n)
{
	struct sort_args s = { a, tmp, n };
	return on_pool(pool, sort_root, &s);
}

/* ---- uts: a task per child ---- */

ASYNC_TASK_2(long, uts, uint64_t, s, int, root)
{
	int k = fj_uts_children(s, root);
	if (k == 0)
		return 1;
	for (int i = 0; i < k - 1; i++)
		ASYNC_SPAWN(uts, fj_uts_child(s, i), 0);
	long sum = 1 + ASYNC_CALL(uts, fj_uts_child(s, k - 1), 0);
	for (int i = 0; i < k - 1; i++)
		sum += ASYNC_SYNC(uts);
	return sum;
}

static long uts_root(async_worker *w, void *arg) { return uts(w, *(uint64_t *)arg, 1); }
long fj_uts_async(void *pool, uint64_t seed) { return on_pool(pool, uts_root, &seed); }

/* ---- knapsack: branch and bound, with and without the first item ---- */

static atomic_int knap_best;

ASYNC_TASK_4(int, knap, const struct fj_item *, it, int, c, int, n, int, v)
{
	if (c < 0)
		return INT_MIN;
	if (n == 0 || c == 0)
		return v;
	if (fj_knap_bound(it, c, v) < atomic_load_explicit(&knap_best, memory_order_relaxed))
		return INT_MIN;
	ASYNC_SPAWN(knap, it + 1, c, n - 1, v);
	int with = ASYNC_CALL(knap, it + 1, c - it->weight, n - 1, v + it->value);
	int without = ASYNC_SYNC(knap);
	int best = with > without ? with : without;
	int seen = atomic_load_explicit(&knap_best, memory_order_relaxed);
	while (best > seen && !atomic_compare_exchange_weak_explicit(&knap_best, &seen, best,
	                                                            memory_order_relaxed, memory_order_relaxed))
		;
	return best;
}

struct knap_args {
	const struct fj_item *it;
	int n, c;
};

static long knap_root(async_worker *w, void *arg)
{
	struct knap_args *k = arg;
	return knap(w, k->it, k->c, k->n, 0);
}

long fj_knap_async(void *pool, const struct fj_item *it, int n, int capacity)
{
	atomic_store(&knap_best, 0);
	struct knap_args k = { it, n, capacity };
	return on_pool(pool, knap_root, &k);
}

/* ---- matmul: split the largest dimension; the inner one in sequence ---- */

ASYNC_VOID_TASK_4(matmul, const float *, A, const float *, B, float *, C, struct fj_dims, d)
{
	if (d.m + d.n + d.p <= FJ_MATMUL_BASE) {
		fj_matmul_kernel(A, B, C, d);
		return;
	}
	const size_t N = FJ_MATMUL_N;
	if (d.m >= d.n && d.m >= d.p) {
		struct fj_dims lo = { d.m / 2, d.n, d.p }, hi = { d.m - d.m / 2, d.n, d.p };
		ASYNC_SPAWN(matmul, A, B, C, lo);
		ASYNC_CALL(matmul, A + lo.m * N, B, C + lo.m * N, hi);
		ASYNC_SYNC(matmul);
	} else if (d.n >= d.p) {
		struct fj_dims lo = { d.m, d.n / 2, d.p }, hi = { d.m, d.n - d.n / 2, d.p };
		ASYNC_SPAWN(matmul, A, B, C, lo);
		ASYNC_CALL(matmul, A, B + lo.n, C + lo.n, hi);
		ASYNC_SYNC(matmul);
	} else {
		/* Both halves add into the same C: one after the other. */
		struct fj_dims lo = { d.m, d.n, d.p / 2 }, hi = { d.m, d.n, d.p - d.p / 2 };
		ASYNC_CALL(matmul, A, B, C, lo);
		ASYNC_CALL(matmul, A + lo.p, B + lo.p * N, C, hi);
	}
}

struct mm_args {
	const float *A, *B;
	float *C;
};

static long matmul_root(async_worker *w, void *arg)
{
	struct mm_args *m = arg;
	struct fj_dims d = { FJ_MATMUL_N, FJ_MATMUL_N, FJ_MATMUL_N };
	matmul(w, m->A, m->B, m->C, d);
	return 0;
}

long fj_matmul_async(void *pool, const float *A, const float *B, float *C)
{
	struct mm_args m = { A, B, C };
	return on_pool(pool, matmul_root, &m);
}

/* ---- pi: halve the samples down to a leaf ---- */

ASYNC_TASK_2(long, pi, long, start, long, n)
{
	if (n <= FJ_PI_LEAF)
		return fj_pi_leaf(start, n);
	ASYNC_SPAWN(pi, start, n / 2);
	long b = ASYNC_CALL(pi, start + n / 2, n - n / 2);
	return ASYNC_SYNC(pi) + b;
}

static long pi_root(async_worker *w, void *arg) { return pi(w, 0, *(long *)arg); }
long fj_pi_async(void *pool, long n) { return on_pool(pool, pi_root, &n); }
