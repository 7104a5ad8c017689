/* SPDX-License-Identifier: MIT (see LICENSE) */
/* engine.c: async/engine.h: helping threads, continuations, pinned jobs,
 * the priority levels and cancellation. They reuse the pool's pieces:
 * every extra queue is an injection queue (inject.h), a helping thread
 * borrows a slot that looks like a worker's (so the jobs it runs may spawn,
 * submit and wait), and every job still starts in run_job, whose CAS
 * decides cancel against start. */
#define _GNU_SOURCE
#include "pool_impl.h"
#include "async/engine.h"
#include "os_mem.h" /* portability: aligned allocation */

#include <limits.h>
#include <string.h>
#include <unistd.h>

/* ---- the pool's extra state ------------------------------------------- */

static async_job *take_queue(struct async_inject *q, int *contended);

int async__engine_init(async_pool *p)
{
	async_inject_init(&p->prio[0]);
	async_inject_init(&p->prio[1]);
	async_inject_init(&p->mainq);
	/* An inbox is open only while a thread runs its slot (start_worker
	 * opens it, the worker's exit closes it). */
	for (unsigned s = 0; s <= p->max_workers; s++) {
		async_inject_init(&p->w[s].inbox);
		async_inject_close(&p->w[s].inbox);
	}
	if (async_os_aligned_alloc((void **)&p->helper, 64, sizeof *p->helper * ASYNC_HELPERS) != 0) {
		p->helper = NULL;
		return ASYNC_ENOMEM;
	}
	memset(p->helper, 0, sizeof *p->helper * ASYNC_HELPERS);
	for (unsigned k = 0; k < ASYNC_HELPERS; k++) {
		struct worker *h = &p->helper[k];
		h->pool = p;
		h->index = p->max_workers + 1 + k;
		async_inject_init(&h->inbox);
		async_inject_close(&h->inbox);
		ck_epoch_register(&p->epoch, &h->rec, NULL);
	}
	for (unsigned k = 0; k < ASYNC_HELPERS; k++)
		if (async_deque_init(&p->helper[k].dq, DEQUE_INITIAL, &p->helper[k].rec) != 0 ||
		    async__fork_init(&p->helper[k].fk, &p->work_ec.waiters) != 0)
			return ASYNC_ENOMEM;
	return 0;
}

void async__engine_free(async_pool *p)
{
	if (p->helper == NULL)
		return;
	for (unsigned k = 0; k < ASYNC_HELPERS; k++) {
		ck_epoch_reclaim(&p->helper[k].rec);
		async_deque_destroy(&p->helper[k].dq);
		async__fork_free(&p->helper[k].fk);
	}
	async_os_aligned_free(p->helper); /* portability: os_mem.h */
	p->helper = NULL;
}

/* Shutdown: from now on other threads' submissions to these queues are
 * refused; what got in before runs (workers, then run_leftovers). */
void async__engine_close(async_pool *p)
{
	async_inject_close(&p->prio[0]);
	async_inject_close(&p->prio[1]);
	async_inject_close(&p->mainq);
}

/* Shutdown, once the workers are joined: a helping thread may still run
 * jobs, and re-injects what its jobs queued when it leaves; run_leftovers
 * must come after that. A helper may be waiting for a main-thread job,
 * which it cannot take (it has no ASYNC_HELP_MAIN, or waits on a group):
 * that queue is run here meanwhile, as me (the pool's pseudo-worker), or
 * the helper and this thread would wait for each other. */
void async__engine_quiesce(async_pool *p, struct worker *me)
{
	struct worker *saved = async__self; /* a worker of another pool, or NULL */
	async__self = me;
	unsigned backoff = 0;
	while (ck_pr_load_32(&p->helping) != 0) {
		int contended = 0;
		async_job *j = take_queue(&p->mainq, &contended);
		if (j != NULL) {
			run_job(me, j);
			backoff = 0;
		} else if (contended) {
			async_backoff(&backoff);
		} else {
			usleep(100);
		}
	}
	async__self = saved;
}

/* The one consumer of a queue at a time takes its oldest job. */
static async_job *take_queue(struct async_inject *q, int *contended)
{
	if (!async_inject_nonempty(q))
		return NULL;
	if (!async_inject_trylock(q)) {
		*contended = 1;
		return NULL;
	}
	int busy = 0;
	async_job *j = async_inject_pop(q, &busy);
	async_inject_unlock(q);
	if (j == NULL)
		*contended |= busy;
	return j;
}

