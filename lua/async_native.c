/* SPDX-License-Identifier: MIT (see LICENSE) */
/* async_native.c: the module entry: luaopen, the pool context (new,
 * worker counts, stats, shutdown by the collector) and encode/decode.
 * The layer schedules nothing itself: jobs go to the core.
 *
 * Threads: everything named l_* runs on the thread that loaded the module
 * (the game's); worker_*, run_* and call_run run on the core's workers.
 * They share only: call records (handed over through the core's submit and
 * back through the lock-free `done` stack), definitions and snapshots
 * (immutable while a call holds them) and the epoch counters. */
#include "internal.h"

static uint64_t ctx_ids; /* distinguishes contexts in LÖVE channel names */

/* Every context of the process, from new to its collection (or for good,
 * when abandoned), under a spin lock: states on other threads (a job's own
 * pool) make them too. The list is also what keeps a context reachable for
 * a leak checker, which does not scan LuaJIT's memory where the userdata
 * holding the pointer lives. */
static struct ctx *ctx_list;
static uint32_t ctx_list_lock;

static void ctx_list_update(struct ctx *ctx, int add)
{
	while (__atomic_exchange_n(&ctx_list_lock, 1, __ATOMIC_ACQUIRE))
		;
	if (add) {
		ctx->next_ctx = ctx_list;
		if (ctx_list != NULL)
			ctx_list->prev_ctx = ctx;
		ctx_list = ctx;
	} else {
		if (ctx->prev_ctx != NULL)
			ctx->prev_ctx->next_ctx = ctx->next_ctx;
		else
			ctx_list = ctx->next_ctx;
		if (ctx->next_ctx != NULL)
			ctx->next_ctx->prev_ctx = ctx->prev_ctx;
	}
	__atomic_store_n(&ctx_list_lock, 0, __ATOMIC_RELEASE);
}

/* The userdata holds a pointer: the context itself is heap memory, so
 * that a context abandoned to a job that never ends outlives the state. */
struct ctx *ctx_of(lua_State *L, int idx)
{
	struct ctx *ctx = *(struct ctx **)luaL_checkudata(L, idx, CTX_MT);
	if (ctx == NULL)
		luaL_error(L, MSG(POOL_SHUT_DOWN));
	return ctx;
}

struct ctx *check_ctx(lua_State *L, int idx)
{
	struct ctx *ctx = ctx_of(L, idx);
	if (ctx->closed)
		luaL_error(L, MSG(POOL_SHUT_DOWN));
	return ctx;
}

static unsigned check_count(lua_State *L, int idx, const char *fn)
{
	lua_Number n = luaL_checknumber(L, idx);
	if (!(n >= 0))
		return (unsigned)luaL_error(L, MSG(WORKER_COUNT), fn, lua_tostring(L, idx));
	/* Fractions (cores * 0.75) are floored; more than a pool can hold
	 * is what the pool's own limit then cuts. */
	n = floor(n);
	return n > ASYNC_MAX_SLOTS ? ASYNC_MAX_SLOTS : (unsigned)n;
}

static int l_add(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	unsigned n = check_count(L, 2, "async.addWorker");
	int rc = async_pool_add_workers(ctx->pool, n);
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, async_strerror(rc));
		return 2;
	}
	lua_pushinteger(L, rc);
	return 1;
}

static int l_stop(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	unsigned n = check_count(L, 2, "async.stopWorkers");
	lua_pushinteger(L, async_pool_stop_workers(ctx->pool, n));
	return 1;
}

static int l_count(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	lua_pushinteger(L, async_pool_worker_count(ctx->pool));
	return 1;
}

static void set_num(lua_State *L, int t, const char *k, lua_Number v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, t, k);
}

/* stats([t]) -> t: fills t (or a new table) with the counters below,
 * reusing its `workers` subtables, so a game can call it every frame
 * without allocating. */
