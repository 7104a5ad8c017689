/* SPDX-License-Identifier: MIT (see LICENSE) */
/* trace.c: the pool's timeline (async/trace.h): a ring of events per
 * worker and per outside thread, each written by its own thread alone,
 * read by collect while it is written, and the Chrome trace event writer.
 *
 * A ring is a single-writer sequence. Its owner writes event k into slot
 * k % nslots (nslots = capacity + 1) and then publishes head = k + 1. A
 * reader may copy slots while the owner overwrites them, so every word of a
 * slot is read and written with atomic accesses, and the reader keeps only
 * what it can prove whole:
 *   R1 (owner): the event's words are stored after the previous head store
 *       (store fence, pairs with R3), and head is stored after them (store
 *       fence, pairs with R2's load fence).
 *   R2 (reader): head is loaded (h1), then a load fence, then the slots of
 *       events [h1 - capacity, h1): each was whole when h1 was published.
 *   R3 (reader): after the copies, a load fence, then head again (h2). Event
 *       i's slot is next written by event i + nslots, which begins after
 *       head = i + nslots is stored; had a copy seen any of its words, R1
 *       and this fence make h2 >= i + nslots. So i + nslots > h2 proves the
 *       copy of i whole; the others count as dropped.
 * Rings are never freed while the pool lives: a start that changes the
 * capacity retires the old ones (a thread may still be finishing an event
 * in one) to a list freed with the pool. A start that keeps it moves each
 * ring's floor to its head instead: collect ignores what lies below. */
#include "pool_impl.h"
#include "async/trace.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_WORDS (ASYNC_TRACE_NAME_SIZE / 8)

struct slot {
	uint64_t begin, end;
	uint64_t meta; /* kind | other << 8 */
	uint64_t name[NAME_WORDS];
};

struct ring {
	uint64_t head;  /* events ever written: the owner's store, R1 */
	uint64_t floor; /* events below it belong to an earlier start (mutex) */
	uint64_t owner; /* outside rings: the owning thread's token; 0 once it exited */
	size_t pos;     /* head % nslots, kept by the owner alone (no division) */
	uint32_t track;
	size_t nslots;  /* capacity + 1 */
	struct ring *next; /* the outside list, or the retired list */
	struct slot *ev;
};

struct async_trace {
	pthread_mutex_t mu; /* start, collect, an outside thread's first record */
	uint64_t cap;       /* events per ring for rings made from now on */
	uint32_t epoch;     /* moved when rings are retired: outside threads' caches */
	struct ring **wr;   /* one per worker slot, made by the worker itself */
	struct ring *outside; /* newest first; pushed under mu */
	unsigned noutside;
	struct ring *retired;
	struct slot *buf;   /* collect's copy */
	size_t bufn;
	uint64_t serial;    /* the pool's */
	struct async_trace *live_next; /* the live traces' list (live_mu) */
};

/* The innermost traced job running on this thread: async_trace_label's
 * target. */
static _Thread_local struct async_trace_frame *tl_job;

/* The outside rings of the last few pools this thread recorded to: a
 * thread that records to several pools (an engine's render and io pools)
 * finds each here, without the trace lock that a collect may hold for the
 * whole of a file's writing. */
#define OUT_CACHE 4
static _Thread_local struct {
	uint64_t serial;
	uint32_t epoch;
	struct ring *r;
} tl_out[OUT_CACHE];
static _Thread_local unsigned tl_out_next; /* the entry a miss replaces */
static _Thread_local char tl_token; /* its address names the thread */

/* A thread's exit frees its outside rings for the next new thread (owner
 * 0), so that threads that come and go (a loader per level) cost the rings
 * of the threads alive at once, not of every thread that ever recorded.
 * Each thread keeps a list of (pool serial, ring) as its exit key's value;
 * at exit it frees the rings of the pools still alive: the list of live
 * traces, under live_mu, says which. */
