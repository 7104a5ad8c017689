/* SPDX-License-Identifier: MIT (see LICENSE) */
/* fj_main.c: async-forkjoin, Lace's fork-join programs (fj.h) on ours,
 * oneTBB and OpenMP in the same run, at 1 and 2 workers, interleaved
 * (ours, oneTBB, OpenMP, at 1 then 2 workers, repeated), each result
 * checked against the serial program's. Prints "fj/PROGRAM/SYSTEM/WORKERS
 * <TAB> ms <TAB> ms" a run (bench/report.py takes medians), and exits 1 on
 * a wrong result.
 *   async-forkjoin [reps (default 5)] [program ...] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "async/async.h"
#include "fj.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- serial versions, for the checks -------------------------------------- */

static long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

static long queens_serial(unsigned all, unsigned cols, unsigned d1, unsigned d2)
{
	if (cols == all)
		return 1;
	long sum = 0;
	for (unsigned avail = fj_queens_free(all, cols, d1, d2); avail != 0;) {
		unsigned bit = avail & -avail;
		avail ^= bit;
		sum += queens_serial(all, cols | bit, (d1 | bit) << 1, (d2 | bit) >> 1);
	}
	return sum;
}

static long uts_serial(uint64_t s, int root)
{
	int k = fj_uts_children(s, root);
	long sum = 1;
	for (int i = 0; i < k; i++)
		sum += uts_serial(fj_uts_child(s, i), 0);
	return sum;
}

/* Knapsack by dynamic programming: the check does not share the branch and
 * bound it checks. */
static long knap_dp(const struct fj_item *it, int n, int cap)
{
	long *best = calloc((size_t)cap + 1, sizeof *best);
	for (int i = 0; i < n; i++)
		for (int c = cap; c >= it[i].weight; c--)
			if (best[c - it[i].weight] + it[i].value > best[c])
				best[c] = best[c - it[i].weight] + it[i].value;
	long r = best[cap];
	free(best);
	return r;
}

/* C = A * B by the same recursion, serially: the same sums in the same
 * order, so the parallel results must match bit for bit. */
static void matmul_serial(const float *A, const float *B, float *C, struct fj_dims d)
{
	const size_t N = FJ_MATMUL_N;
	if (d.m + d.n + d.p <= FJ_MATMUL_BASE) {
		fj_matmul_kernel(A, B, C, d);
	} else if (d.m >= d.n && d.m >= d.p) {
		struct fj_dims lo = { d.m / 2, d.n, d.p }, hi = { d.m - d.m / 2, d.n, d.p };
		matmul_serial(A, B, C, lo);
		matmul_serial(A + lo.m * N, B, C + lo.m * N, hi);
	} else if (d.n >= d.p) {
		struct fj_dims lo = { d.m, d.n / 2, d.p }, hi = { d.m, d.n - d.n / 2, d.p };
		matmul_serial(A, B, C, lo);
		matmul_serial(A, B + lo.n, C + lo.n, hi);
	} else {
		struct fj_dims lo = { d.m, d.n, d.p / 2 }, hi = { d.m, d.n, d.p - d.p / 2 };
		matmul_serial(A, B, C, lo);
		matmul_serial(A + lo.p, B + lo.p * N, C, hi);
	}
}

static long pi_serial(long start, long n)
{
	if (n <= FJ_PI_LEAF)
		return fj_pi_leaf(start, n);
	return pi_serial(start, n / 2) + pi_serial(start + n / 2, n - n / 2);
}

/* ---- inputs ----------------------------------------------------------------- */

static fj_elm *sort_in, *sort_a, *sort_tmp;
static struct fj_item knap_items[FJ_KNAP_N];
static int knap_cap;
static float *mm_A, *mm_B, *mm_C, *mm_want;

static int by_density(const void *x, const void *y)
{
	const struct fj_item *a = x, *b = y;
	double da = (double)a->value / a->weight, db = (double)b->value / b->weight;
	return da > db ? -1 : da < db;
}

static void make_inputs(void)
{
	uint64_t s = 42;
	sort_in = malloc(FJ_SORT_N * sizeof *sort_in);
	sort_a = malloc(FJ_SORT_N * sizeof *sort_a);
	sort_tmp = malloc(FJ_SORT_N * sizeof *sort_tmp);
	for (long i = 0; i < FJ_SORT_N; i++)
		sort_in[i] = (fj_elm)(fj_mix(s + (uint64_t)i) >> 1);
	int total = 0;
	for (int i = 0; i < FJ_KNAP_N; i++) {
		uint64_t r = fj_mix(s * 7 + (uint64_t)i);
		knap_items[i].weight = 1000 + (int)(r % 1000);
		knap_items[i].value = knap_items[i].weight + 100; /* strongly correlated: hard to prune */
		total += knap_items[i].weight;
	}
	knap_cap = total / 2;
	qsort(knap_items, FJ_KNAP_N, sizeof knap_items[0], by_density);
	size_t nn = (size_t)FJ_MATMUL_N * FJ_MATMUL_N;
	mm_A = malloc(nn * sizeof *mm_A);
	mm_B = malloc(nn * sizeof *mm_B);
	mm_C = malloc(nn * sizeof *mm_C);
	mm_want = calloc(nn, sizeof *mm_want);
	for (size_t i = 0; i < nn; i++) {
		mm_A[i] = (float)(fj_mix(i) % 1000) / 1000.0f;
		mm_B[i] = (float)(fj_mix(i + nn) % 1000) / 1000.0f;
	}
}