static int l_stats(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	/* Everything is read from the pool before the first allocation: one
	 * may run a finalizer that shuts this pool down (ctx->pool NULL). */
	async_worker_stats st[256];
	uint64_t wmem[256];
	int nall = async_pool_stats(ctx->pool, st, 256);
	int n = nall > 256 ? 256 : nall;
	for (int i = 0; i < n; i++)
		wmem[i] = __atomic_load_n(ASYNC_MEM(ctx, i), __ATOMIC_RELAXED);
	take_done(ctx); /* so that finished-but-undelivered calls are counted */
	/* Calls whose job runs now, counted by the workers themselves; the
	 * rest not ready is queued. (The pool's queue count cannot say: a job
	 * a worker has taken into its batch but not started is in neither the
	 * queue nor running, and handle:cancel() still cancels it.) */
	int64_t running = 0;
	for (int i = 0; i < nall && i < ASYNC_MAX_SLOTS; i++)
		running += (int64_t)__atomic_load_n(ASYNC_RUNNING(ctx, i), __ATOMIC_RELAXED);
	int64_t queued = (int64_t)ctx->inflight - (int64_t)ctx->npending - running;
	if (queued < 0)
		queued = 0;
	/* What idle records keep for their next call (call.c's buf_shrink
	 * bounds it); live ones may be a worker's, so only free ones count. */
	uint64_t kept = 0, records = 0;
	for (size_t i = 0; i < ctx->nall; i++) {
		records += ctx->all[i] != NULL;
		if (ctx->all[i] != NULL && !ctx->all[i]->live)
			kept += ctx->all[i]->args.cap + ctx->all[i]->res.cap;
	}
	lua_Number counts[] = { (lua_Number)ctx->npending, (lua_Number)ctx->inflight, (lua_Number)ctx->delivered,
		                (lua_Number)ctx->failed_count, (lua_Number)ctx->cancelled_count,
		                (lua_Number)async_pool_worker_count(ctx->pool),
		                (lua_Number)__atomic_load_n(&ctx->replaced, __ATOMIC_RELAXED), (lua_Number)kept,
		                (lua_Number)records };
	if (lua_istable(L, 2))
		lua_settop(L, 2);
	else {
		lua_settop(L, 1);
		lua_createtable(L, 0, 10);
	}
	int t = 2;
	set_num(L, t, "queued", (lua_Number)queued);
	set_num(L, t, "running", (lua_Number)(running < 0 ? 0 : running));
	set_num(L, t, "ready", counts[0]);
	set_num(L, t, "inflight", counts[1]);
	set_num(L, t, "completed", counts[2]);
	set_num(L, t, "failed", counts[3]);
	set_num(L, t, "cancelled", counts[4]);
	set_num(L, t, "workerCount", counts[5]);
	lua_getfield(L, t, "workers");
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		lua_createtable(L, n, 0);
		lua_pushvalue(L, -1);
		lua_setfield(L, t, "workers");
	}
	int ws = lua_gettop(L);
	uint64_t steals = 0, memory = 0;
	for (int i = 0; i < n; i++) {
		lua_rawgeti(L, ws, i + 1);
		if (!lua_istable(L, -1)) {
			lua_pop(L, 1);
			lua_createtable(L, 0, 6);
			lua_pushvalue(L, -1);
			lua_rawseti(L, ws, i + 1);
		}
		int w = lua_gettop(L);
		set_num(L, w, "index", i);
		lua_pushboolean(L, st[i].running);
		lua_setfield(L, w, "running");
		set_num(L, w, "jobs", (lua_Number)st[i].jobs);
		set_num(L, w, "steals", (lua_Number)st[i].steals);
		set_num(L, w, "busy", (lua_Number)st[i].busy_ns * 1e-9);
		set_num(L, w, "idle", (lua_Number)st[i].idle_ns * 1e-9);
		uint64_t m = wmem[i];
		set_num(L, w, "memory", (lua_Number)m);
		lua_pop(L, 1);
		steals += st[i].steals;
		memory += m;
	}
	for (int i = n + 1; !lua_isnil(L, (lua_rawgeti(L, ws, i), -1)); i++) {
		lua_pop(L, 1);
		lua_pushnil(L);
		lua_rawseti(L, ws, i);
	}
	lua_pop(L, 2);
	set_num(L, t, "steals", (lua_Number)steals);
	set_num(L, t, "memory", (lua_Number)memory);
	set_num(L, t, "channels", (lua_Number)chan_count());
	set_num(L, t, "statesReplaced", counts[6]);
	set_num(L, t, "recordBytes", counts[7]);
	set_num(L, t, "records", counts[8]);
	return 1; /* t.defs: async_profile.lua, through statsDefs when it is read */
}

/* Takes ctx out of the live contexts that buffers and handles check. */
void ctx_forget(lua_State *L, struct ctx *ctx)
{
	lua_getfield(L, LUA_REGISTRYINDEX, "async.live");
	if (lua_istable(L, -1)) {
		lua_pushlightuserdata(L, ctx);
		lua_pushnil(L);
		lua_rawset(L, -3);
	}
	lua_pop(L, 1);
}

