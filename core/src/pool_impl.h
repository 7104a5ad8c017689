/* SPDX-License-Identifier: MIT (see LICENSE) */
/* pool_impl.h: what the core's pool files share: the pool and worker
 * records, the job and slot states, and the small helpers every file uses.
 * Who owns what: pool.c creates, resizes and shuts down; submit.c is the way
 * in from outside (injection queue, batches); worker.c is the worker loop
 * (finding work, idling, sleeping); forkjoin.c is groups, spawn/sync and
 * parallel-for (wrappers over fork.c's split deque); fork.c is the split
 * deque itself; stats.c is introspection. */
#ifndef ASYNC_POOL_IMPL_H
#define ASYNC_POOL_IMPL_H

#include "async/pool.h"
#include "async/fork.h"
#include "async/engine.h"

#include <pthread.h>
#include <stddef.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>

#include "deque.h"
#include "eventcount.h"
#include "inject.h"
#include "placement.h"
#include "pr.h"
#include "probes.h"

/* CANCELLED: still linked in a queue, dropped (not run) when a runner
 * reaches it. A record is held by the pool while QUEUED or CANCELLED
 * (job_held), so it cannot be queued twice. */
enum { JOB_IDLE = 0, JOB_RUNNING = 1, JOB_DONE = 2, JOB_QUEUED = 3, JOB_CANCELLED = 4 };
static inline int job_held(uint32_t st)
{
	return st >= JOB_QUEUED; /* QUEUED or CANCELLED: one compare on submit */
}
enum { JOB_JOINABLE = 1u };
enum { SLOT_EMPTY = 0, SLOT_RUNNING, SLOT_STOPPING, SLOT_EXITED };
/* A stop request is withdrawn if add_workers gets to it first (CAS
 * ASKED -> NONE), and final once the worker commits to it (CAS ASKED ->
 * COMMITTED): exactly one of the two CASes wins. So stop-then-add costs no
 * thread, and a slot never waits on an exit that was called off. */
enum { STOP_NONE = 0, STOP_ASKED = 1, STOP_COMMITTED = 2 };

/* A job running on a thread, on that thread's stack: the chain of them,
 * innermost first, is what a group wait checks so that a job waiting for
 * its own group is refused (ASYNC_EDEADLK) instead of waiting forever. */
struct running_job {
	async_group *group;
	struct running_job *up;
};

#define DEQUE_INITIAL 256
/* Frames per worker: the deepest nest of unsynced spawns one worker can
 * hold (reserved address space; pages are committed as used). */
#define ASYNC_FRAMES 16384 /* the frame array; ASYNC_FRAMES_MAX with the overflow */

struct worker {
	async_worker fk;          /* the split deque of fork-join frames (fork.c) */
	struct async_deque dq;    /* detached jobs submitted from this worker */
	struct async_batch batch; /* jobs it took from the injection queue */
	async_pool *pool;
	unsigned index;
	uint32_t stop;  /* STOP_*: asked by stop_workers, committed by the
	                 * worker, withdrawn by add_workers (CAS both ways) */
	uint32_t state; /* SLOT_* */
	int idle;       /* the worker is in its idle loop (stats only) */
	struct running_job *running; /* jobs running here, innermost first */
	pthread_t thread;
	ck_epoch_record_t rec;
	/* Counters: written by the worker alone (atomic stores), read racily. */
	uint64_t jobs, steals, pushed, busy_ns, idle_ns, mark_ns;
	/* Jobs pinned to this worker (async_pool_submit_to): many producers,
	 * this worker the one consumer. Closed while no thread runs the slot. */
	struct async_inject inbox;
	unsigned picks; /* jobs taken while a priority level had work (engine.c) */
} __attribute__((aligned(64)));

/* External submitters count their jobs for async_pool_queued in a slot of
 * their own: one writer each, so a plain load and atomic store, no locked
 * instruction per submit. A thread claims a slot once per pool (CAS on
 * owner, a token unique to the thread for the process's life); a slot is
 * never given back, so past ASYNC_PRODUCERS threads the rest share a
 * locked counter (async_pool.submitted). */
