/* SPDX-License-Identifier: MIT (see LICENSE) */
/* deliver.c: the main thread's side of finished calls: taking them from
 * the workers' lock-free stack, decoding and handing them to their
 * callbacks (update), and shutdown's final delivery. */
#include "internal.h"

void take_done(struct ctx *ctx)
{
	if (__atomic_load_n(&ctx->done, __ATOMIC_RELAXED) == NULL)
		return;
	/* Acquire: pairs with the release CAS in call_done. */
	struct call *list = __atomic_exchange_n(&ctx->done, NULL, __ATOMIC_ACQUIRE);
	struct call *rev = NULL, *tail = list;
	while (list != NULL) { /* newest first -> oldest first */
		struct call *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
		ctx->npending++;
	}
	if (rev == NULL)
		return;
	if (ctx->pending_tail != NULL)
		ctx->pending_tail->next = rev;
	else
		ctx->pending = rev;
	ctx->pending_tail = tail;
}

/* The failure at base + 1, base + 2 (error value, traceback) on stderr:
 * what happens when async.onerror is not a function. */
static void default_onerror(lua_State *L, int base)
{
	const char *msg = lua_tostring(L, base + 1);
	const char *tb = lua_tostring(L, base + 2);
	fprintf(stderr, MSG(JOB_FAILED), msg ? msg : luaL_typename(L, base + 1), tb ? tb : "");
}

/* Calls the error handler at fn with the failure's n values above it.
 * `error` itself ({error = error}) gets one value, the message with the
 * traceback appended: its second argument is a level, which a traceback
 * is not. */
static void call_error_handler(lua_State *L, struct ctx *ctx, int fn, int n)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->error_fn);
	int is_error = lua_rawequal(L, fn, -1);
	lua_pop(L, 1);
	if (is_error && n >= 2) {
		lua_settop(L, fn + 2);
		if (lua_type(L, fn + 1) == LUA_TSTRING && lua_type(L, fn + 2) == LUA_TSTRING) {
			lua_pushstring(L, MSG(WORKER_TRACEBACK));
			lua_insert(L, fn + 2);
			lua_concat(L, 3);
		} else {
			lua_pop(L, 1);
		}
		n = 1;
	}
	lua_call(L, n, 0);
}

/* Takes the oldest finished call off the pending list and delivers it.
 * Everything about the record is settled (released) before any callback
 * runs, so a callback that raises loses nothing else. */
/* Takes c, the oldest pending call, off the pending list: it is no longer
 * in flight. */
void pending_pop(struct ctx *ctx, struct call *c)
{
	ctx->pending = c->next;
	if (ctx->pending == NULL)
		ctx->pending_tail = NULL;
	ctx->npending--;
	ctx->inflight--;
	profile_delivered(ctx, c);
}

/* Whether a finalizer runs now inside a call's encoding or a result's
 * decoding: then update() delivers nothing and shutdown() refuses. The C
 * API path's windows are counted exactly (window_run restores the count
 * whatever is raised), so a coroutine that a finalizer resumes sees them
 * too. async_fast.lua's flag may be left set by an encode or decode that
 * raised: that file's own function says whether its windows are open. */
int busy_now(lua_State *L, struct ctx *ctx)
{
	if (ctx->busy[1] > 0)
		return 1;
	if (ctx->busy[0] == 0 || ctx->fast_busy == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->fast_busy);
	lua_call(L, 0, 1);
	int busy = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return busy;
}

/* window_run's protected half: its window at 1, encode's values above. */
int l_window(lua_State *L)
{
	struct window *w = lua_touserdata(L, 1);
	if (!w->decode) {
		w->rc = async_codec_encode(L, 2, lua_gettop(L), &w->c->args, "argument", &w->objs, w->err, w->errlen);
		return 0;
	}
	int base = lua_gettop(L);
	w->rc = async_codec_decode(L, w->c->res.p, w->c->res.n, &w->objs, w->err, w->errlen);
	return lua_gettop(L) - base;
}

/* The function comes from the registry and the values are copies: nothing
 * here allocates a Lua object (so no finalizer runs) before the protected
 * call. */
int window_run(lua_State *L, struct ctx *ctx, struct window *w, int first, int last)
{
	int n = last >= first ? last - first + 1 : 0;
	luaL_checkstack(L, n + 2, "async: too many values");
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->window_fn);
	lua_pushlightuserdata(L, w);
	for (int i = first; i <= last; i++)
		lua_pushvalue(L, i);
	ctx->busy[1]++;
	int st = lua_pcall(L, n + 1, w->decode ? LUA_MULTRET : 0, 0);
	ctx->busy[1]--;
	return st;
}

/* c's result, decoded above the top inside a window; its count, or -1 with
 * the error raised in it on the top. The call stays pending meanwhile: after
 * an error it is decoded again by the next update (a result holding LÖVE
 * objects, which were taken off their channel, then fails, saying why). */
