/* pool.c: the worker pool. Workers own Chase–Lev deques (deque.c); other
 * threads submit through a lock-free injection stack that a worker empties
 * with one exchange; idle workers spin, then sleep on an eventcount
 * (eventcount.h). Adding, stopping and shutting down workers is serialised
 * by one mutex on the control path; no job ever waits on it.
 *
 * Why no job is lost or run twice
 *   A job is in exactly one place at a time: the injection stack, one
 *   deque, or a worker's hands. The stack hands a whole list to exactly one
 *   worker (exchange with NULL); deques hand each item out once (deque.c).
 *   A stopping worker only exits from its top-level loop, between jobs, and
 *   first moves what is left in its deque back to the injection stack.
 *   Shutdown joins every worker after each found no work, then runs
 *   whatever is still queued (jobs re-injected by a late stop, or queued
 *   with no worker left) on the calling thread.
 *
 * Why no wake-up is lost
 *   External submitters publish, then notify unless a worker is spinning.
 *   A spinner that gives up decrements the spinning count, announces itself
 *   on the eventcount and re-checks every queue before it sleeps; both
 *   sides do a full barrier between their write and their read (Dekker), so
 *   either the spinner's re-check finds the job or the submitter sees no
 *   spinner and a waiter, and wakes it. */
#define _GNU_SOURCE
#include "async/pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deque.h"
#include "eventcount.h"
#include "os_mem.h" /* portability: aligned allocation */
#include "placement.h"
#include "pr.h"

enum { JOB_IDLE = 0, JOB_QUEUED = 1, JOB_RUNNING = 2, JOB_DONE = 3 };
enum { JOB_JOINABLE = 1u };
enum { SLOT_EMPTY = 0, SLOT_RUNNING, SLOT_STOPPING, SLOT_EXITED };
/* A stop request is withdrawn if add_workers gets to it first (CAS
 * ASKED -> NONE), and final once the worker commits to it (CAS ASKED ->
 * COMMITTED): exactly one of the two CASes wins. So stop-then-add costs no
 * thread, and a slot never waits on an exit that was called off. */
enum { STOP_NONE = 0, STOP_ASKED = 1, STOP_COMMITTED = 2 };

#define ASYNC_AUTO ((unsigned)-1)
#define DEQUE_INITIAL 256

struct worker {
	struct async_deque dq;
	async_pool *pool;
	unsigned index;
	uint32_t stop;  /* STOP_*: asked by stop_workers, committed by the
	                 * worker, withdrawn by add_workers (CAS both ways) */
	uint32_t state; /* SLOT_* */
	int idle;       /* the worker is in its idle loop (stats only) */
	pthread_t thread;
	ck_epoch_record_t rec;
	/* Counters: written by the worker alone (atomic stores), read racily. */
	uint64_t jobs, steals, pushed, busy_ns, idle_ns, mark_ns;
} __attribute__((aligned(64)));

struct async_pool {
	async_job *inject __attribute__((aligned(64)));
	uint64_t submitted __attribute__((aligned(64)));
	struct async_ec work_ec __attribute__((aligned(64)));
	uint32_t spinning __attribute__((aligned(64)));
	struct async_ec done_ec __attribute__((aligned(64)));
	uint32_t shutdown;   /* 1 once shutdown began */
	uint32_t active;     /* running and not asked to stop */
	uint32_t high_water; /* slots [0, high_water) have been used */
	int shut_done;
	pthread_mutex_t ctl;
	struct worker *w;
	unsigned max_workers;
	struct async_placement place;
	hwloc_topology_t topo;
	async_pool_config cfg;
	char prefix[11];
	ck_epoch_t epoch;
};

static _Thread_local struct worker *tls_self;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Counters are only written by their worker: a load and an atomic store
 * (no RMW) keep the increment cheap and the racy readers well-defined. */
static inline void stat_add(uint64_t *c, uint64_t v)
{
	ck_pr_store_64(c, ck_pr_load_64(c) + v);
}

static inline struct worker *self_in(const async_pool *p)
{
	struct worker *w = tls_self;
	return (w != NULL && w->pool == p) ? w : NULL;
}

/* ---- configuration ------------------------------------------------------ */

