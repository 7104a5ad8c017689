/* SPDX-License-Identifier: MIT (see LICENSE) */
/* async/pool.h: the work-stealing worker pool, its jobs, fork-join and
 * parallel-for. Plain C11 with no dependency in the interface.
 *
 * Six calls make a program:
 *
 *     async_pool_config cfg = async_pool_config_default();
 *     async_pool *pool;
 *     async_pool_create(&pool, &cfg);
 *     async_job job;
 *     async_job_init(&job, my_fn, my_arg);
 *     async_pool_submit(pool, &job);
 *     async_pool_destroy(pool);        // runs what is queued, then joins
 *
 * Memory: job and group records belong to the caller (on the stack, inside
 * its own structs, recycled as it likes); the pool never allocates per job.
 * Every function returns 0 (or a count) on success and a negative code from
 * async/error.h on failure; a bad argument is refused with ASYNC_EINVAL. */
#ifndef ASYNC_POOL_H
#define ASYNC_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "async/api.h"
#include "async/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most workers a pool can have: max_workers above it is refused
 * (ASYNC_EINVAL). Each slot costs a deque, a frame array (reserved address
 * space) and a placement row, whether or not a thread runs in it. */
#define ASYNC_MAX_WORKERS 4096

typedef struct async_pool async_pool;
typedef struct async_group async_group;

typedef void (*async_job_fn)(void *arg);

/* A unit of work. Initialise with async_job_init; the fields are the
 * pool's. A detached job (async_pool_submit) is not touched by the pool once
 * its function has started, so the function may free, reuse or resubmit the
 * record. A spawned job (async_job_spawn) and a grouped job
 * (async_group_submit) must stay alive until it is synced / its group waited
 * on. */
typedef struct async_job {
	async_job_fn fn;
	void *arg;
	struct async_job *next;
	async_group *group;
	uint32_t state;
	uint32_t flags;
} async_job;

/* A counter of outstanding jobs to wait for as one. Initialise with
 * async_group_init; it must outlive async_group_wait. A group belongs to
 * the first pool it is submitted to, until it is initialised again: its
 * last job wakes that pool's waiters, so submitting it to, or waiting on it
 * through, another pool is refused (ASYNC_EINVAL) instead of hanging. */
struct async_group {
	uint64_t pending;
	async_pool *pool; /* the pool it belongs to, NULL until first used */
	async_job *then;  /* continuations (async/engine.h) */
};

typedef struct async_pool_config {
	/* Workers started by async_pool_create, at most max_workers. Default:
	 * the machine's physical cores (hwloc; the online CPUs where hwloc
	 * cannot tell). 0 is allowed: jobs queue until a worker is added. */
	unsigned workers;
	/* Upper bound for async_pool_add_workers: 1 to ASYNC_MAX_WORKERS.
	 * Default: max(64, 4 x the machine's PUs), at most ASYNC_MAX_WORKERS.
	 * async_pool_limits tells a pool's. */
	unsigned max_workers;
	/* Bind each worker to its processing unit with hwloc. Default 1. */
	int pin;
	/* 0: an idle worker sleeps at once. Any other value: it looks for
	 * work for up to spin_us microseconds first (the value itself is no
	 * longer a count of rounds; kept for source compatibility). Default 64. */
	unsigned spin_rounds;
	/* Thread names are prefix + index, e.g. "async-w3" (visible in perf,
	 * top, gdb). At most 10 characters are used. Default "async-w". */
	const char *name_prefix;
	/* Called on each worker thread when it starts and before it exits,
	 * with the worker's index; e.g. to create per-thread state. May be
	 * NULL. */
	void (*on_worker_start)(void *userdata, unsigned worker);
	void (*on_worker_stop)(void *userdata, unsigned worker);
	void *userdata;
	/* NULL: this machine. Otherwise an hwloc synthetic description
	 * ("pack:2 core:4 pu:2") used for placement only; nothing is bound.
	 * For tests and for studying placement. */
	const char *synthetic_topology;
	/* How long an idle worker keeps looking for work before it sleeps,
	 * in microseconds of the monotonic clock (a bound in time, whatever
	 * the machine's speed). Default 10. */
	unsigned spin_us;
	/* Linux: the time slice each worker asks the scheduler for, in
	 * microseconds (sched_setattr's sched_runtime; EEVDF kernels, 6.12 and
	 * later, clamp it to 100 µs-100 ms and honour it, older ones ignore
	 * it). A slice shorter than the other threads' lets a worker woken
	 * onto a CPU where a thread is busy (one polling for results)
	 * preempt it at once, instead of waiting for that thread's slice to end
	 * at a scheduler tick (up to 4 ms at HZ=250). The price: that thread
	 * now waits instead, for as long as the job or a tick, each time a
	 * worker is woken onto its CPU (a game's frame time: bench/ANALYSIS.md,
	 * "The idle one-call tail"). So it suits a submitter that waits for its
	 * results, not one with work of its own. 0 leaves the kernel's default.
	 * Elsewhere ignored. Default 0. */
	unsigned slice_us;
} async_pool_config;

