/* SPDX-License-Identifier: MIT (see LICENSE) */
/* async/fork.h: the fast fork-join path, inlined into the caller, on the
 * calling worker's split deque (core/src/fork.c has the algorithm and its
 * correctness argument). Two forms share the deque and may be mixed:
 *
 * Typed tasks, for functions known at compile time (the fast one: the
 * arguments and the result live in the frame, and a sync whose task was not
 * stolen calls the function directly):
 *
 *     ASYNC_TASK_1(long, pfib, int, n)
 *     {
 *         if (n < 2) return n;
 *         pfib_spawn(w, n - 1);
 *         long b = pfib(w, n - 2);
 *         return pfib_sync(w) + b;
 *     }
 *     ... from a job: long r = pfib(async_worker_self(), 30);
 *
 * Untyped spawns of any function pointer with one argument pointer:
 * async_spawn(w, fn, arg) and async_sync(w). async_job_spawn/async_job_sync
 * (pool.h) are wrappers over the same deque for callers that want records.
 *
 * Rules: only on a worker of a pool (async_worker_self() != NULL), with
 * that worker; sync in the reverse order of spawning, a typed task with its
 * own NAME_sync; every spawn of a task is synced before the task returns
 * (the pool syncs leftovers for you, at a cost); an untyped argument must
 * stay alive until its sync returns. After sync returns, what the spawned
 * call wrote is visible. docs/c-forkjoin.md has the whole reference. */
#ifndef ASYNC_FORK_H
#define ASYNC_FORK_H

#include <stddef.h>
#include <stdint.h>

#include "async/error.h"

/* Portability: this header is compiled by the users' compilers (C11 and
 * C++, GCC, Clang, MSVC), so the compiler-specific bits sit here. */
#if defined(_MSC_VER)
#define ASYNC_LIKELY_(x) (x)
#define ASYNC_UNLIKELY_(x) (x)
/* An aligned 32-bit volatile load is a single load on every target MSVC
 * has (and acquire under /volatile:ms): at least relaxed. */
#define ASYNC_LOAD_RELAXED_32_(p) (*(const volatile uint32_t *)(p))
#ifdef __clang__ /* clang-cl warns of unused static inline functions */
#define ASYNC_UNUSED_ __attribute__((unused))
#else
#define ASYNC_UNUSED_
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define ASYNC_LIKELY_(x) __builtin_expect(!!(x), 1)
#define ASYNC_UNLIKELY_(x) __builtin_expect(!!(x), 0)
#define ASYNC_LOAD_RELAXED_32_(p) __atomic_load_n((p), __ATOMIC_RELAXED)
/* A typed task's spawn and sync are generated whether used or not. */
#define ASYNC_UNUSED_ __attribute__((unused))
#else
#define ASYNC_LIKELY_(x) (x)
#define ASYNC_UNLIKELY_(x) (x)
#define ASYNC_LOAD_RELAXED_32_(p) (*(const volatile uint32_t *)(p))
#define ASYNC_UNUSED_
#endif
#ifdef __cplusplus
/* C++ engines build with -Wold-style-cast and -Wzero-as-null-pointer-constant,
 * and the typed tasks' macros expand in their code: C++ casts there. */
#define ASYNC_REC_CAST_(T, p) static_cast<T *>(static_cast<void *>(p))
#define ASYNC_NULL_ nullptr
#define ASYNC_ALIGNAS_(n) alignas(n)
#define ASYNC_STATIC_ASSERT_(c, m) static_assert(c, m)
/* A zeroed T, for a refused typed sync. Not through a static task record:
 * a trivially copyable type may still have a non-trivial default
 * constructor (default member initializers), which deletes the record's. */
#define ASYNC_ZERO_RETURN_(T)                                                  \
	do {                                                                   \
		T async_zero_{};                                               \
		return async_zero_;                                            \
	} while (0)
#else
#define ASYNC_REC_CAST_(T, p) ((T *)(void *)(p))
#define ASYNC_NULL_ NULL
#define ASYNC_ALIGNAS_(n) _Alignas(n)
#define ASYNC_STATIC_ASSERT_(c, m) _Static_assert(c, m)
#define ASYNC_ZERO_RETURN_(T)                                                  \
	do {                                                                   \
		static T async_zero_;                                          \
		return async_zero_;                                            \
	} while (0)
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct async_worker async_worker;

