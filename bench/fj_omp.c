/* SPDX-License-Identifier: MIT (see LICENSE) */
/* fj_omp.c: Lace's fork-join programs (fj.h) on OpenMP tasks (GCC's
 * libgomp): the same recursion as fj_async.c, a task where it spawns,
 * taskwait where it syncs. */
#include "fj.h"

#include <limits.h>
#include <stdatomic.h>

#define ON_TEAM(threads, expr)                          \
	long r_ = 0;                                    \
	_Pragma("omp parallel num_threads(threads)")    \
	_Pragma("omp single")                           \
	r_ = (expr);                                    \
	return r_

static long fib(int n)
{
	if (n < 2)
		return n;
	long a;
#pragma omp task shared(a)
	a = fib(n - 1);
	long b = fib(n - 2);
#pragma omp taskwait
	return a + b;
}

long fj_fib_omp(int threads, int n) { ON_TEAM(threads, fib(n)); }

static long queens(unsigned all, unsigned cols, unsigned d1, unsigned d2)
{
	if (cols == all)
		return 1;
	unsigned avail = fj_queens_free(all, cols, d1, d2);
	long part[32];
	int k = 0;
	while (avail != 0) {
		unsigned bit = avail & -avail;
		avail ^= bit;
		unsigned c = cols | bit, l = (d1 | bit) << 1, r = (d2 | bit) >> 1;
		long *out = &part[k++];
		if (avail == 0) {
			*out = queens(all, c, l, r);
		} else {
#pragma omp task firstprivate(out, all, c, l, r)
			*out = queens(all, c, l, r);
		}
	}
#pragma omp taskwait
	long sum = 0;
	for (int i = 0; i < k; i++)
		sum += part[i];
	return sum;
}

long fj_queens_omp(int threads, int n) { ON_TEAM(threads, queens((1u << n) - 1, 0, 0, 0)); }

static void merge(const fj_elm *a, long na, const fj_elm *b, long nb, fj_elm *d)
{
	long i, j;
	if (fj_merge_step(&a, &na, &b, &nb, d, &i, &j))
		return;
#pragma omp task
	merge(a, i, b, j, d);
	merge(a + i + 1, na - i - 1, b + j, nb - j, d + i + j + 1);
#pragma omp taskwait
}

static void cilksort(fj_elm *a, fj_elm *tmp, long n)
{
	if (n < FJ_SORT_QUICK) {
		fj_seqsort(a, n);
		return;
	}
	long q = n / 4, last = n - 3 * q;
	for (int k = 0; k < 3; k++) {
#pragma omp task
		cilksort(a + k * q, tmp + k * q, q);
	}
	cilksort(a + 3 * q, tmp + 3 * q, last);
#pragma omp taskwait
#pragma omp task
	merge(a, q, a + q, q, tmp);
	merge(a + 2 * q, q, a + 3 * q, last, tmp + 2 * q);
#pragma omp taskwait
	merge(tmp, 2 * q, tmp + 2 * q, q + last, a);
}

long fj_sort_omp(int threads, fj_elm *a, fj_elm *tmp, long n) { ON_TEAM(threads, (cilksort(a, tmp, n), 0)); }

static long uts(uint64_t s, int root)
{
	int k = fj_uts_children(s, root);
	if (k == 0)
		return 1;
	long part[k]; /* 8, or the root's 2,000 */
	for (int i = 0; i < k - 1; i++) {
		long *out = &part[i];
		uint64_t c = fj_uts_child(s, i);
#pragma omp task firstprivate(out, c)
		*out = uts(c, 0);
	}
	long sum = 1 + uts(fj_uts_child(s, k - 1), 0);
#pragma omp taskwait
	for (int i = 0; i < k - 1; i++)
		sum += part[i];
	return sum;
}

long fj_uts_omp(int threads, uint64_t seed) { ON_TEAM(threads, uts(seed, 1)); }

static atomic_int knap_best;

static int knap(const struct fj_item *it, int c, int n, int v)
{
	if (c < 0)
		return INT_MIN;
	if (n == 0 || c == 0)
		return v;
	if (fj_knap_bound(it, c, v) < atomic_load_explicit(&knap_best, memory_order_relaxed))
		return INT_MIN;
	int without;
#pragma omp task shared(without)
	without = knap(it + 1, c, n - 1, v);
	int with = knap(it + 1, c - it->weight, n - 1, v + it->value);
#pragma omp taskwait
	int best = with > without ? with : without;
	int seen = atomic_load_explicit(&knap_best, memory_order_relaxed);
	while (best > seen && !atomic_compare_exchange_weak_explicit(&knap_best, &seen, best,
	                                                            memory_order_relaxed, memory_order_relaxed))
		;
	return best;
}

long fj_knap_omp(int threads, const struct fj_item *it, int n, int capacity)
{
	atomic_store(&knap_best, 0);
	ON_TEAM(threads, knap(it, capacity, n, 0));
}

static void matmul(const float *A, const float *B, float *C, struct fj_dims d)
{
	if (d.m + d.n + d.p <= FJ_MATMUL_BASE) {
		fj_matmul_kernel(A, B, C, d);
		return;
	}
	const size_t N = FJ_MATMUL_N;
	if (d.m >= d.n && d.m >= d.p) {
		struct fj_dims lo = { d.m / 2, d.n, d.p }, hi = { d.m - d.m / 2, d.n, d.p };
#pragma omp task
		matmul(A, B, C, lo);
		matmul(A + lo.m * N, B, C + lo.m * N, hi);
#pragma omp taskwait
	} else if (d.n >= d.p) {
		struct fj_dims lo = { d.m, d.n / 2, d.p }, hi = { d.m, d.n - d.n / 2, d.p };
#pragma omp task
		matmul(A, B, C, lo);
		matmul(A, B + lo.n, C + lo.n, hi);
#pragma omp taskwait
	} else {
		struct fj_dims lo = { d.m, d.n, d.p / 2 }, hi = { d.m, d.n, d.p - d.p / 2 };
		matmul(A, B, C, lo);
		matmul(A + lo.p, B + lo.p * N, C, hi);
	}
}

long fj_matmul_omp(int threads, const float *A, const float *B, float *C)
{
	struct fj_dims d = { FJ_MATMUL_N, FJ_MATMUL_N, FJ_MATMUL_N };
	ON_TEAM(threads, (matmul(A, B, C, d), 0));
}

static long pi(long start, long n)
{
	if (n <= FJ_PI_LEAF)
		return fj_pi_leaf(start, n);
	long a;
#pragma omp task shared(a)
	a = pi(start, n / 2);
	long b = pi(start + n / 2, n - n / 2);
#pragma omp taskwait
	return a + b;
}

long fj_pi_omp(int threads, long n) { ON_TEAM(threads, pi(0, n)); }