async_pool_config async_pool_config_default(void)
{
	async_pool_config c;
	memset(&c, 0, sizeof c);
	c.workers = ASYNC_AUTO;
	c.max_workers = ASYNC_AUTO;
	c.pin = 1;
	c.spin_rounds = 64;
	c.name_prefix = "async-w";
	return c;
}

/* ---- the injection stack (any thread pushes, a worker takes all) ------- */

/* Publishes the chain first..last (already linked) in one CAS. The CAS is a
 * full barrier: it makes the links and the jobs' fields visible to the
 * worker that takes the list (pairs with the exchange in take_injected),
 * and orders the push before the notifier's read of spinning/waiters. */
static void inject_push(async_pool *p, async_job *first, async_job *last)
{
	for (;;) {
		async_job *head = ck_pr_load_ptr(&p->inject);
		last->next = head;
		if (ck_pr_cas_ptr(&p->inject, head, first))
			return;
		ck_pr_stall();
	}
}

/* Takes the whole stack. The list is newest first: the oldest job is run at
 * once, the others go into the deque so that the owner pops the older ones
 * first and thieves take the newer ones. */
static async_job *take_injected(struct worker *w)
{
	async_pool *p = w->pool;
	if (ck_pr_load_ptr(&p->inject) == NULL)
		return NULL;
	async_job *j = ck_pr_fas_ptr(&p->inject, NULL);
	if (j == NULL)
		return NULL;
	int more = j->next != NULL;
	while (j->next != NULL) {
		async_job *next = j->next;
		if (async_deque_push(&w->dq, j) != 0) {
			/* Out of memory: hand the rest back rather than drop it. */
			async_job *last = j;
			while (last->next != NULL)
				last = last->next;
			inject_push(p, j, last);
			return NULL;
		}
		j = next;
	}
	if (more && ck_pr_load_32(&p->spinning) == 0)
		async_ec_hint(&p->work_ec); /* there is work to steal */
	return j;
}

/* ---- finding and running work ------------------------------------------ */

static void group_done(async_pool *p, async_group *g)
{
	/* Release: the job's effects are visible before the count drops. Pairs
	 * with the acquire fence after the waits in async_group_wait. */
	ck_pr_fence_release();
	if (ck_pr_faa_64(&g->pending, (uint64_t)-1) == 1)
		async_ec_notify_all(&p->done_ec);
}

/* Runs one job: its function, then what a joiner or a group waits for.
 * Any thread (workers, and shutdown for what is left over). */
static void execute(async_pool *p, async_job *j)
{
	/* Read everything first: a detached job may be reused by its own
	 * function. */
	async_job_fn fn = j->fn;
	void *arg = j->arg;
	async_group *g = j->group;
	uint32_t flags = j->flags;
	ck_pr_store_32(&j->state, JOB_RUNNING);
	fn(arg);
	if (flags & JOB_JOINABLE) {
		/* Release: pairs with the acquire fence in async_job_sync. */
		ck_pr_fence_release();
		ck_pr_store_32(&j->state, JOB_DONE);
	}
	if (g != NULL)
		group_done(p, g);
}

static void run_job(struct worker *w, async_job *j)
{
	stat_add(&w->jobs, 1);
	execute(w->pool, j);
}

static async_job *steal_round(struct worker *w, int *contended)
{
	async_pool *p = w->pool;
	unsigned hw = ck_pr_load_32(&p->high_water);
	const unsigned *v = async_placement_victims(&p->place, w->index);
	for (unsigned k = 0; k + 1 < p->max_workers; k++) {
		unsigned s = v[k];
		if (s >= hw)
			continue;
		void *r = async_deque_steal(&p->w[s].dq, &w->rec);
		if (r == ASYNC_DEQUE_ABORT) {
			*contended = 1;
			continue;
		}
		if (r != NULL) {
			stat_add(&w->steals, 1);
			if (async_deque_size(&p->w[s].dq) > 0 && ck_pr_load_32(&p->spinning) == 0)
				async_ec_hint(&p->work_ec);
			return r;
		}
	}
	return NULL;
}

static async_job *find_work(struct worker *w, int *contended)
{
	async_job *j = async_deque_pop(&w->dq);
	if (j == NULL)
		j = take_injected(w);
	if (j == NULL)
		j = steal_round(w, contended);
	return j;
}