struct owned {
	uint64_t serial;
	struct ring *r;
	struct owned *next;
};
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct async_trace *live;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static int exit_key_ok;

static void thread_exit(void *arg)
{
	pthread_mutex_lock(&live_mu);
	for (struct owned *o = arg, *next; o != NULL; o = next) {
		next = o->next;
		for (struct async_trace *t = live; t != NULL; t = t->live_next)
			if (t->serial == o->serial) {
				/* Release: the ring's last event and pos before it is
				 * free (pairs with the adoption's acquire). */
				ck_pr_fence_store();
				ck_pr_store_64(&o->r->owner, 0);
				break;
			}
		free(o);
	}
	pthread_mutex_unlock(&live_mu);
}

static void exit_key_make(void)
{
	exit_key_ok = pthread_key_create(&exit_key, thread_exit) == 0;
}

/* The library unloaded (the Lua module at lua_close): no thread's exit may
 * call thread_exit any more. Rings are not shared past this point. */
__attribute__((destructor)) static void exit_key_drop(void)
{
	if (exit_key_ok) {
		exit_key_ok = 0;
		pthread_key_delete(exit_key);
	}
}

/* The calling thread owns r, of the pool with this serial (t->mu held).
 * Out of memory, the ring is simply never freed for another thread. */
static void own(uint64_t serial, struct ring *r)
{
	pthread_once(&exit_once, exit_key_make);
	if (!exit_key_ok)
		return;
	struct owned *head = pthread_getspecific(exit_key);
	/* One entry per pool (its ring before a resize is retired), and none
	 * for pools destroyed since: the list stays as long as the pools this
	 * thread records to. */
	pthread_mutex_lock(&live_mu);
	for (struct owned **po = &head; *po != NULL;) {
		struct owned *o = *po;
		struct async_trace *t = live;
		while (t != NULL && t->serial != o->serial)
			t = t->live_next;
		if (t == NULL || o->serial == serial) {
			*po = o->next;
			free(o);
		} else {
			po = &o->next;
		}
	}
	pthread_mutex_unlock(&live_mu);
	struct owned *o = malloc(sizeof *o);
	if (o != NULL) {
		o->serial = serial;
		o->r = r;
		o->next = head;
		head = o;
	}
	if (pthread_setspecific(exit_key, head) != 0)
		while (head != NULL) {
			o = head->next;
			free(head);
			head = o;
		}
}

/* Copies at most 47 bytes of s, cut before a partial UTF-8 sequence (the
 * JSON must stay valid), NUL-padded. */
_Static_assert(sizeof(((struct async_trace_frame *)0)->name) == ASYNC_TRACE_NAME_SIZE, "frame name size");

