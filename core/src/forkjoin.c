/* SPDX-License-Identifier: MIT (see LICENSE) */
/* forkjoin.c: waiting for work inside the pool: groups, the record-based
 * spawn/sync (wrappers over the split deque of fork.c) and parallel-for
 * (recursive halving with spawn/sync). A worker that waits runs other work
 * meanwhile. */
#define _GNU_SOURCE
#include "pool_impl.h"

#include <sched.h>

/* ---- groups, fork-join, parallel-for ----------------------------------- */

int async_group_init(async_group *g)
{
	if (g == NULL)
		return ASYNC_EINVAL;
	g->pending = 0;
	g->pool = NULL;
	g->then = NULL;
	return 0;
}

/* A group belongs to the first pool it is submitted to: group_done wakes
 * that pool's waiters (done_ec), so a wait through another pool would
 * sleep through the last job's notify. The CAS settles two first
 * submitters racing with different pools. */
int async__group_bind(async_pool *p, async_group *g)
{
	async_pool *owner = ck_pr_load_ptr(&g->pool);
	if (owner == NULL && ck_pr_cas_ptr(&g->pool, NULL, p))
		return 0;
	return ck_pr_load_ptr(&g->pool) == p ? 0 : ASYNC_EINVAL;
}

int async_group_submit(async_pool *p, async_group *g, async_job *job)
{
	if (p == NULL || g == NULL)
		return ASYNC_EINVAL;
	int rc = async__group_bind(p, g);
	return rc != 0 ? rc : async__submit_one(p, g, job);
}

/* A worker waiting for something runs other work meanwhile. Its private
 * frames are shared first: what it waits for may need them, and it will
 * not move its split while it waits. */
static void help_until_zero(struct worker *w, uint64_t *counter, uint32_t *state)
{
	unsigned spins = 0;
	async__fork_share_all(&w->fk);
	for (;;) {
		if (counter != NULL ? ck_pr_load_64(counter) == 0
		                    : ck_pr_load_32(state) == JOB_DONE)
			break;
		int contended = 0;
		async_job *j = async__find_work(w, &contended);
		if (j != NULL) {
			async__run_found(w, j);
			/* The job's own fork-join may have taken some of the
			 * frames shared above back as private (a sync below a
			 * split it grew halves the whole shared part): share
			 * them again, since this waiter will not run them. */
			async__fork_share_all(&w->fk);
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

static int group_wait(async_pool *p, async_group *g, int help)
{
	if (p == NULL || g == NULL)
		return ASYNC_EINVAL;
	async_pool *owner = ck_pr_load_ptr(&g->pool);
	if (owner != NULL && owner != p)
		return ASYNC_EINVAL; /* its jobs wake another pool's waiters */
	struct worker *w = self_in(p);
	if (w != NULL) {
		for (struct running_job *r = w->running; r != NULL; r = r->up)
			if (r->group == g)
				return ASYNC_EDEADLK; /* its own count keeps it pending */
		help_until_zero(w, &g->pending, NULL);
		return 0;
	}
	/* Elsewhere it runs the pool's jobs meanwhile, in a helper slot;
	 * with every slot taken it sleeps. */
	if (help && async__help(p, g, 0) >= 0)
		return 0;
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

int async_group_wait(async_pool *p, async_group *g)
{
	return group_wait(p, g, 1);
}

int async_group_wait_asleep(async_pool *p, async_group *g)
{
	return group_wait(p, g, 0);
}

/* A spawned record's frame function: runs it as a job on whichever worker
 * (owner or thief) took the frame. */
void async__spawned_job(async_worker *w, void *arg)
{
	run_job(worker_of(w), arg);
}

int async_job_spawn(async_job *job)
{
	struct worker *w = async__self;
	if (w == NULL)
		return ASYNC_ENOTWORKER;
	if (job == NULL || job->fn == NULL)
		return ASYNC_EINVAL;
	/* A plain check, not submit's CAS: only the spawning worker may touch
	 * a record it spawns until it is synced, so no other thread races for
	 * it, and the fork-join path keeps its cost (no locked instruction). */
	if (job_held(ck_pr_load_32(&job->state)))
		return ASYNC_EBUSY;
	job->group = NULL;
	job->flags = JOB_JOINABLE;
	ck_pr_store_32(&job->state, JOB_QUEUED);
	int rc = async_spawn(&w->fk, async__spawned_job, job);
	if (rc != 0) {
		/* Not queued: not joinable either, so a sync on it returns
		 * ASYNC_EINVAL instead of waiting for a run that never comes. */
		job->flags = 0;
		ck_pr_store_32(&job->state, JOB_IDLE);
		return rc;
	}
	stat_add(&w->pushed, 1);
	/* A record is a job, not a fine-grained task: offer it to thieves at
	 * once. A Lace owner shares private frames only at its own spawns and
	 * syncs, and the job it runs next (often the sibling it just spawned)
	 * can run for milliseconds without making one, while an idle worker
	 * that asked for work (movesplit) has gone to sleep. Seen: Lua's
	 * awaitAll ran its parts one after the other on two workers.
	 * share_all wakes a sleeper after publishing (F4 in fork.c: its full
	 * fence orders the CAS on ts before the load of the waiter count);
	 * with nobody asleep it is that fence and a load. If the spawn itself
	 * shared the frame (spawn_slow), it woke one already. The inline
	 * async_spawn keeps the private fast path. */
	async__fork_share_all(&w->fk);
	return 0;
}

int async_job_sync(async_job *job)
{
	struct worker *w = async__self;
	if (w == NULL)
		return ASYNC_ENOTWORKER;
	if (job == NULL || !(job->flags & JOB_JOINABLE))
		return ASYNC_EINVAL;
	async_worker *fk = &w->fk;
	/* Find job's frame (in fork-join order, the top one) and sync frames
	 * from the top down to it; frames above it are work that had to run
	 * anyway. Never below the floor: those belong to the job that is
	 * running this one. The frame is popped even when a thief already
	 * marked the record done: its slot is only free once synced. */
	async_frame *f = fk->head;
	while (f > fk->floor && !(f[-1].fn == async__spawned_job && f[-1].arg == job))
		f--;
	if (f > fk->floor) {
		while (fk->head >= f)
			async_sync(fk);
		return 0; /* ran here, or leapfrog acquired the thief's DONE */
	}
	/* Done already (acquire below), or not among this worker's frames
	 * (the spawner is another worker: misuse, but wait rather than lie). */
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
		size_t len = end - begin;
		/* Rounded up without len + parts - 1, which wraps to a grain of
		 * 0 (endless halving) for a range within parts of SIZE_MAX. */
		grain = len / parts + (len % parts != 0);
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

