/* SPDX-License-Identifier: MIT (see LICENSE) */
/* call.c: call records and the call lifecycle, main thread. A call is
 * made (do_call), runs or is cancelled on the core, is delivered, and ends
 * in call_release, the one place every terminal path goes through and the
 * only one that releases what a call holds. Also the call handles. */
#include "internal.h"

#ifdef __GLIBC__
#include <malloc.h>
/* Freed records sit between blocks still in use: glibc gives such pages
 * back to the kernel only when asked. */
static void malloc_give_back(void)
{
	malloc_trim(0);
}
#else
static void malloc_give_back(void)
{
	/* portability: other C libraries return free pages by themselves */
}
#endif

/* A free record, or a new one in the lowest free slot; NULL when out of
 * memory. */
struct call *record_take(struct ctx *ctx)
{
	struct call *c = ctx->free;
	if (c != NULL) {
		ctx->free = c->next;
		ctx->nfree--;
		c->live = 1;
		return c;
	}
	size_t i = ctx->hole;
	while (i < ctx->nall && ctx->all[i] != NULL)
		i++;
	if (i == ctx->nall && ctx->nall == ctx->capall) {
		size_t cap = ctx->capall ? ctx->capall * 2 : 64;
		struct call **all = realloc(ctx->all, cap * sizeof *all);
		if (all == NULL)
			return NULL;
		ctx->all = all;
		ctx->capall = cap;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->ctx = ctx;
	c->index = (uint32_t)i;
	/* A handle to a record freed from this slot must not name this one. */
	c->gen = ctx->gen_floor;
	c->chan = chan_take();
	c->cb = LUA_NOREF;
	c->key = LUA_NOREF;
	ctx->all[i] = c;
	if (i == ctx->nall)
		ctx->nall++;
	ctx->hole = i + 1;
	c->live = 1;
	return c;
}

/* The live record at index, if it is still at generation gen (what a
 * handle names); NULL once that call was released or its record freed. */
struct call *record_at(struct ctx *ctx, int64_t index, uint32_t gen)
{
	if (index < 0 || (uint64_t)index >= ctx->nall)
		return NULL;
	struct call *c = ctx->all[index];
	return c != NULL && c->live && c->gen == gen ? c : NULL;
}

/* After a burst: once the pool's queue is empty (every call submitted has
 * started; those running or awaiting delivery keep their records) and more
 * than RECORDS_TRIM_AT records are idle, frees idle ones, highest index
 * first, until RECORDS_KEEP are left, and shrinks the table. An idle record
 * is no worker's (call_release's rule), and nothing in Lua names it but
 * handles, which compare generations (gen_floor). No Lua runs here. */
void records_trim(struct ctx *ctx)
{
	if (ctx->nfree <= RECORDS_TRIM_AT || ctx->closed || ctx->abandoned ||
	    __atomic_load_n(&ctx->nbatch, __ATOMIC_RELAXED) != 0 ||
	    __atomic_load_n(&ctx->submitted, __ATOMIC_RELAXED) != __atomic_load_n(&ctx->started, __ATOMIC_ACQUIRE))
		return;
	size_t excess = ctx->nfree - RECORDS_KEEP;
	for (size_t i = ctx->nall; i-- > 0 && excess > 0;) {
		struct call *c = ctx->all[i];
		if (c == NULL || c->live)
			continue;
		if (c->gen > ctx->gen_floor)
			ctx->gen_floor = c->gen; /* released: no handle holds this one yet */
		chan_give(c->chan); /* release cleared what was on it */
		lent_free(&c->bufs);
		async_buf_free(&c->args);
		async_buf_free(&c->res);
		free(c);
		ctx->all[i] = NULL;
		if (i < ctx->hole)
			ctx->hole = i;
		excess--;
	}
	while (ctx->nall > 0 && ctx->all[ctx->nall - 1] == NULL)
		ctx->nall--;
	if (ctx->hole > ctx->nall)
		ctx->hole = ctx->nall;
	ctx->free = NULL;
	ctx->nfree = 0;
	for (size_t i = ctx->nall; i-- > 0;) {
		struct call *c = ctx->all[i];
		if (c != NULL && !c->live) {
			c->next = ctx->free;
			ctx->free = c;
			ctx->nfree++;
		}
	}
	if (ctx->capall > 64 && ctx->nall <= ctx->capall / 4) {
		size_t cap = ctx->nall * 2 > 64 ? ctx->nall * 2 : 64;
		struct call **all = realloc(ctx->all, cap * sizeof *all);
		if (all != NULL) {
			ctx->all = all;
			ctx->capall = cap;
		}
	}
	malloc_give_back();
}

static struct call *record_get(lua_State *L, struct ctx *ctx)
{
	struct call *c = record_take(ctx);
	if (c == NULL)
		luaL_error(L, MSG(OUT_OF_MEMORY), "async.call");
	return c;
}

/* Main thread: cancels a queued call. A running one cannot be stopped from outside;
 * it is asked to stop instead, which the job sees through
 * async.cancelled(). Returns whether the call will not run. */
int cancel_call(struct call *c)
{
	uint32_t queued = CALL_QUEUED;
	if (__atomic_compare_exchange_n(&c->state, &queued, CALL_CANCELLED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		lent_giveback(&c->bufs);
		return 1;
	}
	if (queued == CALL_RUNNING)
		__atomic_store_n(&c->stop_asked, 1, __ATOMIC_RELAXED);
	return 0;
}

/* "Latest request wins": a call whose table callback has a key (at keyidx)
 * supersedes the call made under that key before it. Leaves the key's
 * registry ref in c. */
static void take_key(lua_State *L, struct ctx *ctx, struct call *c, int keyidx)
{
	lua_pushvalue(L, keyidx);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->keys);
	lua_pushvalue(L, -2);
	lua_rawget(L, -2);
	struct call *old = lua_touserdata(L, -1);
	lua_pop(L, 1);
	/* The older call will not run, or, already running, ends as
	 * cancelled: its success callback never follows this newer call. */
	if (old != NULL && !cancel_call(old))
		old->superseded = 1;
	lua_pushvalue(L, -2);
	lua_pushlightuserdata(L, c);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	c->key = luaL_ref(L, LUA_REGISTRYINDEX); /* pops the key */
}

/* Drops c's key unless a newer call took it over. */
static void drop_key(lua_State *L, struct ctx *ctx, struct call *c)
{
	if (c->key == LUA_NOREF)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->keys);
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->key);
	lua_pushvalue(L, -1);
	lua_rawget(L, -3);
	if (lua_touserdata(L, -1) == c) {
		lua_pop(L, 1);
		lua_pushnil(L);
		lua_rawset(L, -3);
	} else {
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	luaL_unref(L, LUA_REGISTRYINDEX, c->key);
	c->key = LUA_NOREF;
}