/* A spawned call gets the worker that runs it (the spawner, or a thief):
 * pass it on to the spawns and syncs the call makes. */
typedef void (*async_task_fn)(async_worker *w, void *arg);

/* One spawned call: a slot of the worker's frame array. The fields are the
 * pool's. thief: 0 while not taken by a thief; the thief (an async_worker)
 * while it runs the call; ASYNC_FRAME_DONE once it returned. A typed task
 * (ASYNC_TASK_n) lays its record over the same slot: fn and arg (the
 * record itself) as here, then thief, then its arguments or result in
 * data_, so a thief and the pool's leftover syncs run either kind alike. */
typedef struct async_frame {
	async_task_fn fn;
	void *arg;
	void *thief;
	uintptr_t data_[5]; /* one frame per cache line: no false sharing
	                     * between the owner's top and a thief's frame */
} async_frame;

#define ASYNC_FRAME_DONE ((void *)1)

/* Unsynced spawns one worker holds at most: 16,384 in its frame array
 * (async_spawn returns ASYNC_ENOMEM past them), and for typed spawns, which
 * then run at once, 16,384 more (the frames are committed at once on
 * Windows: 2 MiB a worker). */
#define ASYNC_FRAMES_MAX 32768

/* A worker's split deque. The fields are the pool's; they are public only
 * so spawn and sync can be inlined. Frames [base, split) are shared (thieves
 * take the oldest by a CAS on ts), [split, head) private to the owner. */
struct async_worker {
	/* Owner only (plain accesses). */
	async_frame *head;     /* the next free frame */
	async_frame *limit;    /* spawn leaves the fast path at head >= limit:
	                        * end, or base while allstolen is set */
	async_frame *low;      /* sync pops without looking further above
	                        * this: the higher of split and floor, or
	                        * head while frames sit past end (fork.c T6) */
	async_frame *split;    /* the owner's copy of the split */
	async_frame *floor;    /* syncs never go below this: frames of the
	                        * task that runs the current one */
	async_frame *base, *end;
	const uint32_t *sleepers; /* the pool's count of sleeping workers */
	uint32_t allstolen;    /* owner's copy: every shared frame was taken */
	int32_t misuse;        /* a typed sync's misuse code (async_fork_error) */
	/* Shared with thieves, on its own cache line. */
	ASYNC_ALIGNAS_(64) uint64_t ts; /* thieves' tail (low half), split (high) */
	uint32_t pub_allstolen; /* thieves skip this deque while set */
	uint32_t movesplit;     /* a thief, or a worker about to sleep, asks
	                         * the owner to share more */
	ASYNC_ALIGNAS_(64) char pad1_;
};

/* Any thread; never blocks. The calling thread's worker (of any pool; the
 * pseudo-worker while shutdown runs leftover jobs), or NULL. */
ASYNC_API async_worker *async_worker_self(void);

/* The calling worker w only. The code of the last misuse of a typed sync by
 * w, which could not return it (ASYNC_EINVAL: nothing to sync; the sync
 * returned a zeroed result), or 0; reading clears it. */
ASYNC_API int async_fork_error(async_worker *w);

/* Slow paths of the inline calls below; not to be called directly. */
ASYNC_API void async_fork_spawn_slow_(async_worker *w);
ASYNC_API int async_fork_spawn_limit_(async_worker *w);
ASYNC_API int async_fork_spawn_eager_(async_worker *w);
ASYNC_API int async_fork_sync_slow_(async_worker *w);
ASYNC_API int async_fork_sync_typed_(async_worker *w);

/* Debug builds (NDEBUG not defined) check the worker on every inline
 * call; release builds leave the fast path without it (docs/c-forkjoin.md). */
#ifdef NDEBUG
#define ASYNC_FORK_BAD_WORKER_(w) 0
#else
#define ASYNC_FORK_BAD_WORKER_(w) ((w) == ASYNC_NULL_ || (w) != async_worker_self())
#endif

