/* SPDX-License-Identifier: MIT (see LICENSE) */
/* profile.c: what a game reads to find the costly definition and the bad
 * frame: per-definition figures (stats().defs), gathered when a call is
 * delivered from the times its record carries, and the Lua face of the
 * core's trace (async/trace.h): start, stop, the game's own spans, the
 * Chrome JSON file and the recent events as Lua tables. Main thread. */
#include "internal.h"

#include "async/trace.h"

/* The figures of every definition ever defined under `name` in this pool:
 * a redefinition keeps adding to them. */
struct defstat *defstat_for(struct ctx *ctx, const char *name)
{
	for (struct defstat *s = ctx->defstats; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	struct defstat *s = calloc(1, sizeof *s);
	if (s == NULL || (s->name = strdup(name)) == NULL) {
		free(s);
		return NULL; /* no figures for it: never a failed define */
	}
	s->every = 1;
	s->next = ctx->defstats;
	ctx->defstats = s;
	return s;
}

/* The run time above which every call is timed (200 times the cost of
 * timing one), and the most calls one timed call stands for. */
#define TIMED_BUDGET_S 20e-6
#define TIMED_EVERY_MAX 64

void profile_free(struct ctx *ctx)
{
	while (ctx->defstats != NULL) {
		struct defstat *s = ctx->defstats;
		ctx->defstats = s->next;
		free(s->name);
		free(s);
	}
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

/* Fills t.defs[name] for every definition (reusing the tables already
 * there, as stats() does its worker tables). The window's mean and p99 are
 * worked out again only when runs were added since the last time. */
void profile_push_defs(lua_State *L, struct ctx *ctx, int t)
{
	lua_getfield(L, t, "defs");
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, t, "defs");
	}
	int defs = lua_gettop(L);
	for (struct defstat *s = ctx->defstats; s != NULL; s = s->next) {
		if (s->summed != s->runs) {
			mean_p99(s->run, s->n, &s->run_mean, &s->run_p99);
			mean_p99(s->wait, s->n, &s->wait_mean, &s->wait_p99);
			s->summed = s->runs;
		}
		lua_getfield(L, defs, s->name);
		if (!lua_istable(L, -1)) {
			lua_pop(L, 1);
			lua_createtable(L, 0, 12);
			lua_pushvalue(L, -1);
			lua_setfield(L, defs, s->name);
		}
		int d = lua_gettop(L);
		set_field(L, d, "calls", (lua_Number)s->calls);
		set_field(L, d, "failures", (lua_Number)s->failures);
		set_field(L, d, "cancels", (lua_Number)s->cancels);
		set_field(L, d, "runs", (lua_Number)s->runs);
		set_field(L, d, "runTotal", s->run_total);
		set_field(L, d, "runMean", s->run_mean);
		set_field(L, d, "runP99", s->run_p99);
		set_field(L, d, "waitMean", s->wait_mean);
		set_field(L, d, "waitP99", s->wait_p99);
		set_field(L, d, "window", (lua_Number)s->n);
		set_field(L, d, "bytesIn", (lua_Number)s->bytes_in);
		set_field(L, d, "bytesOut", (lua_Number)s->bytes_out);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
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

/* ctx:traceStart(eventsPerThread) -> true, or nil, message */
int l_trace_start(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	lua_Number n = luaL_optnumber(L, 2, 0);
	if (!(n >= 0) || n > 1e9)
		return luaL_error(L, MSG(TRACE_EVENTS), lua_tostring(L, 2));
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

/* ctx:traceWrite(path) -> true, or nil, message */
int l_trace_write(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	const char *path = luaL_checkstring(L, 2);
	int rc = async_pool_trace_write(ctx->pool, path);
	if (rc == 0) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pushnil(L);
	lua_pushfstring(L, MSG(TRACE_WRITE), path, async_strerror(rc));
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