static void mark(struct worker *w, int to_idle)
{
	uint64_t t = now_ns();
	uint64_t d = t - w->mark_ns;
	stat_add(to_idle ? &w->busy_ns : &w->idle_ns, d);
	ck_pr_store_64(&w->mark_ns, t);
	ck_pr_store_32((uint32_t *)&w->idle, (uint32_t)to_idle);
}

/* The idle path: spin, then sleep. Returns a job, or NULL when the worker
 * must exit (asked to stop, or shutdown with nothing left to run). */
static async_job *idle(struct worker *w)
{
	async_pool *p = w->pool;
	async_job *j = NULL;
	int contended;
	mark(w, 1);
	for (;;) {
		ck_pr_faa_32(&p->spinning, 1);
		for (unsigned r = 0; r < p->cfg.spin_rounds && j == NULL; r++) {
			for (int i = 0; i < 16; i++)
				ck_pr_stall();
			contended = 0;
			j = find_work(w, &contended);
			if (j == NULL && (ck_pr_load_32(&w->stop) ||
			                  (ck_pr_load_32(&p->shutdown) && !contended)))
				break;
		}
		/* The RMW is a full barrier between leaving the spinners and the
		 * re-checks below (the Dekker pair described at the top). */
		uint32_t was = ck_pr_faa_32(&p->spinning, (uint32_t)-1);
		if (j != NULL) {
			/* The last spinner found work: someone must keep looking. */
			if (was == 1)
				async_ec_hint(&p->work_ec);
			break;
		}
		if (ck_pr_load_32(&w->stop))
			break;
		uint32_t key = async_ec_prepare(&p->work_ec);
		contended = 0;
		j = find_work(w, &contended);
		if (j != NULL || contended || ck_pr_load_32(&w->stop) ||
		    ck_pr_load_32(&p->shutdown)) {
			async_ec_cancel(&p->work_ec);
			if (j != NULL || ck_pr_load_32(&w->stop) || !contended)
				break;
			continue;
		}
		async_ec_wait(&p->work_ec, key);
	}
	mark(w, 0);
	return j;
}

/* Named by the creator, so the name is in place when create returns. */
static void set_thread_name(struct worker *w)
{
	char name[16];
	snprintf(name, sizeof name, "%s%u", w->pool->prefix, w->index);
#ifdef __APPLE__ /* portability: macOS can only name the calling thread; its workers stay unnamed */
	(void)name;
#else
	pthread_setname_np(w->thread, name);
#endif
}

static void bind_self(struct worker *w)
{
	async_pool *p = w->pool;
	int pu = p->place.pu[w->index];
	if (!p->cfg.pin || p->topo == NULL || p->cfg.synthetic_topology != NULL || pu < 0)
		return;
	hwloc_obj_t obj = hwloc_get_pu_obj_by_os_index(p->topo, (unsigned)pu);
	if (obj != NULL)
		(void)hwloc_set_cpubind(p->topo, obj->cpuset, HWLOC_CPUBIND_THREAD);
	/* A refused binding (a container's cpuset, say) leaves the thread
	 * unpinned: slower, never wrong. */
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	async_pool *p = w->pool;
	tls_self = w;
	bind_self(w);
	ck_pr_store_64(&w->mark_ns, now_ns());
	if (p->cfg.on_worker_start != NULL)
		p->cfg.on_worker_start(p->cfg.userdata, w->index);
	for (;;) {
		async_job *j = NULL;
		if (ck_pr_load_32(&w->stop) == STOP_NONE) {
			int contended = 0;
			j = find_work(w, &contended);
			if (j == NULL)
				j = idle(w);
		}
		if (j == NULL) {
			/* Asked to stop, or shutdown with nothing left. A stop
			 * withdrawn meanwhile (the CAS fails) means: go on. */
			if (ck_pr_load_32(&p->shutdown) || ck_pr_cas_32(&w->stop, STOP_ASKED, STOP_COMMITTED))
				break;
			continue;
		}
		run_job(w, j);
	}
	/* Whatever is left in the deque goes back to the injection stack for
	 * the others (a stop; at shutdown the deque is empty). */
	int moved = 0;
	async_job *j;
	while ((j = async_deque_pop(&w->dq)) != NULL) {
		inject_push(p, j, j);
		moved = 1;
	}
	if (moved)
		async_ec_notify_all(&p->work_ec);
	if (p->cfg.on_worker_stop != NULL)
		p->cfg.on_worker_stop(p->cfg.userdata, w->index);
	ck_epoch_barrier(&w->rec); /* run the frees this worker deferred */
	mark(w, 1);
	tls_self = NULL;
	ck_pr_store_32(&w->state, SLOT_EXITED);
	return NULL;
}

