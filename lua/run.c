/* SPDX-License-Identifier: MIT (see LICENSE) */
/* run.c: running a job on a worker: the snapshot's shared values and
 * init function brought up to date, the compiled definition (cached per
 * worker), a fresh environment per call, and the results or the failure
 * encoded back. Also the core job that runs a game's call. */
#include "internal.h"
#include "probes.h" /* the core's static probes: sdt_async:lua_job_start/end */

static int traceback_handler(lua_State *L)
{
	lua_createtable(L, 2, 0);
	lua_pushvalue(L, 1);
	lua_rawseti(L, -2, 1);
	luaL_traceback(L, L, NULL, 1);
	lua_rawseti(L, -2, 2);
	return 1;
}

/* Writes a failure (message, traceback) into res; with no Lua state, the
 * message alone. */
void fail_res(struct async_buf *res, int *failed, lua_State *L, const char *msg, const char *tb)
{
	*failed = 1;
	if (L == NULL) {
		async_codec_encode_message(res, msg);
		return;
	}
	/* A stack filled by the job's results has no room left: the message
	 * is then encoded without the stack (and without the traceback). */
	if (!lua_checkstack(L, 4)) {
		async_codec_encode_message(res, msg);
		return;
	}
	int top = lua_gettop(L);
	lua_pushstring(L, msg);
	lua_pushstring(L, tb ? tb : "");
	char err[160];
	if (async_codec_encode(L, top + 1, top + 2, res, "error", NULL, err, sizeof err) != 0)
		async_codec_encode_message(res, msg);
	lua_settop(L, top);
}

/* Pushes the compiled function of d (cached per worker by definition id). */
static int push_compiled(struct wstate *ws, struct def *d, char *err, size_t errlen)
{
	lua_State *L = ws->L;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ws->cache);
	lua_pushnumber(L, (lua_Number)d->id);
	lua_rawget(L, -2);
	if (!lua_isnil(L, -1)) {
		lua_remove(L, -2);
		return 0;
	}
	lua_pop(L, 1);
	if (luaL_loadbuffer(L, (const char *)d->code.p, d->code.n, d->name) != 0) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1));
		lua_pop(L, 2);
		return -1;
	}
	if (d->nupvals > 0) {
		int fn = lua_gettop(L);
		int n = async_codec_decode(L, d->upvals.p, d->upvals.n, NULL, err, errlen);
		if (n < 0) {
			lua_pop(L, 2);
			return -1;
		}
		for (int i = n; i >= 1; i--) {
			if (d->is_async != NULL && d->is_async[i - 1]) {
				lua_pop(L, 1);
				lua_rawgeti(L, LUA_REGISTRYINDEX, ws->api);
			}
			lua_setupvalue(L, fn, i); /* pops the top value: upvalue i */
		}
	}
	lua_pushnumber(L, (lua_Number)d->id);
	lua_pushvalue(L, -2);
	lua_rawset(L, -4);
	lua_remove(L, -2);
	return 0;
}

/* Brings this worker's view of the shared values and its init function up
 * to snapshot sn. Decodes only values whose version moved. */
static int apply_snapshot(struct wstate *ws, struct snap *sn, char *err, size_t errlen)
{
	lua_State *L = ws->L;
	int top = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ws->api);
	lua_getfield(L, -1, "shared");
	int shared = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ws->shareids);
	int ids = lua_gettop(L);
	for (int i = 0; i < sn->nshares; i++) {
		struct share *sh = sn->shares[i];
		lua_getfield(L, ids, sh->name);
		int same = lua_isnumber(L, -1) && (uint64_t)lua_tonumber(L, -1) == sh->id;
		lua_pop(L, 1);
		if (same)
			continue;
		if (async_codec_decode(L, sh->val.p, sh->val.n, NULL, err, errlen) != 1) {
			lua_settop(L, top);
			return -1;
		}
		lua_setfield(L, shared, sh->name);
		lua_pushnumber(L, (lua_Number)sh->id);
		lua_setfield(L, ids, sh->name);
	}
	/* Values no longer shared (clearing fields during lua_next is allowed). */
	lua_pushnil(L);
	while (lua_next(L, ids)) {
		lua_pop(L, 1);
		if (!snap_has_share(sn, lua_tostring(L, -1))) {
			lua_pushvalue(L, -1);
			lua_pushnil(L);
			lua_rawset(L, ids);
			lua_pushvalue(L, -1);
			lua_pushnil(L);
			lua_rawset(L, shared);
		}
	}
	if (sn->init != NULL && sn->init->id != ws->init_id) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, ws->handler);
		int msgh = lua_gettop(L);
		if (push_compiled(ws, sn->init, err, errlen) != 0) {
			lua_settop(L, top);
			return -1;
		}
		lua_rawgeti(L, LUA_REGISTRYINDEX, ws->api);
		lua_getfield(L, -1, "state");
		lua_remove(L, -2);
		lua_pushinteger(L, (lua_Integer)ws->index);
		if (lua_pcall(L, 2, 0, msgh) != 0) {
			const char *m = "error";
			if (lua_istable(L, -1)) {
				lua_rawgeti(L, -1, 1);
				m = lua_tostring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1);
			}
			snprintf(err, errlen, MSG(INIT_FAILED), m);
			lua_settop(L, top);
			return -1; /* retried before the next job */
		}
		ws->init_id = sn->init->id;
	}
	ws->snap_id = sn->id;
	lua_settop(L, top);
	return 0;
}