/* Owner: push the frame at *h (the worker's head, held in a register by
 * the caller; w->head is kept equal to it), already written: the array has
 * a spare slot past its end, so writing it before the bounds check is
 * always safe. 0, or ASYNC_ENOMEM when the array is full (nothing was
 * queued). A typed frame past the end runs at once instead (fork.c T6). */
static inline int async_fork_push_h_(async_worker *w, async_frame **h, int typed)
{
	async_frame *t = *h;
	/* One compare covers both a full array and "every shared frame was
	 * stolen" (then limit == base): the out-of-line path tells them apart. */
	if (ASYNC_UNLIKELY_(t >= w->limit)) {
		int rc = typed ? async_fork_spawn_eager_(w) : async_fork_spawn_limit_(w);
		*h = w->head;
		return rc;
	}
	*h = w->head = t + 1;
	/* Private: no fence, no shared write (a free frame's thief field is
	 * already 0, fork.c I5). Leave the fast path when a thief or a worker
	 * about to sleep asked for work: publish, and wake a sleeper. */
	if (ASYNC_UNLIKELY_(ASYNC_LOAD_RELAXED_32_(&w->movesplit)))
		async_fork_spawn_slow_(w);
	return 0;
}

static inline int async_fork_push_(async_worker *w, int typed)
{
	async_frame *h = w->head;
	return async_fork_push_h_(w, &h, typed);
}

/* Owner: pop the top frame when it is private, of the current task, and
 * nobody asked for work (the caller then runs it); else NULL: the slow
 * path decides (fork.c). */
static inline async_frame *async_fork_pop_h_(async_worker *w, async_frame **h)
{
	async_frame *t = *h;
	if (ASYNC_LIKELY_(t > w->low && !ASYNC_LOAD_RELAXED_32_(&w->movesplit))) {
		*h = w->head = t - 1;
		return t - 1;
	}
	return ASYNC_NULL_;
}

/* The calling worker w only; never blocks. Queues fn(.., arg) to run later here
 * (at async_sync) or on a thief. 0, or ASYNC_ENOMEM when w's frame array is
 * full (then nothing was queued: call fn(w, arg) yourself, do not sync).
 * Debug builds: ASYNC_ENOTWORKER when w is NULL or another thread's (here
 * and in every inline call taking w). */
static inline int async_spawn(async_worker *w, async_task_fn fn, void *arg)
{
	if (ASYNC_FORK_BAD_WORKER_(w))
		return ASYNC_ENOTWORKER;
	async_frame *t = w->head;
	t->fn = fn;
	t->arg = arg;
	return async_fork_push_(w, 0);
}

/* The calling worker w only. Returns when the most recent unsynced spawn of
 * w has run: here and now if no thief took it (a plain pop and call), or,
 * if one did, after the thief finished it (meanwhile w runs work from that
 * thief: leapfrogging). 0, or ASYNC_EINVAL when the current task has no
 * unsynced spawn (nothing ran). */
static inline int async_sync(async_worker *w)
{
	if (ASYNC_FORK_BAD_WORKER_(w))
		return ASYNC_ENOTWORKER;
	async_frame *h = w->head;
	async_frame *t = async_fork_pop_h_(w, &h);
	if (ASYNC_LIKELY_(t != ASYNC_NULL_)) {
		t->fn(w, t->arg);
		return 0;
	}
	return async_fork_sync_slow_(w);
}