#define ASYNC_PRODUCERS 16
struct async_producer {
	uint64_t owner; /* the thread's token, 0 while free */
	uint64_t count; /* jobs it submitted, written by the owner only */
} __attribute__((aligned(64)));

struct async_pool {
	struct async_inject inj;
	/* Jobs submitted from outside by threads without a producer slot
	 * (locked adds; see struct async_producer). Statistics only. */
	uint64_t submitted __attribute__((aligned(64)));
	uint64_t serial; /* unique per pool created: keys the producer cache */
	struct async_producer prod[ASYNC_PRODUCERS];
	struct async_ec work_ec __attribute__((aligned(64)));
	uint32_t spinning __attribute__((aligned(64)));
	struct async_ec done_ec __attribute__((aligned(64)));
	uint32_t shutdown;   /* 1 once shutdown began */
	uint32_t active;     /* running and not asked to stop */
	uint32_t high_water; /* slots [0, high_water) have been used */
	int shut_done;
	pthread_mutex_t shut; /* serialises shutdowns; only shutdown takes it */
	pthread_mutex_t ctl;  /* add/stop; never held while joining */
	struct worker *w;
	unsigned max_workers;
	/* 1 while a trace records (trace.c): read by every job a thread of the
	 * pool runs, so it sits among the fields that are only read. */
	uint32_t tracing;
	struct async_trace *trace; /* created by the first trace start */
	struct async_placement place;
	hwloc_topology_t topo;
	async_pool_config cfg;
	char prefix[11];
	ck_epoch_t epoch;
	/* engine.c: the high and low priority levels (normal is the path
	 * above), the main-thread queue, and the slots of threads that help. */
	struct async_inject prio[2];
	struct async_inject mainq;
	struct worker *helper;   /* ASYNC_HELPERS slots */
	uint32_t helping __attribute__((aligned(64))); /* bit k: helper slot k in use */
	/* Jobs in the two extra levels and the inboxes: counted before they
	 * are pushed, uncounted once taken, so 0 means there are none. */
	uint32_t extra __attribute__((aligned(64)));
};

/* Threads outside the pool that run its jobs at once (waiting on a group,
 * async_pool_help, async_pool_run_main); more wait by sleeping. */
#define ASYNC_HELPERS 8
/* A group's pending count with this bit set has continuations to submit
 * before it may read as done (engine.c). */
#define GROUP_THEN ((uint64_t)1 << 63)

/* fork.c */
int async__fork_init(async_worker *w, const uint32_t *sleepers);
void async__fork_free(async_worker *w);
void async__fork_drain(async_worker *w);
void async__fork_share_all(async_worker *w);
async_frame *async__fork_steal(async_worker *v, async_worker *me, int *contended);
void async__fork_run_stolen(struct worker *w, async_frame *t);

/* The worker whose split deque fk is. */
static inline struct worker *worker_of(async_worker *fk)
{
	return (struct worker *)((char *)fk - offsetof(struct worker, fk));
}

/* The calling thread's worker (of whichever pool), or NULL. */
extern _Thread_local struct worker *async__self __attribute__((visibility("hidden")));

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A bounded backoff for a thread that found a queue contended (a
 * producer between its CAS and its link store, say): a few pauses,
 * then yield the CPU, which the producer may need. *n counts the calls. */
static inline void async_backoff(unsigned *n)
{
	if (*n < 64) {
		(*n)++;
		for (int i = 0; i < 8; i++)
			ck_pr_stall();
	} else {
		sched_yield();
	}
}

/* Counters are only written by their worker: a load and an atomic store
 * (no RMW) keep the increment cheap and the racy readers well-defined. */
static inline void stat_add(uint64_t *c, uint64_t v)
{
	ck_pr_store_64(c, ck_pr_load_64(c) + v);
}

static inline struct worker *self_in(const async_pool *p)
{
	struct worker *w = async__self;
	return (w != NULL && w->pool == p) ? w : NULL;
}

/* engine.c */
void async__group_last(async_pool *p, async_group *g);
int async__engine_init(async_pool *p);
void async__engine_free(async_pool *p);
void async__engine_close(async_pool *p);
void async__engine_quiesce(async_pool *p, struct worker *me);
async_job *async__take_leftover(async_pool *p, int *contended);
async_job *async__find_extra(struct worker *w, int *contended);
void async__inbox_open(struct worker *w);
void async__inbox_leave(struct worker *w);
int async__help(async_pool *p, async_group *until, unsigned flags);