static int decode_result(lua_State *L, struct ctx *ctx, struct call *c)
{
	char err[256];
	struct objctx oc = { c, &c->bufs, 1, NULL, NULL };
	struct window w = { 1, c, codec_objects(&oc), err, sizeof err, 0 };
	int base = lua_gettop(L);
	if (window_run(L, ctx, &w, 0, -1) != 0) {
		c->interrupted = 1;
		return -1;
	}
	int n = lua_gettop(L) - base;
	if (w.rc < 0) {
		lua_settop(L, base);
		if (c->interrupted)
			lua_pushfstring(L, MSG(RESULT_REREAD), err);
		else
			lua_pushstring(L, err);
		lua_pushstring(L, "");
		return -2;
	}
	return n;
}

/* A record of the FFI path: its callback is in async_fast.lua's table, so
 * the values go to that file's hook(index, status, ...) (status 0 success,
 * 1 failure, 2 cancelled), which dispatches as deliver() does. Counted and
 * released before the hook runs, as below. */
static void deliver_fast(lua_State *L, struct ctx *ctx, struct call *c)
{
	int base = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->fast_hook);
	lua_pushinteger(L, (lua_Integer)c->index);
	int n = 0, status;
	if (c->cancelled || c->superseded) {
		pending_pop(ctx, c);
		status = 2;
		ctx->cancelled_count++;
	} else {
		lua_pushnil(L); /* the status, set below */
		n = decode_result(L, ctx, c);
		if (n == -1)
			lua_error(L); /* still pending */
		pending_pop(ctx, c);
		status = c->failed;
		if (n < 0) {
			n = 2;
			status = 1;
		}
		lua_pushinteger(L, status);
		lua_replace(L, base + 3);
		if (status)
			ctx->failed_count++;
		else
			ctx->delivered++;
	}
	if (status == 2)
		lua_pushinteger(L, status);
	call_release(L, ctx, c);
	lua_call(L, 2 + n, 0);
	lua_settop(L, base);
}

static void deliver(lua_State *L, struct ctx *ctx, struct call *c)
{
	if (c->fast) {
		deliver_fast(L, ctx, c);
		return;
	}
	int base = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->cb);
	int cb = base + 1;
	if (c->cancelled || c->superseded) {
		/* Never ran, or a newer call with its key was made while it ran:
		 * a table callback's `cancelled` hears of it, never `success`. */
		pending_pop(ctx, c);
		call_release(L, ctx, c);
		ctx->cancelled_count++;
		if (lua_type(L, cb) == LUA_TTABLE) {
			lua_getfield(L, cb, "cancelled");
			if (!lua_isnil(L, -1)) /* callable: checked at the call */
				lua_call(L, 0, 0);
		}
		lua_settop(L, base);
		return;
	}
	int n = decode_result(L, ctx, c);
	if (n == -1)
		lua_error(L); /* still pending */
	pending_pop(ctx, c);
	int failed = c->failed;
	if (n < 0) {
		n = 2;
		failed = 1;
	}
	call_release(L, ctx, c);
	if (!failed) {
		ctx->delivered++;
		if (lua_type(L, cb) == LUA_TTABLE) {
			lua_getfield(L, cb, "success");
			lua_replace(L, cb);
		}
		if (!lua_isnil(L, cb)) {
			lua_call(L, n, 0);
		}
		lua_settop(L, base);
		return;
	}
	ctx->failed_count++;
	if (lua_type(L, cb) == LUA_TTABLE) {
		lua_getfield(L, cb, "error");
		if (!lua_isnil(L, -1)) {
			lua_replace(L, cb);
			call_error_handler(L, ctx, cb, n);
			lua_settop(L, base);
			return;
		}
		lua_pop(L, 1);
	}
	/* Never silent: a failure with no error callback goes to
	 * async.onerror (default: stderr). */
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->facade);
	lua_getfield(L, -1, "onerror");
	lua_remove(L, -2);
	if (lua_isfunction(L, -1)) {
		lua_replace(L, cb);
		call_error_handler(L, ctx, cb, n);
	} else {
		default_onerror(L, cb); /* the failure is at cb + 1, cb + 2 */
	}
	lua_settop(L, base);
}

/* update([budget]) -> number delivered. upvalue 1: the context. */
int l_update(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, lua_upvalueindex(1));
	double budget = -1;
	if (!lua_isnoneornil(L, 1)) {
		budget = luaL_checknumber(L, 1);
		if (!(budget >= 0))
			return luaL_error(L, MSG(UPDATE_BUDGET), lua_tostring(L, 1));
	}
	if (busy_now(L, ctx)) { /* from a finalizer: the next update delivers */
		lua_pushinteger(L, 0);
		return 1;
	}
	batch_flush(ctx);
	take_done(ctx);
	double t0 = budget >= 0 ? now_s() : 0;
	int n = 0;
	while (ctx->pending != NULL) {
		deliver(L, ctx, ctx->pending);
		n++;
		if (budget >= 0 && now_s() - t0 >= budget)
			break;
	}
	if (ctx->pending == NULL)
		records_trim(ctx);
	lua_pushinteger(L, n);
	return 1;
}