void ctx_free_all(lua_State *L, struct ctx *ctx, int unref)
{
	if (ctx->pool != NULL) {
		batch_flush(ctx); /* the pool runs (or skips, if cancelled) what it was given */
		async_pool_destroy(ctx->pool);
		ctx->pool = NULL;
	}
	ctx_forget(L, ctx);
	for (size_t i = 0; i < ctx->nall; i++) {
		struct call *c = ctx->all[i];
		if (c == NULL)
			continue;
		/* Its channel name is reused only if nothing is left on it. */
		int dirty = !unref && c->objs_pushed != c->objs_popped;
		call_release(unref ? L : NULL, ctx, c); /* no-op for records already released */
		if (!dirty)
			chan_give(c->chan);
		lent_free(&c->bufs);
		async_buf_free(&c->args);
		async_buf_free(&c->res);
		free(c);
	}
	free(ctx->all);
	ctx->all = NULL;
	ctx->nall = ctx->capall = 0;
	ctx->free = ctx->pending = ctx->pending_tail = ctx->done = NULL;
	ctx->nfree = ctx->hole = 0;
	registry_free(L, ctx, unref);
	if (ctx->defs != LUA_NOREF) {
		if (unref) {
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->error_fn);
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->defs);
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->facade);
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->keys);
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->handle_mt);
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->fast_hook);
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->fast_busy);
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->window_fn);
		}
		ctx->defs = ctx->facade = ctx->keys = ctx->handle_mt = ctx->error_fn = LUA_NOREF;
		ctx->fast_hook = ctx->fast_busy = ctx->window_fn = LUA_NOREF;
	}
	if (ctx->fallback) {
		if (tls_ws == ctx->fallback)
			tls_ws = NULL;
		wstate_free(ctx->fallback);
		ctx->fallback = NULL;
	}
	for (int i = 0; i < ctx->npre; i++)
		free(ctx->pre[i].name);
	free(ctx->pre);
	ctx->pre = NULL;
	ctx->npre = 0;
	free(ctx->path);
	free(ctx->cpath);
	ctx->path = ctx->cpath = NULL;
	free(ctx->boot);
	ctx->boot = NULL;
	free(ctx->mem); /* after the pool and the fallback: their states count into it */
	ctx->mem = NULL;
	ctx->closed = 1;
}

/* The game's state is closing without shutdown() (a game that quits):
 * queued calls are cancelled rather than run, running ones see
 * async.cancelled() and get QUIT_GRACE_S to end, then the stop hook, and
 * HOOK_GRACE_S later are left to the process's exit (the context with
 * them). No callback runs from a collector. */
static int l_gc(lua_State *L)
{
	struct ctx **p = luaL_checkudata(L, 1, CTX_MT);
	struct ctx *ctx = *p;
	if (ctx == NULL)
		return 0;
	*p = NULL;
	if (!ctx->closed) {
		batch_flush(ctx);
		ctx->shutting = 1;
		cancel_all(ctx);
		double deadline = now_s() + QUIT_GRACE_S;
		while (any_running(ctx)) {
			if (now_s() >= deadline) {
				if (__atomic_load_n(&ctx->hard_stop, __ATOMIC_RELAXED)) {
					ctx->abandoned = 1;
					return 0;
				}
				hook_running(ctx);
				deadline = now_s() + HOOK_GRACE_S;
			}
			nap_ms(1);
		}
		ctx_free_all(L, ctx, 0);
	}
	if (!ctx->abandoned) {
		ctx_list_update(ctx, 0);
		/* Not in ctx_free_all: stats() walks them while it allocates, and
		 * a finalizer may shut the pool down meanwhile. */
		profile_free(ctx);
		free(ctx);
	}
	return 0;
}

/* new(workers, facade[, memoryLimit[, pin[, boot]]]) -> context, call, update;
 * boot: bytecode every worker state runs once made (async_perfmap.lua). */