/* ---- creation and the control path ------------------------------------- */

/* With p->ctl held (or before the pool is shared). */
static int start_worker(async_pool *p, unsigned slot)
{
	struct worker *w = &p->w[slot];
	ck_pr_store_32(&w->stop, STOP_NONE);
	ck_pr_store_32((uint32_t *)&w->idle, 0);
	ck_pr_store_32(&w->state, SLOT_RUNNING);
	if (slot + 1 > ck_pr_load_32(&p->high_water))
		ck_pr_store_32(&p->high_water, slot + 1);
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		ck_pr_store_32(&w->state, SLOT_EMPTY);
		return ASYNC_ETHREAD;
	}
	set_thread_name(w);
	ck_pr_faa_32(&p->active, 1);
	return 0;
}

static int add_locked(async_pool *p, unsigned n)
{
	unsigned added = 0;
	int rc = 0;
	/* First call off stops that have not happened yet: no thread to start,
	 * and the slot is not held by a worker on its way out. */
	for (unsigned s = 0; s < p->max_workers && added < n; s++) {
		struct worker *w = &p->w[s];
		if (ck_pr_load_32(&w->state) == SLOT_STOPPING && ck_pr_cas_32(&w->stop, STOP_ASKED, STOP_NONE)) {
			ck_pr_store_32(&w->state, SLOT_RUNNING);
			ck_pr_faa_32(&p->active, 1);
			added++;
		}
	}
	for (unsigned s = 0; s < p->max_workers && added < n; s++) {
		uint32_t st = ck_pr_load_32(&p->w[s].state);
		if (st == SLOT_EXITED) {
			pthread_join(p->w[s].thread, NULL);
			ck_pr_store_32(&p->w[s].state, SLOT_EMPTY);
			st = SLOT_EMPTY;
		}
		if (st != SLOT_EMPTY)
			continue;
		rc = start_worker(p, s);
		if (rc != 0)
			break;
		added++;
	}
	if (added > 0)
		return (int)added;
	return n == 0 ? 0 : (rc != 0 ? rc : ASYNC_ELIMIT);
}

static void pool_free(async_pool *p)
{
	if (p->w != NULL) {
		for (unsigned s = 0; s < p->max_workers; s++) {
			ck_epoch_reclaim(&p->w[s].rec);
			async_deque_destroy(&p->w[s].dq);
		}
	}
	async_os_aligned_free(p->w); /* portability: os_mem.h */
	async_placement_free(&p->place);
	if (p->topo != NULL)
		hwloc_topology_destroy(p->topo);
	pthread_mutex_destroy(&p->ctl);
	async_os_aligned_free(p); /* portability: os_mem.h */
}