/* take_queue on a queue counted in p->extra. */
static async_job *take_extra(async_pool *p, struct async_inject *q, int *contended)
{
	async_job *j = take_queue(q, contended);
	if (j != NULL)
		ck_pr_faa_32(&p->extra, (uint32_t)-1);
	return j;
}

async_job *async__take_leftover(async_pool *p, int *contended)
{
	async_job *j = take_extra(p, &p->prio[0], contended);
	if (j == NULL)
		j = take_extra(p, &p->prio[1], contended);
	if (j == NULL)
		j = take_queue(&p->mainq, contended);
	return j;
}

/* ---- priorities ---------------------------------------------------------- */

/* While a priority queue has work. The rule (engine.h): of every 8
 * jobs a worker takes here, the first looks at LOW first, the fifth at
 * NORMAL first, the others at HIGH first; each falls through to the other
 * levels. Counted per worker and per job taken, so the bound holds by
 * counting, whatever the timing. */
static async_job *find_prio(struct worker *w, int *contended)
{
	async_pool *p = w->pool;
	unsigned t = w->picks & 7u;
	async_job *j;
	if (t == 0) {
		if ((j = take_extra(p, &p->prio[1], contended)) == NULL &&
		    (j = async__find_normal(w, contended)) == NULL)
			j = take_extra(p, &p->prio[0], contended);
	} else if (t == 4) {
		if ((j = async__find_normal(w, contended)) == NULL &&
		    (j = take_extra(p, &p->prio[0], contended)) == NULL)
			j = take_extra(p, &p->prio[1], contended);
	} else {
		if ((j = take_extra(p, &p->prio[0], contended)) == NULL &&
		    (j = async__find_normal(w, contended)) == NULL)
			j = take_extra(p, &p->prio[1], contended);
	}
	if (j != NULL)
		w->picks++;
	return j;
}

/* async__find_work while p->extra says a job is pinned somewhere or
 * queued at another level: this worker's pinned jobs first (only it can
 * run them; its inbox needs no lock, it is the one consumer), then the
 * levels by the rule above. */
async_job *async__find_extra(struct worker *w, int *contended)
{
	async_pool *p = w->pool;
	if (async_inject_nonempty(&w->inbox)) {
		int busy = 0;
		async_job *j = async_inject_pop(&w->inbox, &busy);
		*contended |= busy;
		if (j != NULL) {
			ck_pr_faa_32(&p->extra, (uint32_t)-1);
			return j;
		}
	}
	return prio_nonempty(p) ? find_prio(w, contended) : async__find_normal(w, contended);
}

/* ---- submitting to the extra queues ---------------------------------------- */

/* Claims job, counts it (in g, and for async_pool_queued) and pushes it on
 * q; external: refused once q is closed. */
static int submit_queue(async_pool *p, async_group *g, async_job *job, struct async_inject *q, int external)
{
	int rc = g != NULL ? async__group_bind(p, g) : 0;
	if (rc != 0)
		return rc;
	rc = async__claim_for(job, g);
	if (rc != 0)
		return rc;
	struct worker *w = self_in(p);
	if (w != NULL)
		stat_add(&w->pushed, 1);
	else
		ck_pr_faa_64(&p->submitted, 1);
	int extra = q != &p->mainq; /* the workers' queues: see p->extra */
	if (extra) {
		ck_pr_faa_32(&p->extra, 1);
		/* The count before the push that publishes the job: a worker
		 * that sees the job in its queue sees the count too. */
		ck_pr_fence_atomic();
	}
	if (async_inject_push(q, job, job, external) == 0)
		return 0;
	/* Refused: the record is free again before the counts are taken
	 * back, as in async__submit_one. */
	if (extra)
		ck_pr_faa_32(&p->extra, (uint32_t)-1);
	if (w != NULL)
		stat_add(&w->pushed, (uint64_t)-1);
	else
		ck_pr_faa_64(&p->submitted, (uint64_t)-1);
	ck_pr_store_32(&job->state, JOB_IDLE);
	if (g != NULL)
		group_done(p, g);
	return ASYNC_ESHUTDOWN;
}

