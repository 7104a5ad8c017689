/* SPDX-License-Identifier: MIT (see LICENSE) */
/* submit.c: the way into the pool: claiming a record, the injection queue
 * and the workers' batches (inject.h), submit and submit_array. From a
 * worker a job goes to its own deque; from anywhere else it goes to the
 * FIFO queue, oldest first. */
#define _GNU_SOURCE
#include "pool_impl.h"

#include <string.h>

/* ---- the injection queue and the batches (inject.h) ------------------ */

/* A worker (or shutdown's runner) re-injects jobs it holds: never refused,
 * even once the queue is closed (shutdown drains what they push). They stay
 * counted where they were (a worker's pushed): async_pool_queued sums all. */
void async__inject_push(async_pool *p, async_job *first, async_job *last)
{
	(void)async_inject_push(&p->inj, first, last, 0);
}

/* Moves the oldest jobs of the injection queue into this worker's batch
 * (when it is empty) and returns the oldest of all to run now. *contended
 * is set when the queue is not empty but this worker could not take from
 * it (another consumer, or a push half done): not a reason to sleep. */
async_job *async__take_injected(struct worker *w, int *contended)
{
	async_pool *p = w->pool;
	if (!async_inject_nonempty(&p->inj))
		return NULL;
	if (!async_inject_trylock(&p->inj)) {
		*contended = 1;
		return NULL;
	}
	/* While this worker's batch is empty, the oldest jobs go into it, each
	 * visible to the other workers at once, and the worker takes the
	 * oldest back from it: so when this worker is preempted (the wake-up
	 * below may do it), the others still take them in order. Otherwise
	 * it takes just the oldest job. */
	/* A helper (a slot past the shutdown runner's) takes one job and
	 * fills no batch: nobody takes from a helper's batch once it leaves. */
	int fill = w->index <= p->max_workers && !async_batch_nonempty(&w->batch);
	unsigned n = 0, cap = fill ? ASYNC_BATCH : 1;
	int busy = 0;
	async_job *j = NULL;
	while (n < cap) {
		j = async_inject_pop(&p->inj, &busy);
		if (j == NULL)
			break;
		n++;
		if (fill)
			async_batch_push(&w->batch, j);
	}
	async_inject_unlock(&p->inj);
	if (n == 0) {
		*contended |= busy;
		return NULL;
	}
	if (!fill)
		return j;
	if (n > 1 && ck_pr_load_32(&p->spinning) == 0)
		async_ec_hint(&p->work_ec); /* there is work to take */
	j = async_batch_take(&w->batch);
	if (j == ASYNC_BATCH_ABORT || j == NULL) {
		*contended = 1; /* taken by another worker meanwhile: look again */
		return NULL;
	}
	return j;
}

/* The oldest job held in another worker's batch: those are older than any
 * job still in the injection queue, so they go first. */
async_job *async__take_batches(struct worker *w, int *contended)
{
	async_pool *p = w->pool;
	unsigned hw = ck_pr_load_32(&p->high_water);
	for (unsigned s = 0; s < hw; s++) {
		struct async_batch *b = &p->w[s].batch;
		if (b == &w->batch || !async_batch_nonempty(b))
			continue;
		async_job *j = async_batch_take(b);
		if (j == ASYNC_BATCH_ABORT) {
			*contended = 1;
			continue;
		}
		if (j != NULL)
			return j;
	}
	return NULL;
}

/* Whether any job from outside is waiting: the queue or any batch. For the
 * re-checks on the way out of the spinning state. */
int async__injected_work_visible(async_pool *p)
{
	if (async_inject_nonempty(&p->inj) || prio_nonempty(p))
		return 1;
	unsigned hw = ck_pr_load_32(&p->high_water);
	for (unsigned s = 0; s < hw; s++)
		if (async_batch_nonempty(&p->w[s].batch))
			return 1;
	return 0;
}

/* ---- submitting -------------------------------------------------------- */

