/* SPDX-License-Identifier: MIT (see LICENSE) */
/* async/engine.h: what a game engine's frame loop needs beside plain jobs:
 * threads that wait help run jobs, a non-blocking "is this group done?",
 * continuations, jobs pinned to a worker or to a main-thread queue the
 * engine drains when it chooses, priority levels, and cancellation of
 * queued jobs. docs/c-engine.md is the reference, with an example each. */
#ifndef ASYNC_ENGINE_H
#define ASYNC_ENGINE_H

#include "async/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Priority levels for async_pool_submit_prio. Jobs of one level start in
 * the order they were submitted (as plain submissions do: NORMAL is the
 * level every other submit call uses). A worker prefers HIGH, but of every
 * 8 jobs it takes while HIGH or LOW has work, one looks at LOW first and
 * one at NORMAL first: under any steady load above it, a level still gets
 * at least 1 job in 8 from each worker. */
enum { ASYNC_PRIO_HIGH = 0, ASYNC_PRIO_NORMAL = 1, ASYNC_PRIO_LOW = 2 };
#define ASYNC_PRIO_LEVELS 3

/* async_pool_help: also run jobs of the main-thread queue. */
#define ASYNC_HELP_MAIN 1u

/* Any thread; never blocks. 1 if every job of the group has finished (its
 * continuations are queued right after), 0 if not, ASYNC_EINVAL for NULL.
 * After a 1, the jobs' effects are visible to the caller. */
ASYNC_API int async_group_done(const async_group *group);

/* Any thread; never blocks. Queues job as soon as every job of group has
 * finished, without any thread waiting for it: at once (from this call) if
 * it already has. Continuations of one group are queued together, in the
 * order registered, right after the group reads as done (the thread that
 * queues them no longer touches the group: once the last group of a chain
 * is done, each of its groups may be reused or freed); they see the
 * group's jobs' effects. into (may be NULL) counts job from now: waiting
 * on into waits for job too, so groups chain into a dependency graph.
 * ASYNC_EINVAL for NULL pool, group or job, for into == group, or for a
 * group of another pool; ASYNC_EBUSY if job is queued; ASYNC_ESHUTDOWN
 * once the pool shuts down. A continuation whose group finishes after
 * shutdown closed the pool is not run: its record is free again and into's
 * count dropped. */
ASYNC_API int async_group_then(async_pool *pool, async_group *group, async_job *job, async_group *into);

/* Any thread; blocks. As async_group_wait, except that a thread that is
 * not a worker of the pool sleeps instead of running jobs: for a thread
 * that must not pick up a long job, or that waits for the workers alone. */
ASYNC_API int async_group_wait_asleep(async_pool *pool, async_group *group);

/* Any thread; blocks while it runs jobs. The calling thread runs the pool's
 * queued jobs, as a worker would (they may submit, spawn, sync and wait),
 * until group until has finished, sleeping when there is nothing to run;
 * with until NULL, until it finds nothing to run. flags: ASYNC_HELP_MAIN
 * to run main-thread jobs too. async_group_wait and async_parallel_for do
 * this on any thread that is not a worker. Returns the number of jobs run
 * (at most INT_MAX); ASYNC_ELIMIT when 8 threads help already (then
 * nothing ran); ASYNC_EINVAL for NULL pool, or until of another pool. From
 * a worker of the pool it helps as a worker does (with until, it waits as
 * async_group_wait does, running no main-thread job). Shutdown waits for
 * helping threads to return, running main-thread jobs meanwhile.
 * async_group_wait runs no main-thread job: on the thread that drains the
 * main queue, wait for a group holding one with this and ASYNC_HELP_MAIN. */
ASYNC_API int async_pool_help(async_pool *pool, async_group *until, unsigned flags);

/* Any thread; never blocks. Queues job (counted in group, which may be
 * NULL) at the given level. ASYNC_EINVAL for a level out of range, else as
 * async_group_submit / async_pool_submit. */
ASYNC_API int async_pool_submit_prio(async_pool *pool, async_group *group, async_job *job, int prio);

/* Any thread; never blocks. Queues job for the worker with this index
 * (async_pool_worker_index) only; it runs before any other work that worker
 * takes next, oldest first. If that worker stops first, another runs it.
 * ASYNC_EINVAL for an index with no worker running, else as
 * async_group_submit (group may be NULL). A sleeping pool wakes all its
 * idle workers for it, so pin only what must run there. */
ASYNC_API int async_pool_submit_to(async_pool *pool, unsigned worker, async_group *group, async_job *job);

/* Any thread; never blocks. Queues job on the main-thread queue, which no
 * worker takes from: it runs when a thread calls async_pool_run_main (or
 * async_pool_help with ASYNC_HELP_MAIN), oldest first, or at shutdown on
 * the thread that shuts down. Errors as async_group_submit. */
ASYNC_API int async_pool_submit_main(async_pool *pool, async_group *group, async_job *job);

/* The thread of the caller's choosing (the engine's main thread, once a
 * frame); blocks while it runs jobs. Runs up to max jobs of the
 * main-thread queue (0: until it is empty) on the calling thread, which
 * may spawn and wait in them as on a worker. Returns the number run, or
 * ASYNC_EINVAL, or ASYNC_ELIMIT when 8 threads help already. */
ASYNC_API int async_pool_run_main(async_pool *pool, unsigned max);

/* Any thread; never blocks. Makes sure a queued job will not run: 0 if it
 * was queued (or cancelled already) and now will not, ASYNC_EBUSY if it
 * started (or finished), ASYNC_EINVAL for a record that is not queued.
 * The record stays the pool's until a thread reaches it in its queue and
 * drops it (quickly, running nothing): then its group's count drops, as
 * if it had run, and the record is free (a sync on a cancelled spawn
 * returns). So wait on its group before reusing or freeing the record;
 * submitting it again meanwhile returns ASYNC_EBUSY. */
ASYNC_API int async_job_cancel(async_pool *pool, async_job *job);

#ifdef __cplusplus
}
#endif
#endif
