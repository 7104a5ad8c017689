/* SPDX-License-Identifier: MIT (see LICENSE) */
/* inject.h: how jobs from outside the pool reach the workers, oldest first.
 * Two structures: the pool's injection queue (many producers, one consumer
 * at a time) and each worker's batch (a small FIFO ring its owner fills
 * from the queue and that any worker may take from).
 *
 * The queue is Vyukov's intrusive MPSC queue: a push is one CAS on the
 * head (his exchange, made a CAS so shutdown can close the queue: see
 * async_inject_push) plus a store linking the previous node, whatever the chain's length;
 * the records' own next fields are the links, so nothing is allocated. One
 * worker at a time consumes (a try-lock, taken only when the queue looks
 * non-empty) and moves up to a batch's worth into its batch, oldest first.
 *
 * Why order holds: the queue is FIFO; a batch only ever holds jobs older
 * than any still in the queue, and every worker takes from the batches
 * (front first) before it takes from the queue. So jobs start in submission
 * order, give or take the few a worker holds between taking and starting.
 *
 * Why nothing is lost or run twice: a queue node is handed out by the one
 * consumer; a batch slot is handed out by a CAS on the batch's head, as in
 * Chase–Lev's top (a stale reader's CAS fails once head moved, so a slot
 * reused after a wrap is never taken twice). The owner refills its batch
 * only once it is empty, so slots are never overwritten while live.
 *
 * References: D. Vyukov, "Intrusive MPSC node-based queue" (1024cores.net). */
#ifndef ASYNC_INJECT_H
#define ASYNC_INJECT_H

#include <stdint.h>

#include "async/pool.h"
#include "pr.h"

#define ASYNC_BATCH 32 /* power of two */

struct async_inject {
	async_job *head __attribute__((aligned(64))); /* producers: CAS; bit 0: closed */
	async_job *tail __attribute__((aligned(64))); /* the consumer's */
	uint32_t taking;                               /* consumer try-lock */
	async_job stub;
};

struct async_batch {
	uint64_t head __attribute__((aligned(64))); /* any taker: CAS */
	uint64_t tail;                               /* owner only */
	async_job *slot[ASYNC_BATCH];
};

static inline void async_inject_init(struct async_inject *q)
{
	q->stub.next = NULL;
	q->head = &q->stub;
	q->tail = &q->stub;
	q->taking = 0;
}

/* The queue is closed (shutdown) when bit 0 of head is set: external pushes
 * are refused from then on, internal ones (a worker's re-injection, the
 * shutdown runner's, the consumer's stub) still go in. Records are at least
 * pointer-aligned, so the bit is free. */
#define ASYNC_INJECT_CLOSED ((uintptr_t)1)

static inline async_job *async_inject_node(async_job *h)
{
	return (async_job *)((uintptr_t)h & ~ASYNC_INJECT_CLOSED);
}

/* Any thread; never blocks (lock-free: a failed CAS means another push
 * went in). Appends the chain first..last, linked oldest to newest through
 * next. external: refuse (return -1, nothing pushed) once the queue is
 * closed. A CAS rather than an exchange so that the closed bit is read and
 * kept in the same step: a push either lands before the close, in the
 * chain shutdown drains, or sees the bit; there is no window between a
 * check and a push for shutdown to wait out, hence no counter. */
static inline int async_inject_push(struct async_inject *q, async_job *first, async_job *last, int external)
{
	ck_pr_store_ptr(&last->next, NULL);
	/* Release (StoreAtomic; ck models RMWs as stores): the jobs' fields,
	 * links, a group's count increment and the producer's count (submit.c)
	 * are visible before the CAS publishes them. Pairs with the load fence
	 * after the consumer's loads of next in async_inject_pop. Free on
	 * x86-64. */
	ck_pr_fence_store_atomic();
	async_job *h;
	for (;;) {
		h = ck_pr_load_ptr(&q->head);
		uintptr_t closed = (uintptr_t)h & ASYNC_INJECT_CLOSED;
		if (closed && external)
			return -1;
		if (external)
			TEST_POINT("inject: head read, not yet swapped");
		/* Coherence on head alone decides refuse-or-drain: this CAS
		 * fails if the close came in between. No fence needed. */
		if (ck_pr_cas_ptr(&q->head, h, (void *)((uintptr_t)last | closed)))
			break;
	}
	if (external)
		TEST_POINT("inject: swapped, not yet linked");
	/* Between the CAS and this store the consumer sees the queue
	 * non-empty but cannot pass h: it reports contention, not empty. */
	ck_pr_store_ptr(&async_inject_node(h)->next, first);
	return 0;
}

/* Shutdown, once: from now on external pushes are refused. Every external
 * push that succeeded is in the chain (linked or about to be), so the
 * consumer's empty look (no node, none half-pushed) is final for them. */
