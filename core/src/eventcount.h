/* SPDX-License-Identifier: MIT (see LICENSE) */
/* eventcount.h: lets idle threads sleep on a futex without lost wake-ups,
 * and keeps the notifier's cost to a fence and a load when nobody sleeps.
 *
 * Protocol (an eventcount in the style of Vyukov's and ck_ec): a waiter
 * announces itself (prepare), re-checks its condition, and only then sleeps
 * on the sequence number it read in prepare. A notifier first makes the
 * condition true, then bumps the sequence and wakes if anyone announced
 * itself. The fence after the announcement in prepare and the fence a
 * notifier issues before reading the waiter count are a Dekker pair: either the waiter's re-check sees the
 * condition, or the notifier sees the waiter and changes the sequence, which
 * makes FUTEX_WAIT return at once.
 *
 * The waking flag saves the notifier a system call per item in a burst:
 * async_ec_notify_one does nothing while a wake it sent is in flight. The
 * rule that makes the skip safe: every consumer, before it sleeps or
 * leaves for good, clears the flag and then, after a fence, looks at the
 * condition once more (prepare then the re-check; async_ec_leave then the
 * caller's look). A notifier that skipped read 1 before some consumer's
 * next clear, so that consumer's look finds its item (Dekker again, with
 * the flag in place of the count). And while the flag is 1 some consumer
 * is awake with such a look still ahead: the one that took the item the
 * flag was set for (a waiter that re-checks after the bump sees that item,
 * thanks to the load fence in prepare). Clearing is always safe (it only
 * makes notifiers wake more), so the flag is also cleared where it would
 * only cost parallelism: by a waiter that cancels (it may have taken the
 * item the wake was meant for) and by a wake that found nobody asleep.
 *
 * A stopping worker must clear the flag and look once more too, and cancel
 * must clear it: otherwise a flag set by a wake that found nobody in the
 * futex stays 1 while a waiter sleeps on the bumped sequence, and every
 * later notify_one skips. */
#ifndef ASYNC_EVENTCOUNT_H
#define ASYNC_EVENTCOUNT_H

#include <stdint.h>

#include "os_wait.h" /* the futex, or its equivalent on this OS */
#include "pr.h"

struct async_ec {
	uint32_t seq;     /* futex word */
	uint32_t waiters; /* threads between prepare and the end of wait */
	uint32_t waking;  /* 1 while a notify_one wake is in flight */
};

static inline void async_ec_init(struct async_ec *ec)
{
	ec->seq = 0;
	ec->waiters = 0;
	ec->waking = 0;
}

/* Waiter: announce, then return the sequence to wait on. */
static inline uint32_t async_ec_prepare(struct async_ec *ec)
{
	ck_pr_store_32(&ec->waking, 0);
	(void)ck_pr_faa_32(&ec->waiters, 1);
	/* StoreLoad (ck models an RMW as a store): the clearing of waking and
	 * the announcement are visible before the load of seq and the
	 * caller's re-check. Pairs with the fence before the load of waiters
	 * in the notify functions. x86's locked RMW already orders this, but
	 * ck's aarch64 RMWs are relaxed, so the fence is not implied. */
	ck_pr_fence_store_load();
	TEST_POINT("ec: announced");
	uint32_t key = ck_pr_load_32(&ec->seq);
	/* LoadLoad: the seq is read before the caller's re-check of its
	 * condition (a plain load on aarch64 may otherwise pass it, and a
	 * re-check older than the key sleeps through the notify that bumped
	 * it). Pairs with the notifier's fence before its load of waiters,
	 * which orders its publication before its bump of seq. */
	ck_pr_fence_load();
	return key;
}

/* Waiter: the condition became true during the re-check. */
static inline void async_ec_cancel(struct async_ec *ec)
{
	(void)ck_pr_faa_32(&ec->waiters, (uint32_t)-1);
	/* A wake in flight may have been meant for this waiter: clear the
	 * flag so the next notifier wakes someone (see the top). The exchange
	 * and the fence order the clear before the caller's next look at its
	 * condition; they pair with the notifier's fence before its load of
	 * waking. */
	(void)ck_pr_fas_32(&ec->waking, 0);
	ck_pr_fence_atomic_load();
}

