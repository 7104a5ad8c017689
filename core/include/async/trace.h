/* SPDX-License-Identifier: MIT (see LICENSE) */
/* async/trace.h: a timeline of what a pool's threads did (every job a worker
 * ran, steals, sleeps, and spans other threads record), kept in bounded
 * per-thread rings and written as Chrome trace event JSON for Perfetto or
 * chrome://tracing, or handed to a visitor. docs/profiling.md explains it. */
#ifndef ASYNC_TRACE_H
#define ASYNC_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "async/api.h"
#include "async/error.h"
#include "async/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Events kept per thread when async_pool_trace_start is given 0. */
#define ASYNC_TRACE_DEFAULT_EVENTS 65536
/* An event's name: up to 47 bytes and a NUL; longer names are cut. */
#define ASYNC_TRACE_NAME_SIZE 48
/* Tracks: a worker's is its index (0 .. max_workers - 1); the k-th thread
 * outside the pool to record (or to run jobs while it waits or helps) gets
 * ASYNC_TRACE_OUTSIDE + k, and leaves its ring and track to the next new
 * thread when it exits. */
#define ASYNC_TRACE_OUTSIDE 4096

typedef enum async_trace_kind {
	ASYNC_TRACE_JOB = 0,   /* a job a thread ran, begin to end; or a fork-join
	                        * task a worker stole (named "task") */
	ASYNC_TRACE_STEAL = 1, /* a worker took work from another's deque (begin == end) */
	ASYNC_TRACE_SLEEP = 2, /* a worker slept for want of work, until woken */
	ASYNC_TRACE_SPAN = 3   /* recorded by async_pool_trace_record */
} async_trace_kind;

typedef struct async_trace_event {
	uint64_t begin_ns; /* async_trace_now_ns's clock */
	uint64_t end_ns;
	uint64_t dropped;  /* events of this track overwritten (the same in
	                    * every event of the track) */
	uint32_t track;    /* see ASYNC_TRACE_OUTSIDE */
	uint32_t kind;     /* async_trace_kind */
	uint32_t other;    /* STEAL: the victim's track (ASYNC_TRACE_OUTSIDE for
	                    * a thread outside the pool); otherwise 0 */
	char name[ASYNC_TRACE_NAME_SIZE]; /* NUL-terminated; "" for an
	                                   * unlabelled job */
} async_trace_event;

/* Called once per kept event; a nonzero return stops the walk (and is what
 * collect returns). It runs under the pool's trace lock: it must not call
 * this pool's trace functions (async_trace_now_ns and async_trace_label
 * excepted), nor wait for a thread that does. */
typedef int (*async_trace_visit_fn)(void *ud, const async_trace_event *ev);

/* Any thread; blocks briefly. Starts recording into rings of
 * events_per_thread events each (0: ASYNC_TRACE_DEFAULT_EVENTS, 72 bytes an
 * event), one per worker (those there are made here, those added later at
 * their first event) and one per outside thread (made at its first event);
 * a full ring overwrites its oldest events. ASYNC_ENOMEM when the
 * workers' rings cannot be had: the trace is left as it was. Starting
 * again, on or off, forgets what was recorded. ASYNC_EINVAL for a NULL
 * pool, ASYNC_ENOMEM. Must not race with async_pool_destroy. */
ASYNC_API int async_pool_trace_start(async_pool *pool, size_t events_per_thread);

/* Any thread; never blocks. Stops recording (jobs running finish their
 * event); what was recorded stays readable until the next start or the
 * pool's destruction. ASYNC_EINVAL for a NULL pool. */
ASYNC_API int async_pool_trace_stop(async_pool *pool);

/* Any thread; never blocks. 1 while recording, 0 if not. */
ASYNC_API int async_pool_trace_on(const async_pool *pool);

/* Inside a job (any pool's); never blocks. Names the innermost running job's
 * event: name is copied (cut at 47 bytes), so it may die at once. Elsewhere,
 * or while no trace records, it does nothing; so does a job without an
 * event (of a pool not traced) running inside a traced one. */
ASYNC_API void async_trace_label(const char *name);

/* Inside a job (any pool's); never blocks. Records the innermost running
 * job's event now, ending it here, instead of when its function returns:
 * for a job that hands its result over itself (a detached job that pushes it
 * to a queue another thread reads), so that a thread that took the result
 * and then stops and collects the trace finds the job in it. Elsewhere, or
 * while no trace records, it does nothing; a second call does nothing; so
 * does a call from a job without an event (of a pool not traced) running
 * inside a traced one. */
ASYNC_API void async_trace_job_done(void);

/* Any thread. The clock of every event, in nanoseconds (monotonic). */
ASYNC_API uint64_t async_trace_now_ns(void);

/* Any thread; never blocks but at a thread's first record after a start
 * (it allocates its ring), and when it records to more than four pools in
 * turn (it keeps the rings of the last four). Records a span [begin_ns, end_ns] named name
 * (NULL: "") on the calling thread's track: a worker's own, or a track of
 * its own for any other thread. 0 when recorded or while no trace records;
 * ASYNC_EINVAL for a NULL pool or end before begin, ASYNC_ENOMEM. */
ASYNC_API int async_pool_trace_record(async_pool *pool, const char *name,
                                      uint64_t begin_ns, uint64_t end_ns);

/* Any thread; blocks other collects, starts and first records meanwhile,
 * not the threads recording. Visits each kept event that ended at or after
 * since_ns, oldest first within each track, track after track; works while
 * recording (events overwritten during the walk are not visited, and are
 * counted as dropped). Returns 0, the visitor's nonzero return, or
 * ASYNC_EINVAL for a NULL pool or fn. */
ASYNC_API int async_pool_trace_collect_since(async_pool *pool, uint64_t since_ns,
                                             async_trace_visit_fn fn, void *ud);

/* async_pool_trace_collect_since from the beginning. */
ASYNC_API int async_pool_trace_collect(async_pool *pool, async_trace_visit_fn fn, void *ud);

/* Any thread; blocks while writing. Writes the kept events to path as
 * Chrome trace event JSON ({"traceEvents": [...]}: jobs and spans as "X"
 * complete events, steals as "i" instants, ts and dur in microseconds,
 * tid the track, the thread named after the worker ("async-w0", from the
 * pool's name_prefix) or "game", "game1", ... for outside threads).
 * ASYNC_EINVAL for a NULL pool or path, ASYNC_EIO if the file cannot be
 * written. */
ASYNC_API int async_pool_trace_write(async_pool *pool, const char *path);

#ifdef __cplusplus
}
#endif
#endif