/* The body of run_def, protected: any Lua API call here may raise
 * "not enough memory" once a memory limit is reached. */
static void run_def_body(struct wstate *ws, struct def *d, struct snap *sn, const struct async_buf *args,
                         struct async_buf *res, int *failed, struct objctx *oc, int *errmem)
{
	lua_State *L = ws->L;
	struct ctx *ctx = ws->ctx;
	int base = lua_gettop(L);
	char err[256];
	*failed = 0;
	uint64_t epoch = __atomic_load_n(&ctx->def_epoch, __ATOMIC_ACQUIRE);
	if (epoch != ws->epoch) {
		/* Definitions changed: drop every compiled function; calls carry
		 * their definitions, so each recompiles on first use. */
		lua_newtable(L);
		lua_rawseti(L, LUA_REGISTRYINDEX, ws->cache);
		ws->epoch = epoch;
	}
	if (sn->id != ws->snap_id && apply_snapshot(ws, sn, err, sizeof err) != 0) {
		fail_res(res, failed, L, err, NULL);
		goto out;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, ws->handler);
	int msgh = lua_gettop(L);
	if (push_compiled(ws, d, err, sizeof err) != 0) {
		fail_res(res, failed, L, err, NULL);
		goto out;
	}
	int fn = lua_gettop(L);
	/* A global table of the call's own whose reads fall through to the
	 * worker's globals: the worker's environment, which no job has written
	 * to (wstate.c, GUARD), or a new one for a call nested in another
	 * (await). The previous one is put back afterwards, so a nested call
	 * does not change ours. */
	lua_getfenv(L, fn);
	int oldenv = lua_gettop(L);
	if (ws->depth > 1) {
		lua_newtable(L);
		lua_rawgeti(L, LUA_REGISTRYINDEX, ws->envmt);
		lua_setmetatable(L, -2);
	} else {
		lua_rawgeti(L, LUA_REGISTRYINDEX, ws->env);
	}
	lua_setfenv(L, fn);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ws->proxies);
	int proxies = lua_gettop(L);
	int pmark = (int)lua_objlen(L, proxies);
	lua_pushvalue(L, fn);
	struct async_codec_objects objs = codec_objects(oc);
	int nargs = async_codec_decode(L, args->p, args->n, &objs, err, sizeof err);
	if (nargs < 0) {
		lua_pushvalue(L, oldenv);
		lua_setfenv(L, fn);
		fail_res(res, failed, L, err, NULL);
		goto invalidate;
	}
	int callbase = proxies + 1;
	struct snap *prev = ws->cur;
	ws->cur = sn;
	int rc = lua_pcall(L, nargs, LUA_MULTRET, msgh);
	ws->cur = prev;
	lua_pushvalue(L, oldenv);
	lua_setfenv(L, fn);
	if (rc == 0 && !lua_checkstack(L, 32)) {
		/* So many results that the stack has no room to encode them
		 * (LuaJIT's limit is about 8,000 slots). */
		int nres = lua_gettop(L) - callbase + 1;
		lua_settop(L, callbase - 1);
		if (oc->c)
			obj_clear(L, oc->c);
		char msg[200];
		snprintf(msg, sizeof msg, MSG(RESULTS_TOO_MANY), d->name, nres);
		fail_res(res, failed, L, msg, NULL);
	} else if (rc == 0) {
		size_t hint = __atomic_load_n(&d->res_hint, __ATOMIC_RELAXED);
		/* Some room over it, within what a record may keep. */
		size_t want = hint + hint / 8 + 64;
		if (want > RECORD_KEEP_BYTES)
			want = RECORD_KEEP_BYTES;
		if (hint > 0 && want > res->cap)
			async_buf_reserve(res, want); /* if it fails, the encode says so */
		if (async_codec_encode(L, callbase, lua_gettop(L), res, "result", &objs, err, sizeof err) == 0) {
			/* Grows at once, shrinks when results stay well below it:
			 * written seldom, since every worker reads it. */
			size_t n = res->n < RECORD_KEEP_BYTES ? res->n : RECORD_KEEP_BYTES;
			if (n > hint || n < hint / 4)
				__atomic_store_n(&d->res_hint, n, __ATOMIC_RELAXED);
		} else {
			if (oc->c)
				obj_clear(L, oc->c);
			char msg[300];
			obj_name_refused(oc, err, sizeof err);
			snprintf(msg, sizeof msg, MSG(RESULT_NOT_SENT), d->name, err);
			fail_res(res, failed, L, msg, NULL);
		}
	} else if (rc == LUA_ERRRUN && lua_istable(L, -1)) {
		int t = lua_gettop(L);
		lua_rawgeti(L, t, 1); /* the error value */
		lua_rawgeti(L, t, 2); /* the traceback */
		*failed = 1;
		if (async_codec_encode(L, t + 1, t + 2, res, "error", &objs, err, sizeof err) != 0) {
			/* An error value we cannot send (a function, say): describe
			 * it, and where in it the refused part is. */
			if (oc->c)
				obj_clear(L, oc->c);
			char msg[440];
			snprintf(msg, sizeof msg, MSG(ERROR_NOT_SENT), d->name,
			         luaL_typename(L, t + 1), err);
			fail_res(res, failed, L, msg, lua_tostring(L, t + 2));
		}
	} else {
		/* Memory or error-handler failure: no traceback to be had. */
		*errmem = rc == LUA_ERRMEM;
		const char *m = lua_tostring(L, -1);
		fail_res(res, failed, L, m ? m : MSG(ERROR_IN_ERROR), NULL);
	}
