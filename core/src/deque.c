/* SPDX-License-Identifier: MIT (see LICENSE) */
/* deque.c: Chase–Lev work-stealing deque on ck_pr, with growth and epoch-
 * based reclamation of retired arrays.
 *
 * References
 *   D. Chase, Y. Lev. "Dynamic circular work-stealing deque." SPAA 2005.
 *   N. M. Lê, A. Pop, A. Cohen, F. Zappa Nardelli. "Correct and efficient
 *   work-stealing for weak memory models." PPoPP 2013.
 *
 * Why it is correct
 *   Items live in a circular array between the indices top (oldest) and
 *   bottom (one past the newest); both only ever increase, except that the
 *   owner transiently decrements bottom in pop. The owner alone writes
 *   bottom and the array slots; top only moves by a successful CAS.
 *
 *   1. Every item is taken at most once. A thief takes index t only by
 *      CAS(top, t, t+1); two thieves cannot both win for the same t. The
 *      owner takes index b without a CAS only when t < b was read after its
 *      store of bottom = b was made visible (the full fence in pop, which
 *      pairs with the full fence in steal between its loads of top and
 *      bottom). A thief that loads top = b after that fence must then load
 *      bottom <= b and see the deque empty, so it cannot take index b. When
 *      t == b (one item left) the owner and the thieves all race by CAS on
 *      top, and exactly one wins.
 *   2. Every item pushed is taken at least once. push writes the slot, then
 *      (release fence) publishes bottom+1; a thief that sees the new bottom
 *      therefore sees the slot, and the array pointer if push grew it. An
 *      item is never lost by pop: when pop finds the deque empty or loses
 *      the last-item race it restores bottom = t, i.e. leaves the indices
 *      consistent.
 *   3. A thief's read of a slot may race with the owner overwriting it only
 *      when the slot was already taken and reused; the thief's CAS on top
 *      then fails (top moved past t) and the value read is discarded, so
 *      the slots are accessed as relaxed atomics, not plain data.
 *   4. Growth. The owner copies [top, bottom) into an array twice the size
 *      and publishes it before bottom moves again (release fence in push).
 *      A thief may still read the old array: every slot in [t, b) holds the
 *      same item in both, so whichever it reads is right. The old array is
 *      freed only through ck_epoch: a thief reads the array pointer and its
 *      slot inside an epoch section, and ck_epoch_call defers the free until
 *      every section that could have seen the old pointer has ended.
 *
 *   Fences follow Lê et al.'s C11 version (their Fig. 1); each below names
 *   its pair. Indices are unsigned 64-bit and compared through signed
 *   differences, so the transient bottom = top - 1 of pop is handled (the
 *   paper's size_t comparison is not, for an empty deque at index 0). */
#include "deque.h"
#include "async/error.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct async_deque_array {
	ck_epoch_entry_t epoch_entry; /* first: the free callback gets it */
	uint64_t mask;                /* size - 1, size a power of two */
	void *slot[];
};

static struct async_deque_array *array_new(uint64_t size)
{
	struct async_deque_array *a = malloc(sizeof *a + size * sizeof(void *));
	if (a == NULL)
		return NULL;
	a->mask = size - 1;
	return a;
}

static void array_free_deferred(ck_epoch_entry_t *e)
{
	void *a = (char *)e - offsetof(struct async_deque_array, epoch_entry);
	ASYNC_TSAN_ACQUIRE(a); /* pairs with the release in steal */
	free(a);
}

int async_deque_init(struct async_deque *d, uint64_t capacity, ck_epoch_record_t *owner_record)
{
	uint64_t size = 2;
	while (size < capacity)
		size <<= 1;
	memset(d, 0, sizeof *d);
	d->array = array_new(size);
	if (d->array == NULL)
		return ASYNC_ENOMEM;
	d->owner_record = owner_record;
	return 0;
}

void async_deque_destroy(struct async_deque *d)
{
	free(d->array);
	d->array = NULL;
}

int64_t async_deque_size(const struct async_deque *d)
{
	uint64_t b = ck_pr_load_64(&d->bottom);
	uint64_t t = ck_pr_load_64(&d->top);
	int64_t n = (int64_t)(b - t);
	return n < 0 ? 0 : n;
}

/* Owner only. Copies the live range into a twice-larger array, publishes
 * it, and hands the old one to the epoch for a deferred free. */