static int l_new(lua_State *L)
{
	lua_Number n = luaL_optnumber(L, 1, 1);
	if (!(n >= 0))
		return luaL_error(L, MSG(WORKER_COUNT), "async.load", lua_tostring(L, 1));
	n = floor(n);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_Number limit = luaL_optnumber(L, 3, 0);
	if (!(limit >= 0) || limit != floor(limit) || limit > 9.0e15)
		return luaL_error(L, MSG(LOAD_MEMORY_LIMIT), lua_tostring(L, 3));
	uint64_t *mem = calloc((size_t)ASYNC_MAX_SLOTS * ASYNC_MEM_STRIDE, sizeof *mem);
	struct ctx *ctx = calloc(1, sizeof *ctx);
	if (mem == NULL || ctx == NULL) {
		free(mem);
		free(ctx);
		return luaL_error(L, MSG(OUT_OF_MEMORY), "async.load");
	}
	struct ctx **box = lua_newuserdata(L, sizeof *box);
	*box = ctx; /* freed by the collector (l_gc) */
	ctx_list_update(ctx, 1);
	ctx->defs = ctx->facade = ctx->keys = ctx->handle_mt = ctx->shares = ctx->error_fn = LUA_NOREF;
	ctx->fast_hook = ctx->fast_busy = ctx->window_fn = LUA_NOREF;
	ctx->closed = 1; /* until the pool exists */
	ctx->mem = mem;
	ctx->mem_limit = (uint64_t)limit;
	if (lua_isstring(L, 5)) {
		size_t nb;
		const char *b = lua_tolstring(L, 5, &nb);
		ctx->boot = malloc(nb);
		if (ctx->boot != NULL) {
			memcpy(ctx->boot, b, nb);
			ctx->nboot = nb;
		}
	}
	luaL_getmetatable(L, CTX_MT);
	lua_setmetatable(L, -2);
	int ud = lua_gettop(L);
	ctx->id = __atomic_add_fetch(&ctx_ids, 1, __ATOMIC_RELAXED);
	lua_newtable(L);
	ctx->defs = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, 2);
	ctx->facade = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	ctx->keys = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	ctx->shares = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getglobal(L, "error");
	ctx->error_fn = luaL_ref(L, LUA_REGISTRYINDEX);
	snap_publish(L, ctx, 1); /* the empty registry */
	luaL_getmetatable(L, "async.handle");
	ctx->handle_mt = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushcfunction(L, l_window); /* made now: pushing it later would allocate */
	ctx->window_fn = luaL_ref(L, LUA_REGISTRYINDEX);
	capture_environment(L, ctx);
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = n > ASYNC_MAX_SLOTS ? ASYNC_MAX_SLOTS : (unsigned)n;
	cfg.on_worker_start = worker_start;
	cfg.on_worker_stop = worker_stop;
	cfg.userdata = ctx;
	/* Unpinned unless asked: pinning worker k to CPU k stacks the game's
	 * main thread, and every other pool, onto the workers' cores. */
	cfg.pin = lua_toboolean(L, 4);
	int rc = async_pool_create(&ctx->pool, &cfg);
	if (rc == ASYNC_EINVAL && cfg.workers > 0) {
		/* More workers than the pool's maximum (which the core works out
		 * from the machine): start with none and add up to it, with a
		 * warning rather than a failure. */
		cfg.workers = 0;
		rc = async_pool_create(&ctx->pool, &cfg);
		if (rc == 0) {
			int added = async_pool_add_workers(ctx->pool, n > ASYNC_MAX_SLOTS ? ASYNC_MAX_SLOTS : (unsigned)n);
			fprintf(stderr, MSG(TOO_MANY_WORKERS), n, added < 0 ? 0 : added);
		}
	}
	if (rc != 0) {
		ctx_free_all(L, ctx, 1);
		return luaL_error(L, MSG(LOAD_FAILED), async_strerror(rc));
	}
	ctx->closed = 0;
	lua_getfield(L, LUA_REGISTRYINDEX, "async.live");
	lua_pushlightuserdata(L, ctx);
	lua_pushnumber(L, (lua_Number)ctx->id);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_pushvalue(L, ud);
	lua_pushcclosure(L, l_call, 1);
	lua_pushvalue(L, ud);
	lua_pushcclosure(L, l_update, 1);
	return 3;
}

static const luaL_Reg ctx_methods[] = {
	{ "define", l_define },
	{ "undefine", l_undefine },
	{ "add", l_add },
	{ "stop", l_stop },
	{ "count", l_count },
	{ "stats", l_stats },
	{ "shutdown", l_shutdown },
	{ "share", l_share },
	{ "setWorkerInit", l_set_init },
	{ "deliverOne", l_deliver_one },
	{ "fastApi", l_fast_api },
	{ "setFastHook", l_fast_hook },
	{ "traceStart", l_trace_start },
	{ "traceStop", l_trace_stop },
	{ "traceOn", l_trace_on },
	{ "traceRecord", l_trace_record },
	{ "traceWrite", l_trace_write },
	{ "statsDefs", l_stats_defs },
	{ "traceCollect", l_trace_collect },
	{ "traceApi", l_trace_api },
	{ NULL, NULL },
};

