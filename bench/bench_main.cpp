/* SPDX-License-Identifier: MIT (see LICENSE) */
// bench_main.cpp: the small C++ shim. It registers the C bodies of
// bench_core.h with Google Benchmark and hands them the state; the peers run
// in the same process and run, so their ratios are measured, not quoted.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <vector>

#include "bench_core.h"

static const int FIB_N = 30;

static void fib_counters(benchmark::State &st)
{
	st.counters["tasks"] = (double)bench_fib_tasks(FIB_N);
}

static void BM_fib_serial(benchmark::State &st)
{
	for (auto _ : st)
		benchmark::DoNotOptimize(bench_fib_serial(FIB_N));
	fib_counters(st);
}

static void BM_fib_async(benchmark::State &st)
{
	void *pool = bench_pool_new((unsigned)st.range(0));
	for (auto _ : st)
		benchmark::DoNotOptimize(bench_fib_async(pool, FIB_N));
	bench_pool_free(pool);
	fib_counters(st);
}

// One job record per call, each recorded by a trace (async/trace.h).
static void BM_fib_async_traced(benchmark::State &st)
{
	void *pool = bench_pool_new((unsigned)st.range(0));
	bench_pool_trace(pool);
	for (auto _ : st)
		benchmark::DoNotOptimize(bench_fib_async(pool, FIB_N));
	bench_pool_free(pool);
	fib_counters(st);
}

static void BM_fib_fork(benchmark::State &st)
{
	void *pool = bench_pool_new((unsigned)st.range(0));
	for (auto _ : st)
		benchmark::DoNotOptimize(bench_fib_fork(pool, FIB_N));
	bench_pool_free(pool);
	fib_counters(st);
}

static void BM_fib_deque(benchmark::State &st)
{
	for (auto _ : st)
		benchmark::DoNotOptimize(bench_fib_deque(FIB_N));
	fib_counters(st);
}

static void BM_fib_cl(benchmark::State &st)
{
	bench_cl_start((unsigned)st.range(0));
	for (auto _ : st)
		benchmark::DoNotOptimize(bench_fib_cl(FIB_N));
	bench_cl_stop();
	fib_counters(st);
}

static void BM_fib_omp(benchmark::State &st)
{
	for (auto _ : st)
		benchmark::DoNotOptimize(bench_fib_omp(FIB_N, (int)st.range(0)));
	fib_counters(st);
}

static void BM_fib_tbb(benchmark::State &st)
{
	for (auto _ : st)
		benchmark::DoNotOptimize(bench_fib_tbb(FIB_N, (int)st.range(0)));
	fib_counters(st);
}

static const size_t SUBMIT_N = 1000000;

static void BM_submit_async(benchmark::State &st)
{
	void *pool = bench_pool_new(2);
	for (auto _ : st)
		bench_submit_async(pool, SUBMIT_N, (int)st.range(0));
	bench_pool_free(pool);
	st.SetItemsProcessed((int64_t)(st.iterations() * SUBMIT_N));
}

// The same with a trace recording every job (async/trace.h).
static void BM_submit_async_traced(benchmark::State &st)
{
	void *pool = bench_pool_new(2);
	bench_pool_trace(pool);
	for (auto _ : st)
		bench_submit_async(pool, SUBMIT_N, (int)st.range(0));
	bench_pool_free(pool);
	st.SetItemsProcessed((int64_t)(st.iterations() * SUBMIT_N));
}

static void BM_submit_omp(benchmark::State &st)
{
	for (auto _ : st)
		bench_submit_omp(SUBMIT_N, 2);
	st.SetItemsProcessed((int64_t)(st.iterations() * SUBMIT_N));
}

static void BM_submit_tbb(benchmark::State &st)
{
	for (auto _ : st)
		bench_submit_tbb(SUBMIT_N, 2);
	st.SetItemsProcessed((int64_t)(st.iterations() * SUBMIT_N));
}