/* deliverOne() -> whether it delivered the oldest finished call: the FFI
 * path's update hands this what its own decoder does not take. */
int l_deliver_one(lua_State *L)
{
	struct ctx *ctx = ctx_of(L, 1);
	if (ctx->closed)
		return luaL_error(L, MSG(POOL_SHUT_DOWN));
	take_done(ctx);
	if (ctx->pending == NULL || busy_now(L, ctx)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	deliver(L, ctx, ctx->pending);
	lua_pushboolean(L, 1);
	return 1;
}

/* The context is left running for the process's exit: a job outlived the
 * deadline and its hook. Its pool, records, definitions and worker states
 * stay allocated (the job's worker may still reach them); the game's side
 * forgets it. */
static void abandon(lua_State *L, struct ctx *ctx)
{
	/* Cancelled calls still in the pool's queue would be handed back only
	 * by a worker: those busy for good never will, so they are delivered
	 * from here, the claim keeping a worker from handing them back too. */
	take_done(ctx);
	for (size_t i = 0; i < ctx->nall; i++) {
		struct call *c = ctx->all[i];
		if (c == NULL || !c->live || __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != CALL_CANCELLED ||
		    __atomic_exchange_n(&c->handed, 1, __ATOMIC_ACQ_REL))
			continue;
		c->cancelled = 1;
		pending_push(ctx, c);
	}
	while (ctx->pending != NULL) /* calls that callbacks make end cancelled (shutting) */
		deliver(L, ctx, ctx->pending);
	ctx->abandoned = 1;
	ctx->closed = 1;
	ctx_forget(L, ctx);
}

/* Once no job runs any more (or the deadline passed): whether the pool
 * could be shut down; 0 when the context was abandoned. */
static int stop_or_abandon(lua_State *L, struct ctx *ctx, double *deadline)
{
	if (!any_running(ctx)) {
		/* Only cancelled records are left queued: the pool hands them back. */
		int rc = async_pool_shutdown(ctx->pool);
		if (rc != 0)
			luaL_error(L, MSG(SHUTDOWN_FAILED), async_strerror(rc));
		ctx->joined = 1;
		return 1;
	}
	if (*deadline >= 0 && now_s() >= *deadline) {
		if (!__atomic_load_n(&ctx->hard_stop, __ATOMIC_RELAXED)) {
			hook_running(ctx);
			*deadline = now_s() + HOOK_GRACE_S;
			return -1;
		}
		abandon(L, ctx);
		return 0;
	}
	return -1;
}

/* shutdown([flush[, timeout]]): queued calls are cancelled, running ones
 * see async.cancelled(); waits for those, delivers every callback, frees
 * all. With a timeout (seconds), jobs still running then get a hook that
 * stops interpreted Lua, and HOOK_GRACE_S later the ones left are
 * abandoned (see abandon). Calls that callbacks make meanwhile do not run:
 * they end as cancelled and are delivered too. flush (the façade's
 * deferred callbacks) is called between deliveries and returns whether it
 * delivered anything. A callback that raises interrupts it; calling
 * shutdown again goes on. A callback that shuts the pool down itself (and
 * loads a new one) ends it. */
int l_shutdown(lua_State *L)
{
	struct ctx *ctx = ctx_of(L, 1);
	if (ctx->closed)
		return 0;
	if (busy_now(L, ctx))
		return luaL_error(L, MSG(SHUTDOWN_IN_FINALIZER));
	int flush = lua_isfunction(L, 2) ? 2 : 0;
	if (!ctx->shutting) {
		double timeout = luaL_optnumber(L, 3, -1);
		batch_flush(ctx); /* every call made is cancelled or seen running */
		ctx->shutting = 1;
		ctx->stop_deadline = timeout >= 0 ? now_s() + timeout : -1;
		cancel_all(ctx);
	}
	for (;;) {
		take_done(ctx);
		if (ctx->pending != NULL) {
			deliver(L, ctx, ctx->pending);
		} else if (flush) {
			lua_pushvalue(L, flush);
			lua_call(L, 0, 1);
			int more = lua_toboolean(L, -1);
			lua_pop(L, 1);
			if (!more && !ctx->closed && ctx->pending == NULL) {
				if (ctx->joined)
					break;
				int r = stop_or_abandon(L, ctx, &ctx->stop_deadline);
				if (r == 0)
					return 0;
				if (r < 0)
					nap_ms(1);
			}
		} else if (ctx->joined) {
			break;
		} else {
			int r = stop_or_abandon(L, ctx, &ctx->stop_deadline);
			if (r == 0)
				return 0;
			if (r < 0)
				nap_ms(1);
		}
		if (ctx->closed)
			return 0; /* a callback shut it down */
	}
	ctx_free_all(L, ctx, 1);
	return 0;
}