/* ---- typed tasks ---------------------------------------------------------
 *
 * ASYNC_TASK_n(RTYPE, NAME, T1, a1, ..., Tn, an) { body } defines, in the
 * translation unit that uses it, for n = 0..5:
 *   in the body (which sees the worker as w):
 *     ASYNC_SPAWN(NAME, a1, ..., an)  queue NAME(a1, ..., an); 0 (see below)
 *     ASYNC_SYNC(NAME)                the result of the most recent unsynced
 *                                     spawn, which must be an ASYNC_SPAWN
 *                                     of NAME in this body
 *     ASYNC_CALL(NAME, a1, ..., an)   call NAME directly
 *   anywhere on a worker w (a job, an untyped task, a thread's own code):
 *     RTYPE NAME(async_worker *w, T1 a1, ..., Tn an)
 *     int   NAME_spawn(async_worker *w, T1 a1, ..., Tn an)
 *     RTYPE NAME_sync(async_worker *w)
 * ASYNC_VOID_TASK_n(NAME, T1, a1, ...) is the same returning void. The
 * body's forms keep the worker's head in a register (as Lace does); the
 * others read it from w. Inside a body, untyped spawns and the w forms
 * must be synced before its next ASYNC_SPAWN or ASYNC_SYNC (debug builds
 * check it), and tasks without arguments use the w forms (C11 has no empty
 * variadic arguments).
 *
 * A spawn returns 0; when the frame array is full it runs the call at once
 * and its sync returns the result, so callers need no fallback.
 * ASYNC_ENOMEM only when that overflow is full too (ASYNC_FRAMES_MAX
 * unsynced spawns on one worker): nothing queued, call NAME yourself, do
 * not sync. A sync with nothing to sync returns a zeroed result and leaves
 * ASYNC_EINVAL for async_fork_error. The arguments (as a struct) and the
 * result must each fit in 40 bytes, five pointers (checked at compile
 * time). */

#define ASYNC_SPAWN(NAME, ...) NAME##_spawn_h_(w, &async_head_, __VA_ARGS__)
#define ASYNC_SYNC(NAME) NAME##_sync_h_(w, &async_head_)
#define ASYNC_CALL(NAME, ...) NAME##_run_(w, async_head_, __VA_ARGS__)

#define ASYNC_X_(...) __VA_ARGS__

/* Debug builds: a body's head must still be the worker's (an untyped spawn
 * or a w-form spawn left unsynced in between moves the worker's). */
#ifdef NDEBUG
#define ASYNC_FORK_BAD_HEAD_(w, h) 0
#define ASYNC_FORK_BAD_SYNC_(w, h, fn) 0
#define ASYNC_FORK_CALL_(w, RTYPE, call) return call
#define ASYNC_FORK_VOID_CALL_(w, call) call
#else
/* Debug builds, NAME(w, ...): a task called directly that returns with
 * spawns unsynced (rule 3) leaves them for the caller's next sync, which
 * would take one as its own. Sync them here, as the pool does for a job,
 * and leave ASYNC_EINVAL for async_fork_error. */
#define ASYNC_FORK_CALL_(w, RTYPE, call)                                       \
	do {                                                                   \
		async_frame *async_h0_ = (w)->head;                            \
		RTYPE async_r_ = call;                                         \
		async_fork_left_((w), async_h0_);                              \
		return async_r_;                                               \
	} while (0)
#define ASYNC_FORK_VOID_CALL_(w, call)                                         \
	do {                                                                   \
		async_frame *async_h0_ = (w)->head;                            \
		call;                                                          \
		async_fork_left_((w), async_h0_);                              \
	} while (0)
static inline void async_fork_left_(async_worker *w, async_frame *h0)
{
	if (w->head == h0)
		return;
	w->misuse = ASYNC_EINVAL;
	while (w->head > h0 && async_sync(w) == 0)
		;
}
#define ASYNC_FORK_BAD_HEAD_(w, h) (*(h) != (w)->head)
#define ASYNC_FORK_BAD_SYNC_(w, h, fn) async_fork_bad_sync_((w), *(h), (fn))
/* Debug builds, a typed sync: besides the head, the frame it would take must
 * be a spawn of this task. Another task's frame, or an untyped spawn's,
 * holds other arguments: running this task's body over them, or reading its
 * result from them, is a crash at best. The sync that refuses cannot return
 * a code: async_fork_error tells it. */
static inline int async_fork_bad_sync_(async_worker *w, async_frame *h,
                                       async_task_fn fn)
{
	if (h == w->head && (h <= w->floor || h[-1].fn == fn))
		return 0;
	w->misuse = ASYNC_EINVAL;
	return 1;
}
#endif

/* PARAMS: (, T1 a1, ...); FIELDS: (T1 a1; ...); SET: (k_->d.a.a1 = a1; ...);
 * GET: (, k_->d.a.a1, ...); ARGS: (, a1, ...); RES: the result's member. */