int async_pool_create(async_pool **out, const async_pool_config *cfg_in)
{
	if (out == NULL)
		return ASYNC_EINVAL;
	*out = NULL;
	async_pool_config cfg = cfg_in ? *cfg_in : async_pool_config_default();
	async_pool *p;
	if (async_os_aligned_alloc((void **)&p, 64, sizeof *p) != 0) /* portability: os_mem.h */
		return ASYNC_ENOMEM;
	memset(p, 0, sizeof *p);
	pthread_mutex_init(&p->ctl, NULL);
	async_ec_init(&p->work_ec);
	async_ec_init(&p->done_ec);
	ck_epoch_init(&p->epoch);
	snprintf(p->prefix, sizeof p->prefix, "%s", cfg.name_prefix ? cfg.name_prefix : "async-w");

	int rc = ASYNC_ETOPOLOGY;
	if (hwloc_topology_init(&p->topo) != 0) {
		p->topo = NULL;
		goto fail;
	}
	if (cfg.synthetic_topology != NULL &&
	    hwloc_topology_set_synthetic(p->topo, cfg.synthetic_topology) != 0) {
		rc = ASYNC_EINVAL;
		goto fail;
	}
	if (hwloc_topology_load(p->topo) != 0)
		goto fail;

	int npu = hwloc_get_nbobjs_by_type(p->topo, HWLOC_OBJ_PU);
	int ncore = hwloc_get_nbobjs_by_type(p->topo, HWLOC_OBJ_CORE);
	if (npu < 1)
		npu = 1;
	if (ncore < 1)
		ncore = npu;
	if (cfg.max_workers == ASYNC_AUTO)
		cfg.max_workers = (unsigned)(4 * npu > 64 ? 4 * npu : 64);
	if (cfg.workers == ASYNC_AUTO)
		cfg.workers = (unsigned)ncore < cfg.max_workers ? (unsigned)ncore : cfg.max_workers;
	rc = ASYNC_EINVAL;
	if (cfg.max_workers == 0 || cfg.max_workers > 4096 || cfg.workers > cfg.max_workers)
		goto fail;
	p->cfg = cfg;
	p->max_workers = cfg.max_workers;

	rc = async_placement_compute(p->topo, p->max_workers, &p->place);
	if (rc != 0)
		goto fail;
	rc = ASYNC_ENOMEM;
	if (async_os_aligned_alloc((void **)&p->w, 64, sizeof *p->w * p->max_workers) != 0) { /* portability: os_mem.h */
		p->w = NULL;
		goto fail;
	}
	memset(p->w, 0, sizeof *p->w * p->max_workers);
	for (unsigned s = 0; s < p->max_workers; s++) {
		p->w[s].pool = p;
		p->w[s].index = s;
		ck_epoch_register(&p->epoch, &p->w[s].rec, NULL);
	}
	for (unsigned s = 0; s < p->max_workers; s++)
		if (async_deque_init(&p->w[s].dq, DEQUE_INITIAL, &p->w[s].rec) != 0)
			goto fail;
	if (cfg.workers > 0) {
		pthread_mutex_lock(&p->ctl);
		rc = add_locked(p, cfg.workers);
		pthread_mutex_unlock(&p->ctl);
		if (rc < 0) {
			async_pool_destroy(p);
			return rc;
		}
	}
	*out = p;
	return 0;
fail:
	pool_free(p);
	return rc;
}

int async_pool_add_workers(async_pool *p, unsigned n)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	pthread_mutex_lock(&p->ctl);
	int rc = ck_pr_load_32(&p->shutdown) ? ASYNC_ESHUTDOWN : add_locked(p, n);
	pthread_mutex_unlock(&p->ctl);
	return rc;
}

int async_pool_stop_workers(async_pool *p, unsigned n)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	int asked = 0;
	pthread_mutex_lock(&p->ctl);
	for (unsigned s = p->max_workers; s-- > 0 && (unsigned)asked < n;) {
		struct worker *w = &p->w[s];
		if (ck_pr_load_32(&w->state) != SLOT_RUNNING)
			continue;
		ck_pr_store_32(&w->state, SLOT_STOPPING);
		ck_pr_store_32(&w->stop, STOP_ASKED);
		ck_pr_faa_32(&p->active, (uint32_t)-1);
		asked++;
	}
	pthread_mutex_unlock(&p->ctl);
	if (asked > 0)
		async_ec_notify_all(&p->work_ec);
	return asked;
}

int async_pool_worker_count(const async_pool *p)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	return (int)ck_pr_load_32((uint32_t *)&p->active);
}

int async_pool_worker_index(const async_pool *p)
{
	struct worker *w = self_in(p);
	return w ? (int)w->index : ASYNC_ENOTWORKER;
}