/* A consumer leaving for good (a stopping worker): clears the flag, as
 * prepare does; the caller then looks at its condition once more and
 * notifies if it holds. Full fence: the clear (and the caller's earlier
 * writes) before that look; pairs with the fence before the load of
 * waiters and waking in the notify functions. */
static inline void async_ec_leave(struct async_ec *ec)
{
	(void)ck_pr_fas_32(&ec->waking, 0);
	ck_pr_fence_memory();
}

/* Waiter: sleep unless the sequence moved since prepare. May return
 * spuriously; callers loop and re-check their condition. */
static inline void async_ec_wait(struct async_ec *ec, uint32_t key)
{
	if (ck_pr_load_32(&ec->seq) == key)
		async_os_wait(&ec->seq, key);
	(void)ck_pr_faa_32(&ec->waiters, (uint32_t)-1);
	/* No fence needed here: a caller re-checks at once (possibly missing
	 * an item), but it sleeps again only through async_ec_prepare, which
	 * clears waking again and fences before its re-check. */
	ck_pr_store_32(&ec->waking, 0);
}

/* Notifier, after making the condition true: wake every waiter. */
static inline void async_ec_notify_all(struct async_ec *ec)
{
	/* Full fence: the condition is visible before the load of waiters.
	 * Pairs with the StoreLoad fence in async_ec_prepare. */
	ck_pr_fence_memory();
	if (ck_pr_load_32(&ec->waiters) == 0)
		return;
	(void)ck_pr_faa_32(&ec->seq, 1);
	async_os_wake_all(&ec->seq);
}

/* With waking just set: bump and wake one. A wake that found nobody in the
 * futex clears the flag again (always safe, see the top), so the next
 * notifier does not skip on its account. */
static inline void async_ec_wake_one(struct async_ec *ec)
{
	(void)ck_pr_faa_32(&ec->seq, 1);
	if (async_os_wake_one(&ec->seq) == 0)
		ck_pr_store_32(&ec->waking, 0);
}

/* Notifier, after making the condition true: make sure one waiter, if any,
 * will re-check. Skips the wake while one is already in flight. */
static inline void async_ec_notify_one(struct async_ec *ec)
{
	/* Full fence: the condition is visible before the load of waiters.
	 * Pairs with the StoreLoad fence in async_ec_prepare. */
	ck_pr_fence_memory();
	if (ck_pr_load_32(&ec->waiters) == 0 || ck_pr_load_32(&ec->waking) != 0)
		return;
	if (!ck_pr_cas_32(&ec->waking, 0, 1))
		return; /* another notifier's wake is in flight */
	async_ec_wake_one(ec);
}

/* As async_ec_notify_one, for a notifier whose last write was an atomic
 * RMW (the CAS or exchange that published the item): ck_pr's atomic-to-load
 * fence orders that RMW before the loads here (free on x86-64, where the
 * locked RMW is already a full barrier; a dmb on aarch64, where ck's RMWs
 * are relaxed). It pairs with the fence in async_ec_prepare. */
static inline void async_ec_notify_one_after_rmw(struct async_ec *ec)
{
	ck_pr_fence_atomic_load();
	if (ck_pr_load_32(&ec->waiters) == 0 || ck_pr_load_32(&ec->waking) != 0)
		return;
	if (!ck_pr_cas_32(&ec->waking, 0, 1))
		return;
	async_ec_wake_one(ec);
}

/* A hint, not a guarantee: wake one waiter if the (unfenced) count says
 * there is one. For extra parallelism only, never for correctness. */
static inline void async_ec_hint(struct async_ec *ec)
{
	if (ck_pr_load_32(&ec->waiters) != 0)
		async_ec_notify_one(ec);
}

#endif