#define ASYNC_TASK_COMMON_(RTYPE, NAME, PARAMS, FIELDS, SET, ARGS, RES)        \
	static RTYPE NAME##_run_(ASYNC_UNUSED_ async_worker *w, ASYNC_UNUSED_ async_frame *async_head_     \
	                         ASYNC_X_ PARAMS);                             \
	typedef struct NAME##_task_ {                                           \
		async_task_fn fn;                                               \
		void *self;                                                     \
		void *thief;                                                    \
		union {                                                         \
			struct { ASYNC_X_ FIELDS } a;                           \
			RES                                                     \
		} d;                                                            \
	} NAME##_task_;                                                         \
	ASYNC_STATIC_ASSERT_(sizeof(NAME##_task_) <= sizeof(async_frame),      \
	                     "a typed task's arguments do not fit a frame");    \
	ASYNC_UNUSED_ static void NAME##_wrap_(async_worker *w, void *p);       \
	static inline void NAME##_set_(async_frame *async_f_ ASYNC_X_ PARAMS)   \
	{                                                                       \
		NAME##_task_ *k_ = ASYNC_REC_CAST_(NAME##_task_, async_f_);     \
		k_->fn = NAME##_wrap_;                                          \
		k_->self = k_;                                                  \
		ASYNC_X_ SET                                                    \
	}                                                                       \
	ASYNC_UNUSED_ static inline int NAME##_spawn_h_(async_worker *w,       \
	                       async_frame **async_hp_ ASYNC_X_ PARAMS)         \
	{                                                                       \
		if (ASYNC_FORK_BAD_HEAD_(w, async_hp_))                         \
			return ASYNC_EINVAL;                                    \
		NAME##_set_(*async_hp_ ASYNC_X_ ARGS);                          \
		return async_fork_push_h_(w, async_hp_, 1);                     \
	}                                                                       \
	ASYNC_UNUSED_ static inline int NAME##_spawn(async_worker *w            \
	                                             ASYNC_X_ PARAMS)           \
	{                                                                       \
		if (ASYNC_FORK_BAD_WORKER_(w))                                  \
			return ASYNC_ENOTWORKER;                                \
		NAME##_set_(w->head ASYNC_X_ ARGS);                             \
		return async_fork_push_(w, 1);                                  \
	}

