/* SPDX-License-Identifier: MIT (see LICENSE) */
/* pool.c: the pool's life: creation and placement, adding and stopping
 * workers, shutdown (joining, then running what is left as a pseudo-worker)
 * and destruction. The other concepts live beside it (pool_impl.h says
 * which file owns what).
 *
 * Why no job is lost or run twice
 *   A job is in exactly one place at a time: the injection queue, one
 *   batch, one deque, or a worker's hands. The queue hands each node to its
 *   one consumer; batches and deques hand each item out once by a CAS
 *   (inject.h, deque.c). A stopping worker only exits from its top-level
 *   loop, between jobs, and first moves what is left in its deque back to
 *   the injection queue; its batch stays, for the others to take.
 *   Shutdown joins every worker after each found no work, then runs
 *   whatever is still queued (jobs re-injected by a late stop, or queued
 *   with no worker left) on the calling thread, as a pseudo-worker.
 *   Another thread's submission during shutdown is either refused or
 *   drained: shutdown closes the injection queue (a bit in its head that
 *   an external push's CAS must find clear), so every accepted push is in
 *   the chain before the close, and the drain's empty look, which waits
 *   for half-done pushes, is final.
 *
 * Why no wake-up is lost
 *   External submitters publish, then notify unless a worker is spinning.
 *   Every way out of the spinning state re-checks the queue: a spinner that
 *   gives up decrements the spinning count, announces itself on the
 *   eventcount and re-checks every queue before it sleeps; one that leaves
 *   to stop, or as the last spinner with a job in hand, re-checks the
 *   injection queue and wakes a sleeper if it is not empty. Both sides put
 *   an explicit fence between their write and their read (Dekker; x86's
 *   locked RMWs would do, ck's aarch64 ones are relaxed), so either the
 *   spinner's re-check finds the job or the submitter sees no spinner and
 *   a waiter, and wakes it. */
#define _GNU_SOURCE
#include "pool_impl.h"
#include "os_mem.h" /* portability: aligned allocation */

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef ASYNC_TEST_HOOKS
void (*async_test_hook)(const char *point);
#endif

/* ---- configuration ------------------------------------------------------ */

/* The machine's cores and PUs, read once: the defaults are real numbers a
 * caller can read and adjust, so they are worked out here, not in create. */
static unsigned machine_cores, machine_pus;
static pthread_once_t machine_once = PTHREAD_ONCE_INIT;

static void machine_read(void)
{
	int npu = 0, ncore = 0;
	hwloc_topology_t t;
	if (hwloc_topology_init(&t) == 0) {
		if (hwloc_topology_load(t) == 0) {
			npu = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
			ncore = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
		}
		hwloc_topology_destroy(t);
	}
#ifdef _SC_NPROCESSORS_ONLN /* portability: not in mingw's unistd.h */
	if (npu < 1) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		npu = n > 0 && n < ASYNC_MAX_WORKERS ? (int)n : 1;
	}
#endif
	if (npu < 1)
		npu = 1;
	if (ncore < 1 || ncore > npu)
		ncore = npu;
	machine_pus = (unsigned)npu;
	machine_cores = (unsigned)ncore;
}

async_pool_config async_pool_config_default(void)
{
	pthread_once(&machine_once, machine_read);
	unsigned max = 4 * machine_pus > 64 ? 4 * machine_pus : 64;
	if (max > ASYNC_MAX_WORKERS)
		max = ASYNC_MAX_WORKERS;
	async_pool_config c;
	memset(&c, 0, sizeof c);
	c.workers = machine_cores < max ? machine_cores : max;
	c.max_workers = max;
	c.pin = 1;
	c.spin_rounds = 64;
	c.spin_us = 10;
	c.slice_us = 0; /* off: a short slice makes the pool's wake-ups preempt the submitter (pool.h) */
	c.name_prefix = "async-w";
	return c;
}

/* ---- creation and the control path ------------------------------------- */

#define WORKER_STACK ((size_t)8 << 20)

