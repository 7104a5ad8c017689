/* SPDX-License-Identifier: MIT (see LICENSE) */
/* peers_cl.c: the plain baseline for fork-join: Chase–Lev deques (ours,
 * deque.c) with task frames on the stack and nothing else: no pool, no
 * injection, no sleeping (idle threads spin), no counters. A spawn pushes a
 * pointer to a frame on the spawner's stack; sync pops it back, or, when it
 * was stolen, steals other frames until the thief marks it done. The pool's
 * fib cost is measured against this, in the same run. */
#define _GNU_SOURCE
#include "bench_core.h"

#include <pthread.h>
#include <stdlib.h>

#include "deque.h"

#define CL_MAX 16

struct clf {
	int n;
	long r;
	uint32_t done; /* set by a thief after running a stolen frame */
};

struct cl_worker {
	struct async_deque dq;
	ck_epoch_record_t rec;
	unsigned index;
	pthread_t thread;
} __attribute__((aligned(64)));

static struct {
	struct cl_worker w[CL_MAX];
	unsigned n;
	ck_epoch_t epoch;
	uint32_t stop;
	struct clf *volatile root; /* the frame the main thread hands in */
	uint32_t root_done;
} cl;

static void cl_fib(struct cl_worker *me, struct clf *f);

/* One steal attempt over the others, nearest index first. */
static int cl_steal_run(struct cl_worker *me)
{
	for (unsigned k = 1; k < cl.n; k++) {
		struct cl_worker *v = &cl.w[(me->index + k) % cl.n];
		struct clf *x = async_deque_steal(&v->dq, &me->rec);
		if (x != NULL && x != ASYNC_DEQUE_ABORT) {
			cl_fib(me, x);
			/* Release: the result before the flag (pairs with the
			 * acquire load in the owner's sync). */
			__atomic_store_n(&x->done, 1, __ATOMIC_RELEASE);
			return 1;
		}
	}
	return 0;
}

static void cl_fib(struct cl_worker *me, struct clf *f)
{
	if (f->n < 2) {
		f->r = f->n;
		return;
	}
	struct clf a = { f->n - 1, 0, 0 }, b = { f->n - 2, 0, 0 };
	async_deque_push(&me->dq, &a);
	cl_fib(me, &b);
	struct clf *x = async_deque_pop(&me->dq);
	if (x == &a) {
		cl_fib(me, &a); /* not stolen: run it inline */
	} else {
		/* Stolen (strict fork-join: nothing of ours is left below it).
		 * Steal work back until the thief is done. */
		while (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE))
			cl_steal_run(me);
	}
	f->r = a.r + b.r;
}

static void *cl_thread(void *arg)
{
	struct cl_worker *me = arg;
	while (!__atomic_load_n(&cl.stop, __ATOMIC_ACQUIRE))
		if (!cl_steal_run(me))
			__builtin_ia32_pause();
	return NULL;
}

void bench_cl_start(unsigned threads)
{
	cl.n = threads < 1 ? 1 : threads > CL_MAX ? CL_MAX : threads;
	cl.stop = 0;
	ck_epoch_init(&cl.epoch);
	for (unsigned i = 0; i < cl.n; i++) {
		cl.w[i].index = i;
		ck_epoch_register(&cl.epoch, &cl.w[i].rec, NULL);
		async_deque_init(&cl.w[i].dq, 1024, &cl.w[i].rec);
	}
	/* Worker 0 is the calling thread; the others spin, stealing. */
	for (unsigned i = 1; i < cl.n; i++)
		pthread_create(&cl.w[i].thread, NULL, cl_thread, &cl.w[i]);
}

long bench_fib_cl(int n)
{
	struct clf f = { n, 0, 0 };
	cl_fib(&cl.w[0], &f);
	return f.r;
}

void bench_cl_stop(void)
{
	__atomic_store_n(&cl.stop, 1, __ATOMIC_RELEASE);
	for (unsigned i = 1; i < cl.n; i++)
		pthread_join(cl.w[i].thread, NULL);
	for (unsigned i = 0; i < cl.n; i++) {
		async_deque_destroy(&cl.w[i].dq);
		ck_epoch_unregister(&cl.w[i].rec);
	}
}