static void buf_shrink(struct async_buf *b)
{
	if (b->cap > RECORD_KEEP_BYTES)
		async_buf_free(b);
	b->n = 0;
}

/* The one release point of a call: every way a call ends (delivered,
 * failed, cancelled, superseded by its key, refused at encode or submit,
 * delivered by shutdown, its state closed) comes here once, and here alone
 * its resources go: callback and key refs, LÖVE objects left on its
 * channel, lent buffers, definition, snapshot, oversized buffers. L is NULL
 * when the game's state is closing (its refs die with it). Main thread; the
 * record must not be held by a worker. */
void call_release(lua_State *L, struct ctx *ctx, struct call *c)
{
	if (!c->live)
		return;
	c->live = 0;
	c->gen++; /* handles to the call now read "done" */
	if (L != NULL) {
		if (c->cb != LUA_NOREF)
			luaL_unref(L, LUA_REGISTRYINDEX, c->cb);
		drop_key(L, ctx, c);
	}
	c->cb = c->key = LUA_NOREF;
	obj_clear(L, c);
	c->objs_pushed = c->objs_popped = 0;
	if (c->def != NULL) {
		def_unref(c->def);
		c->def = NULL;
	}
	snap_unref(c->snap);
	c->snap = NULL;
	lent_release(&c->bufs);
	buf_shrink(&c->args);
	buf_shrink(&c->res);
	c->superseded = c->failed = c->cancelled = c->fast = c->interrupted = 0;
	c->nxs = 0;
	c->next = ctx->free;
	ctx->free = c;
	ctx->nfree++;
}

/* Appends c to the list of calls waiting for delivery. */
void pending_push(struct ctx *ctx, struct call *c)
{
	c->next = NULL;
	if (ctx->pending_tail != NULL)
		ctx->pending_tail->next = c;
	else
		ctx->pending = c;
	ctx->pending_tail = c;
	ctx->npending++;
}

/* Whether v (at idx) can be called: a function, or a value whose
 * metatable has __call. */
static int is_callable(lua_State *L, int idx)
{
	if (lua_isfunction(L, idx))
		return 1;
	if (!luaL_getmetafield(L, idx, "__call"))
		return 0;
	lua_pop(L, 1);
	return 1;
}

/* A callback table with a mistake is refused at the call, not found out
 * at delivery: success/error/cancelled must be callable (or nil), and a
 * function under any other name is a misspelt field ({sucess = f}). Data
 * fields of the game's own are let through. */