static inline void async_inject_close(struct async_inject *q)
{
	for (;;) {
		async_job *h = ck_pr_load_ptr(&q->head);
		if (ck_pr_cas_ptr(&q->head, h, (void *)((uintptr_t)h | ASYNC_INJECT_CLOSED)))
			return;
	}
}

/* Any thread; a hint, exact at rest. The CAS in push makes a job visible
 * here at once (head moves off the stub), before it is linked. */
static inline int async_inject_nonempty(struct async_inject *q)
{
	return async_inject_node(ck_pr_load_ptr(&q->head)) != &q->stub ||
	       ck_pr_load_ptr(&q->tail) != &q->stub;
}

static inline int async_inject_trylock(struct async_inject *q)
{
	return ck_pr_load_32(&q->taking) == 0 && ck_pr_cas_32(&q->taking, 0, 1);
}

static inline void async_inject_unlock(struct async_inject *q)
{
	/* Release: our updates of tail are visible to the next consumer, which
	 * acquires with the CAS in trylock and the fence in pop. */
	ck_pr_fence_release();
	ck_pr_store_32(&q->taking, 0);
}

/* The consumer (holder of the try-lock) only. The oldest job, or NULL: then
 * *busy says whether a producer is half-way through a push (not empty). */
static inline async_job *async_inject_pop(struct async_inject *q, int *busy)
{
	/* Acquire: the previous consumer's tail, seen through the lock. */
	ck_pr_fence_acquire();
	async_job *tail = ck_pr_load_ptr(&q->tail);
	async_job *next = ck_pr_load_ptr(&tail->next);
	if (tail == &q->stub) {
		if (next == NULL) {
			*busy = async_inject_node(ck_pr_load_ptr(&q->head)) != &q->stub;
			return NULL;
		}
		ck_pr_store_ptr(&q->tail, next);
		tail = next;
		next = ck_pr_load_ptr(&next->next);
	}
	if (next != NULL) {
		/* Acquire: the job's fields are read after its link. Pairs with
		 * the fence before the CAS in push. */
		ck_pr_fence_load();
		ck_pr_store_ptr(&q->tail, next);
		return tail;
	}
	if (tail != async_inject_node(ck_pr_load_ptr(&q->head))) {
		*busy = 1; /* a producer swapped head but has not linked yet */
		return NULL;
	}
	/* tail is the last node: put the stub behind it so tail can move on. */
	(void)async_inject_push(q, &q->stub, &q->stub, 0);
	next = ck_pr_load_ptr(&tail->next);
	if (next != NULL) {
		ck_pr_fence_load();
		ck_pr_store_ptr(&q->tail, next);
		return tail;
	}
	*busy = 1;
	return NULL;
}

/* Any thread; never blocks. The oldest job in the batch, NULL when empty, or
 * ASYNC_BATCH_ABORT when another taker won the race for it. */
#define ASYNC_BATCH_ABORT ((async_job *)(uintptr_t)1)
static inline async_job *async_batch_take(struct async_batch *b)
{
	uint64_t h = ck_pr_load_64(&b->head);
	/* Load/load: head before tail, so [h, t) was live when tail was read. */
	ck_pr_fence_load();
	uint64_t t = ck_pr_load_64(&b->tail);
	if ((int64_t)(t - h) <= 0)
		return NULL;
	/* Acquire: the slot is read after the tail that published it (pairs
	 * with the release fence in async_batch_fill). */
	ck_pr_fence_load();
	async_job *j = ck_pr_load_ptr(&b->slot[h & (ASYNC_BATCH - 1)]);
	/* LoadAtomic: the slot is read before the CAS that frees it for the
	 * owner's next fill (which waits to see head == tail). */
	ck_pr_fence_load_atomic();
	if (!ck_pr_cas_64(&b->head, h, h + 1))
		return ASYNC_BATCH_ABORT;
	return j;
}

/* Any thread; a racy estimate. */
static inline int async_batch_nonempty(struct async_batch *b)
{
	return (int64_t)(ck_pr_load_64(&b->tail) - ck_pr_load_64(&b->head)) > 0;
}

/* Owner only; the batch must have had room for the job since the owner
 * last saw it empty (at most ASYNC_BATCH pushes since). Publishes one job
 * at once, so a worker preempted while it fills holds back none of them. */
static inline void async_batch_push(struct async_batch *b, async_job *j)
{
	uint64_t t = ck_pr_load_64(&b->tail);
	ck_pr_store_ptr(&b->slot[t & (ASYNC_BATCH - 1)], j);
	/* Release: the slot is visible before the new tail. Pairs with the
	 * load fence before the slot load in async_batch_take. */
	ck_pr_fence_store();
	ck_pr_store_64(&b->tail, t + 1);
}

#endif