/* Takes the record for one queueing: a CAS from any state but QUEUED to
 * QUEUED, so of two threads queueing one record at once exactly one wins
 * and the other gets ASYNC_EBUSY (a check and a later store would let both
 * through and link the record into the queue twice). */
int async__claim_job(async_job *job)
{
	if (job == NULL || job->fn == NULL)
		return ASYNC_EINVAL;
	for (;;) {
		uint32_t st = ck_pr_load_32(&job->state);
		if (job_held(st))
			return ASYNC_EBUSY;
		if (ck_pr_cas_32(&job->state, st, JOB_QUEUED)) {
			/* AtomicStore: the claim is visible before the caller's
			 * writes to the record's fields. Pairs with the LoadStore
			 * fence in execute(): a runner whose RUNNING store this
			 * CAS replaced has read the old fields already. */
			ck_pr_fence_atomic_store();
			return 0;
		}
	}
}

/* The calling thread's producer slot, cached for the last pool it
 * submitted to (serial: a pool freed and another made at its address is a
 * miss, not a stale slot). */
static _Thread_local struct {
	uint64_t serial;
	uint64_t *count; /* NULL: no slot, use the pool's locked counter */
} producer_cache;
static _Thread_local uint64_t producer_token; /* 0 until first needed */
static uint64_t producer_tokens, pool_serials;

uint64_t async__pool_serial(void)
{
	return ck_pr_faa_64(&pool_serials, 1) + 1;
}

static void __attribute__((noinline)) producer_claim(async_pool *p)
{
	if (producer_token == 0)
		producer_token = ck_pr_faa_64(&producer_tokens, 1) + 1;
	producer_cache.serial = p->serial;
	producer_cache.count = NULL;
	for (unsigned i = 0; i < ASYNC_PRODUCERS; i++) {
		struct async_producer *s = &p->prod[i];
		uint64_t o = ck_pr_load_64(&s->owner);
		if (o == producer_token || (o == 0 && ck_pr_cas_64(&s->owner, 0, producer_token))) {
			producer_cache.count = &s->count;
			return;
		}
	}
}

/* Adds n (mod 2^64) to this thread's count of jobs submitted to p. */
static inline void producer_count(async_pool *p, uint64_t n)
{
	if (producer_cache.serial != p->serial)
		producer_claim(p);
	uint64_t *c = producer_cache.count;
	if (c != NULL)
		stat_add(c, n); /* this thread is the slot's only writer */
	else
		ck_pr_faa_64(&p->submitted, n);
}

static int submit_chain(async_pool *p, async_job *first, async_job *last, size_t n)
{
	struct worker *w = self_in(p);
	if (w != NULL) {
		/* A worker queues on its own deque: no shared write at all. The
		 * chain runs first..last, oldest first. */
		for (async_job *j = first;; n--) {
			async_job *next = j->next;
			if (async_deque_push(&w->dq, j) != 0) {
				stat_add(&w->pushed, n); /* the n not pushed: */
				async__inject_push(p, j, last);
				break;
			}
			stat_add(&w->pushed, 1);
			if (j == last)
				break;
			j = next;
		}
		/* One job: a hint suffices, this worker runs it itself if
		 * nobody steals it. A chain (submit_array: the Lua layer's
		 * worker flushing the game's held calls just before it starts a
		 * job that may be long) gets a fenced notify, so a sleeping
		 * worker is sure to see it rather than wait for this one. The
		 * full fence orders the deque pushes before the load of
		 * spinning; it pairs with the fences after the RMW on spinning in
		 * idle() and in async_ec_prepare, as the external path's does. */
		if (n == 1) {
			if (ck_pr_load_32(&p->spinning) == 0)
				async_ec_hint(&p->work_ec);
		} else {
			ck_pr_fence_memory();
			if (ck_pr_load_32(&p->spinning) == 0)
				async_ec_notify_one(&p->work_ec);
		}
		return 0;
	}
	/* Counted before the CAS that publishes (its release fence orders the
	 * two), so a job is never seen run before it was counted. Refused once
	 * shutdown closed the queue: then the count is taken back and nothing
	 * was pushed; otherwise shutdown's drain runs the jobs
	 * (async_inject_close). */
	producer_count(p, n);
	if (async_inject_push(&p->inj, first, last, 1) != 0) {
		producer_count(p, (uint64_t)0 - n);
		return ASYNC_ESHUTDOWN;
	}
	/* AtomicLoad: the CAS that published the job is ordered before the
	 * load of spinning. Pairs with the fences after the RMW on spinning in
	 * idle() (the stop and found-work exits, and async_ec_prepare). */
	ck_pr_fence_atomic_load();
	if (ck_pr_load_32(&p->spinning) == 0)
		async_ec_notify_one_after_rmw(&p->work_ec);
	return 0;
}