static inline int prio_nonempty(async_pool *p)
{
	return async_inject_nonempty(&p->prio[0]) || async_inject_nonempty(&p->prio[1]);
}

/* Drops one count of g. The last count of a group with continuations
 * goes out of line (async__group_last): it takes them with the count still
 * held (so that no registration is missed), drops the count, and only then
 * queues them. Nothing touches g after the count that makes it read as
 * done, for a waiter may free or reinitialise it at once, and a chain's
 * later stage (counted elsewhere) may finish as soon as they are queued. A
 * CAS loop rather than an add for that reason. */
static inline void group_done(async_pool *p, async_group *g)
{
	/* Release: the job's effects are visible before the count drops. Pairs
	 * with the acquire fence after the waits in async_group_wait. */
	ck_pr_fence_release();
	uint64_t old = ck_pr_load_64(&g->pending);
	for (;;) {
		if (old == (GROUP_THEN | 1)) {
			/* The last count, continuations registered: out of line. */
			async__group_last(p, g);
			return;
		}
		if (ck_pr_cas_64(&g->pending, old, old - 1))
			break;
		old = ck_pr_load_64(&g->pending);
	}
	if (old == 1)
		async_ec_notify_all(&p->done_ec);
}

/* low, which the inline sync compares with (fork.c T5, T6): the higher of
 * split and floor, or head while typed frames that ran at once sit past
 * the array's end (so that their syncs take the slow path). */
static inline void fork_update_low(async_worker *w)
{
	async_frame *l = w->split > w->floor ? w->split : w->floor;
	w->low = w->head > w->end ? w->head : l;
}

/* The floor of w's syncs (async/fork.h). */
static inline void fork_set_floor(async_worker *w, async_frame *f)
{
	w->floor = f;
	fork_update_low(w);
}

/* trace.c: a traced job's frame, on the stack of the thread running it:
 * the name async_trace_label gives it, and the job it runs inside. */
struct async_trace_frame {
	char name[48]; /* ASYNC_TRACE_NAME_SIZE */
	struct async_trace_frame *up;
	struct worker *w;
	uint64_t begin;
	int recorded; /* async_trace_job_done recorded it already */
	/* The thread's running job when the event began (its worker's
	 * running): a label from a job without an event (another pool's, not
	 * traced) leaves this event alone. */
	const struct running_job *job;
};
void async__trace_job_begin(struct worker *w, struct async_trace_frame *f);
/* A fork-join task a thief runs (fork.c), traced as a job named "task". */
void async__trace_task_begin(struct worker *w, struct async_trace_frame *f);
void async__trace_job_end(struct async_trace_frame *f);

/* Runs one job on worker w (a worker, or shutdown's pseudo-worker): its
 * function, any spawns it left unsynced (the floor keeps syncs of the
 * wrappers inside the job's own frames), then what a joiner or a group
 * waits for. traced is a constant in each caller (run_job, trace.c): the
 * event is recorded before the job reads as done, so that a thread that
 * waited for it finds it in the trace. */
