/* SPDX-License-Identifier: MIT (see LICENSE) */
/* deque.h: the per-worker Chase–Lev work-stealing deque (single owner,
 * many thieves): the owner pushes and pops at the bottom, thieves take from
 * the top. Correctness argument and references: deque.c. */
#ifndef ASYNC_DEQUE_H
#define ASYNC_DEQUE_H

#include <stdint.h>
#include "pr.h"

/* Returned by async_deque_steal when it lost a race for the top item: the
 * deque was not empty, so a thief should not conclude there is no work. */
#define ASYNC_DEQUE_ABORT ((void *)(uintptr_t)1)

struct async_deque_array;

struct async_deque {
	/* top is written by thieves (CAS) and bottom by the owner only; they
	 * sit on separate cache lines so a steal does not evict the owner's
	 * bottom. */
	uint64_t top __attribute__((aligned(64)));
	uint64_t bottom __attribute__((aligned(64)));
	struct async_deque_array *array;
	ck_epoch_record_t *owner_record; /* where retired arrays are deferred */
	char pad_ __attribute__((aligned(64)));
};

/* Any thread, before the deque is shared. capacity is rounded up to a power
 * of two (at least 2). Returns 0 or ASYNC_ENOMEM. */
int async_deque_init(struct async_deque *d, uint64_t capacity, ck_epoch_record_t *owner_record);
/* Once no thread uses the deque. Frees the array; retired arrays belong to
 * the epoch record and are freed by its reclaim. */
void async_deque_destroy(struct async_deque *d);
/* Owner only; never blocks. 0, or ASYNC_ENOMEM when growing failed (the item
 * is then not in the deque). */
int async_deque_push(struct async_deque *d, void *item);
/* Owner only; never blocks. The most recently pushed item, or NULL. */
void *async_deque_pop(struct async_deque *d);
/* Any thread with an epoch record registered on the same ck_epoch as the
 * owner's; never blocks. The oldest item, NULL when empty, or
 * ASYNC_DEQUE_ABORT when another thread won the race for it. */
void *async_deque_steal(struct async_deque *d, ck_epoch_record_t *thief_record);
/* Any thread; a racy estimate, exact when the deque is quiescent. */
int64_t async_deque_size(const struct async_deque *d);
/* Change which epoch record retired arrays go to: the new owner's. */
static inline void async_deque_set_owner(struct async_deque *d, ck_epoch_record_t *r) { d->owner_record = r; }

#endif
