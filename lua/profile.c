/* SPDX-License-Identifier: MIT (see LICENSE) */
/* profile.c: what a game reads to find the costly definition and the bad
 * frame: per-definition figures (stats().defs), gathered when a call is
 * delivered from the times its record carries, and the Lua face of the
 * core's trace (async/trace.h): start, stop, the game's own spans, the
 * Chrome JSON file and the recent events as Lua tables. Main thread. */
#include "internal.h"

#include "async/trace.h"

#include <errno.h>
#ifndef _WIN32 /* portability: sysconf's memory size (ring_fits) */
#include <unistd.h>
#endif

/* The figures of the names defined now, found by name in O(1): a game
 * that defines one-off names (a job per request, undefined when done)
 * would otherwise pay a search of every name it ever used at each define,
 * and keep all their figures. */
struct defstats {
	struct defstat **bucket;
	uint32_t mask;   /* buckets - 1, a power of two less one */
	uint32_t n;      /* listed */
	struct defstat *head; /* the listed ones, newest first */
	uint64_t gen;    /* bumped when the list changes (profile_fill_defs) */
};

static uint32_t name_hash(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static struct defstat **bucket_of(struct defstats *t, const char *name, uint32_t h)
{
	struct defstat **b = &t->bucket[h & t->mask];
	while (*b != NULL && ((*b)->hash != h || strcmp((*b)->name, name) != 0))
		b = &(*b)->hnext;
	return b;
}

/* Doubles the buckets when the names outnumber them; on failure keeps the
 * chains longer (still correct). */
static void grow(struct defstats *t)
{
	uint32_t cap = (t->mask + 1) * 2;
	struct defstat **nb = calloc(cap, sizeof *nb);
	if (nb == NULL)
		return;
	for (uint32_t i = 0; i <= t->mask; i++)
		for (struct defstat *s = t->bucket[i], *next; s != NULL; s = next) {
			next = s->hnext;
			s->hnext = nb[s->hash & (cap - 1)];
			nb[s->hash & (cap - 1)] = s;
		}
	free(t->bucket);
	t->bucket = nb;
	t->mask = cap - 1;
}

void defstat_unref(struct defstat *s)
{
	if (s == NULL || --s->refs > 0)
		return;
	free(s->name);
	free(s);
}

/* Takes s out of the list (its figures live on while a def points at it). */
static void unlist(struct defstats *t, struct defstat *s)
{
	*bucket_of(t, s->name, s->hash) = s->hnext;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		t->head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->hnext = s->prev = s->next = NULL;
	s->listed = 0;
	t->n--;
	t->gen++;
	defstat_unref(s);
}

/* The figures of `name` for a new definition of it, with a reference the
 * definition holds (defstat_unref when it is freed): a redefinition keeps
 * adding to its name's figures. NULL when out of memory: no figures for
 * it, never a failed define. */
struct defstat *defstat_for(struct ctx *ctx, const char *name)
{
	struct defstats *t = ctx->defstats;
	if (t == NULL) {
		if ((t = calloc(1, sizeof *t)) == NULL || (t->bucket = calloc(16, sizeof *t->bucket)) == NULL) {
			free(t);
			return NULL;
		}
		t->mask = 15;
		ctx->defstats = t;
	}
	uint32_t h = name_hash(name);
	struct defstat **b = bucket_of(t, name, h);
	struct defstat *s = *b;
	if (s == NULL) {
		if ((s = calloc(1, sizeof *s)) == NULL || (s->name = strdup(name)) == NULL) {
			free(s);
			return NULL;
		}
		s->hash = h;
		s->rng = h | 1; /* xorshift32 needs a seed other than 0 */
		s->every = 1;
		s->refs = 1; /* the list's */
		s->listed = 1;
		*b = s;
		s->next = t->head;
		if (t->head != NULL)
			t->head->prev = s;
		t->head = s;
		t->gen++;
		if (++t->n > t->mask + 1)
			grow(t);
	}
	s->refs++;
	return s;
}

/* `name` was undefined: its figures leave stats().defs (a later define of
 * it starts from zero); calls of it still in flight deliver into them
 * unlisted. */
void profile_undefined(struct ctx *ctx, const char *name)
{
	struct defstats *t = ctx->defstats;
	if (t == NULL)
		return;
	struct defstat *s = *bucket_of(t, name, name_hash(name));
	if (s != NULL)
		unlist(t, s);
}

/* The run time above which every call is timed (200 times the cost of
 * timing one), and the most calls one timed call stands for. */
#define TIMED_BUDGET_S 20e-6
#define TIMED_EVERY_MAX 64

/* The pool is gone: the list goes; figures a def still points at are freed
 * with their last def. */
void profile_free(struct ctx *ctx)
{
	struct defstats *t = ctx->defstats;
	if (t == NULL)
		return;
	while (t->head != NULL)
		unlist(t, t->head);
	free(t->bucket);
	free(t);
	ctx->defstats = NULL;
}

/* c is being delivered: its outcome, sizes and, if it was timed and ran,
 * its times go to its definition's figures. */
void profile_delivered(struct ctx *ctx, struct call *c)
{
	(void)ctx;
	struct defstat *s = c->def != NULL ? c->def->st : NULL;
	if (s == NULL)
		return;
	s->calls++;
	size_t in = c->args.n;
	for (int i = 0; i < c->nxs; i++)
		in += c->xs[i].n;
	s->bytes_in += in;
	s->bytes_out += c->res.n; /* 0 for a call that never ran */
	if (c->cancelled || c->superseded)
		s->cancels++;
	else if (c->failed)
		s->failures++;
	if (c->t_start == 0)
		return;
	double run = (double)(c->t_end - c->t_start) * 1e-9;
	double wait = c->t_start > c->t_call ? (double)(c->t_start - c->t_call) * 1e-9 : 0;
	s->run_total += run * c->weight;
	s->run_avg = s->runs == 0 ? run : s->run_avg + (run - s->run_avg) / 8;
	/* A timed call's clock reads and bookkeeping take ~0.1 µs: timing one
	 * call in `every` keeps that under 0.5 % of the definition's run time. */
	double every = ceil(TIMED_BUDGET_S / (s->run_avg > 1e-9 ? s->run_avg : 1e-9));
	s->every = every < 1 ? 1 : every > TIMED_EVERY_MAX ? TIMED_EVERY_MAX : (uint32_t)every;
	s->below = (uint32_t)(4294967295.0 / s->every);
	s->run[s->at] = (float)run;
	s->wait[s->at] = (float)wait;
	s->at = (s->at + 1) % DEFSTAT_WINDOW;
	if (s->n < DEFSTAT_WINDOW)
		s->n++;
	s->runs++;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* Mean and 99th percentile (the value 99 % of the window is at or below)
 * of v[0..n-1]. */
static void mean_p99(const float *v, unsigned n, double *mean, double *p99)
{
	float sorted[DEFSTAT_WINDOW];
	double sum = 0;
	for (unsigned i = 0; i < n; i++) {
		sorted[i] = v[i];
		sum += v[i];
	}
	if (n == 0) {
		*mean = *p99 = 0;
		return;
	}
	qsort(sorted, n, sizeof *sorted, cmp_float);
	unsigned k = (unsigned)ceil(0.99 * n);
	*mean = sum / n;
	*p99 = sorted[k > 0 ? k - 1 : 0];
}

static void set_field(lua_State *L, int t, const char *k, lua_Number v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, t, k);
}

static const char *const DEF_FIELDS[] = { "calls", "failures", "cancels", "runs", "runTotal", "runMean",
	                                  "runP99", "waitMean", "waitP99", "window", "bytesIn", "bytesOut" };
#define NDEF_FIELDS (sizeof DEF_FIELDS / sizeof *DEF_FIELDS)

/* ctx:statsDefs(defs): fills defs[name] for every name defined now,
 * reusing the tables already there, and removes the names undefined since.
 * The window's mean and p99 are worked out again only when runs were added
 * since the last time. Works on a pool shut down (the figures it had). */
int l_stats_defs(lua_State *L)
{
	struct ctx *ctx = ctx_of(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	struct defstats *t = ctx->defstats;
	lua_pushnil(L);
	while (lua_next(L, 2)) {
		lua_pop(L, 1);
		const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		if (t == NULL || k == NULL || *bucket_of(t, k, name_hash(k)) == NULL) {
			lua_pushvalue(L, -1);
			lua_pushnil(L);
			lua_rawset(L, 2); /* clearing a field while traversing is allowed */
		}
	}
	for (struct defstat *s = t != NULL ? t->head : NULL; s != NULL; s = s->next) {
		if (s->summed != s->runs) {
			mean_p99(s->run, s->n, &s->run_mean, &s->run_p99);
			mean_p99(s->wait, s->n, &s->wait_mean, &s->wait_p99);
			s->summed = s->runs;
		}
		/* Read before any allocation: one may run a finalizer that
		 * defines or undefines (and frees s). */
		const lua_Number v[NDEF_FIELDS] = { (lua_Number)s->calls, (lua_Number)s->failures,
			(lua_Number)s->cancels, (lua_Number)s->runs, s->run_total, s->run_mean, s->run_p99,
			s->wait_mean, s->wait_p99, (lua_Number)s->n, (lua_Number)s->bytes_in, (lua_Number)s->bytes_out };
		uint64_t gen = t->gen;
		lua_pushstring(L, s->name);
		lua_pushvalue(L, -1);
		lua_rawget(L, 2);
		if (!lua_istable(L, -1)) {
			lua_pop(L, 1);
			lua_createtable(L, 0, (int)NDEF_FIELDS);
			lua_pushvalue(L, -2);
			lua_pushvalue(L, -2);
			lua_rawset(L, 2);
		}
		int d = lua_gettop(L);
		for (size_t i = 0; i < NDEF_FIELDS; i++)
			set_field(L, d, DEF_FIELDS[i], v[i]);
		lua_settop(L, 2);
		if (t->gen != gen)
			break; /* the names changed meanwhile: s and its successor may be gone */
	}
	return 0;
}

/* ---- the trace ------------------------------------------------------------ */

/* Operational failures of the trace calls: nil, message. */
static int trace_result(lua_State *L, int rc, const char *what)
{
	if (rc == 0) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", what, async_strerror(rc));
	return 2;
}

/* Whether a ring of n events per thread could be held at all: one larger
 * than the machine's memory is refused here, whatever the allocator would
 * promise (the core refuses what it cannot allocate). */
static int ring_fits(lua_Number n)
{
#ifdef _SC_PHYS_PAGES
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	if (pages > 0 && size > 0)
		return n * (lua_Number)sizeof(async_trace_event) <= (lua_Number)pages * (lua_Number)size;
#endif
	(void)n;
	return 1;
}

/* ctx:traceStart(eventsPerThread) -> true, or nil, message */
int l_trace_start(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	lua_Number n = luaL_optnumber(L, 2, 0);
	if (!(n >= 0) || n > 1e9)
		return luaL_error(L, MSG(TRACE_EVENTS), lua_tostring(L, 2));
	if (!ring_fits(n))
		return trace_result(L, ASYNC_ENOMEM, "async.startTrace");
	return trace_result(L, async_pool_trace_start(ctx->pool, (size_t)n), "async.startTrace");
}

/* ctx:traceStop() -> true */
int l_trace_stop(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	return trace_result(L, async_pool_trace_stop(ctx->pool), "async.stopTrace");
}

/* ctx:traceOn() -> whether the pool records */
int l_trace_on(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	lua_pushboolean(L, async_pool_trace_on(ctx->pool));
	return 1;
}

static uint64_t to_ns(lua_Number s)
{
	return s > 0 ? (uint64_t)(s * 1e9 + 0.5) : 0;
}

/* ctx:traceRecord(name, t0, t1): a span of the game's thread, in seconds
 * of native.now()'s clock. */
int l_trace_record(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	const char *name = luaL_checkstring(L, 2);
	uint64_t t0 = to_ns(luaL_checknumber(L, 3)), t1 = to_ns(luaL_checknumber(L, 4));
	async_pool_trace_record(ctx->pool, name, t0, t1 < t0 ? t0 : t1);
	return 0;
}

/* ctx:traceWrite(path) -> true, or nil, message: the OS's reason when
 * the file could not be opened or written (the core returns at once on a
 * failed fopen, and its last failing stdio call set errno otherwise). */
int l_trace_write(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	const char *path = luaL_checkstring(L, 2);
	errno = 0;
	int rc = async_pool_trace_write(ctx->pool, path);
	int err = errno;
	if (rc == 0) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pushnil(L);
	lua_pushfstring(L, MSG(TRACE_WRITE), path, rc == ASYNC_EIO && err != 0 ? strerror(err) : async_strerror(rc));
	return 2;
}

/* What collect copies out before any Lua allocation (which may run a
 * finalizer that shuts the pool down): the events, grown as needed. */
struct gather {
	async_trace_event *ev;
	size_t n, cap;
	int oom;
};

static int gather_one(void *ud, const async_trace_event *ev)
{
	struct gather *g = ud;
	if (ev->kind != ASYNC_TRACE_JOB && ev->kind != ASYNC_TRACE_SPAN)
		return 0;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 256;
		async_trace_event *p = realloc(g->ev, cap * sizeof *p);
		if (p == NULL) {
			g->oom = 1;
			return 1;
		}
		g->ev = p;
		g->cap = cap;
	}
	g->ev[g->n++] = *ev;
	return 0;
}

/* The list at t[key] (made if missing) pushed. */
static int push_list(lua_State *L, int t, int key)
{
	lua_rawgeti(L, t, key);
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_rawseti(L, t, key);
	}
	return lua_gettop(L);
}