/* Per-worker counters, updated by the worker itself with plain stores and
 * read racily: cheap enough to read every frame. */
typedef struct async_worker_stats {
	int index;            /* slot index; -1 for an empty slot */
	int running;          /* 1 while the thread runs and is not stopping */
	int pu;               /* OS index of the processing unit it is placed on */
	uint64_t jobs;        /* jobs it ran */
	uint64_t steals;      /* jobs it took from another worker's deque */
	uint64_t busy_ns;     /* time alive and not idle */
	uint64_t idle_ns;     /* time spinning or asleep looking for work */
} async_worker_stats;

/* What a pool can hold, from async_pool_limits. */
typedef struct async_limits {
	unsigned max_workers;  /* this pool's bound for async_pool_add_workers */
	unsigned spawn_depth;  /* unsynced spawns one worker can hold at once;
	                        * one more returns ASYNC_ENOMEM (a typed
	                        * spawn runs at once instead, up to
	                        * ASYNC_FRAMES_MAX in all) */
} async_limits;

/* Any thread; never blocks. Clears job and sets what it will run. Call it
 * again before reusing a record for another function. A NULL job is
 * ignored. */
ASYNC_API void async_job_init(async_job *job, async_job_fn fn, void *arg);

/* Any thread; never blocks once the machine has been read (the first call
 * reads its topology). The defaults described above, as real numbers. */
ASYNC_API async_pool_config async_pool_config_default(void);

/* Any thread; blocks while the threads start. Creates a pool in *out.
 * cfg may be NULL for the defaults. ASYNC_EINVAL for a NULL out,
 * max_workers 0 or above ASYNC_MAX_WORKERS, workers > max_workers or a
 * malformed synthetic topology; ASYNC_ETHREAD if any of the workers
 * asked for could not be started (the pool is then not created, and the
 * workers that had started are stopped and joined: a pool never starts
 * with fewer workers than asked). */
ASYNC_API int async_pool_create(async_pool **out, const async_pool_config *cfg);

/* Any thread that is not one of the pool's workers (ASYNC_EONWORKER there,
 * and in a job that shutdown itself runs; nothing is done); blocks. Runs every
 * queued job (including jobs those jobs submit), then joins the workers.
 * Afterwards submit returns ASYNC_ESHUTDOWN. Where no worker is left, the
 * remaining jobs run on the calling thread, as on a worker: they may
 * submit, spawn, sync and wait on groups (async_pool_worker_index still
 * says ASYNC_ENOTWORKER there). Jobs may call async_pool_stop_workers
 * meanwhile, and async_pool_add_workers, which returns ASYNC_ESHUTDOWN.
 * Other threads may submit while it runs: each submission either runs
 * before shutdown returns or is refused with ASYNC_ESHUTDOWN, never
 * dropped. Idempotent. */
ASYNC_API int async_pool_shutdown(async_pool *pool);

/* Same thread rule as shutdown; blocks. Shuts down if needed and frees the
 * pool (on one of the pool's own workers it does nothing: it cannot join
 * itself). Must not race with any other call on the same pool (it frees
 * it): to stop submitters cleanly, shut down first, let them see
 * ASYNC_ESHUTDOWN and finish, then destroy. */
ASYNC_API void async_pool_destroy(async_pool *pool);

/* Any thread; never blocks; never runs the job on the calling thread. Queues
 * a detached job. From a worker of this pool it goes to that worker's own
 * deque, from any other thread to the pool's lock-free FIFO injection
 * queue: jobs submitted from outside start oldest first.
 * ASYNC_EBUSY if the record is queued and has not started yet (of several
 * threads submitting one record at once, exactly one succeeds). */
ASYNC_API int async_pool_submit(async_pool *pool, async_job *job);

/* As async_pool_submit for n contiguous records, with one atomic
 * publication and at most one wake-up: the cheap way to queue a batch. */
ASYNC_API int async_pool_submit_array(async_pool *pool, async_job *jobs, size_t n);

/* As async_pool_submit_array for n records anywhere in memory, named by
 * jobs[0..n-1] (oldest first): one publication and at most one wake-up
 * without copying records into one array, so each can stay inside the
 * object it belongs to (and records run by different workers share no
 * cache line). ASYNC_EBUSY, with none queued, if any is already queued. */
ASYNC_API int async_pool_submit_list(async_pool *pool, async_job *const *jobs, size_t n);

/* Any thread; never blocks. */
ASYNC_API int async_group_init(async_group *group);

/* Any thread; never blocks. Queues job as part of group. ASYNC_EINVAL if
 * the group belongs to another pool (see async_group). */