static inline __attribute__((always_inline)) void run_job_body(struct worker *w, async_job *j, const int traced)
{
	stat_add(&w->jobs, 1);
	/* Read everything first: a detached job may be reused by its own
	 * function. */
	async_job_fn fn = j->fn;
	void *arg = j->arg;
	async_group *g = j->group;
	uint32_t flags = j->flags;
	/* LoadStore: the fields are read before RUNNING is stored, so a
	 * resubmitter that sees RUNNING (its CAS to QUEUED in claim_job, then
	 * its field writes) cannot change what this run reads. Pairs with the
	 * AtomicStore fence after that CAS. */
	ck_pr_fence_load_store();
	/* A CAS, not a store: of this start and async_job_cancel, exactly one
	 * wins. A cancelled record is dropped here: free again (a joinable
	 * one reads as done, for its sync), then its group's count drops. */
	if (!ck_pr_cas_32(&j->state, JOB_QUEUED, JOB_RUNNING)) {
		ck_pr_fence_release();
		ck_pr_store_32(&j->state, (flags & JOB_JOINABLE) ? JOB_DONE : JOB_IDLE);
		if (g != NULL)
			group_done(w->pool, g);
		return;
	}
	async_frame *saved = w->fk.floor;
	fork_set_floor(&w->fk, w->fk.head);
	struct running_job me = { g, w->running };
	w->running = &me;
	struct async_trace_frame tf;
	if (traced)
		async__trace_job_begin(w, &tf);
	ASYNC_PROBE2(job_start, w->index, j);
	fn(arg);
	if (w->fk.head != w->fk.floor)
		async__fork_drain(&w->fk);
	ASYNC_PROBE2(job_end, w->index, j);
	if (traced)
		async__trace_job_end(&tf);
	w->running = me.up;
	fork_set_floor(&w->fk, saved);
	if (flags & JOB_JOINABLE) {
		/* Release: pairs with the acquire fence in async_job_sync. */
		ck_pr_fence_release();
		ck_pr_store_32(&j->state, JOB_DONE);
	}
	if (g != NULL)
		group_done(w->pool, g);
}

/* forkjoin.c: the frame function of a spawned job record (run_job traces
 * those itself). */
void async__spawned_job(async_worker *w, void *arg);

/* trace.c: run_job_body, traced. */
void async__trace_run_job(struct worker *w, async_job *j);

/* While no trace records, the one test of the flag is all a job pays. */
static inline void run_job(struct worker *w, async_job *j)
{
	if (ASYNC_UNLIKELY_(ck_pr_load_32(&w->pool->tracing))) {
		async__trace_run_job(w, j);
		return;
	}
	run_job_body(w, j, 0);
}

/* find_work hands out either a job or a frame claimed from another
 * worker's split deque; frames are tagged in the low bit. */
static inline async_job *frame_tag(async_frame *f)
{
	return (async_job *)((uintptr_t)f | 1u);
}

static inline void async__run_found(struct worker *w, async_job *j)
{
	if ((uintptr_t)j & 1u)
		async__fork_run_stolen(w, (async_frame *)((uintptr_t)j & ~(uintptr_t)1));
	else
		run_job(w, j);
}

/* submit.c */
void async__inject_push(async_pool *p, async_job *first, async_job *last);
async_job *async__take_injected(struct worker *w, int *contended);
async_job *async__take_batches(struct worker *w, int *contended);
int async__injected_work_visible(async_pool *p);
int async__claim_job(async_job *job);
int async__submit_one(async_pool *p, async_group *g, async_job *job);
int async__submit_claimed(async_pool *p, async_job *first, async_job *last, size_t n);
/* forkjoin.c */
int async__group_bind(async_pool *p, async_group *g);
uint64_t async__pool_serial(void);

/* Claims job for one queueing as a detached job, counted in g if any.
 * Inline: it is on the submit path. */
static inline int async__claim_for(async_job *job, async_group *g)
{
	int rc = async__claim_job(job);
	if (rc != 0)
		return rc;
	job->group = g;
	job->flags = 0;
	job->next = NULL;
	if (g != NULL)
		ck_pr_faa_64(&g->pending, 1);
	return 0;
}
/* trace.c: a steal by worker w from victim, a sleep of w that began at
 * since (called only while p->tracing reads 1), and the pool's trace
 * freed with it. */
void async__trace_steal(struct worker *w, const struct worker *victim);
void async__trace_sleep(struct worker *w, uint64_t since);
void async__trace_free(async_pool *p);

/* Worker w took work from victim's deque or split deque. */
static inline void stolen(struct worker *w, const struct worker *victim)
{
	ASYNC_PROBE2(steal, w->index, victim->index);
	if (ASYNC_UNLIKELY_(ck_pr_load_32(&w->pool->tracing)))
		async__trace_steal(w, victim);
}
/* worker.c */
async_job *async__find_work(struct worker *w, int *contended);
async_job *async__find_normal(struct worker *w, int *contended);
void *async__worker_main(void *arg);
void async__set_thread_name(struct worker *w);

#endif