int async_pool_shutdown(async_pool *p)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	if (self_in(p) != NULL)
		return ASYNC_ENOTWORKER; /* a worker cannot join itself */
	pthread_mutex_lock(&p->ctl);
	if (p->shut_done) {
		pthread_mutex_unlock(&p->ctl);
		return 0;
	}
	ck_pr_store_32(&p->shutdown, 1);
	async_ec_notify_all(&p->work_ec);
	for (unsigned s = 0; s < p->max_workers; s++) {
		uint32_t st = ck_pr_load_32(&p->w[s].state);
		if (st == SLOT_EMPTY)
			continue;
		pthread_join(p->w[s].thread, NULL);
		ck_pr_store_32(&p->w[s].state, SLOT_EMPTY);
	}
	ck_pr_store_32(&p->active, 0);
	/* Every worker is gone; run what is left here, oldest first, until
	 * nothing is queued (a job may queue another). */
	for (;;) {
		async_job *list = ck_pr_fas_ptr(&p->inject, NULL);
		for (unsigned s = 0; s < p->max_workers && list == NULL; s++) {
			async_job *j = async_deque_pop(&p->w[s].dq);
			if (j != NULL) {
				j->next = NULL;
				list = j;
			}
		}
		if (list == NULL)
			break;
		async_job *rev = NULL;
		while (list != NULL) {
			async_job *next = list->next;
			list->next = rev;
			rev = list;
			list = next;
		}
		while (rev != NULL) {
			async_job *next = rev->next; /* before: the job may reuse itself */
			execute(p, rev);
			rev = next;
		}
	}
	p->shut_done = 1;
	pthread_mutex_unlock(&p->ctl);
	return 0;
}

void async_pool_destroy(async_pool *p)
{
	if (p == NULL)
		return;
	/* Refused on one of the pool's own workers: leaking beats freeing the
	 * pool under the running thread. */
	if (async_pool_shutdown(p) != 0)
		return;
	pool_free(p);
}

/* ---- submitting -------------------------------------------------------- */

static int check_job(const async_job *job)
{
	if (job == NULL || job->fn == NULL)
		return ASYNC_EINVAL;
	if (ck_pr_load_32((uint32_t *)&job->state) == JOB_QUEUED)
		return ASYNC_EBUSY;
	return 0;
}

static int submit_chain(async_pool *p, async_job *first, async_job *last, size_t n)
{
	struct worker *w = self_in(p);
	if (w != NULL) {
		/* A worker queues on its own deque: no shared write at all. The
		 * chain runs first..last, newest first. */
		for (async_job *j = first;;) {
			async_job *next = j->next;
			if (async_deque_push(&w->dq, j) != 0) {
				inject_push(p, j, last);
				break;
			}
			stat_add(&w->pushed, 1);
			if (j == last)
				break;
			j = next;
		}
		/* A hint suffices: this worker runs the job itself if nobody
		 * steals it. */
		if (ck_pr_load_32(&p->spinning) == 0)
			async_ec_hint(&p->work_ec);
		return 0;
	}
	if (ck_pr_load_32(&p->shutdown))
		return ASYNC_ESHUTDOWN;
	ck_pr_faa_64(&p->submitted, n);
	inject_push(p, first, last);
	/* The CAS in inject_push is a full barrier, so the job is published
	 * before we read spinning: pairs with the RMW on spinning in idle(). */
	ck_pr_fence_atomic_load();
	if (ck_pr_load_32(&p->spinning) == 0)
		async_ec_notify_one_after_rmw(&p->work_ec);
	return 0;
}

/* One job, detached (g == NULL) or counted in g. */
static int submit_one(async_pool *p, async_group *g, async_job *job)
{
	int rc = check_job(job);
	if (rc != 0)
		return rc;
	job->group = g;
	job->flags = 0;
	job->next = NULL;
	if (g != NULL)
		ck_pr_faa_64(&g->pending, 1);
	ck_pr_store_32(&job->state, JOB_QUEUED);
	rc = submit_chain(p, job, job, 1);
	if (rc != 0) {
		if (g != NULL)
			ck_pr_faa_64(&g->pending, (uint64_t)-1);
		ck_pr_store_32(&job->state, JOB_IDLE);
	}
	return rc;
}

int async_pool_submit(async_pool *p, async_job *job)
{
	return p == NULL ? ASYNC_EINVAL : submit_one(p, NULL, job);
}