int async_pool_submit_prio(async_pool *p, async_group *g, async_job *job, int prio)
{
	if (p == NULL || prio < 0 || prio >= ASYNC_PRIO_LEVELS)
		return ASYNC_EINVAL;
	if (prio == ASYNC_PRIO_NORMAL)
		return g != NULL ? async_group_submit(p, g, job) : async_pool_submit(p, job);
	/* The pool's own threads push even after the close: the workers and
	 * run_leftovers still drain these queues then. */
	int rc = submit_queue(p, g, job, &p->prio[prio == ASYNC_PRIO_HIGH ? 0 : 1], self_in(p) == NULL);
	if (rc != 0)
		return rc;
	/* As submit_chain's external path: the CAS that published is ordered
	 * before the load of spinning (the Dekker pair of pool.c's header). */
	ck_pr_fence_atomic_load();
	if (ck_pr_load_32(&p->spinning) == 0)
		async_ec_notify_one_after_rmw(&p->work_ec);
	return 0;
}

int async_pool_submit_to(async_pool *p, unsigned worker, async_group *g, async_job *job)
{
	if (p == NULL || worker >= p->max_workers)
		return ASYNC_EINVAL;
	/* Always refused by a closed inbox: nobody would run the job. */
	int rc = submit_queue(p, g, job, &p->w[worker].inbox, 1);
	if (rc == ASYNC_ESHUTDOWN && !ck_pr_load_32(&p->shutdown))
		rc = ASYNC_EINVAL; /* no worker runs that slot */
	if (rc != 0)
		return rc;
	/* Only that worker can take it: wake every sleeper (notify_all's full
	 * fence pairs with the one in async_ec_prepare before a sleeper's
	 * last look, which reads its inbox). */
	async_ec_notify_all(&p->work_ec);
	return 0;
}

int async_pool_submit_main(async_pool *p, async_group *g, async_job *job)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	int rc = submit_queue(p, g, job, &p->mainq, self_in(p) == NULL);
	if (rc != 0)
		return rc;
	/* A thread helping with ASYNC_HELP_MAIN sleeps on done_ec. */
	ck_pr_fence_atomic_load();
	if (ck_pr_load_32(&p->helping) != 0)
		async_ec_notify_all(&p->done_ec);
	return 0;
}

/* ---- inboxes ---------------------------------------------------------------- */

/* With ctl held, before the slot's thread starts. */
void async__inbox_open(struct worker *w)
{
	for (;;) {
		async_job *h = ck_pr_load_ptr(&w->inbox.head);
		if (ck_pr_cas_ptr(&w->inbox.head, h, async_inject_node(h)))
			return;
	}
}

/* The worker, exiting: closes its inbox (refusing later pushes) and hands
 * what was pinned to it to the others through the injection queue. */
void async__inbox_leave(struct worker *w)
{
	unsigned backoff = 0;
	async_inject_close(&w->inbox);
	for (;;) {
		int busy = 0;
		async_job *j = async_inject_pop(&w->inbox, &busy);
		if (j != NULL) {
			ck_pr_faa_32(&w->pool->extra, (uint32_t)-1);
			async__inject_push(w->pool, j, j); /* still counted where it was */
		}
		else if (busy)
			async_backoff(&backoff); /* a push that got in before the close */
		else
			return;
	}
}

/* ---- helping threads ------------------------------------------------------------ */

static struct worker *slot_take(async_pool *p)
{
	for (;;) {
		uint32_t m = ck_pr_load_32(&p->helping);
		unsigned k = 0;
		while (k < ASYNC_HELPERS && (m & (1u << k)))
			k++;
		if (k == ASYNC_HELPERS)
			return NULL;
		if (ck_pr_cas_32(&p->helping, m, m | (1u << k))) {
			/* Acquire: the slot's last user's writes (its deque,
			 * frames, counters) are visible; pairs with slot_give. */
			ck_pr_fence_acquire();
			return &p->helper[k];
		}
	}
}

static void slot_give(struct worker *h)
{
	async_pool *p = h->pool;
	uint32_t bit = 1u << (h->index - p->max_workers - 1);
	/* Jobs the jobs it ran queued here, that nobody stole, go to the
	 * others, as a stopping worker's do. */
	async_job *j;
	int left = 0;
	while ((j = async_deque_pop(&h->dq)) != NULL) {
		async__inject_push(p, j, j);
		left = 1;
	}
	ck_pr_fence_release();
	uint32_t m;
	for (;;) {
		m = ck_pr_load_32(&p->helping);
		if (ck_pr_cas_32(&p->helping, m, m & ~bit))
			break;
	}
	/* Leaving for good: the consumer rule of eventcount.h, as a stopping
	 * worker's exit. */
	async_ec_leave(&p->work_ec);
	int visible = async__injected_work_visible(p);
	if (visible)
		async_ec_notify_all(&p->work_ec);
	/* Another helper may sleep on done_ec waiting for a group that needs
	 * what this one left, or what was submitted while this one ran (with
	 * no worker running, nobody else would take it): new work does not
	 * wake it otherwise. */
	if ((left || visible) && (m & ~bit) != 0)
		async_ec_notify_all(&p->done_ec);
}

