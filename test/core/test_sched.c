/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_sched.c: the scheduler attributes a worker asks for itself on Linux
 * (cfg.slice_us: a short time slice, so that a worker woken onto a busy CPU
 * preempts the thread there). Read back with
 * sched_getattr, which reports a fair thread's slice from Linux 6.12; on
 * older kernels (it reports 0) there is nothing to check. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "async/async.h"

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

struct attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

static struct attr own_attr(void)
{
	struct attr a;
	memset(&a, 0, sizeof a);
	cr_assert_eq(syscall(SYS_sched_getattr, 0, &a, sizeof a, 0), 0L, "sched_getattr failed");
	return a;
}

static struct attr seen[2]; /* what each worker reported at its start */

static void note_attr(void *ud, unsigned worker)
{
	(void)ud;
	if (worker < 2)
		seen[worker] = own_attr();
}

/* Creates a 2-worker pool with this slice, lets each worker report its
 * attributes at start, and destroys it. */
static void start_pool(unsigned slice_us)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 2;
	cfg.pin = 0;
	cfg.slice_us = slice_us;
	cfg.on_worker_start = note_attr;
	memset(seen, 0, sizeof seen);
	async_pool *p = NULL;
	cr_assert_eq(async_pool_create(&p, &cfg), 0);
	async_pool_destroy(p); /* joins: the reports are in */
}

Test(sched, workers_ask_for_the_configured_slice_and_keep_their_nice_value)
{
	cr_assert_eq(async_pool_config_default().slice_us, 0u, "a short slice is asked for, not the default");
	struct attr mine = own_attr();
	if (mine.runtime == 0) {
		cr_log_info("this kernel does not report slices: nothing to check");
		return;
	}
	start_pool(100);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(seen[i].runtime, 100000u, "worker %d: slice %llu ns, asked for 100 us", i,
		             (unsigned long long)seen[i].runtime);
		cr_assert_eq(seen[i].nice, mine.nice, "worker %d: nice %d, its creator's is %d", i, seen[i].nice, mine.nice);
	}
	start_pool(0); /* 0 (the default): the kernel's slice, as the creator has */
	for (int i = 0; i < 2; i++)
		cr_assert_eq(seen[i].runtime, mine.runtime, "worker %d: slice %llu ns with slice_us 0, the default is %llu", i,
		             (unsigned long long)seen[i].runtime, (unsigned long long)mine.runtime);
}

/* A game may start its pool from a thread it lowered (nice 5): asking for
 * a slice must not reset that (setattr sets nice too; raising priority back
 * to 0 needs a privilege, which the suite may well have, so a reset would
 * succeed and show here). */
static void *niced_creator(void *arg)
{
	(void)arg;
	cr_assert_eq(setpriority(PRIO_PROCESS, (id_t)gettid(), 5), 0);
	start_pool(100);
	return NULL;
}

Test(sched, a_niced_creators_workers_stay_niced)
{
	if (own_attr().runtime == 0)
		return; /* see above */
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, niced_creator, NULL), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(seen[i].nice, 5, "worker %d: nice %d, its creator's was 5", i, seen[i].nice);
		cr_assert_eq(seen[i].runtime, 100000u);
	}
}
#else
Test(sched, a_slice_is_a_linux_request)
{
	/* portability: elsewhere cfg.slice_us is ignored; only its default is
	 * common. */
	cr_assert_eq(async_pool_config_default().slice_us, 0u);
}
#endif