static void check_callbacks(lua_State *L, int cbidx, const char *name)
{
	static const char *const fields[] = { "success", "error", "cancelled" };
	int handlers = 0;
	for (int i = 0; i < 3; i++) {
		lua_getfield(L, cbidx, fields[i]);
		if (!lua_isnil(L, -1) && !is_callable(L, -1)) {
			const char *type = luaL_typename(L, -1);
			luaL_error(L, MSG(CALLBACK_FIELD), lua_pushfstring(L, MSG(CALL_WHAT), name), fields[i], type);
		}
		handlers += !lua_isnil(L, -1);
		lua_pop(L, 1);
	}
	/* A callable table meant as the callback itself would be read as a
	 * table with no handler, and its results dropped without a word. */
	if (handlers == 0 && is_callable(L, cbidx))
		luaL_error(L, MSG(CALLBACK_CALLABLE_TABLE), name);
	lua_pushnil(L);
	while (lua_next(L, cbidx)) {
		if (lua_type(L, -2) == LUA_TSTRING && is_callable(L, -1)) {
			const char *k = lua_tostring(L, -2);
			if (strcmp(k, "success") && strcmp(k, "error") && strcmp(k, "cancelled") && strcmp(k, "key"))
				luaL_error(L, MSG(CALLBACK_UNKNOWN_FIELD), lua_pushfstring(L, MSG(CALL_WHAT), name), k);
		}
		lua_pop(L, 1);
	}
}

/* The call path shared by async.call and the define shorthand: the
 * callback at cbidx, the arguments from argidx to the top. Returns a
 * handle. */
static int do_call(lua_State *L, struct ctx *ctx, int cbidx, const char *name, int argidx)
{
	int t = lua_type(L, cbidx);
	if (t != LUA_TFUNCTION && t != LUA_TTABLE && t != LUA_TNIL && t != LUA_TNONE)
		return luaL_error(L, MSG(CALLBACK_TYPE), name, lua_typename(L, t));
	struct def *d = lookup_def(L, ctx, name);
	if (d == NULL)
		return luaL_error(L, MSG(CALL_UNDEFINED), name);
	int top = lua_gettop(L);
	/* Everything that may raise on the game's values (a callback table's
	 * __index, a NaN key) is read before the record exists. */
	int haskey = 0;
	if (t == LUA_TTABLE) {
		check_callbacks(L, cbidx, name);
		lua_getfield(L, cbidx, "key");
		if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))
			return luaL_error(L, MSG(CALLBACK_NAN_KEY), name);
		haskey = !lua_isnil(L, -1); /* stays at top + 1, above the arguments */
	}
	/* The handle first: from here to the end, Lua code and finalizers run
	 * only inside the encode's window, where a finalizer can neither
	 * deliver a call (old, or c, whose key would then point at a released
	 * record) nor shut the pool down under them (busy_now), and its error
	 * leaves nothing half made. */
	struct handle *h = lua_newuserdata(L, sizeof *h);
	int hidx = lua_gettop(L);
	check_ctx(L, lua_upvalueindex(1)); /* a finalizer may have shut the pool down meanwhile */
	struct call *old = NULL; /* the call this one supersedes */
	if (haskey) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->keys);
		lua_pushvalue(L, top + 1);
		lua_rawget(L, -2);
		old = lua_touserdata(L, -1);
		lua_pop(L, 2);
	}
	struct call *c = record_get(L, ctx);
	char err[256];
	struct objctx oc = { c, &c->bufs, 1, NULL, NULL };
	c->old = old;
	c->takes_old = 0;
	struct window w = { 0, c, codec_objects(&oc), err, sizeof err, 0 };
	int st = window_run(L, ctx, &w, argidx, top);
	int rc = w.rc;
	c->old = NULL;
	if (st != 0) {
		call_release(L, ctx, c);
		return lua_error(L); /* a finalizer's error, raised where it ran */
	}
	if (rc != 0) {
		call_release(L, ctx, c);
		if (oc.why != NULL)
			return luaL_error(L, MSG(CALL_REFUSED), name, oc.why);
		return luaL_error(L, MSG(CALL_NOT_SENT), name, err);
	}
	/* A buffer still lent to the superseded call: that call must not
	 * start now, or two jobs would hold the buffer. */
	if (c->takes_old && !cancel_call(old)) {
		call_release(L, ctx, c);
		return luaL_error(L, MSG(CALL_REFUSED), name, MSG(BUFFER_LENT));
	}
	/* Looked up again: Lua code ran since (a callback table's
	 * metamethods, finalizers in the encode) and may have replaced or
	 * removed the definition, freeing d. */
	d = lookup_def(L, ctx, name);
	if (d == NULL) {
		call_release(L, ctx, c);
		return luaL_error(L, MSG(CALL_UNDEFINED), name);
	}
	c->def = d;
	profile_made(c);
	d->refs++;
	c->snap = ctx->snap;
	c->snap->refs++;
	c->failed = c->cancelled = c->superseded = 0;
	__atomic_store_n(&c->stop_asked, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->finished, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->handed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->state, CALL_QUEUED, __ATOMIC_RELAXED);
	if (t == LUA_TFUNCTION || t == LUA_TTABLE) {
		lua_pushvalue(L, cbidx);
		c->cb = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	if (ctx->shutting) {
		/* Made by a callback that shutdown() delivers: it does not run,
		 * it ends as cancelled and shutdown delivers that too. */
		c->cancelled = 1;
		__atomic_store_n(&c->state, CALL_CANCELLED, __ATOMIC_RELAXED);
		__atomic_store_n(&c->handed, 1, __ATOMIC_RELAXED); /* handed back here */
		pending_push(ctx, c);
	} else {
		batch_flush(ctx); /* the FFI path's calls made before this one go first */
		async_job_init(&c->job, call_run, c);
		__atomic_fetch_add(&ctx->submitted, 1, __ATOMIC_RELAXED); /* before a worker counts its start */
		rc = async_pool_submit(ctx->pool, &c->job);
		if (rc != 0)
			__atomic_fetch_sub(&ctx->submitted, 1, __ATOMIC_RELAXED);
		if (rc != 0) {
			call_release(L, ctx, c);
			return luaL_error(L, MSG(CALL_REFUSED), name, async_strerror(rc));
		}
	}
	/* Only a call that was made supersedes the one before it. */
	if (haskey)
		take_key(L, ctx, c, top + 1);
	ctx->inflight++;
	h->ctx = ctx;
	h->ctx_id = ctx->id;
	h->index = c->index;
	h->gen = c->gen;
	lua_pushvalue(L, hidx);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->handle_mt);
	lua_setmetatable(L, -2);
	return 1;
}