/* A chain of records already claimed and filled in (a group's
 * continuations), queued as submit_array queues one. */
int async__submit_claimed(async_pool *p, async_job *first, async_job *last, size_t n)
{
	return submit_chain(p, first, last, n);
}

/* Out of line: group_done's loop would cost the submit path registers. */
static void __attribute__((noinline)) group_give_back(async_pool *p, async_group *g)
{
	group_done(p, g);
}

/* One job, detached (g == NULL) or counted in g. */
int async__submit_one(async_pool *p, async_group *g, async_job *job)
{
	int rc = async__claim_for(job, g);
	if (rc != 0)
		return rc;
	rc = submit_chain(p, job, job, 1);
	if (rc != 0) {
		/* Refused (shutdown): the record is free again before the
		 * count is taken back, as a job's end does, waking the group's
		 * waiters if it drops to 0: one may have seen our increment and
		 * gone to sleep meanwhile. */
		ck_pr_store_32(&job->state, JOB_IDLE);
		if (g != NULL)
			group_give_back(p, g);
	}
	return rc;
}

int async_pool_submit(async_pool *p, async_job *job)
{
	return p == NULL ? ASYNC_EINVAL : async__submit_one(p, NULL, job);
}

/* Claims jobs[0..n-1] (`at` gives the i-th), links them oldest first, as
 * if submitted one by one in that order, and queues the chain. */
static int submit_many(async_pool *p, async_job *(*at)(void *, size_t), void *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = async__claim_job(at(v, i));
		if (rc != 0) {
			while (i-- > 0) /* give back the ones already claimed */
				ck_pr_store_32(&at(v, i)->state, JOB_IDLE);
			return rc;
		}
	}
	for (size_t i = 0; i < n; i++) {
		async_job *j = at(v, i);
		j->group = NULL;
		j->flags = 0;
		j->next = i + 1 < n ? at(v, i + 1) : NULL;
	}
	int rc = submit_chain(p, at(v, 0), at(v, n - 1), n);
	if (rc != 0)
		for (size_t i = 0; i < n; i++)
			ck_pr_store_32(&at(v, i)->state, JOB_IDLE);
	return rc;
}

static async_job *array_at(void *v, size_t i) { return (async_job *)v + i; }
static async_job *list_at(void *v, size_t i) { return ((async_job *const *)v)[i]; }

int async_pool_submit_array(async_pool *p, async_job *jobs, size_t n)
{
	if (p == NULL || (jobs == NULL && n > 0))
		return ASYNC_EINVAL;
	return n == 0 ? 0 : submit_many(p, array_at, jobs, n);
}

int async_pool_submit_list(async_pool *p, async_job *const *jobs, size_t n)
{
	if (p == NULL || (jobs == NULL && n > 0))
		return ASYNC_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (jobs[i] == NULL)
			return ASYNC_EINVAL;
	return n == 0 ? 0 : submit_many(p, list_at, (void *)jobs, n);
}

void async_job_init(async_job *job, async_job_fn fn, void *arg)
{
	if (job == NULL)
		return;
	memset(job, 0, sizeof *job);
	job->fn = fn;
	job->arg = arg;
}