static async_job *help_find(struct worker *h, unsigned flags, int *contended)
{
	async_job *j = NULL;
	if (flags & ASYNC_HELP_MAIN)
		j = take_queue(&h->pool->mainq, contended);
	return j != NULL ? j : async__find_work(h, contended);
}

static int group_finished(async_group *g)
{
	return ck_pr_load_64(&g->pending) == 0;
}

/* The helping loop on slot h: run what there is; with a group, sleep on
 * done_ec (every group's last job notifies it) when there is nothing to
 * run. New work does not wake a helper: the workers run it. */
static int help_on(struct worker *h, async_group *until, unsigned flags)
{
	async_pool *p = h->pool;
	unsigned backoff = 0;
	int ran = 0;
	for (;;) {
		if (until != NULL && group_finished(until))
			break;
		int contended = 0;
		async_job *j = help_find(h, flags, &contended);
		if (j == NULL && !contended && until != NULL) {
			uint32_t key = async_ec_prepare(&p->done_ec);
			/* The last look, after the announcement (eventcount.h). */
			if (group_finished(until) || (j = help_find(h, flags, &contended)) != NULL || contended) {
				async_ec_cancel(&p->done_ec);
			} else {
				async_ec_wait(&p->done_ec, key);
				continue;
			}
		}
		if (j != NULL) {
			async__run_found(h, j);
			ran += ran < INT_MAX;
			backoff = 0;
		} else if (contended) {
			async_backoff(&backoff); /* a push half done, or another taker */
		} else if (until == NULL) {
			break;
		}
	}
	/* Acquire: pairs with the release in group_done. */
	ck_pr_fence_acquire();
	return ran;
}

int async__help(async_pool *p, async_group *until, unsigned flags)
{
	struct worker *h = slot_take(p);
	if (h == NULL)
		return ASYNC_ELIMIT;
	struct worker *saved = async__self; /* a worker of another pool, or NULL */
	async__self = h;
	int ran = help_on(h, until, flags);
	async__self = saved;
	slot_give(h);
	return ran;
}

int async_pool_help(async_pool *p, async_group *until, unsigned flags)
{
	if (p == NULL || (flags & ~ASYNC_HELP_MAIN) != 0)
		return ASYNC_EINVAL;
	if (until != NULL) {
		async_pool *owner = ck_pr_load_ptr(&until->pool);
		if (owner != NULL && owner != p)
			return ASYNC_EINVAL;
	}
	struct worker *w = self_in(p);
	if (w == NULL)
		return async__help(p, until, flags);
	/* A worker waits as async_group_wait does on it (it never sleeps
	 * while its own frames may be needed). */
	if (until != NULL)
		return async_group_wait(p, until);
	return help_on(w, NULL, flags);
}

int async_pool_run_main(async_pool *p, unsigned max)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	struct worker *w = self_in(p), *h = NULL, *saved = async__self;
	if (w == NULL) {
		if ((h = slot_take(p)) == NULL)
			return ASYNC_ELIMIT;
		async__self = w = h;
	}
	unsigned ran = 0, backoff = 0;
	while ((max == 0 || ran < max) && ran < INT_MAX) {
		int contended = 0;
		async_job *j = take_queue(&p->mainq, &contended);
		if (j != NULL) {
			run_job(w, j);
			ran++;
		} else if (contended) {
			async_backoff(&backoff);
		} else {
			break;
		}
	}
	if (h != NULL) {
		async__self = saved;
		slot_give(h);
	}
	return (int)ran;
}

/* ---- group queries and continuations -------------------------------------------- */

int async_group_done(const async_group *g)
{
	if (g == NULL)
		return ASYNC_EINVAL;
	if (ck_pr_load_64((uint64_t *)&g->pending) != 0)
		return 0;
	/* Acquire: pairs with the release in group_done. */
	ck_pr_fence_acquire();
	return 1;
}

/* group_done, holding g's last count with the continuation bit just
 * cleared: takes what was registered and appends it, oldest first, to
 * *first..*last. Registrations that race with this set the bit again, so
 * their jobs are taken by a later call (group_done loops while the bit
 * comes back). */