int async_pool_submit_array(async_pool *p, async_job *jobs, size_t n)
{
	if (p == NULL || (jobs == NULL && n > 0))
		return ASYNC_EINVAL;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int rc = check_job(&jobs[i]);
		if (rc != 0)
			return rc;
	}
	/* Link newest first (jobs[n-1] .. jobs[0]) so jobs[0] counts as the
	 * oldest, as if submitted one by one in array order. */
	for (size_t i = 0; i < n; i++) {
		jobs[i].group = NULL;
		jobs[i].flags = 0;
		jobs[i].next = i > 0 ? &jobs[i - 1] : NULL;
		ck_pr_store_32(&jobs[i].state, JOB_QUEUED);
	}
	int rc = submit_chain(p, &jobs[n - 1], &jobs[0], n);
	if (rc != 0)
		for (size_t i = 0; i < n; i++)
			ck_pr_store_32(&jobs[i].state, JOB_IDLE);
	return rc;
}

void async_job_init(async_job *job, async_job_fn fn, void *arg)
{
	if (job == NULL)
		return;
	memset(job, 0, sizeof *job);
	job->fn = fn;
	job->arg = arg;
}

/* ---- groups, fork-join, parallel-for ----------------------------------- */

int async_group_init(async_group *g)
{
	if (g == NULL)
		return ASYNC_EINVAL;
	g->pending = 0;
	return 0;
}

int async_group_submit(async_pool *p, async_group *g, async_job *job)
{
	return (p == NULL || g == NULL) ? ASYNC_EINVAL : submit_one(p, g, job);
}

/* A worker waiting for something runs other work meanwhile. */
static void help_until_zero(struct worker *w, uint64_t *counter, uint32_t *state)
{
	unsigned spins = 0;
	for (;;) {
		if (counter != NULL ? ck_pr_load_64(counter) == 0
		                    : ck_pr_load_32(state) == JOB_DONE)
			break;
		int contended = 0;
		async_job *j = find_work(w, &contended);
		if (j != NULL) {
			run_job(w, j);
			spins = 0;
		} else if (++spins < 256) {
			ck_pr_stall();
		} else {
			sched_yield();
		}
	}
	/* Acquire: pairs with the release fences in group_done / run_job. */
	ck_pr_fence_acquire();
}

int async_group_wait(async_pool *p, async_group *g)
{
	if (p == NULL || g == NULL)
		return ASYNC_EINVAL;
	struct worker *w = self_in(p);
	if (w != NULL) {
		help_until_zero(w, &g->pending, NULL);
		return 0;
	}
	while (ck_pr_load_64(&g->pending) != 0) {
		uint32_t key = async_ec_prepare(&p->done_ec);
		if (ck_pr_load_64(&g->pending) == 0) {
			async_ec_cancel(&p->done_ec);
			break;
		}
		async_ec_wait(&p->done_ec, key);
	}
	/* Acquire: pairs with the release fence in group_done. */
	ck_pr_fence_acquire();
	return 0;
}

int async_job_spawn(async_job *job)
{
	struct worker *w = tls_self;
	if (w == NULL)
		return ASYNC_ENOTWORKER;
	if (job == NULL || job->fn == NULL)
		return ASYNC_EINVAL;
	job->group = NULL;
	job->flags = JOB_JOINABLE;
	ck_pr_store_32(&job->state, JOB_QUEUED);
	int rc = async_deque_push(&w->dq, job);
	if (rc != 0)
		return rc;
	stat_add(&w->pushed, 1);
	if (ck_pr_load_32(&w->pool->spinning) == 0)
		async_ec_hint(&w->pool->work_ec);
	return 0;
}

int async_job_sync(async_job *job)
{
	struct worker *w = tls_self;
	if (w == NULL)
		return ASYNC_ENOTWORKER;
	if (job == NULL || !(job->flags & JOB_JOINABLE))
		return ASYNC_EINVAL;
	if (ck_pr_load_32(&job->state) == JOB_DONE) {
		ck_pr_fence_acquire();
		return 0;
	}
	async_job *j = async_deque_pop(&w->dq);
	if (j != NULL) {
		/* In strict fork-join order this is job itself, not stolen: run it
		 * here, the common and cheap case. Anything else popped is still
		 * work that had to run. */
		run_job(w, j);
		if (j == job)
			return 0;
	}
	help_until_zero(w, NULL, &job->state);
	return 0;
}