ASYNC_API int async_group_submit(async_pool *pool, async_group *group, async_job *job);

/* Any thread; blocks until every job submitted to the group has finished.
 * ASYNC_EDEADLK, at once, from a job that belongs to the group (or from
 * any job running beneath such a job on the same thread): the group
 * cannot finish while that job waits for it. (Two jobs of two groups that
 * wait for each other's group are not detected: they wait forever.)
 * It runs other jobs of the pool meanwhile instead of sleeping: on a
 * worker as that worker, elsewhere as a helper (async/engine.h,
 * async_pool_help; async_group_wait_asleep does not help), so it also
 * gets the jobs done on a pool with no worker running. It sleeps when it
 * finds nothing to run, or when 8 threads help already. ASYNC_EINVAL if
 * the group belongs to another pool (see async_group). */
ASYNC_API int async_group_wait(async_pool *pool, async_group *group);

/* Worker threads of a pool only (typically inside a job, including a job
 * that shutdown runs); never blocks. Pushes job onto the calling worker's
 * split deque of fork-join frames (the one async/fork.h's inline calls use),
 * where it may be stolen. ASYNC_ENOTWORKER elsewhere; ASYNC_EBUSY if the
 * record is queued; ASYNC_ENOMEM if the worker's frame array is full, and
 * then the record is not spawned (run it yourself; async_job_sync on it
 * returns ASYNC_EINVAL). Spawns a job leaves unsynced are synced when it
 * returns. */
ASYNC_API int async_job_spawn(async_job *job);

/* The thread that spawned job; blocks only in the sense that it returns when
 * job has run: if no thief took it, it runs here and now, otherwise the
 * worker runs work from the thief (and then other work) until the thief
 * finishes it. Sync spawned jobs in the reverse order of spawning (as
 * fork-join code naturally does); a sync out of order first syncs the
 * frames spawned after job. ASYNC_EINVAL for a record that was not
 * spawned. */
ASYNC_API int async_job_sync(async_job *job);

typedef void (*async_range_fn)(void *arg, size_t begin, size_t end);

/* Any thread that is not inside the pool's shutdown; blocks until done.
 * Calls fn over [begin, end) cut into chunks of at most grain indices (grain
 * 0: chosen from the range and the worker count), split recursively so
 * idle workers steal the large halves. The calling thread joins in, as
 * in async_group_wait. Any range is accepted, up to [0, SIZE_MAX). */
ASYNC_API int async_parallel_for(async_pool *pool, size_t begin, size_t end, size_t grain,
                       async_range_fn fn, void *arg);

/* Any thread; blocks only while threads start, to join a worker that
 * already exited (whose slot it reuses), and, from a thread that is not
 * one of the pool's workers, to wait for workers that committed to a stop
 * to exit (their on_worker_stop included) when it needs their slots.
 * Adds n workers: first by calling off stop requests that workers have not
 * acted on yet (no thread is started), then as new threads placed as the
 * next slots of the placement order. So stopping then adding never runs
 * out of slots. Returns the number added, which is smaller than n when
 * max_workers is reached (or a thread could not be created), or a
 * negative code (ASYNC_ELIMIT when none could be added, ASYNC_ETHREAD when
 * thread creation failed before any was). Called from one of the pool's
 * own workers (on_worker_stop, say) it does not wait, and may add fewer. */
ASYNC_API int async_pool_add_workers(async_pool *pool, unsigned n);

/* Any thread; never blocks. Asks up to n running workers (the most recently
 * placed first) to stop. Each finishes the job it is running and exits;
 * jobs left in its deque go back to the injection queue, so none is lost or
 * run twice. Returns how many were asked (at most the number running: no
 * stop request outlives this call to hit a later worker). */
ASYNC_API int async_pool_stop_workers(async_pool *pool, unsigned n);

/* Any thread; never blocks. Workers running and not asked to stop. */
ASYNC_API int async_pool_worker_count(const async_pool *pool);

/* Any thread; never blocks. The calling thread's worker index in this pool,
 * ASYNC_ENOTWORKER on another thread, ASYNC_EINVAL for a NULL pool. */
ASYNC_API int async_pool_worker_index(const async_pool *pool);

/* Any thread; never blocks. Fills *out with the pool's limits (see
 * async_limits). ASYNC_EINVAL for a NULL pool or out. */
ASYNC_API int async_pool_limits(const async_pool *pool, async_limits *out);

/* Any thread; never blocks. Fills up to cap entries, one per worker slot
 * ever used, and returns how many slots there are. */
ASYNC_API int async_pool_stats(const async_pool *pool, async_worker_stats *out, unsigned cap);

/* Any thread; never blocks. Jobs queued and not yet started (an estimate
 * while workers run). */
ASYNC_API int64_t async_pool_queued(const async_pool *pool);

#ifdef __cplusplus
}
#endif
#endif
