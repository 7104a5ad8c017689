/* SPDX-License-Identifier: MIT (see LICENSE) */
// peers_tbb.cpp: the oneTBB peer (Debian's libtbb-dev). C++ only because its
// API is; same bodies as ours.
#include "bench_core.h"

#include <atomic>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

// oneTBB caps its workers at (cores - 1) by default, which on 2 cores would
// leave an arena of 2 with 1 thread: allow the arenas below their size.
static tbb::global_control allow_threads(tbb::global_control::max_allowed_parallelism, 3);

static long fib_tbb(int n)
{
	if (n < 2)
		return n;
	long a = 0, b = 0;
	tbb::task_group g;
	g.run([&] { a = fib_tbb(n - 1); });
	b = fib_tbb(n - 2);
	g.wait();
	return a + b;
}

extern "C" long bench_fib_tbb(int n, int threads)
{
	tbb::task_arena arena(threads);
	long r = 0;
	arena.execute([&] { r = fib_tbb(n); });
	return r;
}

// Submitted from outside the arena: enqueue from this thread, the arena's
// threads run them.
// Per-thread counters, as in ours: no shared cache line between workers.
struct alignas(64) Counter {
	std::atomic<size_t> c{ 0 };
};
static Counter done_tbb[64];

extern "C" void bench_submit_tbb(size_t n, int threads)
{
	tbb::task_arena arena(threads, 0); // no slot reserved for this thread
	size_t start = 0;
	for (auto &d : done_tbb)
		start += d.c.load();
	for (size_t i = 0; i < n; i++)
		arena.enqueue([] {
			int t = tbb::this_task_arena::current_thread_index() & 63;
			done_tbb[t].c.store(done_tbb[t].c.load(std::memory_order_relaxed) + 1, std::memory_order_release);
		});
	for (;;) {
		size_t s = 0;
		for (auto &d : done_tbb)
			s += d.c.load(std::memory_order_acquire);
		if (s - start >= n)
			break;
	}
}

extern "C" void bench_pfor_tbb(const float *in, float *out, size_t n, int threads)
{
	tbb::task_arena arena(threads);
	arena.execute([&] {
		tbb::parallel_for(tbb::blocked_range<size_t>(0, n), [&](const tbb::blocked_range<size_t> &r) {
			for (size_t i = r.begin(); i != r.end(); ++i)
				out[i] = bench_poly(in[i]);
		});
	});
}