struct pfor {
	async_range_fn fn;
	void *arg;
	size_t grain;
};

struct pfor_task {
	struct pfor *pf;
	size_t begin, end;
	async_job job;
};

static void pfor_run(struct pfor *pf, size_t b, size_t e);

static void pfor_job(void *arg)
{
	struct pfor_task *t = arg;
	pfor_run(t->pf, t->begin, t->end);
}

/* Halve the range, spawning the upper halves, down to the grain; then run
 * the lowest piece here and sync the spawned halves in reverse order. */
static void pfor_run(struct pfor *pf, size_t b, size_t e)
{
	struct pfor_task kids[48];
	int nk = 0;
	while (e - b > pf->grain && nk < 48) {
		size_t mid = b + (e - b) / 2;
		struct pfor_task *k = &kids[nk];
		k->pf = pf;
		k->begin = mid;
		k->end = e;
		async_job_init(&k->job, pfor_job, k);
		if (async_job_spawn(&k->job) != 0) {
			pfor_run(pf, mid, e); /* could not queue: do it here */
		} else {
			nk++;
		}
		e = mid;
	}
	pf->fn(pf->arg, b, e);
	while (nk > 0)
		async_job_sync(&kids[--nk].job);
}

int async_parallel_for(async_pool *p, size_t begin, size_t end, size_t grain,
                       async_range_fn fn, void *arg)
{
	if (p == NULL || fn == NULL || end < begin)
		return ASYNC_EINVAL;
	if (end == begin)
		return 0;
	if (grain == 0) {
		size_t n = (size_t)async_pool_worker_count(p);
		size_t parts = 8 * (n > 0 ? n : 1);
		grain = (end - begin + parts - 1) / parts;
	}
	struct pfor pf = { fn, arg, grain };
	if (self_in(p) != NULL) {
		pfor_run(&pf, begin, end);
		return 0;
	}
	struct pfor_task root = { &pf, begin, end, { 0 } };
	async_group g;
	async_group_init(&g);
	async_job_init(&root.job, pfor_job, &root);
	int rc = async_group_submit(p, &g, &root.job);
	if (rc != 0)
		return rc;
	return async_group_wait(p, &g);
}

/* ---- introspection ----------------------------------------------------- */

int async_pool_stats(const async_pool *p, async_worker_stats *out, unsigned cap)
{
	if (p == NULL || (out == NULL && cap > 0))
		return ASYNC_EINVAL;
	unsigned hw = ck_pr_load_32((uint32_t *)&p->high_water);
	uint64_t t = now_ns();
	for (unsigned s = 0; s < hw && s < cap; s++) {
		struct worker *w = &p->w[s];
		uint32_t st = ck_pr_load_32(&w->state);
		async_worker_stats *o = &out[s];
		o->index = st == SLOT_EMPTY && ck_pr_load_64(&w->jobs) == 0 ? -1 : (int)s;
		o->running = st == SLOT_RUNNING;
		o->pu = p->place.pu[s];
		o->jobs = ck_pr_load_64(&w->jobs);
		o->steals = ck_pr_load_64(&w->steals);
		o->busy_ns = ck_pr_load_64(&w->busy_ns);
		o->idle_ns = ck_pr_load_64(&w->idle_ns);
		if (st == SLOT_RUNNING || st == SLOT_STOPPING) {
			/* Add the current stretch, busy or idle. */
			uint64_t m = ck_pr_load_64(&w->mark_ns);
			uint64_t d = t > m ? t - m : 0;
			if (ck_pr_load_32((uint32_t *)&w->idle))
				o->idle_ns += d;
			else
				o->busy_ns += d;
		}
	}
	return (int)hw;
}

int64_t async_pool_queued(const async_pool *p)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	int64_t n = (int64_t)ck_pr_load_64((uint64_t *)&p->submitted);
	unsigned hw = ck_pr_load_32((uint32_t *)&p->high_water);
	for (unsigned s = 0; s < hw; s++) {
		n += (int64_t)ck_pr_load_64(&p->w[s].pushed);
		n -= (int64_t)ck_pr_load_64(&p->w[s].jobs);
	}
	return n < 0 ? 0 : n;
}
