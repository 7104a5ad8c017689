/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_fork_wait.c: a worker that waits inside the pool (a group wait from
 * a job) never runs its own shared frames, so it must share them and wake a
 * sleeper for them (fork.c F4, async__fork_share_all), and share again what
 * a job it helped with took back. Each test fails (a gate job gives up after
 * 10 s) when a frame is left to nobody. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "async/async.h"
#include "watchdog.h"
#include "pool_helpers.h"

/* ---- a worker that waits on a group shares its frames and wakes a sleeper */

/* A worker that waits inside the pool (async_group_wait from a job) shares
 * its private frames first (help_until_zero), because what it waits for
 * may need them; it never runs them itself while it waits. A worker that
 * went to sleep after those frames were spawned left a request (movesplit)
 * that only a spawn or a sync serves: so the share must wake it too, or the
 * frame is run by nobody. Three workers: one busy in a job that waits for
 * the frame (the dependency), one spawning and then waiting on that job's
 * group, one asleep since after the spawn. */
struct share_wake {
	int a_ran;
	int g_started;
	int met;
	async_pool *p;
	async_group g2;
};

static void sw_nop(async_worker *w, void *arg) { (void)w; (void)arg; }

static void sw_mark(async_worker *w, void *arg)
{
	(void)w;
	__atomic_store_n(&((struct share_wake *)arg)->a_ran, 1, __ATOMIC_SEQ_CST);
}

/* The job the waiter waits for: it needs the frame to have run. Bounded,
 * so a lost wake-up fails the test rather than hanging it. */
static void sw_gate(void *arg)
{
	struct share_wake *s = arg;
	__atomic_store_n(&s->g_started, 1, __ATOMIC_SEQ_CST);
	time_t deadline = time(NULL) + 10;
	while (!__atomic_load_n(&s->a_ran, __ATOMIC_SEQ_CST) && time(NULL) <= deadline)
		sched_yield();
	s->met = __atomic_load_n(&s->a_ran, __ATOMIC_SEQ_CST);
}

static void sw_spawner(void *arg)
{
	struct share_wake *s = arg;
	async_worker *w = async_worker_self();
	cr_assert_not_null(w);
	/* The first spawn serves the sleeper's old request and wakes it; the
	 * second goes in privately while it wakes, so its next look (after
	 * stealing the first) finds nothing shared and it sleeps again. */
	cr_assert_eq(async_spawn(w, sw_nop, s), 0);
	cr_assert_eq(async_spawn(w, sw_mark, s), 0);
	usleep(20000); /* far past the spin: the third worker sleeps */
	cr_assert_eq(async_group_wait(s->p, &s->g2), 0);
	async_sync(w);
	async_sync(w);
}

Test(fork, a_worker_waiting_on_a_group_wakes_a_sleeper_for_its_frames, .timeout = 300)
{
	for (int round = 0; round < 8; round++) {
		async_pool *p = make_pool(3);
		usleep(20000); /* all three asleep */
		struct share_wake s = { 0, 0, 0, p, { 0 } };
		async_group_init(&s.g2);
		async_job gate;
		async_job_init(&gate, sw_gate, &s);
		cr_assert_eq(async_group_submit(p, &s.g2, &gate), 0);
		watchdog_arm(60, "a group waiter's shared frame");
		while (!__atomic_load_n(&s.g_started, __ATOMIC_SEQ_CST))
			usleep(100);
		watchdog_disarm();
		run_on_pool(p, sw_spawner, &s, 60, "a group waiter's shared frame");
		cr_assert(s.met, "round %d: the frame shared by a waiting worker ran only after the wait gave up", round);
		async_pool_destroy(p);
	}
}

/* ---- ... and shares them again after a job it helped with ---------------- */

/* The waiter helps with a job X whose own spawn meets a thief's late request
 * (movesplit, set by hand here: the store a thief makes when it finds
 * nothing) and grows the split; X's sync then takes back half of the whole
 * shared part, reaching below X's frames into the waiter's. The waiter must
 * share those again: a gate job (on another worker) waits for all of them. */
enum { SA_N = 4 };
struct share_again {
	int ran, gate_started, met;
	async_pool *p;
	async_group g;
	async_job x;
};

static void sa_frame(async_worker *w, void *arg)
{
	(void)w;
	struct share_again *s = arg;
	if (__atomic_fetch_add(&s->ran, 1, __ATOMIC_SEQ_CST) == 0)
		usleep(100000); /* the first thief is busy while X runs */
}

static void sa_gate(void *arg)
{
	struct share_again *s = arg;
	__atomic_store_n(&s->gate_started, 1, __ATOMIC_SEQ_CST);
	time_t deadline = time(NULL) + 10;
	while (__atomic_load_n(&s->ran, __ATOMIC_SEQ_CST) < SA_N && time(NULL) <= deadline)
		sched_yield();
	s->met = __atomic_load_n(&s->ran, __ATOMIC_SEQ_CST) >= SA_N;
}

static void sa_x(void *arg)
{
	(void)arg;
	async_worker *w = async_worker_self();
	__atomic_store_n(&w->movesplit, 1, __ATOMIC_RELAXED);
	cr_assert_eq(async_spawn(w, sw_nop, NULL), 0);
	async_sync(w);
}

static void sa_waiter(void *arg)
{
	struct share_again *s = arg;
	async_worker *w = async_worker_self();
	for (int i = 0; i < SA_N; i++)
		cr_assert_eq(async_spawn(w, sa_frame, s), 0);
	async_job_init(&s->x, sa_x, s);
	cr_assert_eq(async_group_submit(s->p, &s->g, &s->x), 0);
	cr_assert_eq(async_group_wait(s->p, &s->g), 0);
	for (int i = 0; i < SA_N; i++)
		async_sync(w);
}

Test(fork, a_group_waiter_shares_again_what_a_helped_job_took_back, .timeout = 300)
{
	for (int round = 0; round < 4; round++) {
		async_pool *p = make_pool(3);
		struct share_again s = { .p = p };
		async_group_init(&s.g);
		async_job gate;
		async_job_init(&gate, sa_gate, &s);
		cr_assert_eq(async_group_submit(p, &s.g, &gate), 0);
		watchdog_arm(60, "a group waiter's frames taken back");
		while (!__atomic_load_n(&s.gate_started, __ATOMIC_SEQ_CST))
			usleep(100);
		watchdog_disarm();
		run_on_pool(p, sa_waiter, &s, 60, "a group waiter's frames taken back");
		cr_assert(s.met, "round %d: a frame the waiter took back stayed private while it waited", round);
		cr_assert_eq(s.ran, SA_N);
		async_pool_destroy(p);
	}
}
