/* SPDX-License-Identifier: MIT (see LICENSE) */
/* os_wait_condvar.c: os_wait.h for any pthreads system, with no kernel wait
 * on addresses: a fixed table of buckets, the address hashed to its bucket
 * (a "parking lot"), each bucket a mutex and the list of its sleepers. The
 * macOS fallback, and selectable on Linux (-DASYNC_OS_WAIT=condvar) so that
 * it is tested there.
 *
 * No lost wake-up: a waker changes *addr before it calls wake, and wake
 * takes the bucket's mutex; the waiter compares *addr and enqueues itself
 * under that mutex. So either the waiter's comparison sees the new value, or
 * the waiter is on the list when the waker looks.
 * Wake-one wakes one sleeper on that address, not the bucket: each sleeper
 * has its own condition variable, so an idle pool woken for one job wakes
 * one worker (test_pool_races: one_call_on_an_idle_pool_wakes_one_worker),
 * and a sleeper on another address that shares the bucket is left alone. */
#include "os_wait.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define ASYNC_OS_WAIT_BUCKETS 64 /* a power of two */

struct sleeper {
	uint32_t *addr;
	int woken; /* set by a waker, under the bucket's mutex */
	pthread_cond_t cv;
	struct sleeper *next;
};

static struct bucket {
	pthread_mutex_t mu;
	struct sleeper *head; /* oldest first: wake-one is FIFO */
} buckets[ASYNC_OS_WAIT_BUCKETS];
static pthread_once_t buckets_once = PTHREAD_ONCE_INIT;

static void buckets_init(void)
{
	for (int i = 0; i < ASYNC_OS_WAIT_BUCKETS; i++)
		pthread_mutex_init(&buckets[i].mu, NULL);
}

static struct bucket *bucket_of(const uint32_t *addr)
{
	pthread_once(&buckets_once, buckets_init);
	uintptr_t h = (uintptr_t)addr >> 2;
	h ^= h >> 7;
	return &buckets[h & (ASYNC_OS_WAIT_BUCKETS - 1)];
}

static void unlink_sleeper(struct bucket *b, struct sleeper *s)
{
	for (struct sleeper **pp = &b->head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			return;
		}
}

void async_os_wait(uint32_t *addr, uint32_t expected)
{
	struct bucket *b = bucket_of(addr);
	struct sleeper s = { .addr = addr };
	pthread_mutex_lock(&b->mu);
	/* Atomic load: the waker changes *addr without this mutex. */
	if (__atomic_load_n(addr, __ATOMIC_ACQUIRE) != expected) {
		pthread_mutex_unlock(&b->mu);
		return;
	}
	pthread_cond_init(&s.cv, NULL);
	struct sleeper **tail = &b->head;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = &s;
	/* One wait: a spurious return is allowed (callers re-check). */
	pthread_cond_wait(&s.cv, &b->mu);
	if (!s.woken)
		unlink_sleeper(b, &s); /* a waker unlinks what it wakes */
	pthread_mutex_unlock(&b->mu);
	pthread_cond_destroy(&s.cv);
}

/* Wakes the sleepers on addr, at most max of them, oldest first. Taking the
 * mutex is what orders this wake after a waiter's comparison (see the top). */
static unsigned wake(uint32_t *addr, unsigned max)
{
	unsigned woken = 0;
	struct bucket *b = bucket_of(addr);
	pthread_mutex_lock(&b->mu);
	for (struct sleeper **pp = &b->head; *pp != NULL && max > 0;) {
		struct sleeper *s = *pp;
		if (s->addr != addr) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		s->woken = 1;
		/* Signalled under the mutex: the sleeper's frame (and s->cv) lives
		 * until it has re-taken the mutex, which is after this unlock. */
		pthread_cond_signal(&s->cv);
		max--;
		woken++;
	}
	pthread_mutex_unlock(&b->mu);
	return woken;
}

int async_os_wake_one(uint32_t *addr)
{
	return (int)wake(addr, 1);
}

void async_os_wake_all(uint32_t *addr)
{
	wake(addr, (unsigned)-1);
}