static void BM_submit_ckring(benchmark::State &st)
{
	for (auto _ : st)
		bench_submit_ckring(SUBMIT_N, 2);
	st.SetItemsProcessed((int64_t)(st.iterations() * SUBMIT_N));
}

static const size_t PFOR_N = 10000000;

struct Floats {
	std::vector<float> in, out;
	Floats() : in(PFOR_N), out(PFOR_N)
	{
		for (size_t i = 0; i < PFOR_N; i++)
			in[i] = (float)(i % 1000) / 1000.0f;
	}
};

static Floats &floats()
{
	static Floats f;
	return f;
}

static void BM_pfor_serial(benchmark::State &st)
{
	Floats &f = floats();
	for (auto _ : st)
		bench_pfor_serial(f.in.data(), f.out.data(), PFOR_N);
	st.SetItemsProcessed((int64_t)(st.iterations() * PFOR_N));
}

static void BM_pfor_async(benchmark::State &st)
{
	Floats &f = floats();
	void *pool = bench_pool_new((unsigned)st.range(0));
	for (auto _ : st)
		bench_pfor_async(pool, f.in.data(), f.out.data(), PFOR_N);
	bench_pool_free(pool);
	st.SetItemsProcessed((int64_t)(st.iterations() * PFOR_N));
}

static void BM_pfor_omp(benchmark::State &st)
{
	Floats &f = floats();
	for (auto _ : st)
		bench_pfor_omp(f.in.data(), f.out.data(), PFOR_N, (int)st.range(0));
	st.SetItemsProcessed((int64_t)(st.iterations() * PFOR_N));
}

static void BM_pfor_tbb(benchmark::State &st)
{
	Floats &f = floats();
	for (auto _ : st)
		bench_pfor_tbb(f.in.data(), f.out.data(), PFOR_N, (int)st.range(0));
	st.SetItemsProcessed((int64_t)(st.iterations() * PFOR_N));
}

// Idle: one measured second per iteration; the figures are counters.
static void BM_idle(benchmark::State &st)
{
	void *pool = bench_idle_pool_new(2);
	double cpu = 0, med = 0, p99 = 0;
	for (auto _ : st) {
		cpu = bench_idle_cpu(pool, 1.0);
		bench_wake_latency(pool, 200, &med, &p99);
	}
	bench_pool_free(pool);
	st.counters["idle_cpu_pct"] = cpu * 100.0;
	st.counters["wake_median_us"] = med / 1e3;
	st.counters["wake_p99_us"] = p99 / 1e3;
}

#define MS ->Unit(benchmark::kMillisecond)->UseRealTime()
BENCHMARK(BM_fib_serial) MS;
BENCHMARK(BM_fib_deque) MS;
BENCHMARK(BM_fib_async)->Arg(1)->Arg(2) MS;
BENCHMARK(BM_fib_async_traced)->Arg(1)->Arg(2) MS;
BENCHMARK(BM_fib_fork)->Arg(1)->Arg(2) MS;
BENCHMARK(BM_fib_cl)->Arg(1)->Arg(2) MS;
BENCHMARK(BM_fib_omp)->Arg(1)->Arg(2) MS;
BENCHMARK(BM_fib_tbb)->Arg(1)->Arg(2) MS;
BENCHMARK(BM_submit_async)->Arg(0)->Arg(1) MS;
BENCHMARK(BM_submit_async_traced)->Arg(0)->Arg(1) MS;
BENCHMARK(BM_submit_omp) MS;
BENCHMARK(BM_submit_tbb) MS;
BENCHMARK(BM_submit_ckring) MS;
BENCHMARK(BM_pfor_serial) MS;
BENCHMARK(BM_pfor_async)->Arg(1)->Arg(2) MS;
BENCHMARK(BM_pfor_omp)->Arg(1)->Arg(2) MS;
BENCHMARK(BM_pfor_tbb)->Arg(1)->Arg(2) MS;
BENCHMARK(BM_idle)->Iterations(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
