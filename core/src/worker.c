/* SPDX-License-Identifier: MIT (see LICENSE) */
/* worker.c: the worker loop: finding work (own deque, batches, the
 * injection queue, stealing), running it, and idling: a spin bounded in
 * time, then sleep on the eventcount, with no lost wake-up (pool.c's header
 * gives the argument). */
#define _GNU_SOURCE
#include "pool_impl.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

_Thread_local struct worker *async__self;

/* ---- finding and running work ------------------------------------------ */

static async_job *steal_from(struct worker *w, struct worker *v, int *contended)
{
	async_pool *p = w->pool;
	/* Fork-join frames first: the oldest is the biggest subtree. */
	async_frame *f = async__fork_steal(&v->fk, &w->fk, contended);
	if (f != NULL) {
		stolen(w, v);
		return frame_tag(f);
	}
	void *r = async_deque_steal(&v->dq, &w->rec);
	if (r == ASYNC_DEQUE_ABORT) {
		*contended = 1;
		return NULL;
	}
	if (r != NULL) {
		stolen(w, v);
		stat_add(&w->steals, 1);
		if (async_deque_size(&v->dq) > 0 && ck_pr_load_32(&p->spinning) == 0)
			async_ec_hint(&p->work_ec);
	}
	return r;
}

static async_job *steal_round(struct worker *w, int *contended)
{
	async_pool *p = w->pool;
	unsigned hw = ck_pr_load_32(&p->high_water);
	async_job *j;
	if (w->index <= p->max_workers) {
		/* The placement has a row for shutdown's pseudo-worker too (slot
		 * max_workers, pool.c): every row names all the other slots. */
		const unsigned *v = async_placement_victims(&p->place, w->index);
		for (unsigned k = 0; k + 1 < p->place.nslots; k++)
			if (v[k] < hw && (j = steal_from(w, &p->w[v[k]], contended)) != NULL)
				return j;
	} else {
		/* A helper has no placement row: the workers in slot order. */
		for (unsigned s = 0; s < hw; s++)
			if ((j = steal_from(w, &p->w[s], contended)) != NULL)
				return j;
	}
	/* Threads helping hold work too: what the jobs they run spawn. */
	uint32_t mask = ck_pr_load_32(&p->helping);
	for (unsigned k = 0; mask != 0; k++, mask >>= 1)
		if ((mask & 1u) && &p->helper[k] != w && (j = steal_from(w, &p->helper[k], contended)) != NULL)
			return j;
	return NULL;
}

/* Oldest outside work first once the own deque (detached jobs submitted
 * here, LIFO) is empty: the own batch, other batches, the injection queue;
 * then steal (split-deque frames, then deques). A stolen frame comes back
 * tagged (frame_tag): run what this returns with async__run_found. */
static inline async_job *find_normal(struct worker *w, int *contended)
{
	async_job *j = async_deque_pop(&w->dq);
	if (j == NULL) {
		j = async_batch_take(&w->batch);
		if (j == ASYNC_BATCH_ABORT) {
			*contended = 1;
			j = NULL;
		}
	}
	if (j == NULL)
		j = async__take_batches(w, contended);
	if (j == NULL)
		j = async__take_injected(w, contended);
	if (j == NULL)
		j = steal_round(w, contended);
	return j;
}

async_job *async__find_normal(struct worker *w, int *contended)
{
	return find_normal(w, contended);
}

/* Jobs pinned or queued at another level (engine.c) are counted in one
 * word: without them the normal path pays one load. */