static const luaL_Reg handle_methods[] = {
	{ "cancel", l_handle_cancel },
	{ "status", l_handle_status },
	{ NULL, NULL },
};

/* encode(...) -> string: the values in async's wire format (no objects).
 * For benchmarks, tests and the fuzzer; raises like async.call. Encodes
 * into a buffer kept between calls (its upvalue), as a worker encodes into
 * a record's kept buffer, within the same bound. */
static int l_encode(lua_State *L)
{
	struct async_buf *b = lua_touserdata(L, lua_upvalueindex(1));
	char err[256];
	int rc = async_codec_encode(L, 1, lua_gettop(L), b, "argument", NULL, err, sizeof err);
	if (rc == 0)
		lua_pushlstring(L, (const char *)b->p, b->n);
	if (b->cap > RECORD_KEEP_BYTES)
		async_buf_free(b);
	if (rc != 0)
		return luaL_error(L, MSG(ENCODE_REFUSED), err);
	return 1;
}

static int l_encode_buf_gc(lua_State *L)
{
	async_buf_free(lua_touserdata(L, 1));
	return 0;
}

/* decode(s) -> ...: the values, or nil and a message for malformed data. */
static int l_decode(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	char err[256];
	int top = lua_gettop(L);
	int k = async_codec_decode(L, (const unsigned char *)s, n, NULL, err, sizeof err);
	if (k < 0) {
		lua_settop(L, top);
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	return k;
}

static const luaL_Reg module_functions[] = {
	{ "new", l_new },
	{ "decode", l_decode },
	{ "newBuffer", l_new_buffer },
	{ "now", l_now },
	{ NULL, NULL },
};

ASYNC_EXPORT int luaopen_async_native(lua_State *L)
{
	if (luaL_newmetatable(L, CTX_MT)) {
		lua_pushcfunction(L, l_gc);
		lua_setfield(L, -2, "__gc");
		lua_newtable(L);
		luaL_register(L, NULL, ctx_methods);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
	if (luaL_newmetatable(L, "async.handle")) {
		lua_newtable(L);
		luaL_register(L, NULL, handle_methods);
		lua_setfield(L, -2, "__index");
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "__async_handle");
	}
	lua_pop(L, 1);
	lua_getfield(L, LUA_REGISTRYINDEX, "async.live");
	if (lua_isnil(L, -1)) {
		lua_newtable(L);
		lua_setfield(L, LUA_REGISTRYINDEX, "async.live");
	}
	lua_pop(L, 1);
	/* A worker state marks itself before any require; a state that loads
	 * the module otherwise is a game's (buffers check `lent` there). */
	lua_getfield(L, LUA_REGISTRYINDEX, "async.main");
	if (lua_isnil(L, -1)) {
		lua_pushboolean(L, 1);
		lua_setfield(L, LUA_REGISTRYINDEX, "async.main");
	}
	lua_pop(L, 1);
	lua_getfield(L, LUA_REGISTRYINDEX, "async.buffers");
	if (lua_isnil(L, -1)) {
		lua_newtable(L); /* buffer -> its proxy, weak: one proxy per buffer */
		lua_createtable(L, 0, 1);
		lua_pushstring(L, "v");
		lua_setfield(L, -2, "__mode");
		lua_setmetatable(L, -2);
		lua_setfield(L, LUA_REGISTRYINDEX, "async.buffers");
	}
	lua_pop(L, 1);
	register_buffer_type(L);
	lua_newtable(L);
	luaL_register(L, NULL, module_functions);
	struct async_buf *scratch = lua_newuserdata(L, sizeof *scratch);
	memset(scratch, 0, sizeof *scratch);
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, l_encode_buf_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	lua_pushcclosure(L, l_encode, 1);
	lua_setfield(L, -2, "encode");
	lua_pushinteger(L, ASYNC_CODEC_MAX_DEPTH);
	lua_setfield(L, -2, "max_depth");
	async_codec_push_format(L);
	lua_setfield(L, -2, "format");
	return 1;
}
