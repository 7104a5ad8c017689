/* SPDX-License-Identifier: MIT (see LICENSE) */
// fj_tbb.cpp: Lace's fork-join programs (fj.h) on oneTBB (Debian's
// libtbb-dev): the same recursion as fj_async.c, a task_group run where it
// spawns and its wait where it syncs. C++ only because oneTBB's API is.
#include "fj.h"

#include <atomic>
#include <climits>
#include <vector>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

// oneTBB caps its workers at (cores - 1) by default, which on 2 cores would
// leave an arena of 2 with 1 thread: allow the arenas below their size.
static tbb::global_control allow_threads(tbb::global_control::max_allowed_parallelism, 3);

template <class F> static long in_arena(int threads, F f)
{
	tbb::task_arena arena(threads);
	long r = 0;
	arena.execute([&] { r = f(); });
	return r;
}

static long fib(int n)
{
	if (n < 2)
		return n;
	long a = 0;
	tbb::task_group g;
	g.run([&] { a = fib(n - 1); });
	long b = fib(n - 2);
	g.wait();
	return a + b;
}

extern "C" long fj_fib_tbb(int threads, int n) { return in_arena(threads, [=] { return fib(n); }); }

static long queens(unsigned all, unsigned cols, unsigned d1, unsigned d2)
{
	if (cols == all)
		return 1;
	unsigned avail = fj_queens_free(all, cols, d1, d2);
	long part[32];
	int k = 0;
	tbb::task_group g;
	while (avail != 0) {
		unsigned bit = avail & -avail;
		avail ^= bit;
		unsigned c = cols | bit, l = (d1 | bit) << 1, r = (d2 | bit) >> 1;
		long *out = &part[k++];
		if (avail == 0)
			*out = queens(all, c, l, r);
		else
			g.run([=] { *out = queens(all, c, l, r); });
	}
	g.wait();
	long sum = 0;
	for (int i = 0; i < k; i++)
		sum += part[i];
	return sum;
}

extern "C" long fj_queens_tbb(int threads, int n)
{
	return in_arena(threads, [=] { return queens((1u << n) - 1, 0, 0, 0); });
}

static void merge(const fj_elm *a, long na, const fj_elm *b, long nb, fj_elm *d)
{
	long i, j;
	if (fj_merge_step(&a, &na, &b, &nb, d, &i, &j))
		return;
	tbb::task_group g;
	g.run([=] { merge(a, i, b, j, d); });
	merge(a + i + 1, na - i - 1, b + j, nb - j, d + i + j + 1);
	g.wait();
}

static void cilksort(fj_elm *a, fj_elm *tmp, long n)
{
	if (n < FJ_SORT_QUICK) {
		fj_seqsort(a, n);
		return;
	}
	long q = n / 4, last = n - 3 * q;
	tbb::task_group g;
	for (int k = 0; k < 3; k++)
		g.run([=] { cilksort(a + k * q, tmp + k * q, q); });
	cilksort(a + 3 * q, tmp + 3 * q, last);
	g.wait();
	g.run([=] { merge(a, q, a + q, q, tmp); });
	merge(a + 2 * q, q, a + 3 * q, last, tmp + 2 * q);
	g.wait();
	merge(tmp, 2 * q, tmp + 2 * q, q + last, a);
}

extern "C" long fj_sort_tbb(int threads, fj_elm *a, fj_elm *tmp, long n)
{
	return in_arena(threads, [=] { cilksort(a, tmp, n); return 0L; });
}

static long uts(uint64_t s, int root)
{
	int k = fj_uts_children(s, root);
	if (k == 0)
		return 1;
	std::vector<long> part(k - 1);
	tbb::task_group g;
	for (int i = 0; i < k - 1; i++) {
		long *out = &part[i];
		uint64_t c = fj_uts_child(s, i);
		g.run([=] { *out = uts(c, 0); });
	}
	long sum = 1 + uts(fj_uts_child(s, k - 1), 0);
	g.wait();
	for (long p : part)
		sum += p;
	return sum;
}

extern "C" long fj_uts_tbb(int threads, uint64_t seed) { return in_arena(threads, [=] { return uts(seed, 1); }); }

static std::atomic<int> knap_best;

static int knap(const struct fj_item *it, int c, int n, int v)
{
	if (c < 0)
		return INT_MIN;
	if (n == 0 || c == 0)
		return v;
	if (fj_knap_bound(it, c, v) < knap_best.load(std::memory_order_relaxed))
		return INT_MIN;
	int without = 0;
	tbb::task_group g;
	g.run([&] { without = knap(it + 1, c, n - 1, v); });
	int with = knap(it + 1, c - it->weight, n - 1, v + it->value);
	g.wait();
	int best = with > without ? with : without;
	int seen = knap_best.load(std::memory_order_relaxed);
	while (best > seen && !knap_best.compare_exchange_weak(seen, best, std::memory_order_relaxed))
		;
	return best;
}

extern "C" long fj_knap_tbb(int threads, const struct fj_item *it, int n, int capacity)
{
	knap_best.store(0);
	return in_arena(threads, [=] { return (long)knap(it, capacity, n, 0); });
}

static void matmul(const float *A, const float *B, float *C, fj_dims d)
{
	if (d.m + d.n + d.p <= FJ_MATMUL_BASE) {
		fj_matmul_kernel(A, B, C, d);
		return;
	}
	const size_t N = FJ_MATMUL_N;
	tbb::task_group g;
	if (d.m >= d.n && d.m >= d.p) {
		fj_dims lo = { d.m / 2, d.n, d.p }, hi = { d.m - d.m / 2, d.n, d.p };
		g.run([=] { matmul(A, B, C, lo); });
		matmul(A + lo.m * N, B, C + lo.m * N, hi);
		g.wait();
	} else if (d.n >= d.p) {
		fj_dims lo = { d.m, d.n / 2, d.p }, hi = { d.m, d.n - d.n / 2, d.p };
		g.run([=] { matmul(A, B, C, lo); });
		matmul(A, B + lo.n, C + lo.n, hi);
		g.wait();
	} else {
		fj_dims lo = { d.m, d.n, d.p / 2 }, hi = { d.m, d.n, d.p - d.p / 2 };
		matmul(A, B, C, lo);
		matmul(A + lo.p, B + lo.p * N, C, hi);
	}
}

extern "C" long fj_matmul_tbb(int threads, const float *A, const float *B, float *C)
{
	return in_arena(threads, [=] {
		matmul(A, B, C, fj_dims{ FJ_MATMUL_N, FJ_MATMUL_N, FJ_MATMUL_N });
		return 0L;
	});
}

static long pi(long start, long n)
{
	if (n <= FJ_PI_LEAF)
		return fj_pi_leaf(start, n);
	long a = 0;
	tbb::task_group g;
	g.run([&] { a = pi(start, n / 2); });
	long b = pi(start + n / 2, n - n / 2);
	g.wait();
	return a + b;
}

extern "C" long fj_pi_tbb(int threads, long n) { return in_arena(threads, [=] { return pi(0, n); }); }