static int grow(struct async_deque *d, uint64_t t, uint64_t b)
{
	struct async_deque_array *old = d->array;
	struct async_deque_array *a = array_new((old->mask + 1) * 2);
	if (a == NULL)
		return ASYNC_ENOMEM;
	for (uint64_t i = t; i != b; i++)
		ck_pr_store_ptr(&a->slot[i & a->mask], ck_pr_load_ptr(&old->slot[i & old->mask]));
	/* Release: the copied slots are visible before the new pointer.
	 * Pairs with the dependent load of d->array in steal. */
	ck_pr_fence_store();
	ck_pr_store_ptr(&d->array, a);
	if (d->owner_record != NULL) {
		ck_epoch_call(d->owner_record, &old->epoch_entry, array_free_deferred);
		ck_epoch_poll(d->owner_record);
	} else {
		/* Single-threaded use (tests): no thief can hold the old array. */
		free(old);
	}
	return 0;
}

int async_deque_push(struct async_deque *d, void *item)
{
	uint64_t b = ck_pr_load_64(&d->bottom);
	/* Acquire: a thief's CAS that freed a slot happens before we reuse it. */
	uint64_t t = ck_pr_load_64(&d->top);
	ck_pr_fence_acquire();
	struct async_deque_array *a = d->array;
	if ((int64_t)(b - t) > (int64_t)a->mask) {
		int rc = grow(d, t, b);
		if (rc != 0)
			return rc;
		a = d->array;
	}
	ck_pr_store_ptr(&a->slot[b & a->mask], item);
	/* Release: the slot (and a grown array) are visible before the new
	 * bottom. Pairs with the load of bottom after the full fence in
	 * steal. */
	ck_pr_fence_store();
	ck_pr_store_64(&d->bottom, b + 1);
	return 0;
}

void *async_deque_pop(struct async_deque *d)
{
	/* Empty for sure, without the store and the full fence below: only
	 * the owner moves bottom and top only grows, so a top (even a stale
	 * one) at or past bottom stays there until the owner pushes. The
	 * workers look here first for every job they take (the fence of an
	 * empty pop was a third of a worker's time on external jobs). */
	if ((int64_t)(ck_pr_load_64(&d->bottom) - ck_pr_load_64(&d->top)) <= 0)
		return NULL;
	uint64_t b = ck_pr_load_64(&d->bottom) - 1;
	struct async_deque_array *a = d->array;
	ck_pr_store_64(&d->bottom, b);
	/* Full fence (store bottom, then load top): pairs with the full fence
	 * in steal between its load of top and its load of bottom. Either we
	 * see a thief's increment of top, or it sees our decrement of bottom. */
	ck_pr_fence_store_load();
	uint64_t t = ck_pr_load_64(&d->top);
	void *item = NULL;
	if ((int64_t)(b - t) >= 0) {
		item = ck_pr_load_ptr(&a->slot[b & a->mask]);
		if (b == t) {
			/* The last item: race the thieves for it on top. */
			if (!ck_pr_cas_64(&d->top, t, t + 1))
				item = NULL;
			ck_pr_store_64(&d->bottom, b + 1);
		}
	} else {
		ck_pr_store_64(&d->bottom, b + 1);
	}
	return item;
}

void *async_deque_steal(struct async_deque *d, ck_epoch_record_t *thief_record)
{
	uint64_t t = ck_pr_load_64(&d->top);
	/* Full fence (load top, then load bottom): pairs with the full fence in
	 * pop. */
	ck_pr_fence_memory();
	uint64_t b = ck_pr_load_64(&d->bottom);
	if ((int64_t)(b - t) <= 0)
		return NULL;
	/* Only a non-empty deque costs an epoch section; it covers the load of
	 * the array pointer and of the slot, the only reads of memory that
	 * grow() may retire. */
	ck_epoch_begin(thief_record, NULL);
	/* Acquire (dependent load): pairs with the release fence in grow()
	 * and in push(). */
	struct async_deque_array *a = ck_pr_load_ptr(&d->array);
	ck_pr_fence_load();
	void *item = ck_pr_load_ptr(&a->slot[t & a->mask]);
	ASYNC_TSAN_RELEASE(a); /* our reads of a end here (see pr.h) */
	ck_epoch_end(thief_record, NULL);
	/* LoadAtomic: our read of the slot happens before the CAS that lets the
	 * owner reuse it (it can only do so after seeing top move; pairs with
	 * the acquire fence after the load of top in push). Lê et al. get this
	 * from a seq_cst CAS; ck's aarch64 CAS is relaxed, so it is explicit
	 * (free on x86-64). */
	ck_pr_fence_load_atomic();
	if (!ck_pr_cas_64(&d->top, t, t + 1))
		return ASYNC_DEQUE_ABORT;
	return item;
}