static struct handle *check_handle(lua_State *L, const char *fname)
{
	struct handle *h = lua_touserdata(L, 1);
	if (h == NULL || !lua_getmetatable(L, 1))
		luaL_error(L, MSG(HANDLE_EXPECTED), fname, luaL_typename(L, 1));
	lua_getfield(L, -1, "__async_handle");
	int okh = lua_toboolean(L, -1);
	lua_pop(L, 2);
	if (!okh)
		luaL_error(L, MSG(HANDLE_EXPECTED), fname, luaL_typename(L, 1));
	return h;
}

/* The context a handle points at, or NULL once it is shut down or the
 * record has moved on to another call. Contexts are found through a
 * registry table so that a handle outliving its pool stays harmless. */
static struct call *handle_call(lua_State *L, struct handle *h)
{
	lua_getfield(L, LUA_REGISTRYINDEX, "async.live");
	lua_pushlightuserdata(L, h->ctx);
	lua_rawget(L, -2);
	int live = lua_isnumber(L, -1) && (uint64_t)lua_tonumber(L, -1) == h->ctx_id;
	lua_pop(L, 2);
	return live ? record_at(h->ctx, h->index, h->gen) : NULL;
}

/* handle:cancel() -> true if the call had not started (it never will). */
int l_handle_cancel(lua_State *L)
{
	struct handle *h = check_handle(L, "cancel");
	struct call *c = handle_call(L, h);
	lua_pushboolean(L, c != NULL && cancel_call(c));
	return 1;
}

/* handle:status() -> "queued", "running", "cancelled" or "done" (delivered). */
int l_handle_status(lua_State *L)
{
	struct handle *h = check_handle(L, "status");
	struct call *c = handle_call(L, h);
	static const char *names[] = { "queued", "running", "cancelled" };
	lua_pushstring(L, c == NULL ? "done" : names[__atomic_load_n(&c->state, __ATOMIC_ACQUIRE)]);
	return 1;
}

/* async.call(callback, name, ...) — upvalue 1: the context */
int l_call(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, lua_upvalueindex(1));
	const char *name = luaL_checkstring(L, 2);
	return do_call(L, ctx, 1, name, 3);
}

/* The shorthand returned by define: f(callback, ...) — upvalues: the
 * context and the name. */
int l_shorthand(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, lua_upvalueindex(1));
	return do_call(L, ctx, 1, lua_tostring(L, lua_upvalueindex(2)), 2);
}