static void name_copy(char out[ASYNC_TRACE_NAME_SIZE], const char *s)
{
	size_t n = 0;
	if (s != NULL)
		while (n < ASYNC_TRACE_NAME_SIZE - 1 && s[n] != '\0')
			n++;
	/* Cut inside a character (s[n] continues it): end before its lead,
	 * which is at most 3 bytes back. Bytes that are not UTF-8 (a label in
	 * another encoding) have no lead there and are cut where they are. */
	if (s != NULL && ((unsigned char)s[n] & 0xC0) == 0x80) {
		size_t k = n;
		while (k > 0 && n - k < 3 && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
			k--;
		if (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0xC0)
			n = k - 1;
	}
	memset(out, 0, ASYNC_TRACE_NAME_SIZE);
	if (n > 0)
		memcpy(out, s, n);
}

static struct ring *ring_new(uint64_t cap, uint32_t track, uint64_t owner)
{
	struct ring *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->nslots = (size_t)cap + 1;
	r->ev = malloc(sizeof *r->ev * r->nslots);
	if (r->ev == NULL) {
		free(r);
		return NULL;
	}
	r->track = track;
	r->owner = owner;
	return r;
}

static void ring_free(struct ring *r)
{
	if (r != NULL)
		free(r->ev);
	free(r);
}

/* The owner's append (R1). */
static void ring_put(struct ring *r, uint64_t begin, uint64_t end, uint32_t kind, uint32_t other,
                     const char name[ASYNC_TRACE_NAME_SIZE])
{
	uint64_t h = ck_pr_load_64(&r->head);
	struct slot *s = &r->ev[r->pos];
	r->pos = r->pos + 1 == r->nslots ? 0 : r->pos + 1;
	uint64_t words[NAME_WORDS];
	if (name != NULL)
		memcpy(words, name, sizeof words);
	else
		memset(words, 0, sizeof words);
	ck_pr_fence_store(); /* R1: after the previous head store */
	ck_pr_store_64(&s->begin, begin);
	ck_pr_store_64(&s->end, end);
	ck_pr_store_64(&s->meta, (uint64_t)kind | (uint64_t)other << 8);
	for (int i = 0; i < NAME_WORDS; i++)
		ck_pr_store_64(&s->name[i], words[i]);
	ck_pr_fence_store(); /* R1: before head */
	ck_pr_store_64(&r->head, h + 1);
}

/* The calling worker's ring, made at its first event. The pool's trace and
 * its cap were published before tracing read 1 (the release in start). */
static struct ring *worker_ring(async_pool *p, struct worker *w)
{
	struct async_trace *t = ck_pr_load_ptr(&p->trace);
	struct ring *r = ck_pr_load_ptr(&t->wr[w->index]);
	if (r != NULL)
		return r;
	r = ring_new(ck_pr_load_64(&t->cap), w->index, 0);
	if (r == NULL)
		return NULL; /* out of memory: this event is lost */
	if (!ck_pr_cas_ptr(&t->wr[w->index], NULL, r)) {
		ring_free(r); /* only start replaces a worker's ring, and with NULL */
		r = ck_pr_load_ptr(&t->wr[w->index]);
	}
	return r;
}

/* The calling outside thread's ring for p, made at its first record. */
static struct ring *outside_ring(async_pool *p)
{
	struct async_trace *t = ck_pr_load_ptr(&p->trace);
	uint32_t epoch = ck_pr_load_32(&t->epoch);
	unsigned slot = tl_out_next;
	uint64_t me = (uint64_t)(uintptr_t)&tl_token;
	for (unsigned i = 0; i < OUT_CACHE; i++)
		if (tl_out[i].r != NULL && tl_out[i].serial == p->serial) {
			/* Still this thread's: not freed by its exit (a record from
			 * a later thread-exit destructor takes one again). */
			if (tl_out[i].epoch == epoch && ck_pr_load_64(&tl_out[i].r->owner) == me)
				return tl_out[i].r;
			slot = i; /* this pool's, out of date: refreshed below */
			break;
		}
	pthread_mutex_lock(&t->mu);
	struct ring *r = t->outside;
	while (r != NULL && ck_pr_load_64(&r->owner) != me)
		r = r->next;
	if (r == NULL) {
		/* The ring of a thread that exited, or a new one. */
		r = t->outside;
		while (r != NULL && ck_pr_load_64(&r->owner) != 0)
			r = r->next;
		if (r != NULL) {
			ck_pr_fence_load(); /* acquire: pairs with thread_exit's release */
			ck_pr_store_64(&r->owner, me);
		} else {
			r = ring_new(t->cap, ASYNC_TRACE_OUTSIDE + t->noutside, me);
			if (r != NULL) {
				t->noutside++;
				r->next = t->outside;
				ck_pr_store_ptr(&t->outside, r);
			}
		}
		if (r != NULL)
			own(t->serial, r);
	}
	if (r != NULL) {
		if (slot == tl_out_next)
			tl_out_next = (tl_out_next + 1) % OUT_CACHE;
		tl_out[slot].serial = p->serial;
		tl_out[slot].epoch = t->epoch;
		tl_out[slot].r = r;
	}
	pthread_mutex_unlock(&t->mu);
	return r;
}

/* Worker slots [0, max_workers) are workers; helpers and shutdown's
 * pseudo-worker run on threads outside the pool, recorded on theirs. */
static struct ring *ring_of(async_pool *p, struct worker *w)
{
	if (w != NULL && w->index < p->max_workers)
		return worker_ring(p, w);
	return outside_ring(p);
}

void async__trace_run_job(struct worker *w, async_job *j)
{
	ck_pr_fence_load(); /* the trace after the flag: pairs with start's release */
	run_job_body(w, j, 1);
}

void async__trace_job_begin(struct worker *w, struct async_trace_frame *f)
{
	memset(f->name, 0, sizeof f->name);
	f->up = tl_job;
	f->w = w;
	f->recorded = 0;
	f->job = w->running; /* run_job_body's own, or the job a stolen task runs in */
	tl_job = f;
	f->begin = now_ns();
}

static void job_record(struct async_trace_frame *f)
{
	uint64_t end = now_ns();
	struct ring *r = ring_of(f->w->pool, f->w);
	if (r != NULL)
		ring_put(r, f->begin, end, ASYNC_TRACE_JOB, 0, f->name);
	f->recorded = 1;
}

void async__trace_task_begin(struct worker *w, struct async_trace_frame *f)
{
	ck_pr_fence_load(); /* the trace after the flag: pairs with start's release */
	async__trace_job_begin(w, f);
	name_copy(f->name, "task");
}

/* Before the job reads as done (run_job_body). A job that stopped the trace
 * itself still gets its event: it began while the trace was on. */
void async__trace_job_end(struct async_trace_frame *f)
{
	tl_job = f->up;
	if (!f->recorded)
		job_record(f);
}

/* Whether the calling thread runs the job of tl_job's event itself (or a
 * task inside it), not a job without an event (an untraced pool's) that
 * runs inside it: only that job names or ends the event. */
static struct async_trace_frame *own_frame(void)
{
	struct async_trace_frame *f = tl_job;
	struct worker *w = async__self;
	return f != NULL && w != NULL && w->running == f->job ? f : NULL;
}

void async_trace_job_done(void)
{
	struct async_trace_frame *f = own_frame();
	if (f != NULL && !f->recorded)
		job_record(f);
}

void async__trace_steal(struct worker *w, const struct worker *victim)
{
	ck_pr_fence_load();
	async_pool *p = w->pool;
	struct ring *r = ring_of(p, w);
	if (r == NULL)
		return;
	uint64_t t = now_ns();
	uint32_t vt = victim->index < p->max_workers ? victim->index : ASYNC_TRACE_OUTSIDE;
	char name[ASYNC_TRACE_NAME_SIZE];
	name_copy(name, "steal");
	ring_put(r, t, t, ASYNC_TRACE_STEAL, vt, name);
}

void async__trace_sleep(struct worker *w, uint64_t since)
{
	ck_pr_fence_load();
	struct ring *r = ring_of(w->pool, w);
	if (r == NULL)
		return;
	char name[ASYNC_TRACE_NAME_SIZE];
	name_copy(name, "sleep");
	ring_put(r, since, now_ns(), ASYNC_TRACE_SLEEP, 0, name);
}

/* Moves every ring to the retired list (mu held): threads that still hold
 * one finish their event in it harmlessly. */
static void retire_all(async_pool *p, struct async_trace *t)
{
	for (unsigned s = 0; s < p->max_workers; s++) {
		struct ring *r = ck_pr_fas_ptr(&t->wr[s], NULL);
		if (r != NULL) {
			r->next = t->retired;
			t->retired = r;
		}
	}
	struct ring *r = t->outside;
	while (r != NULL) {
		struct ring *next = r->next;
		r->next = t->retired;
		t->retired = r;
		r = next;
	}
	ck_pr_store_ptr(&t->outside, NULL);
	t->noutside = 0;
	ck_pr_store_32(&t->epoch, t->epoch + 1);
}

static struct async_trace *trace_get(async_pool *p)
{
	struct async_trace *t = ck_pr_load_ptr(&p->trace);
	if (t != NULL)
		return t;
	t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	t->wr = calloc(p->max_workers, sizeof *t->wr);
	if (t->wr == NULL) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->cap = ASYNC_TRACE_DEFAULT_EVENTS;
	t->serial = p->serial;
	/* Release: the trace is whole before another thread sees it. */
	ck_pr_fence_store();
	if (!ck_pr_cas_ptr(&p->trace, NULL, t)) {
		pthread_mutex_destroy(&t->mu);
		free(t->wr);
		free(t);
		return ck_pr_load_ptr(&p->trace);
	}
	pthread_mutex_lock(&live_mu);
	t->live_next = live;
	live = t;
	pthread_mutex_unlock(&live_mu);
	return t;
}

int async_pool_trace_start(async_pool *p, size_t events_per_thread)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	size_t cap = events_per_thread != 0 ? events_per_thread : ASYNC_TRACE_DEFAULT_EVENTS;
	if (cap > SIZE_MAX / sizeof(struct slot) - 1)
		return ASYNC_ENOMEM;
	struct async_trace *t = trace_get(p);
	if (t == NULL)
		return ASYNC_ENOMEM;
	pthread_mutex_lock(&t->mu);
	/* The rings of the workers there are, made now: a size that cannot be
	 * had is refused here (nothing records then), instead of each worker
	 * trying the allocation again at every event and recording nothing. */
	int change = cap != t->cap;
	unsigned hw = ck_pr_load_32(&p->high_water);
	struct ring *fresh = NULL;
	for (unsigned s = 0; s < hw && s < p->max_workers; s++) {
		if (!change && ck_pr_load_ptr(&t->wr[s]) != NULL)
			continue;
		struct ring *r = ring_new(cap, s, 0);
		if (r == NULL) {
			while (fresh != NULL) {
				struct ring *next = fresh->next;
				ring_free(fresh);
				fresh = next;
			}
			pthread_mutex_unlock(&t->mu);
			return ASYNC_ENOMEM;
		}
		r->next = fresh;
		fresh = r;
	}
	if (change) {
		retire_all(p, t);
		ck_pr_store_64(&t->cap, (uint64_t)cap);
	} else {
		for (unsigned s = 0; s < p->max_workers; s++) {
			struct ring *r = ck_pr_load_ptr(&t->wr[s]);
			if (r != NULL)
				r->floor = ck_pr_load_64(&r->head);
		}
		for (struct ring *r = t->outside; r != NULL; r = r->next)
			r->floor = ck_pr_load_64(&r->head);
	}
	/* A worker that made its own meanwhile keeps it. */
	while (fresh != NULL) {
		struct ring *r = fresh;
		fresh = r->next;
		r->next = NULL;
		if (!ck_pr_cas_ptr(&t->wr[r->track], NULL, r))
			ring_free(r);
	}
	/* Release: the rings and cap above before the flag (pairs with the
	 * load fences in the hooks). */
	ck_pr_fence_store();
	ck_pr_store_32(&p->tracing, 1);
	pthread_mutex_unlock(&t->mu);
	return 0;
}

