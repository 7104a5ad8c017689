/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_deque.c: the Chase–Lev deque alone: sequential semantics, growth,
 * and a concurrent stress of the owner against several thieves in which
 * every item must be taken exactly once. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>

#include "deque.h"

/* Scaled down under sanitizers, which run the same code 5-20x slower. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define STRESS_ITEMS 400000
#else
#define STRESS_ITEMS 4000000
#endif

static int items[64];

Test(deque, lifo_for_owner_fifo_for_thief)
{
	struct async_deque d;
	cr_assert_eq(async_deque_init(&d, 4, NULL), 0);
	cr_assert_null(async_deque_pop(&d));
	for (int i = 0; i < 10; i++) /* grows past the initial 4 */
		cr_assert_eq(async_deque_push(&d, &items[i]), 0);
	cr_assert_eq(async_deque_size(&d), 10);
	ck_epoch_t ep;
	ck_epoch_record_t rec;
	ck_epoch_init(&ep);
	ck_epoch_register(&ep, &rec, NULL);
	cr_assert_eq(async_deque_steal(&d, &rec), &items[0]);
	cr_assert_eq(async_deque_steal(&d, &rec), &items[1]);
	for (int i = 9; i >= 2; i--)
		cr_assert_eq(async_deque_pop(&d), &items[i]);
	cr_assert_null(async_deque_pop(&d));
	cr_assert_null(async_deque_steal(&d, &rec));
	cr_assert_eq(async_deque_size(&d), 0);
	/* Indices keep moving: reuse after emptying, across a wrap. */
	for (int round = 0; round < 100; round++) {
		cr_assert_eq(async_deque_push(&d, &items[round % 64]), 0);
		cr_assert_eq(async_deque_pop(&d), &items[round % 64]);
	}
	async_deque_destroy(&d);
}

Test(deque, growth_keeps_order_with_offset_indices)
{
	struct async_deque d;
	ck_epoch_t ep;
	ck_epoch_record_t rec;
	ck_epoch_init(&ep);
	ck_epoch_register(&ep, &rec, NULL);
	cr_assert_eq(async_deque_init(&d, 2, &rec), 0);
	/* Move top away from 0 so that the copy in grow() wraps. */
	for (int i = 0; i < 3; i++) {
		async_deque_push(&d, &items[i]);
		cr_assert_eq(async_deque_steal(&d, &rec), &items[i]);
	}
	for (int i = 0; i < 40; i++)
		cr_assert_eq(async_deque_push(&d, &items[i]), 0);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(async_deque_steal(&d, &rec), &items[i]);
	for (int i = 39; i >= 20; i--)
		cr_assert_eq(async_deque_pop(&d), &items[i]);
	async_deque_destroy(&d);
	ck_epoch_reclaim(&rec);
}

struct stress {
	struct async_deque d;
	ck_epoch_t epoch;
	unsigned char *taken;
	int *values;
	int done;
	unsigned long stolen[8];
	/* ck_epoch keeps registered records on its list for good (unregister
	 * only marks them for recycling), so they must outlive the threads. */
	ck_epoch_record_t thief_rec[8];
};

struct thief_arg {
	struct stress *s;
	int id;
};

static void take(struct stress *s, void *x)
{
	size_t i = (size_t)((int *)x - s->values);
	cr_assert_lt(i, (size_t)STRESS_ITEMS);
	unsigned char prev = __atomic_fetch_add(&s->taken[i], 1, __ATOMIC_RELAXED);
	cr_assert_eq(prev, 0, "item %zu taken twice", i);
}

static void *thief(void *arg)
{
	struct thief_arg *a = arg;
	struct stress *s = a->s;
	ck_epoch_record_t *rec = &s->thief_rec[a->id];
	ck_epoch_register(&s->epoch, rec, NULL);
	for (;;) {
		void *x = async_deque_steal(&s->d, rec);
		if (x == ASYNC_DEQUE_ABORT)
			continue;
		if (x != NULL) {
			take(s, x);
			s->stolen[a->id]++;
			continue;
		}
		if (__atomic_load_n(&s->done, __ATOMIC_ACQUIRE) && async_deque_size(&s->d) == 0)
			break;
	}
	ck_epoch_unregister(rec);
	return NULL;
}

Test(deque, owner_against_three_thieves_every_item_once, .timeout = 300)
{
	static struct stress s;
	s.taken = calloc(STRESS_ITEMS, 1);
	s.values = calloc(STRESS_ITEMS, sizeof(int));
	ck_epoch_init(&s.epoch);
	ck_epoch_record_t owner;
	ck_epoch_register(&s.epoch, &owner, NULL);
	/* A small start makes the owner grow the array under the thieves. */
	cr_assert_eq(async_deque_init(&s.d, 16, &owner), 0);
	pthread_t th[3];
	struct thief_arg ta[3];
	for (int i = 0; i < 3; i++) {
		ta[i] = (struct thief_arg){ &s, i };
		pthread_create(&th[i], NULL, thief, &ta[i]);
	}
	unsigned long popped = 0;
	unsigned rng = 12345;
	for (int i = 0; i < STRESS_ITEMS; i++) {
		cr_assert_eq(async_deque_push(&s.d, &s.values[i]), 0);
		rng = rng * 1103515245u + 12345u;
		/* Pop about half the time, sometimes in runs, so the last-item
		 * race between pop and steal happens often. */
		int pops = (rng >> 16) % 4 == 0 ? 2 : ((rng >> 16) & 1);
		for (int k = 0; k < pops; k++) {
			void *x = async_deque_pop(&s.d);
			if (x != NULL) {
				take(&s, x);
				popped++;
			}
		}
	}
	void *x;
	while ((x = async_deque_pop(&s.d)) != NULL) {
		take(&s, x);
		popped++;
	}
	__atomic_store_n(&s.done, 1, __ATOMIC_RELEASE);
	unsigned long stolen = 0;
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		stolen += s.stolen[i];
	}
	cr_assert_eq(popped + stolen, (unsigned long)STRESS_ITEMS);
	for (size_t i = 0; i < STRESS_ITEMS; i++)
		cr_assert_eq(s.taken[i], 1, "item %zu taken %d times", i, s.taken[i]);
	cr_log_info("popped %lu, stolen %lu", popped, stolen);
	cr_assert_gt(stolen, 0, "the thieves never stole: the test did not test stealing");
	async_deque_destroy(&s.d);
	ck_epoch_barrier(&owner);
	ck_epoch_reclaim(&owner);
	free(s.taken);
	free(s.values);
}