/* ctx:traceCollect(since, offset) -> { workers = { [1] = { {name, t0, t1},
 * ... }, ... }, game = { ... } }: the jobs and the game's spans that ended
 * at or after `since` (seconds of native.now()'s clock), oldest first,
 * times plus `offset` (the game's clock, when it is another). Workers are
 * 1-based by index; every worker up to the highest with an event has a
 * list. */
int l_trace_collect(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	lua_Number since = luaL_optnumber(L, 2, 0);
	lua_Number offset = luaL_optnumber(L, 3, 0);
	struct gather g = { NULL, 0, 0, 0 };
	async_pool_trace_collect_since(ctx->pool, to_ns(since), gather_one, &g);
	if (g.oom) {
		free(g.ev);
		return luaL_error(L, MSG(OUT_OF_MEMORY), "async.timeline");
	}
	int nworkers = async_pool_worker_count(ctx->pool);
	lua_settop(L, 1);
	lua_createtable(L, 0, 3);
	int t = 2;
	lua_createtable(L, nworkers, 0);
	lua_pushvalue(L, -1);
	lua_setfield(L, t, "workers");
	int workers = 3;
	for (int i = 1; i <= nworkers; i++) {
		lua_newtable(L);
		lua_rawseti(L, workers, i);
	}
	lua_newtable(L);
	lua_pushvalue(L, -1);
	lua_setfield(L, t, "game");
	int game = 4;
	for (size_t i = 0; i < g.n; i++) {
		const async_trace_event *ev = &g.ev[i];
		int list = ev->track >= ASYNC_TRACE_OUTSIDE ? (lua_pushvalue(L, game), lua_gettop(L))
		                                            : push_list(L, workers, (int)ev->track + 1);
		lua_createtable(L, 0, 3);
		lua_pushstring(L, ev->name[0] != '\0' ? ev->name : "job");
		lua_setfield(L, -2, "name");
		lua_pushnumber(L, (lua_Number)ev->begin_ns * 1e-9 + offset);
		lua_setfield(L, -2, "t0");
		lua_pushnumber(L, (lua_Number)ev->end_ns * 1e-9 + offset);
		lua_setfield(L, -2, "t1");
		lua_rawseti(L, list, (int)lua_objlen(L, list) + 1);
		lua_pop(L, 1);
	}
	free(g.ev);
	lua_settop(L, t);
	return 1;
}

static double api_now(void)
{
	return (double)async_trace_now_ns() * 1e-9;
}

/* native.now() -> seconds on the trace's clock (monotonic) */
int l_now(lua_State *L)
{
	lua_pushnumber(L, api_now());
	return 1;
}

static void api_record(struct ctx *ctx, const char *name, double t0, double t1)
{
	if (ctx->closed || ctx->pool == NULL)
		return;
	uint64_t b = to_ns(t0), e = to_ns(t1);
	async_pool_trace_record(ctx->pool, name, b, e < b ? b : e);
}

/* What async_profile.lua calls through the FFI while a trace records, so
 * that the JIT compiles the timed call (a Lua C function would end its
 * trace): its ffi.cdef says the same. */
struct async_trace_api {
	double (*now)(void);
	void (*record)(struct ctx *, const char *, double, double);
};
static const struct async_trace_api trace_api = { api_now, api_record };

/* ctx:traceApi() -> lightuserdata context, lightuserdata struct async_trace_api */
int l_trace_api(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	lua_pushlightuserdata(L, ctx);
	lua_pushlightuserdata(L, (void *)&trace_api);
	return 2;
}