invalidate:
	/* Buffers handed to this job are the game's again once it ends. */
	for (int i = (int)lua_objlen(L, proxies); i > pmark; i--) {
		lua_rawgeti(L, proxies, i);
		struct bufproxy *p = lua_touserdata(L, -1);
		if (p != NULL)
			p->valid = 0;
		lua_pop(L, 1);
		lua_pushnil(L);
		lua_rawseti(L, proxies, i);
	}
out:
	lua_settop(L, base);
}

static void run_def_guarded(struct wstate *ws, struct def *d, struct snap *sn, const struct async_buf *args,
                            struct async_buf *res, int *failed, struct objctx *oc);

struct run_args {
	struct wstate *ws;
	struct def *d;
	struct snap *sn;
	const struct async_buf *args;
	struct async_buf *res;
	int *failed;
	struct objctx *oc;
	int errmem;
};

static int gc_p(lua_State *L)
{
	lua_gc(L, LUA_GCCOLLECT, 0);
	return 0;
}

/* A full collection of ws's state. Protected, since a finalizer may raise;
 * without the limit, since lua_cpcall itself allocates. */
static void collect_unlimited(struct wstate *ws)
{
	uint64_t limit = ws->acct.limit;
	ws->acct.limit = 0;
	if (lua_cpcall(ws->L, gc_p, NULL) != 0)
		lua_pop(ws->L, 1);
	ws->acct.limit = limit;
}

static int run_def_p(lua_State *L)
{
	struct run_args *a = lua_touserdata(L, 1);
	lua_pop(L, 1);
	run_def_body(a->ws, a->d, a->sn, a->args, a->res, a->failed, a->oc, &a->errmem);
	return 0;
}

/* With a memoryLimit, the jobs' garbage counts against it until collected,
 * and LuaJIT paces its collector on its own count and never collects when
 * an allocation is refused: a job that fitted a fresh state failed when run
 * again, against the garbage of its last run (every second run, test_workers).
 * So before a job, collect when garbage may fill more than half the room
 * above what the state held live after the last such collect. Kept blocks
 * are not garbage: they are given back before a refusal (wstate.c). */
static void collect_near_limit(struct wstate *ws)
{
	struct memacct *m = &ws->acct;
	if (m->limit == 0)
		return;
	uint64_t used = __atomic_load_n(m->used, __ATOMIC_RELAXED);
	used = used > m->kept_bytes ? used - m->kept_bytes : 0;
	uint64_t floor = ws->gc_floor < m->limit ? ws->gc_floor : m->limit;
	if (used <= floor + (m->limit - floor) / 2)
		return;
	collect_unlimited(ws);
	used = __atomic_load_n(m->used, __ATOMIC_RELAXED);
	ws->gc_floor = used > m->kept_bytes ? used - m->kept_bytes : 0;
}

