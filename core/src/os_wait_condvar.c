/* os_wait_condvar.c: os_wait.h for any pthreads system, with no kernel wait
 * on addresses: a fixed table of mutex + condition variable buckets, the
 * address hashed to its bucket (a "parking lot"). The macOS fallback, and
 * selectable on Linux (-DASYNC_OS_WAIT=condvar) so that it is tested there.
 *
 * No lost wake-up: a waker changes *addr before it calls wake, and wake
 * takes the bucket's mutex; the waiter compares *addr and goes to sleep
 * under that mutex. So either the waiter's comparison sees the new value, or
 * the waiter is already inside pthread_cond_wait when the waker broadcasts.
 * Wakes broadcast even for wake_one: several addresses share a bucket, and a
 * signal could go to a sleeper on another address (spurious wakes are allowed,
 * lost ones are not). */
#include "os_wait.h"

#include <pthread.h>
#include <stdint.h>

#define ASYNC_OS_WAIT_BUCKETS 64 /* a power of two */

static struct bucket {
	pthread_mutex_t mu;
	pthread_cond_t cv;
} buckets[ASYNC_OS_WAIT_BUCKETS];
static pthread_once_t buckets_once = PTHREAD_ONCE_INIT;

static void buckets_init(void)
{
	for (int i = 0; i < ASYNC_OS_WAIT_BUCKETS; i++) {
		pthread_mutex_init(&buckets[i].mu, NULL);
		pthread_cond_init(&buckets[i].cv, NULL);
	}
}

static struct bucket *bucket_of(const uint32_t *addr)
{
	pthread_once(&buckets_once, buckets_init);
	uintptr_t h = (uintptr_t)addr >> 2;
	h ^= h >> 7;
	return &buckets[h & (ASYNC_OS_WAIT_BUCKETS - 1)];
}

void async_os_wait(uint32_t *addr, uint32_t expected)
{
	struct bucket *b = bucket_of(addr);
	pthread_mutex_lock(&b->mu);
	/* Atomic load: the waker changes *addr without this mutex. */
	if (__atomic_load_n(addr, __ATOMIC_ACQUIRE) == expected)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
}

static void wake(uint32_t *addr)
{
	struct bucket *b = bucket_of(addr);
	/* Taking the mutex (not just signalling) is what orders this wake
	 * after a waiter's comparison: see the top of the file. */
	pthread_mutex_lock(&b->mu);
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

void async_os_wake_one(uint32_t *addr)
{
	wake(addr);
}

void async_os_wake_all(uint32_t *addr)
{
	wake(addr);
}
