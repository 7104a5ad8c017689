/* SPDX-License-Identifier: MIT (see LICENSE) */
/* peers_omp.c: the OpenMP peer (GCC's libgomp), same bodies as ours. */
#include "bench_core.h"

static long fib_omp(int n)
{
	if (n < 2)
		return n;
	long a, b;
#pragma omp task shared(a)
	a = fib_omp(n - 1);
	b = fib_omp(n - 2);
#pragma omp taskwait
	return a + b;
}

long bench_fib_omp(int n, int threads)
{
	long r = 0;
#pragma omp parallel num_threads(threads)
#pragma omp single
	r = fib_omp(n);
	return r;
}

static void empty(void) { __asm__ __volatile__("" ::: "memory"); }

/* One thread creates every task (the "submitter"); the team runs them. */
void bench_submit_omp(size_t n, int threads)
{
#pragma omp parallel num_threads(threads)
#pragma omp single
	{
		for (size_t i = 0; i < n; i++) {
#pragma omp task
			empty();
		}
#pragma omp taskwait
	}
}

void bench_pfor_omp(const float *in, float *out, size_t n, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
	for (size_t i = 0; i < n; i++)
		out[i] = bench_poly(in[i]);
}