/* With p->ctl held (or before the pool is shared). */
static int start_worker(async_pool *p, unsigned slot)
{
	struct worker *w = &p->w[slot];
	ck_pr_store_32(&w->stop, STOP_NONE);
	ck_pr_store_32((uint32_t *)&w->idle, 0);
	ck_pr_store_32(&w->state, SLOT_RUNNING);
	async__inbox_open(w);
	if (slot + 1 > ck_pr_load_32(&p->high_water))
		ck_pr_store_32(&p->high_water, slot + 1);
	/* Every platform's workers get Linux's default 8 MiB stack: Windows
	 * gives a thread 1 MiB and macOS 512 KiB, where deep fork-join or a
	 * job nesting the Lua layer's awaits overflows long before it does
	 * on Linux. Only touched pages cost memory. */
	pthread_attr_t attr;
	int rc = pthread_attr_init(&attr);
	if (rc == 0) {
		pthread_attr_setstacksize(&attr, WORKER_STACK);
		rc = pthread_create(&w->thread, &attr, async__worker_main, w);
		pthread_attr_destroy(&attr);
	}
	if (rc != 0) {
		ck_pr_store_32(&w->state, SLOT_EMPTY);
		return ASYNC_ETHREAD;
	}
	async__set_thread_name(w);
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
		for (unsigned s = 0; s <= p->max_workers; s++) {
			ck_epoch_reclaim(&p->w[s].rec);
			async_deque_destroy(&p->w[s].dq);
			async__fork_free(&p->w[s].fk);
		}
	}
	async__engine_free(p);
	async__trace_free(p);
	async_os_aligned_free(p->w); /* portability: os_mem.h */
	async_placement_free(&p->place);
	if (p->topo != NULL)
		hwloc_topology_destroy(p->topo);
	pthread_mutex_destroy(&p->ctl);
	pthread_mutex_destroy(&p->shut);
	async_os_aligned_free(p); /* portability: os_mem.h */
}

int async_pool_create(async_pool **out, const async_pool_config *cfg_in)
{
	if (out == NULL)
		return ASYNC_EINVAL;
	*out = NULL;
	async_pool_config cfg = cfg_in ? *cfg_in : async_pool_config_default();
	async_pool *p;
	if (async_os_aligned_alloc((void **)&p, 64, sizeof *p) != 0)  /* portability: os_mem.h */
		return ASYNC_ENOMEM;
	memset(p, 0, sizeof *p);
	pthread_mutex_init(&p->ctl, NULL);
	pthread_mutex_init(&p->shut, NULL);
	async_inject_init(&p->inj);
	p->serial = async__pool_serial();
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

	rc = ASYNC_EINVAL;
	if (cfg.max_workers == 0 || cfg.max_workers > ASYNC_MAX_WORKERS || cfg.workers > cfg.max_workers)
		goto fail;
	p->cfg = cfg;
	p->max_workers = cfg.max_workers;

	/* One row more than max_workers: shutdown's pseudo-worker (below)
	 * steals too when a leftover job waits. */
	rc = async_placement_compute(p->topo, p->max_workers + 1, &p->place);
	if (rc != 0)
		goto fail;
	rc = ASYNC_ENOMEM;
	/* One slot more than max_workers: the last is the shutdown runner, the
	 * pseudo-worker that runs leftover jobs on the thread that shuts down
	 * (so they can submit, spawn and sync as on a worker). */
	size_t nslots = (size_t)p->max_workers + 1;
	if (async_os_aligned_alloc((void **)&p->w, 64, sizeof *p->w * nslots) != 0) { /* portability: os_mem.h */
		p->w = NULL;
		goto fail;
	}
	memset(p->w, 0, sizeof *p->w * nslots);
	for (unsigned s = 0; s < nslots; s++) {
		p->w[s].pool = p;
		p->w[s].index = s;
		ck_epoch_register(&p->epoch, &p->w[s].rec, NULL);
	}
	for (unsigned s = 0; s < nslots; s++)
		if (async_deque_init(&p->w[s].dq, DEQUE_INITIAL, &p->w[s].rec) != 0 ||
		    async__fork_init(&p->w[s].fk, &p->work_ec.waiters) != 0)
			goto fail;
	if (async__engine_init(p) != 0)
		goto fail;
	if (cfg.workers > 0) {
		pthread_mutex_lock(&p->ctl);
		rc = add_locked(p, cfg.workers);
		pthread_mutex_unlock(&p->ctl);
		if (rc < 0 || (unsigned)rc < cfg.workers) {
			/* Fewer than asked (thread creation failed): fail loudly
			 * rather than run a smaller pool than the caller sized. */
			async_pool_destroy(p);
			return rc < 0 ? rc : ASYNC_ETHREAD;
		}
	}
	*out = p;
	return 0;
fail:
	pool_free(p);
	return rc;
}

/* With p->ctl held: slots held by workers that committed to a stop, and
 * those that exited since add_locked passed them (free for another try). */
static unsigned exiting_locked(async_pool *p)
{
	unsigned n = 0;
	for (unsigned s = 0; s < p->max_workers; s++) {
		uint32_t st = ck_pr_load_32(&p->w[s].state);
		n += st == SLOT_STOPPING || st == SLOT_EXITED;
	}
	return n;
}