int async_pool_trace_stop(async_pool *p)
{
	if (p == NULL)
		return ASYNC_EINVAL;
	ck_pr_store_32(&p->tracing, 0);
	return 0;
}

int async_pool_trace_on(const async_pool *p)
{
	return p != NULL && ck_pr_load_32((uint32_t *)&p->tracing) != 0;
}

void async_trace_label(const char *name)
{
	struct async_trace_frame *f = own_frame();
	if (f != NULL)
		name_copy(f->name, name);
}

uint64_t async_trace_now_ns(void)
{
	return now_ns();
}

int async_pool_trace_record(async_pool *p, const char *name, uint64_t begin_ns, uint64_t end_ns)
{
	if (p == NULL || end_ns < begin_ns)
		return ASYNC_EINVAL;
	if (!ck_pr_load_32(&p->tracing))
		return 0;
	ck_pr_fence_load(); /* pairs with start's release */
	struct ring *r = ring_of(p, self_in(p));
	if (r == NULL)
		return ASYNC_ENOMEM;
	char buf[ASYNC_TRACE_NAME_SIZE];
	name_copy(buf, name);
	ring_put(r, begin_ns, end_ns, ASYNC_TRACE_SPAN, 0, buf);
	return 0;
}

/* Copies ring r's kept events that ended at or after since into t->buf,
 * oldest first (R2, R3), and says how many were dropped. Returns the count
 * copied, or -1 when out of memory. */