async_job *async__find_work(struct worker *w, int *contended)
{
	if (ck_pr_load_32(&w->pool->extra) != 0)
		return async__find_extra(w, contended);
	return find_normal(w, contended);
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
	unsigned backoff = 0;
	/* The spin is bounded in time, read from the vDSO clock once per round
	 * (tens of nanoseconds against a round's hundreds). */
	uint64_t budget = p->cfg.spin_rounds == 0 ? 0 : (uint64_t)p->cfg.spin_us * 1000u;
	mark(w, 1);
	for (;;) {
		ck_pr_faa_32(&p->spinning, 1);
		uint64_t start = budget != 0 ? now_ns() : 0;
		while (budget != 0) {
			for (int i = 0; i < 16; i++)
				ck_pr_stall();
			contended = 0;
			j = async__find_work(w, &contended);
			if (j != NULL || ck_pr_load_32(&w->stop) ||
			    (ck_pr_load_32(&p->shutdown) && !contended) || now_ns() - start >= budget)
				break;
		}
		if (j == NULL && ck_pr_load_32(&w->stop))
			TEST_POINT("idle: stop seen while spinning");
		/* Leaving the spinners. Each way out below orders this RMW before
		 * its re-check of the queues with an explicit fence (the Dekker
		 * pair described at the top): the fence before the re-check of the
		 * injected work on the two exits, the StoreLoad fence in async_ec_prepare on
		 * the way to sleep. */
		uint32_t was = ck_pr_faa_32(&p->spinning, (uint32_t)-1);
		if (j != NULL) {
			/* The last spinner found work: a submitter that saw it
			 * spinning sent no wake-up, so if more is queued someone
			 * must keep looking. The fence orders the RMW on spinning
			 * before the re-check of the queue and batches (pairs with
			 * the one in submit_chain). */
			if (was == 1) {
				ck_pr_fence_atomic_load();
				if (async__injected_work_visible(p))
					async_ec_notify_one(&p->work_ec);
			}
			break;
		}
		if (ck_pr_load_32(&w->stop))
			break; /* worker_main's exit re-checks the queue */
		uint32_t key = async_ec_prepare(&p->work_ec);
		/* This last look also sets movesplit on every split deque with
		 * nothing shared: the request an owner's next spawn serves by
		 * publishing and waking us (fork.c F4). */
		contended = 0;
		j = async__find_work(w, &contended);
		if (j != NULL || contended || ck_pr_load_32(&w->stop) ||
		    ck_pr_load_32(&p->shutdown)) {
			async_ec_cancel(&p->work_ec);
			if (j != NULL || ck_pr_load_32(&w->stop) || !contended)
				break;
			/* Contended: a producer may be preempted between its
			 * CAS and its link store; let it run. */
			async_backoff(&backoff);
			continue;
		}
		/* A sleep is traced from here to the wake-up; the flag is read
		 * again after it, so a trace stopped meanwhile gets no event. */
		ASYNC_PROBE1(sleep, w->index);
		uint64_t slept = ck_pr_load_32(&p->tracing) ? now_ns() : 0;
		async_ec_wait(&p->work_ec, key);
		ASYNC_PROBE1(wake, w->index);
		if (slept != 0 && ck_pr_load_32(&p->tracing))
			async__trace_sleep(w, slept);
	}
	mark(w, 0);
	return j;
}

/* Named by the creator, so the name is in place when create returns. */
void async__set_thread_name(struct worker *w)
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

#ifdef __linux__
/* The kernel's struct sched_attr, first version (glibc declares no wrapper
 * before 2.41). */
struct slice_attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

/* cfg.slice_us (pool.h), off by default. The kernel mostly puts a woken
 * worker on the waker's CPU (in the traces even while the other CPU idled).
 * A waker that goes on polling there is preempted only when EEVDF allows
 * it, and otherwise keeps the CPU until a tick; a slice shorter than the
 * waker's lets the wake-up preempt, at the waker's expense (the idle
 * one-call p99, bench/ANALYSIS.md). Only a thread of the plain
 * policy is changed, keeping its nice value; a refusal (seccomp, an old
 * kernel) leaves the default: later wake-ups, never wrong. */