int async_pool_add_workers(async_pool *p, unsigned n)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	/* A worker that committed to its stop holds its slot (deque, batch,
	 * epoch record) until it exits. When those slots are needed, wait for
	 * them, without ctl (the exiting worker's on_worker_stop may call into
	 * the pool), and only from outside the pool: a worker waiting for
	 * another's exit could wait for one that waits for it. */
	int rc = 0;
	unsigned added = 0;
	for (;;) {
		pthread_mutex_lock(&p->ctl);
		if (ck_pr_load_32(&p->shutdown)) {
			pthread_mutex_unlock(&p->ctl);
			rc = ASYNC_ESHUTDOWN;
			break;
		}
		rc = add_locked(p, n - added);
		if (rc > 0)
			added += (unsigned)rc;
		unsigned exiting = added < n && self_in(p) == NULL ? exiting_locked(p) : 0;
		pthread_mutex_unlock(&p->ctl);
		if (added == n || exiting == 0 || (rc < 0 && rc != ASYNC_ELIMIT))
			break;
		usleep(100);
	}
	return added > 0 ? (int)added : rc;
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
	/* The stops before any job the caller submits next: a worker that
	 * takes such a job sees its stop and gives the job back (worker.c,
	 * gives_back; pairs with its load fence). */
	ck_pr_fence_store();
	pthread_mutex_unlock(&p->ctl);
	if (asked > 0)
		async_ec_notify_all(&p->work_ec);
	return asked;
}

/* Runs what is left once every worker is gone, on the calling thread as the
 * pool's pseudo-worker: a leftover job may submit (to this runner's deque),
 * spawn and sync, and wait on groups, as on a worker. Oldest first, until
 * nothing is queued anywhere. */
static void run_leftovers(async_pool *p)
{
	struct worker *me = &p->w[p->max_workers];
	struct worker *saved = async__self; /* a worker of another pool, or NULL */
	async__self = me;
	unsigned backoff = 0;
	for (;;) {
		int contended = 0;
		async_job *j = async_deque_pop(&me->dq);
		if (j == NULL)
			j = async_batch_take(&me->batch); /* no other taker: no abort */
		if (j == NULL)
			j = async__take_batches(me, &contended);
		if (j == NULL)
			j = async__take_injected(me, &contended);
		if (j == NULL)
			j = async__take_leftover(p, &contended); /* priority and main-thread queues */
		if (j == NULL && contended) {
			/* A push still linking (from before the close, or a
			 * leftover job's): let it finish. */
			async_backoff(&backoff);
			continue;
		}
		for (unsigned s = 0; s < p->max_workers && j == NULL; s++) {
			/* Empty once joined (an exiting worker re-injects its deque),
			 * but cheap to make sure. */
			j = async_deque_pop(&p->w[s].dq);
		}
		/* Final: the queue is closed, so no other thread can push
		 * into it any more, and what was pushed before the close is
		 * in the chain, or half-pushed and reported as contended. */
		if (j == NULL)
			break;
		run_job(me, j);
	}
	async__self = saved;
}

int async_pool_shutdown(async_pool *p)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	if (self_in(p) != NULL)
		return ASYNC_EONWORKER; /* a worker cannot join itself */
	pthread_mutex_lock(&p->shut);
	if (p->shut_done) {
		pthread_mutex_unlock(&p->shut);
		return 0;
	}
	/* Under ctl: once the flag is set, add_workers refuses, so no thread is
	 * started or joined by anyone else and the slots' threads are ours to
	 * join. ctl is not held while joining: a job may call add_workers
	 * (refused) or stop_workers (which never blocks) meanwhile. */
	pthread_mutex_lock(&p->ctl);
	ck_pr_store_32(&p->shutdown, 1);
	/* Other threads' submissions are refused from here on; the ones that
	 * got in before are in the queue, for the workers or run_leftovers.
	 * One RMW on the queue's head decides (inject.h): no fence pairs. */
	async_inject_close(&p->inj);
	async__engine_close(p);
	pthread_mutex_unlock(&p->ctl);
	async_ec_notify_all(&p->work_ec);
	for (unsigned s = 0; s < p->max_workers; s++) {
		if (ck_pr_load_32(&p->w[s].state) != SLOT_EMPTY)
			pthread_join(p->w[s].thread, NULL);
	}
	pthread_mutex_lock(&p->ctl);
	for (unsigned s = 0; s < p->max_workers; s++)
		ck_pr_store_32(&p->w[s].state, SLOT_EMPTY);
	ck_pr_store_32(&p->active, 0);
	pthread_mutex_unlock(&p->ctl);
	async__engine_quiesce(p, &p->w[p->max_workers]); /* threads helping return first */
	run_leftovers(p);
	p->shut_done = 1;
	pthread_mutex_unlock(&p->shut);
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