static long ring_copy(struct async_trace *t, struct ring *r, uint64_t since, uint64_t *dropped)
{
	size_t cap = r->nslots - 1;
	if (t->bufn < cap) {
		struct slot *b = realloc(t->buf, sizeof *b * cap);
		if (b == NULL)
			return -1;
		t->buf = b;
		t->bufn = cap;
	}
	uint64_t h1 = ck_pr_load_64(&r->head);
	ck_pr_fence_load(); /* R2 */
	uint64_t lo = h1 > cap ? h1 - cap : 0;
	if (lo < r->floor)
		lo = r->floor;
	/* Newest first into the end of buf, so that since can stop the copy. */
	size_t n = 0;
	for (uint64_t i = h1; i > lo; i--) {
		const struct slot *s = &r->ev[(i - 1) % r->nslots];
		struct slot *d = &t->buf[cap - 1 - n];
		d->end = ck_pr_load_64((uint64_t *)&s->end);
		if (d->end < since)
			break;
		d->begin = ck_pr_load_64((uint64_t *)&s->begin);
		d->meta = ck_pr_load_64((uint64_t *)&s->meta);
		for (int k = 0; k < NAME_WORDS; k++)
			d->name[k] = ck_pr_load_64((uint64_t *)&s->name[k]);
		n++;
	}
	ck_pr_fence_load(); /* R3 */
	uint64_t h2 = ck_pr_load_64(&r->head);
	/* Event i is whole iff i + nslots > h2: drop the oldest copies that
	 * fail it (they are the first n - keep of the n). */
	uint64_t first = h1 - n; /* the index of the oldest copy */
	size_t keep = n;
	if (h2 >= r->nslots && first + r->nslots <= h2) {
		uint64_t bad = h2 - r->nslots + 1 - first;
		keep = bad >= n ? 0 : n - (size_t)bad;
	}
	/* Dropped: overwritten before the copy (below lo) or during it. */
	*dropped = (lo - r->floor) + (n - keep);
	memmove(t->buf, t->buf + cap - keep, sizeof *t->buf * keep);
	return (long)keep;
}

