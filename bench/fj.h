/* SPDX-License-Identifier: MIT (see LICENSE) */
/* fj.h: Lace's fork-join benchmark programs (fib, nqueens, cilksort, uts,
 * knapsack, matmul, pi), written here from their published descriptions,
 * on three systems in the same run: ours (typed tasks, fj_async.c), OpenMP
 * tasks (fj_omp.c) and oneTBB task_group (fj_tbb.cpp); fj_main.c times and
 * checks them. What every version shares (inputs, leaves, serial versions
 * for the checks) is here, so the versions differ only in how they fork. */
#ifndef ASYNC_BENCH_FJ_H
#define ASYNC_BENCH_FJ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- inputs (fj_main.c lists Lace's beside them) -------------------------- */

#define FJ_FIB_N 32
#define FJ_QUEENS_N 12
#define FJ_SORT_N 2000000
#define FJ_SORT_QUICK 2048  /* Cilk's QUICKSIZE: below it, a serial sort */
#define FJ_SORT_MERGE 2048  /* Cilk's MERGESIZE: below it, a serial merge */
#define FJ_UTS_B0 2000      /* root's children (binomial tree, as UTS's T3) */
#define FJ_UTS_M 8          /* a non-root node's children: M with probability Q */
#define FJ_UTS_Q 0.124
#define FJ_UTS_ROUNDS 16    /* hash rounds per node: UTS's SHA-1 stand-in */
#define FJ_KNAP_N 36
#define FJ_MATMUL_N 512
#define FJ_MATMUL_BASE 48   /* m + n + p at or below it: the serial kernel */
#define FJ_PI_N 40000000L
#define FJ_PI_LEAF 8192

/* ---- uts: a node is a 64-bit state; its children's states are hashes ---- */

static inline uint64_t fj_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static inline uint64_t fj_uts_hash(uint64_t s)
{
	for (int r = 0; r < FJ_UTS_ROUNDS; r++)
		s = fj_mix(s + 0x9e3779b97f4a7c15ull);
	return s;
}

/* Children of the node with state s (root: the first level). */
static inline int fj_uts_children(uint64_t s, int root)
{
	if (root)
		return FJ_UTS_B0;
	double u = (double)(fj_uts_hash(s) >> 11) * (1.0 / 9007199254740992.0);
	return u < FJ_UTS_Q ? FJ_UTS_M : 0;
}

static inline uint64_t fj_uts_child(uint64_t s, int i)
{
	return fj_uts_hash(s ^ ((uint64_t)(i + 1) << 40));
}

/* ---- nqueens: the board as bit masks of the attacked columns ------------ */

/* Columns free on the next row. */
static inline unsigned fj_queens_free(unsigned all, unsigned cols, unsigned d1, unsigned d2)
{
	return ~(cols | d1 | d2) & all;
}

/* ---- cilksort's serial pieces --------------------------------------------- */

typedef long fj_elm;

static inline void fj_insertion(fj_elm *a, long n)
{
	for (long i = 1; i < n; i++) {
		fj_elm x = a[i];
		long j = i;
		for (; j > 0 && a[j - 1] > x; j--)
			a[j] = a[j - 1];
		a[j] = x;
	}
}

static inline void fj_seqsort(fj_elm *a, long n)
{
	while (n > 20) {
		fj_elm p = a[n / 2];
		long i = 0, j = n - 1;
		for (;;) {
			while (a[i] < p)
				i++;
			while (a[j] > p)
				j--;
			if (i >= j)
				break;
			fj_elm t = a[i];
			a[i] = a[j];
			a[j] = t;
			i++;
			j--;
		}
		fj_seqsort(a, j + 1);
		a += j + 1;
		n -= j + 1;
	}
	fj_insertion(a, n);
}

static inline void fj_seqmerge(const fj_elm *a, long na, const fj_elm *b, long nb, fj_elm *d)
{
	while (na > 0 && nb > 0) {
		if (*b < *a) {
			*d++ = *b++;
			nb--;
		} else {
			*d++ = *a++;
			na--;
		}
	}
	memcpy(d, a, (size_t)na * sizeof *a);
	memcpy(d + na, b, (size_t)nb * sizeof *b);
}

