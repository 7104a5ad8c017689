/* SPDX-License-Identifier: MIT (see LICENSE) */
/* stats.c: introspection: worker counts and indices, per-worker counters
 * and the queued estimate. Every read here is racy by design (atomic loads
 * of counters their owners update), cheap enough to call every frame. */
#define _GNU_SOURCE
#include "pool_impl.h"

int async_pool_worker_count(const async_pool *p)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	return (int)ck_pr_load_32((uint32_t *)&p->active);
}

int async_pool_worker_index(const async_pool *p)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	struct worker *w = self_in(p);
	/* The shutdown runner is not a worker: it has no slot of its own. */
	return w != NULL && w->index < p->max_workers ? (int)w->index : ASYNC_ENOTWORKER;
}

int async_pool_limits(const async_pool *p, async_limits *out)
{
	if (p == NULL || out == NULL)
		return ASYNC_EINVAL;
	out->max_workers = p->max_workers;
	out->spawn_depth = ASYNC_FRAMES;
	return 0;
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
	/* Submitted (external slots, the shared counter, the workers' own
	 * pushes) minus started. A producer counts before it publishes, so at
	 * rest this is exact; while jobs flow the terms are read at different
	 * moments. */
	int64_t n = (int64_t)ck_pr_load_64((uint64_t *)&p->submitted);
	for (unsigned i = 0; i < ASYNC_PRODUCERS; i++)
		n += (int64_t)ck_pr_load_64((uint64_t *)&p->prod[i].count);
	unsigned hw = ck_pr_load_32((uint32_t *)&p->high_water);
	for (unsigned s = 0; s <= hw; s++) {
		/* s == hw: the shutdown runner's counters, then the rest. */
		const struct worker *w = &p->w[s < hw ? s : p->max_workers];
		n += (int64_t)ck_pr_load_64(&w->pushed);
		n -= (int64_t)ck_pr_load_64(&w->jobs);
	}
	for (unsigned k = 0; k < ASYNC_HELPERS; k++) {
		/* Threads that helped: what their jobs queued, what they ran. */
		n += (int64_t)ck_pr_load_64(&p->helper[k].pushed);
		n -= (int64_t)ck_pr_load_64(&p->helper[k].jobs);
	}
	return n < 0 ? 0 : n;
}