#define ASYNC_TASK_(RTYPE, NAME, PARAMS, FIELDS, SET, GET, ARGS)               \
	ASYNC_TASK_COMMON_(RTYPE, NAME, PARAMS, FIELDS, SET, ARGS, RTYPE r;)    \
	ASYNC_UNUSED_ static inline RTYPE NAME(async_worker *w ASYNC_X_ PARAMS) \
	{                                                                       \
		ASYNC_FORK_CALL_(w, RTYPE, NAME##_run_(w, w->head ASYNC_X_ ARGS));\
	}                                                                       \
	static void NAME##_wrap_(async_worker *w, void *p)                      \
	{                                                                       \
		NAME##_task_ *k_ = ASYNC_REC_CAST_(NAME##_task_, p);            \
		k_->d.r = NAME##_run_(w, w->head ASYNC_X_ GET);                 \
	}                                                                       \
	ASYNC_UNUSED_ static inline RTYPE NAME##_sync_h_(async_worker *w,      \
	                                                 async_frame **h)       \
	{                                                                       \
		async_frame *t;                                                 \
		if (ASYNC_FORK_BAD_SYNC_(w, h, NAME##_wrap_))                   \
			ASYNC_ZERO_RETURN_(RTYPE);                              \
		t = async_fork_pop_h_(w, h);                                    \
		if (ASYNC_UNLIKELY_(t == ASYNC_NULL_)) {                        \
			int rc_ = async_fork_sync_typed_(w);                    \
			t = *h = w->head;                                       \
			if (rc_ > 0) /* it ran: stolen, or at its spawn */      \
				return ASYNC_REC_CAST_(NAME##_task_, t)->d.r;   \
			if (rc_ < 0)                                            \
				ASYNC_ZERO_RETURN_(RTYPE);                        \
		}                                                               \
		{                                                               \
			NAME##_task_ *k_ = ASYNC_REC_CAST_(NAME##_task_, t);    \
			(void)k_; /* unused without arguments */                \
			return NAME##_run_(w, t ASYNC_X_ GET);                  \
		}                                                               \
	}                                                                       \
	ASYNC_UNUSED_ static inline RTYPE NAME##_sync(async_worker *w)          \
	{                                                                       \
		async_frame *h;                                                 \
		if (ASYNC_FORK_BAD_WORKER_(w))                                  \
			ASYNC_ZERO_RETURN_(RTYPE);                              \
		h = w->head;                                                    \
		return NAME##_sync_h_(w, &h);                                   \
	}                                                                       \
	static RTYPE NAME##_run_(ASYNC_UNUSED_ async_worker *w, ASYNC_UNUSED_ async_frame *async_head_      \
	                         ASYNC_X_ PARAMS)

#define ASYNC_VOID_TASK_(NAME, PARAMS, FIELDS, SET, GET, ARGS)                 \
	ASYNC_TASK_COMMON_(void, NAME, PARAMS, FIELDS, SET, ARGS, )             \
	ASYNC_UNUSED_ static inline void NAME(async_worker *w ASYNC_X_ PARAMS)  \
	{                                                                       \
		ASYNC_FORK_VOID_CALL_(w, NAME##_run_(w, w->head ASYNC_X_ ARGS));  \
	}                                                                       \
	static void NAME##_wrap_(async_worker *w, void *p)                      \
	{                                                                       \
		NAME##_task_ *k_ = ASYNC_REC_CAST_(NAME##_task_, p);            \
		(void)k_; /* unused without arguments */                        \
		NAME##_run_(w, w->head ASYNC_X_ GET);                           \
	}                                                                       \
	ASYNC_UNUSED_ static inline void NAME##_sync_h_(async_worker *w,       \
	                                                async_frame **h)        \
	{                                                                       \
		async_frame *t;                                                 \
		if (ASYNC_FORK_BAD_SYNC_(w, h, NAME##_wrap_))                   \
			return;                                                 \
		t = async_fork_pop_h_(w, h);                                    \
		if (ASYNC_UNLIKELY_(t == ASYNC_NULL_)) {                        \
			int rc_ = async_fork_sync_typed_(w);                    \
			t = *h = w->head;                                       \
			if (rc_ != 0)                                           \
				return;                                         \
		}                                                               \
		{                                                               \
			NAME##_task_ *k_ = ASYNC_REC_CAST_(NAME##_task_, t);    \
			(void)k_;                                               \
			NAME##_run_(w, t ASYNC_X_ GET);                         \
		}                                                               \
	}                                                                       \
	ASYNC_UNUSED_ static inline void NAME##_sync(async_worker *w)           \
	{                                                                       \
		async_frame *h;                                                 \
		if (ASYNC_FORK_BAD_WORKER_(w))                                  \
			return;                                                 \
		h = w->head;                                                    \
		NAME##_sync_h_(w, &h);                                          \
	}                                                                       \
	static void NAME##_run_(ASYNC_UNUSED_ async_worker *w, ASYNC_UNUSED_ async_frame *async_head_       \
	                        ASYNC_X_ PARAMS)

#define ASYNC_TASK_0(R, NAME) \
	ASYNC_TASK_(R, NAME, (), (char none_;), \
	            (), \
	            (), ())
#define ASYNC_TASK_1(R, NAME, T1, A1) \
	ASYNC_TASK_(R, NAME, (, T1 A1), (T1 A1;), \
	            (k_->d.a.A1 = A1;), \
	            (, k_->d.a.A1), (, A1))
#define ASYNC_TASK_2(R, NAME, T1, A1, T2, A2) \
	ASYNC_TASK_(R, NAME, (, T1 A1, T2 A2), (T1 A1; T2 A2;), \
	            (k_->d.a.A1 = A1; k_->d.a.A2 = A2;), \
	            (, k_->d.a.A1, k_->d.a.A2), (, A1, A2))
#define ASYNC_TASK_3(R, NAME, T1, A1, T2, A2, T3, A3) \
	ASYNC_TASK_(R, NAME, (, T1 A1, T2 A2, T3 A3), (T1 A1; T2 A2; T3 A3;), \
	            (k_->d.a.A1 = A1; k_->d.a.A2 = A2; k_->d.a.A3 = A3;), \
	            (, k_->d.a.A1, k_->d.a.A2, k_->d.a.A3), (, A1, A2, A3))
#define ASYNC_TASK_4(R, NAME, T1, A1, T2, A2, T3, A3, T4, A4) \
	ASYNC_TASK_(R, NAME, (, T1 A1, T2 A2, T3 A3, T4 A4), (T1 A1; T2 A2; T3 A3; T4 A4;), \
	            (k_->d.a.A1 = A1; k_->d.a.A2 = A2; k_->d.a.A3 = A3; k_->d.a.A4 = A4;), \
	            (, k_->d.a.A1, k_->d.a.A2, k_->d.a.A3, k_->d.a.A4), (, A1, A2, A3, A4))
#define ASYNC_TASK_5(R, NAME, T1, A1, T2, A2, T3, A3, T4, A4, T5, A5) \
	ASYNC_TASK_(R, NAME, (, T1 A1, T2 A2, T3 A3, T4 A4, T5 A5), (T1 A1; T2 A2; T3 A3; T4 A4; T5 A5;), \
	            (k_->d.a.A1 = A1; k_->d.a.A2 = A2; k_->d.a.A3 = A3; k_->d.a.A4 = A4; k_->d.a.A5 = A5;), \
	            (, k_->d.a.A1, k_->d.a.A2, k_->d.a.A3, k_->d.a.A4, k_->d.a.A5), (, A1, A2, A3, A4, A5))
#define ASYNC_VOID_TASK_0(NAME) \
	ASYNC_VOID_TASK_(NAME, (), (char none_;), \
	                 (), \
	                 (), ())
#define ASYNC_VOID_TASK_1(NAME, T1, A1) \
	ASYNC_VOID_TASK_(NAME, (, T1 A1), (T1 A1;), \
	                 (k_->d.a.A1 = A1;), \
	                 (, k_->d.a.A1), (, A1))
#define ASYNC_VOID_TASK_2(NAME, T1, A1, T2, A2) \
	ASYNC_VOID_TASK_(NAME, (, T1 A1, T2 A2), (T1 A1; T2 A2;), \
	                 (k_->d.a.A1 = A1; k_->d.a.A2 = A2;), \
	                 (, k_->d.a.A1, k_->d.a.A2), (, A1, A2))
#define ASYNC_VOID_TASK_3(NAME, T1, A1, T2, A2, T3, A3) \
	ASYNC_VOID_TASK_(NAME, (, T1 A1, T2 A2, T3 A3), (T1 A1; T2 A2; T3 A3;), \
	                 (k_->d.a.A1 = A1; k_->d.a.A2 = A2; k_->d.a.A3 = A3;), \
	                 (, k_->d.a.A1, k_->d.a.A2, k_->d.a.A3), (, A1, A2, A3))
#define ASYNC_VOID_TASK_4(NAME, T1, A1, T2, A2, T3, A3, T4, A4) \
	ASYNC_VOID_TASK_(NAME, (, T1 A1, T2 A2, T3 A3, T4 A4), (T1 A1; T2 A2; T3 A3; T4 A4;), \
	                 (k_->d.a.A1 = A1; k_->d.a.A2 = A2; k_->d.a.A3 = A3; k_->d.a.A4 = A4;), \
	                 (, k_->d.a.A1, k_->d.a.A2, k_->d.a.A3, k_->d.a.A4), (, A1, A2, A3, A4))
#define ASYNC_VOID_TASK_5(NAME, T1, A1, T2, A2, T3, A3, T4, A4, T5, A5) \
	ASYNC_VOID_TASK_(NAME, (, T1 A1, T2 A2, T3 A3, T4 A4, T5 A5), (T1 A1; T2 A2; T3 A3; T4 A4; T5 A5;), \
	                 (k_->d.a.A1 = A1; k_->d.a.A2 = A2; k_->d.a.A3 = A3; k_->d.a.A4 = A4; k_->d.a.A5 = A5;), \
	                 (, k_->d.a.A1, k_->d.a.A2, k_->d.a.A3, k_->d.a.A4, k_->d.a.A5), (, A1, A2, A3, A4, A5))

#ifdef __cplusplus
}
#endif
#endif