static int visit_ring(struct async_trace *t, struct ring *r, uint64_t since, async_trace_visit_fn fn, void *ud)
{
	uint64_t dropped = 0;
	long n = ring_copy(t, r, since, &dropped);
	if (n < 0)
		return ASYNC_ENOMEM;
	async_trace_event ev;
	for (long i = 0; i < n; i++) {
		const struct slot *s = &t->buf[i];
		ev.begin_ns = s->begin;
		ev.end_ns = s->end;
		ev.dropped = dropped;
		ev.track = r->track;
		ev.kind = (uint32_t)(s->meta & 0xff);
		ev.other = (uint32_t)(s->meta >> 8);
		memcpy(ev.name, s->name, sizeof ev.name);
		ev.name[ASYNC_TRACE_NAME_SIZE - 1] = '\0';
		int rc = fn(ud, &ev);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int async_pool_trace_collect_since(async_pool *p, uint64_t since_ns, async_trace_visit_fn fn, void *ud)
{
	if (p == NULL || fn == NULL)
		return ASYNC_EINVAL;
	struct async_trace *t = ck_pr_load_ptr(&p->trace);
	if (t == NULL)
		return 0;
	ck_pr_fence_load();
	int rc = 0;
	pthread_mutex_lock(&t->mu);
	for (unsigned s = 0; s < p->max_workers && rc == 0; s++) {
		struct ring *r = ck_pr_load_ptr(&t->wr[s]);
		if (r != NULL)
			rc = visit_ring(t, r, since_ns, fn, ud);
	}
	/* Outside threads in the order they first recorded. */
	for (unsigned k = 0; k < t->noutside && rc == 0; k++)
		for (struct ring *r = t->outside; r != NULL; r = r->next)
			if (r->track == ASYNC_TRACE_OUTSIDE + k) {
				rc = visit_ring(t, r, since_ns, fn, ud);
				break;
			}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int async_pool_trace_collect(async_pool *p, async_trace_visit_fn fn, void *ud)
{
	return async_pool_trace_collect_since(p, 0, fn, ud);
}

/* ---- the Chrome trace event writer -------------------------------------- */

struct writer {
	FILE *f;
	int first;
};

static void put_sep(struct writer *wr)
{
	fputs(wr->first ? "\n" : ",\n", wr->f);
	wr->first = 0;
}

/* The length of the well-formed UTF-8 sequence at s, or 0. */
static int utf8_len(const unsigned char *s)
{
	int n = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
	for (int i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	/* Overlong, surrogate and past-U+10FFFF forms. */
	if ((n == 3 && s[0] == 0xE0 && s[1] < 0xA0) || (n == 3 && s[0] == 0xED && s[1] >= 0xA0) ||
	    (n == 4 && s[0] == 0xF0 && s[1] < 0x90) || (n == 4 && s[0] == 0xF4 && s[1] >= 0x90))
		return 0;
	return n;
}

/* A JSON string: quotes, backslashes and control bytes escaped, bytes that
 * are not UTF-8 (a label in another encoding) as U+FFFD, so that a strict
 * reader accepts the file. */
static void put_str(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', f);
	while (*s != '\0') {
		unsigned char c = *s;
		if (c == '"' || c == '\\') {
			fprintf(f, "\\%c", c);
			s++;
		} else if (c < 0x20) {
			fprintf(f, "\\u%04x", c);
			s++;
		} else if (c < 0x80) {
			fputc(c, f);
			s++;
		} else {
			int n = utf8_len(s);
			if (n == 0) {
				fputs("\\ufffd", f);
				s++;
			} else {
				fwrite(s, 1, (size_t)n, f);
				s += n;
			}
		}
	}
	fputc('"', f);
}

/* Microseconds with three decimals, exactly (a double would round). */
static void put_us(FILE *f, uint64_t ns)
{
	fprintf(f, "%" PRIu64 ".%03u", ns / 1000u, (unsigned)(ns % 1000u));
}

static const char *const kind_cat[] = { "job", "steal", "sleep", "span" };

static int write_event(void *ud, const async_trace_event *ev)
{
	struct writer *wr = ud;
	FILE *f = wr->f;
	put_sep(wr);
	const char *name = ev->name[0] != '\0' ? ev->name : "job";
	fputs("{\"name\":", f);
	put_str(f, name);
	fprintf(f, ",\"cat\":\"%s\",\"pid\":1,\"tid\":%" PRIu32 ",\"ts\":",
	        ev->kind < 4 ? kind_cat[ev->kind] : "other", ev->track);
	put_us(f, ev->begin_ns);
	if (ev->kind == ASYNC_TRACE_STEAL) {
		fprintf(f, ",\"ph\":\"i\",\"s\":\"t\",\"args\":{\"victim\":%" PRIu32 "}}", ev->other);
	} else {
		fputs(",\"ph\":\"X\",\"dur\":", f);
		put_us(f, ev->end_ns - ev->begin_ns);
		fputc('}', f);
	}
	return 0;
}

static void put_thread_name(struct writer *wr, uint32_t tid, const char *name)
{
	put_sep(wr);
	fprintf(wr->f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%" PRIu32 ",\"args\":{\"name\":", tid);
	put_str(wr->f, name);
	fprintf(wr->f, "}}");
	put_sep(wr);
	/* Workers first, outside threads after them, in track order. */
	fprintf(wr->f, "{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":%" PRIu32
	        ",\"args\":{\"sort_index\":%" PRIu32 "}}", tid, tid);
}

/* Per-track drop counts, gathered while writing, for the metadata. */
struct drops {
	struct writer *wr;
	uint32_t last;
	int any;
};

static int write_and_count(void *ud, const async_trace_event *ev)
{
	struct drops *d = ud;
	if (ev->dropped != 0 && (!d->any || d->last != ev->track)) {
		/* An instant at the track's oldest kept event: how many older
		 * ones the ring overwrote. */
		put_sep(d->wr);
		fprintf(d->wr->f, "{\"name\":\"dropped\",\"cat\":\"trace\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":%" PRIu32 ",\"ts\":", ev->track);
		put_us(d->wr->f, ev->begin_ns);
		fprintf(d->wr->f, ",\"args\":{\"events\":%" PRIu64 "}}", ev->dropped);
	}
	d->last = ev->track;
	d->any = 1;
	return write_event(d->wr, ev);
}

int async_pool_trace_write(async_pool *p, const char *path)
{
	if (p == NULL || path == NULL)
		return ASYNC_EINVAL;
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return ASYNC_EIO;
	struct writer wr = { f, 1 };
	fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[", f);
	put_sep(&wr);
	fputs("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{\"name\":\"async\"}}", f);
	unsigned hw = ck_pr_load_32(&p->high_water);
	char name[32];
	for (unsigned s = 0; s < hw && s < p->max_workers; s++) {
		snprintf(name, sizeof name, "%s%u", p->prefix, s);
		put_thread_name(&wr, s, name);
	}
	struct async_trace *t = ck_pr_load_ptr(&p->trace);
	if (t != NULL) {
		pthread_mutex_lock(&t->mu);
		unsigned nout = t->noutside;
		pthread_mutex_unlock(&t->mu);
		for (unsigned k = 0; k < nout; k++) {
			if (k == 0)
				snprintf(name, sizeof name, "game");
			else
				snprintf(name, sizeof name, "game%u", k);
			put_thread_name(&wr, ASYNC_TRACE_OUTSIDE + k, name);
		}
	}
	struct drops d = { &wr, 0, 0 };
	int rc = async_pool_trace_collect(p, write_and_count, &d);
	fputs("\n]}\n", f);
	if (ferror(f) && rc == 0)
		rc = ASYNC_EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = ASYNC_EIO;
	return rc < 0 ? rc : 0;
}

void async__trace_free(async_pool *p)
{
	struct async_trace *t = p->trace;
	if (t == NULL)
		return;
	/* Off the live list first: an exiting thread no longer touches its rings. */
	pthread_mutex_lock(&live_mu);
	for (struct async_trace **pt = &live; *pt != NULL; pt = &(*pt)->live_next)
		if (*pt == t) {
			*pt = t->live_next;
			break;
		}
	pthread_mutex_unlock(&live_mu);
	for (unsigned s = 0; s < p->max_workers; s++)
		ring_free(t->wr[s]);
	for (struct ring *r = t->outside, *next; r != NULL; r = next) {
		next = r->next;
		ring_free(r);
	}
	for (struct ring *r = t->retired, *next; r != NULL; r = next) {
		next = r->next;
		ring_free(r);
	}
	pthread_mutex_destroy(&t->mu);
	free(t->wr);
	free(t->buf);
	free(t);
	p->trace = NULL;
}