static void group_take(async_group *g, async_job **first, async_job **last)
{
	async_job *list = ck_pr_fas_ptr(&g->then, NULL);
	/* Acquire: the registrars' links and fields, and the group's jobs'
	 * effects (released before each count drop), are visible here and so
	 * to the continuations, which the push in group_fire releases
	 * in turn. */
	ck_pr_fence_acquire();
	if (list == NULL)
		return;
	async_job *head = NULL, *tail = list;
	while (list != NULL) {
		async_job *next = list->next;
		list->next = head;
		head = list;
		list = next;
	}
	if (*first == NULL)
		*first = head;
	else
		(*last)->next = head;
	*last = tail;
}

/* group_done, once g's count is dropped (g is not touched here): queues
 * its continuations first..last. */
static void group_fire(async_pool *p, async_job *first, async_job *last)
{
	size_t n = 0;
	for (async_job *j = first; j != NULL; j = j->next)
		n++;
	struct worker *w = self_in(p);
	if (w != NULL) {
		/* On the pool's threads they go to the injection queue, not the
		 * own deque, so they start oldest first wherever they run;
		 * never refused (the workers, then run_leftovers, drain it).
		 * Wake as a chain from a worker is woken (submit_chain). */
		stat_add(&w->pushed, n);
		async__inject_push(p, first, last);
		ck_pr_fence_memory();
		if (ck_pr_load_32(&p->spinning) == 0)
			async_ec_notify_one(&p->work_ec);
		return;
	}
	if (async__submit_claimed(p, first, last, n) == 0)
		return;
	/* Refused: this thread is not the pool's and shutdown closed the
	 * queue. Nothing would run them: free each, drop its count. */
	for (async_job *j = first; j != NULL;) {
		async_job *next = j->next;
		async_group *into = j->group;
		ck_pr_store_32(&j->state, JOB_IDLE);
		if (into != NULL)
			group_done(p, into);
		j = next;
	}
}

/* group_done on g's last count with continuations registered: clear the
 * bit keeping the count, take them, drop the count, then queue them. */
void async__group_last(async_pool *p, async_group *g)
{
	async_job *first = NULL, *last = NULL;
	uint64_t old = GROUP_THEN | 1;
	for (;;) {
		if (old == (GROUP_THEN | 1)) {
			if (ck_pr_cas_64(&g->pending, old, 1))
				group_take(g, &first, &last);
		} else if (ck_pr_cas_64(&g->pending, old, old - 1)) {
			break;
		}
		old = ck_pr_load_64(&g->pending);
	}
	if (old == 1)
		async_ec_notify_all(&p->done_ec);
	if (first != NULL)
		group_fire(p, first, last);
}

int async_group_then(async_pool *p, async_group *g, async_job *job, async_group *into)
{
	if (p == NULL || g == NULL || into == g)
		return ASYNC_EINVAL;
	int rc = async__group_bind(p, g);
	if (rc == 0 && into != NULL)
		rc = async__group_bind(p, into);
	if (rc != 0)
		return rc;
	if (ck_pr_load_32(&p->shutdown))
		return ASYNC_ESHUTDOWN;
	rc = async__claim_job(job);
	if (rc != 0)
		return rc;
	job->group = into;
	job->flags = 0;
	if (into != NULL)
		ck_pr_faa_64(&into->pending, 1);
	/* A count of our own: g cannot finish while the job is linked and the
	 * bit set; dropping it (group_done) fires if g had finished. */
	ck_pr_faa_64(&g->pending, 1);
	for (;;) {
		async_job *h = ck_pr_load_ptr(&g->then);
		job->next = h;
		/* Release: the link and fields before the push; pairs with the
		 * acquire after the exchange in group_take. */
		ck_pr_fence_store_atomic();
		if (ck_pr_cas_ptr(&g->then, h, job))
			break;
	}
	for (;;) {
		uint64_t v = ck_pr_load_64(&g->pending);
		if (ck_pr_cas_64(&g->pending, v, v | GROUP_THEN))
			break;
	}
	group_done(p, g);
	return 0;
}

/* ---- cancellation ------------------------------------------------------------------- */

int async_job_cancel(async_pool *p, async_job *job)
{
	if (p == NULL || job == NULL)
		return ASYNC_EINVAL;
	for (;;) {
		uint32_t st = ck_pr_load_32(&job->state);
		if (st == JOB_CANCELLED)
			return 0;
		if (st == JOB_RUNNING || st == JOB_DONE)
			return ASYNC_EBUSY;
		if (st != JOB_QUEUED)
			return ASYNC_EINVAL;
		/* Against run_job's CAS QUEUED -> RUNNING: one wins. */
		if (ck_pr_cas_32(&job->state, JOB_QUEUED, JOB_CANCELLED))
			return 0;
	}
}
