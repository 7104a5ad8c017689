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
 * async_ec_notify_one does nothing while a wake it sent is in flight. Every
 * waiter clears the flag before it re-checks its condition (in prepare, and
 * after every return from the futex), so a notifier that skipped because
 * the flag was set published its item before some waiter's re-check: the
 * same Dekker argument, with the flag in place of the count. A flag left set
 * by a wake that found no sleeper is cleared by the next prepare. */
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
	return ck_pr_load_32(&ec->seq);
}

/* Waiter: the condition became true during the re-check. */
static inline void async_ec_cancel(struct async_ec *ec)
{
	(void)ck_pr_faa_32(&ec->waiters, (uint32_t)-1);
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
	(void)ck_pr_faa_32(&ec->seq, 1);
	async_os_wake_one(&ec->seq);
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
	(void)ck_pr_faa_32(&ec->seq, 1);
	async_os_wake_one(&ec->seq);
}

/* A hint, not a guarantee: wake one waiter if the (unfenced) count says
 * there is one. For extra parallelism only, never for correctness. */
static inline void async_ec_hint(struct async_ec *ec)
{
	if (ck_pr_load_32(&ec->waiters) != 0)
		async_ec_notify_one(ec);
}

#endif