/* Going idle: a full collect when the state holds over IDLE_GC_SLACK bytes
 * more than it held live after the last one (a job's garbage, or live data
 * it dropped), so that an idle worker does not keep them. */
#define IDLE_GC_SLACK ((uint64_t)8 * 1024 * 1024)
static void idle_collect(struct wstate *ws)
{
	struct memacct *m = &ws->acct;
	uint64_t used = __atomic_load_n(m->used, __ATOMIC_RELAXED);
	used = used > m->kept_bytes ? used - m->kept_bytes : 0;
	if (used <= ws->gc_floor + IDLE_GC_SLACK)
		return;
	collect_unlimited(ws);
	used = __atomic_load_n(m->used, __ATOMIC_RELAXED);
	ws->gc_floor = used > m->kept_bytes ? used - m->kept_bytes : 0;
}

/* Runs definition d on ws for the game's call `owner` (what
 * async.cancelled() reads) with the encoded arguments, against snapshot sn,
 * and writes the results, or (error value, traceback), into res. Shared by
 * the game's calls and by jobs that start jobs. Running out of memory fails
 * the job with a message saying so; the state is replaced once no job runs
 * in it (await runs jobs inside a job). */
void run_def(struct wstate *ws, struct call *owner, struct def *d, struct snap *sn,
                    const struct async_buf *args, struct async_buf *res, int *failed, struct objctx *oc)
{
	struct call *outer = ws->call; /* a call run while another awaits */
	const struct def *outer_def = ws->def;
	if (ws->depth == 0) {
		collect_near_limit(ws);
		if (owner != NULL)
			run_enter(owner, ws->L);
	}
	ws->call = owner;
	ws->def = d;
	ws->depth++;
	ASYNC_PROBE1(lua_job_start, d->name);
	run_def_guarded(ws, d, sn, args, res, failed, oc);
	ASYNC_PROBE1(lua_job_end, d->name);
	ws->depth--;
	ws->call = outer;
	ws->def = outer_def;
	if (ws->depth > 0)
		return;
	/* Before the state may be replaced: shutdown must not hook a closed one. */
	if (owner != NULL)
		run_leave(owner);
	if (ws->dead)
		wstate_replace(ws);
	else
		wstate_restore(ws);
}

/* The traceback handler and run_def_p, made once per state: pushing a C
 * function allocates (lua_cpcall makes one each time), and a job's
 * garbage is what the state's collector is paced by. Raises when out of
 * memory (the state's set-up then fails). */
void run_refs_new(struct wstate *ws)
{
	lua_pushcfunction(ws->L, traceback_handler);
	ws->handler = luaL_ref(ws->L, LUA_REGISTRYINDEX);
	lua_pushcfunction(ws->L, run_def_p);
	ws->runner = luaL_ref(ws->L, LUA_REGISTRYINDEX);
}

/* run_def's body, protected, and the translation of its failures. */
static void run_def_guarded(struct wstate *ws, struct def *d, struct snap *sn, const struct async_buf *args,
                            struct async_buf *res, int *failed, struct objctx *oc)
{
	struct run_args a = { ws, d, sn, args, res, failed, oc, 0 };
	struct snap *cur = ws->cur;
	/* No allocation: the stack has room for two (as lua_cpcall assumes). */
	lua_rawgeti(ws->L, LUA_REGISTRYINDEX, ws->runner);
	lua_pushlightuserdata(ws->L, &a);
	int rc = lua_pcall(ws->L, 1, 0, 0);
	ws->cur = cur;
	const char *why = NULL;
	if (rc != 0) {
		why = lua_tostring(ws->L, -1);
		lua_pop(ws->L, 1);
	}
	int oom = rc == LUA_ERRMEM || a.errmem || ws->acct.refused;
	if (oom) {
		ws->dead = 1;
		/* An awaiting job may still run in this state until the state is
		 * replaced: give it the room the failed job's garbage holds. */
		collect_unlimited(ws);
	}
	if (rc == 0 && !a.errmem)
		return;
	char msg[320];
	if (oom && ws->acct.limit != 0)
		snprintf(msg, sizeof msg, MSG(JOB_OUT_OF_LIMIT), d->name, (unsigned long long)ws->acct.limit);
	else if (oom)
		snprintf(msg, sizeof msg, MSG(JOB_OUT_OF_MEMORY), d->name);
	else
		snprintf(msg, sizeof msg, MSG(PREFIXED), d->name, why ? why : MSG(JOB_ERROR));
	/* Whatever was half encoded goes (fail_res resets res); LÖVE objects
	 * pushed for it are cleared at the call's release (their counts
	 * differ). */
	fail_res(res, failed, NULL, msg, NULL);
}