/* First index in b[0, nb) whose element is >= x. */
static inline long fj_lower_bound(const fj_elm *b, long nb, fj_elm x)
{
	long lo = 0, hi = nb;
	while (lo < hi) {
		long mid = lo + (hi - lo) / 2;
		if (b[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A parallel merge's step: orders the runs so a is the longer; merges
 * serially and returns 1 when they are short; else places a's middle
 * element and returns 0 with *i (its index) and *j (where it splits b):
 * the caller merges a[0, i) with b[0, j) and the rest in parallel. */
static inline int fj_merge_step(const fj_elm **a, long *na, const fj_elm **b, long *nb, fj_elm *d,
                                long *i, long *j)
{
	if (*na < *nb) {
		const fj_elm *t = *a;
		*a = *b;
		*b = t;
		long tn = *na;
		*na = *nb;
		*nb = tn;
	}
	if (*na + *nb <= FJ_SORT_MERGE || *nb == 0) {
		fj_seqmerge(*a, *na, *b, *nb, d);
		return 1;
	}
	*i = *na / 2;
	*j = fj_lower_bound(*b, *nb, (*a)[*i]);
	d[*i + *j] = (*a)[*i];
	return 0;
}

/* ---- knapsack: items by value density, best first ------------------------ */

struct fj_item {
	int value, weight;
};

/* The fractional (LP) bound of what items[0..n) can add to value v with
 * capacity c: the branch is cut when it cannot beat the best found. */
static inline int fj_knap_bound(const struct fj_item *it, int c, int v)
{
	return v + (int)((double)c * it->value / it->weight);
}

/* ---- matmul: C += A * B on a sub-block, the serial kernel ---------------- */

struct fj_dims {
	int m, n, p; /* C is m x n, A m x p, B p x n; all rows FJ_MATMUL_N long */
};

static inline void fj_matmul_kernel(const float *A, const float *B, float *C, struct fj_dims d)
{
	for (int i = 0; i < d.m; i++)
		for (int k = 0; k < d.p; k++) {
			float a = A[(size_t)i * FJ_MATMUL_N + k];
			for (int j = 0; j < d.n; j++)
				C[(size_t)i * FJ_MATMUL_N + j] += a * B[(size_t)k * FJ_MATMUL_N + j];
		}
}

/* ---- pi: points in the unit square, a leaf's stream seeded by its start -- */

static inline long fj_pi_leaf(long start, long n)
{
	uint64_t s = fj_mix((uint64_t)start + 1);
	long in = 0;
	for (long i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		double x = (double)(s >> 40) * (1.0 / 16777216.0);
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		double y = (double)(s >> 40) * (1.0 / 16777216.0);
		in += x * x + y * y <= 1.0;
	}
	return in;
}

/* ---- the programs, per system --------------------------------------------- */

/* ours: pool is an async_pool with the wanted workers; the others take the
 * thread count. Each returns the program's result (sort and matmul work in
 * place and return 0). */
#define FJ_DECLARE(sys, ...)                                                              \
	long fj_fib_##sys(__VA_ARGS__, int n);                                            \
	long fj_queens_##sys(__VA_ARGS__, int n);                                         \
	long fj_sort_##sys(__VA_ARGS__, fj_elm *a, fj_elm *tmp, long n);                  \
	long fj_uts_##sys(__VA_ARGS__, uint64_t seed);                                    \
	long fj_knap_##sys(__VA_ARGS__, const struct fj_item *it, int n, int capacity);   \
	long fj_matmul_##sys(__VA_ARGS__, const float *A, const float *B, float *C);      \
	long fj_pi_##sys(__VA_ARGS__, long n);
FJ_DECLARE(async, void *pool)
FJ_DECLARE(omp, int threads)
FJ_DECLARE(tbb, int threads)

#ifdef __cplusplus
}
#endif
#endif
