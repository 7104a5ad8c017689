/* async/fork.h: the fast fork-join path: spawn and sync inlined into the
 * caller, on the calling worker's split deque (core/src/fork.c has the
 * algorithm and its correctness argument). async_job_spawn/async_job_sync
 * (pool.h) are wrappers over the same deque for callers that want records.
 *
 *     static void fib(async_worker *w, void *p) {
 *         struct fib *f = p;              // { int n; long r; }
 *         if (f->n < 2) { f->r = f->n; return; }
 *         struct fib a = { f->n - 1 }, b = { f->n - 2 };
 *         if (async_spawn(w, fib, &a) != 0) { fib(w, &a); fib(w, &b); } // full
 *         else { fib(w, &b); async_sync(w); }
 *         f->r = a.r + b.r;
 *     }
 *     ... from a job: fib(async_worker_self(), &root);
 *
 * Rules: only on a worker of a pool (async_worker_self() != NULL), with
 * that worker; sync in the reverse order of spawning; every spawn of a task
 * is synced before the task returns (the pool syncs leftovers for you, at a
 * cost); the argument must stay alive until its sync returns. After sync
 * returns, what the spawned function wrote through arg is visible. */
#ifndef ASYNC_FORK_H
#define ASYNC_FORK_H

#include <stdint.h>

#include "async/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct async_worker async_worker;

/* A spawned call gets the worker that runs it (the spawner, or a thief):
 * pass it on to the spawns and syncs the call makes. */
typedef void (*async_task_fn)(async_worker *w, void *arg);

/* One spawned call: a slot of the worker's frame array. The fields are the
 * pool's. thief: 0 while not taken by a thief; the thief (an async_worker)
 * while it runs the call; ASYNC_FRAME_DONE once it returned. */
typedef struct async_frame {
	async_task_fn fn;
	void *arg;
	void *thief;
	uintptr_t reserved_[5]; /* one frame per cache line: no false sharing
	                         * between the owner's top and a thief's frame */
} async_frame;

#define ASYNC_FRAME_DONE ((void *)1)

/* A worker's split deque. The fields are the pool's; they are public only
 * so spawn and sync can be inlined. Frames [base, split) are shared (thieves
 * take the oldest by a CAS on ts), [split, head) private to the owner. */
struct async_worker {
	/* Owner only (plain accesses). */
	async_frame *head;     /* the next free frame */
	async_frame *limit;    /* spawn leaves the fast path at head >= limit:
	                        * end, or base while allstolen is set */
	async_frame *split;    /* the owner's copy of the split */
	async_frame *floor;    /* the wrappers never sync below this */
	async_frame *base, *end;
	const uint32_t *sleepers; /* the pool's count of sleeping workers */
	uint32_t allstolen;    /* owner's copy: every shared frame was taken */
	uint32_t pad0_;
	/* Shared with thieves, on its own cache line. */
	uint64_t ts __attribute__((aligned(64))); /* thieves' tail (low half), split (high) */
	uint32_t pub_allstolen; /* thieves skip this deque while set */
	uint32_t movesplit;     /* a thief, or a worker about to sleep, asks
	                         * the owner to share more */
	char pad1_ __attribute__((aligned(64)));
};

/* Any thread; never blocks. The calling thread's worker (of any pool; the
 * pseudo-worker while shutdown runs leftover jobs), or NULL. */
ASYNC_API async_worker *async_worker_self(void);

/* Slow paths of the inline calls below; not to be called directly. */
ASYNC_API void async__spawn_slow(async_worker *w);
ASYNC_API int async__spawn_limit(async_worker *w);
ASYNC_API void async__sync_slow(async_worker *w);

/* The calling worker w only; never blocks. Queues fn(.., arg) to run later here
 * (at async_sync) or on a thief. 0, or ASYNC_ENOMEM when w's frame array is
 * full (then nothing was queued: call fn(w, arg) yourself, do not sync). */
static inline int async_spawn(async_worker *w, async_task_fn fn, void *arg)
{
	async_frame *t = w->head;
	t->fn = fn; /* end has a spare slot, so these stores are always safe */
	t->arg = arg;
	/* One compare covers both a full array and "every shared frame was
	 * stolen" (then limit == base): the out-of-line path tells them apart. */
	if (__builtin_expect(t >= w->limit, 0))
		return async__spawn_limit(w);
	w->head = t + 1;
	/* Private: no fence, no shared write (a free frame's thief field is
	 * already 0, fork.c I5). Leave the fast path when a thief or a worker
	 * about to sleep asked for work: publish, and wake a sleeper. */
	if (__builtin_expect(__atomic_load_n(&w->movesplit, __ATOMIC_RELAXED), 0))
		async__spawn_slow(w);
	return 0;
}

/* The calling worker w only. Returns when the most recent unsynced spawn of
 * w has run: here and now if no thief took it (a plain pop and call), or,
 * if one did, after the thief finished it (meanwhile w runs work from that
 * thief: leapfrogging). */
static inline void async_sync(async_worker *w)
{
	async_frame *t = w->head - 1;
	if (__builtin_expect(t >= w->split && !__atomic_load_n(&w->movesplit, __ATOMIC_RELAXED), 1)) {
		async_task_fn fn = t->fn;
		void *arg = t->arg;
		w->head = t;
		fn(w, arg);
		return;
	}
	async__sync_slow(w);
}

#ifdef __cplusplus
}
#endif
#endif