/* Finishes a call: hand it back to the main thread. */
void call_done(struct call *c)
{
	struct ctx *ctx = c->ctx;
	struct call *head = __atomic_load_n(&ctx->done, __ATOMIC_RELAXED);
	do {
		c->next = head;
		/* Release: the results are complete before the main thread can
		 * take the record (pairs with the exchange in take_done). */
	} while (!__atomic_compare_exchange_n(&ctx->done, &head, c, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* Worker `index`'s count of running calls, by d; only that worker writes it. */
static void running_add(struct ctx *ctx, unsigned index, int d)
{
	if (index >= ASYNC_MAX_SLOTS || ctx->mem == NULL)
		return;
	uint64_t *p = ASYNC_RUNNING(ctx, index);
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + (uint64_t)(int64_t)d, __ATOMIC_RELAXED);
}

void call_run(void *arg)
{
	struct call *c = arg;
	struct ctx *ctx = c->ctx;
	/* Lets the FFI path see whether the pool's queue is running dry. */
	__atomic_fetch_add(&ctx->started, 1, __ATOMIC_SEQ_CST);
	batch_worker_check(ctx);
	uint32_t queued = CALL_QUEUED;
	if (!__atomic_compare_exchange_n(&c->state, &queued, CALL_RUNNING, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		/* Cancelled before it started: hand the record back unrun,
		 * unless an abandoning shutdown has delivered it already. A
		 * trace shows it as "cancelled <name>", not as a nameless job. */
		if (!__atomic_exchange_n(&c->handed, 1, __ATOMIC_ACQ_REL)) {
			if (async_pool_trace_on(ctx->pool)) {
				char label[ASYNC_TRACE_NAME_SIZE];
				snprintf(label, sizeof label, "cancelled %s", c->def->name);
				async_trace_label(label);
			}
			c->cancelled = 1;
			call_done(c);
		}
		return;
	}
	struct wstate *ws = tls_ws;
	if (ws == NULL) {
		/* Only shutdown's fallback runs jobs off the workers: give this
		 * thread a state of its own, freed with the context. */
		if (ctx->fallback == NULL)
			ctx->fallback = wstate_new(ctx, (unsigned)-1);
		ws = tls_ws = ctx->fallback;
	}
	unsigned index = ws != NULL ? ws->index : (unsigned)-1;
	if (c->weight != 0) /* timed for stats().defs (profile_made) */
		c->t_start = async_trace_now_ns();
	async_trace_label(c->def->name); /* the trace names the job after it */
	running_add(ctx, index, 1);
	c->failed = 0;
	if (ws == NULL || ws->init_error != NULL) {
		fail_res(&c->res, &c->failed, NULL, ws ? ws->init_error : MSG(NO_STATE), NULL);
	} else {
		struct objctx oc = { c, &c->bufs, 0, ws, NULL };
		run_def(ws, c, c->def, c->snap, &c->args, &c->res, &c->failed, &oc);
	}
	/* Before the hand-over: a delivered call is never still counted as running. */
	running_add(ctx, index, -1);
	if (c->weight != 0)
		c->t_end = async_trace_now_ns();
	__atomic_store_n(&c->finished, 1, __ATOMIC_RELEASE);
	/* In the trace before the game can take it: a game that stops and
	 * writes the trace after update() finds every job it delivered. */
	async_trace_job_done();
	call_done(c);
	/* The pool ran dry: the big blocks kept for the next jobs go back but
	 * for a few (internal.h, KEEP_IDLE_BYTES), and the garbage the last
	 * jobs left is collected (LuaJIT collects only as it allocates, so an
	 * idle worker kept it for good). Not before call_done, so that neither
	 * delays a delivery. */
	if (ws != NULL && __atomic_load_n(&ctx->nbatch, __ATOMIC_RELAXED) == 0 &&
	    __atomic_load_n(&ctx->submitted, __ATOMIC_RELAXED) == __atomic_load_n(&ctx->started, __ATOMIC_RELAXED)) {
		idle_collect(ws);
		if (ws->acct.kept_bytes > KEEP_IDLE_BYTES)
			wstate_trim(ws);
	}
}