static void ask_slice(const struct worker *w)
{
	unsigned us = w->pool->cfg.slice_us;
	struct slice_attr a;
	memset(&a, 0, sizeof a);
	if (us == 0 || syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0 || a.policy != SCHED_OTHER)
		return;
	a.size = sizeof a;
	a.flags &= 1; /* SCHED_FLAG_RESET_ON_FORK, the only flag a plain thread has */
	a.runtime = (uint64_t)us * 1000u;
	(void)syscall(SYS_sched_setattr, 0, &a, 0);
}
#else
static void ask_slice(const struct worker *w)
{
	(void)w; /* portability: a scheduler slice is a Linux request */
}
#endif

/* A job found after a stop was asked: a caller that stopped the last
 * worker, then submitted, must find its job still queued, not started by
 * the worker on its way out. The job reached this worker through a queue
 * push ordered after the stop's store (async_pool_stop_workers' fence), so
 * the load after the fence below sees the stop whenever the job was
 * submitted after it. The worker commits to the stop and puts the job
 * back, as its exit does with its deque (a pinned or prioritised job
 * becomes a plain one, as there). A stolen fork-join frame is part of a
 * job already running: it runs. Returns 1 when the worker must exit. */
static int gives_back(struct worker *w, async_job *j)
{
	ck_pr_fence_load();
	if (((uintptr_t)j & 1u) || ck_pr_load_32(&w->stop) != STOP_ASKED || ck_pr_load_32(&w->pool->shutdown))
		return 0;
	if (!ck_pr_cas_32(&w->stop, STOP_ASKED, STOP_COMMITTED))
		return 0; /* withdrawn meanwhile: the worker stays */
	async__inject_push(w->pool, j, j); /* still counted where it was */
	return 1;
}

void *async__worker_main(void *arg)
{
	struct worker *w = arg;
	async_pool *p = w->pool;
	async__self = w;
	bind_self(w);
	ask_slice(w);
	ck_pr_store_64(&w->mark_ns, now_ns());
	if (p->cfg.on_worker_start != NULL)
		p->cfg.on_worker_start(p->cfg.userdata, w->index);
	for (;;) {
		async_job *j = NULL;
		if (ck_pr_load_32(&w->stop) == STOP_NONE) {
			int contended = 0;
			j = async__find_work(w, &contended);
			if (j == NULL)
				j = idle(w);
		}
		if (j != NULL && gives_back(w, j))
			break;
		if (j == NULL) {
			/* Asked to stop, or shutdown with nothing left. A stop
			 * withdrawn meanwhile (the CAS fails) means: go on. */
			if (ck_pr_load_32(&p->shutdown) || ck_pr_cas_32(&w->stop, STOP_ASKED, STOP_COMMITTED))
				break;
			continue;
		}
		async__run_found(w, j);
	}
	/* Whatever is left in the deque goes back to the injection stack for
	 * the others (a stop; at shutdown the deque is empty). Its batch stays
	 * where it is: other workers take from it. */
	async_job *j;
	while ((j = async_deque_pop(&w->dq)) != NULL) {
		async__inject_push(p, j, j); /* still counted in pushed */
	}
	async__inbox_leave(w); /* pinned jobs too: another worker runs them */
	/* Leaving for good, the worker looks at the queues once more (the
	 * rule in eventcount.h): a submitter may have seen it spinning, or a
	 * wake in flight, and sent no wake-up, while another worker sleeps.
	 * async_ec_leave's fence orders the RMW on spinning, the clear of the
	 * waking flag and the re-injection before this look; it pairs with the
	 * fence between inject_push and the load of spinning in submit_chain
	 * and with the one in the notify functions. */
	async_ec_leave(&p->work_ec);
	if (async__injected_work_visible(p))
		async_ec_notify_all(&p->work_ec);
	if (p->cfg.on_worker_stop != NULL)
		p->cfg.on_worker_stop(p->cfg.userdata, w->index);
	ck_epoch_barrier(&w->rec); /* run the frees this worker deferred */
	mark(w, 1);
	async__self = NULL;
	ck_pr_store_32(&w->state, SLOT_EXITED);
	return NULL;
}