/* ---- one run of a program on a system --------------------------------------- */

enum sys { OURS, TBB, OMP };
static const char *sys_name[] = { "async", "tbb", "omp" };
static void *pools[3]; /* ours, by worker count */

static long run(const char *prog, enum sys sy, int workers)
{
	void *p = pools[workers];
#define DISPATCH(fn, ...) \
	(sy == OURS ? fj_##fn##_async(p, __VA_ARGS__) : sy == TBB ? fj_##fn##_tbb(workers, __VA_ARGS__) : fj_##fn##_omp(workers, __VA_ARGS__))
	if (!strcmp(prog, "fib"))
		return DISPATCH(fib, FJ_FIB_N);
	if (!strcmp(prog, "nqueens"))
		return DISPATCH(queens, FJ_QUEENS_N);
	if (!strcmp(prog, "uts"))
		return DISPATCH(uts, 1);
	if (!strcmp(prog, "knapsack"))
		return DISPATCH(knap, knap_items, FJ_KNAP_N, knap_cap);
	if (!strcmp(prog, "pi"))
		return DISPATCH(pi, FJ_PI_N);
	if (!strcmp(prog, "cilksort")) {
		memcpy(sort_a, sort_in, FJ_SORT_N * sizeof *sort_a);
		DISPATCH(sort, sort_a, sort_tmp, FJ_SORT_N);
		long bad = 0;
		for (long i = 1; i < FJ_SORT_N; i++)
			bad += sort_a[i - 1] > sort_a[i];
		return bad;
	}
	if (!strcmp(prog, "matmul")) {
		memset(mm_C, 0, (size_t)FJ_MATMUL_N * FJ_MATMUL_N * sizeof *mm_C);
		DISPATCH(matmul, mm_A, mm_B, mm_C);
		return memcmp(mm_C, mm_want, (size_t)FJ_MATMUL_N * FJ_MATMUL_N * sizeof *mm_C) != 0;
	}
	return -1;
}

static long expected(const char *prog)
{
	if (!strcmp(prog, "fib"))
		return fib_serial(FJ_FIB_N);
	if (!strcmp(prog, "nqueens"))
		return queens_serial((1u << FJ_QUEENS_N) - 1, 0, 0, 0);
	if (!strcmp(prog, "uts"))
		return uts_serial(1, 1);
	if (!strcmp(prog, "knapsack"))
		return knap_dp(knap_items, FJ_KNAP_N, knap_cap);
	if (!strcmp(prog, "pi"))
		return pi_serial(0, FJ_PI_N);
	if (!strcmp(prog, "cilksort")) {
		memcpy(sort_a, sort_in, FJ_SORT_N * sizeof *sort_a);
		fj_seqsort(sort_a, FJ_SORT_N); /* the serial time */
		return 0; /* out of order pairs */
	}
	if (!strcmp(prog, "matmul")) {
		struct fj_dims d = { FJ_MATMUL_N, FJ_MATMUL_N, FJ_MATMUL_N };
		matmul_serial(mm_A, mm_B, mm_want, d);
		return 0; /* differs from the serial product */
	}
	return -1;
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 5;
	static const char *all[] = { "fib", "nqueens", "cilksort", "uts", "knapsack", "matmul", "pi" };
	const char **progs = argc > 2 ? (const char **)argv + 2 : all;
	int np = argc > 2 ? argc - 2 : (int)(sizeof all / sizeof all[0]);
	make_inputs();
	for (int w = 1; w <= 2; w++) {
		async_pool_config cfg = async_pool_config_default();
		cfg.workers = (unsigned)w;
		if (async_pool_create((async_pool **)&pools[w], &cfg) != 0) {
			fprintf(stderr, "async-forkjoin: pool of %d\n", w);
			return 1;
		}
	}
	int failed = 0;
	for (int i = 0; i < np; i++) {
		double t0 = now_ms();
		long want = expected(progs[i]);
		printf("fj/%s/serial/1\t%.3f\tms\n", progs[i], now_ms() - t0);
		printf("fj_result/%s\t%ld\tvalue\n", progs[i], want);
		for (int r = 0; r < reps; r++)
			for (int w = 1; w <= 2; w++)
				for (int sy = OURS; sy <= OMP; sy++) {
					t0 = now_ms();
					long got = run(progs[i], (enum sys)sy, w);
					double ms = now_ms() - t0;
					printf("fj/%s/%s/%d\t%.3f\tms\n", progs[i], sys_name[sy], w, ms);
					if (got != want) {
						fprintf(stderr, "async-forkjoin: %s on %s at %d workers: %ld, want %ld\n",
						        progs[i], sys_name[sy], w, got, want);
						failed = 1;
					}
				}
		fflush(stdout);
	}
	async_pool_destroy(pools[1]);
	async_pool_destroy(pools[2]);
	return failed;
}
