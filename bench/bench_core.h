/* SPDX-License-Identifier: MIT (see LICENSE) */
/* bench_core.h: the core benchmarks' bodies, written in C (bench_core.c,
 * peers_omp.c) and C++ only where the peer's API is C++ (peers_tbb.cpp);
 * bench_main.cpp registers them with Google Benchmark. */
#ifndef ASYNC_BENCH_CORE_H
#define ASYNC_BENCH_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* fib(n) with one task per call, no cutoff: the cost of a task. */
long bench_fib_serial(int n);
long bench_fib_async(void *pool, int n);  /* pool: an async_pool */
long bench_fib_fork(void *pool, int n);   /* the same on the inline API (async/fork.h) */
long bench_fib_deque(int n);              /* our Chase–Lev deque alone, one thread */
long bench_fib_omp(int n, int threads);
long bench_fib_tbb(int n, int threads);
/* The plain baseline (peers_cl.c): Chase–Lev deques with frames on the
 * stack, `threads` threads (the caller is one), idle ones spinning. */
void bench_cl_start(unsigned threads);
long bench_fib_cl(int n);
void bench_cl_stop(void);
/* Tasks fib(n) makes (spawns) with one task per call. */
long bench_fib_tasks(int n);

/* n empty jobs submitted from this (non-worker) thread to `threads`
 * workers, until all have run. */
void *bench_pool_new(unsigned workers);
/* A pool whose workers' CPU clocks bench_idle_cpu reads. */
void *bench_idle_pool_new(unsigned workers);
void bench_pool_free(void *pool);
/* Starts a trace (async/trace.h) on the pool: the _traced benchmarks. */
void bench_pool_trace(void *pool);
void bench_submit_async(void *pool, size_t n, int batch);
void bench_submit_omp(size_t n, int threads);
void bench_submit_tbb(size_t n, int threads);
void bench_submit_ckring(size_t n, int threads);

/* The parallel-for kernel, shared by ours and the peers: 24 dependent
 * multiply-adds, compute-bound, so 2 cores can give 2x. */
static inline float bench_poly(float x)
{
	float y = x;
	for (int k = 0; k < 12; k++)
		y = y * 0.999f + 0.001f * x * y;
	return y;
}

/* out[i] = bench_poly(in[i]) over n floats. */
void bench_pfor_serial(const float *in, float *out, size_t n);
void bench_pfor_async(void *pool, const float *in, float *out, size_t n);
void bench_pfor_omp(const float *in, float *out, size_t n, int threads);
void bench_pfor_tbb(const float *in, float *out, size_t n, int threads);

/* Idle: CPU seconds an idle pool of `workers` uses over `seconds`; wake-up
 * latency (ns) from a submit to an asleep pool to the job running. */
double bench_idle_cpu(void *pool, double seconds);
void bench_wake_latency(void *pool, int samples, double *median_ns, double *p99_ns);

#ifdef __cplusplus
}
#endif
#endif
