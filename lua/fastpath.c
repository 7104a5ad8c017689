/* SPDX-License-Identifier: MIT (see LICENSE) */
/* fastpath.c: the C half of the FFI path (async_fast.lua). Plain C
 * functions, reached through a table of pointers that LuaJIT calls from
 * compiled traces: no Lua C API, no registry refs, no userdata per call.
 * The Lua half encodes the arguments, keeps the callbacks and decodes the
 * plain results; the records, the snapshot and the core are shared with
 * the C API path (call.c, deliver.c). Main thread only, as they are. */
#include "internal.h"

/* The oldest finished call, as the Lua decoder sees it. */
struct async_fast_head {
	const unsigned char *p; /* its result (or error value, traceback) */
	size_t n;
	int32_t index;
	int32_t fast;   /* made by the FFI path */
	int32_t status; /* 0 success, 1 failure, 2 cancelled (or superseded) */
};

/* The snapshot's epoch: a definition found by fast_lookup stays valid (the
 * snapshot holds it) while this is unchanged. -1 once closed. */
static double fast_epoch(struct ctx *ctx)
{
	return ctx->closed ? -1 : (double)ctx->snap->id;
}

/* The definition of `name` in the current snapshot, or NULL. */
static struct def *fast_lookup(struct ctx *ctx, const char *name)
{
	return ctx->closed ? NULL : snap_find_def(ctx->snap, name);
}

/* The batch is the main thread's and, when the queue runs dry, a
 * worker's (batch_worker_check): a spin lock held for a few stores or one
 * submission. */
static void batch_lock(struct ctx *ctx)
{
	while (__atomic_exchange_n(&ctx->batch_lock, 1, __ATOMIC_ACQUIRE) != 0)
		while (__atomic_load_n(&ctx->batch_lock, __ATOMIC_RELAXED) != 0)
			;
}

static void batch_unlock(struct ctx *ctx)
{
	__atomic_store_n(&ctx->batch_lock, 0, __ATOMIC_RELEASE);
}

static void flush_locked(struct ctx *ctx, int worker);

/* Makes a call of d (from fast_lookup at `epoch`) with the
 * encoded arguments and the nxs strings they pass by reference (OBJ_STR):
 * the index of its record (its generation in *gen), or
 * -1 when the C API path must make it instead (shutting down or closed, out
 * of memory), which then raises or ends it exactly as it always does. The
 * call joins the batch (batch_flush); a submission the pool refuses there
 * ends the call failed. */
static int32_t fast_call(struct ctx *ctx, struct def *d, double epoch, const unsigned char *args, size_t n,
                         uint32_t *gen, const struct xstr *xs, int nxs)
{
	if (ctx->closed || ctx->shutting || nxs < 0 || nxs > XSTR_MAX)
		return -1;
	/* Checked here, not by the caller: a finalizer may run between any two
	 * of the caller's FFI calls (after one returns) and redefine the name,
	 * which frees d. */
	if ((double)ctx->snap->id != epoch)
		return -1;
	struct call *c = record_take(ctx);
	if (c == NULL)
		return -1;
	c->args.n = 0;
	if (c->args.cap < n) {
		unsigned char *p = realloc(c->args.p, n);
		if (p == NULL) {
			call_release(NULL, ctx, c);
			return -1;
		}
		c->args.p = p;
		c->args.cap = n;
	}
	memcpy(c->args.p, args, n);
	c->args.n = n;
	memcpy(c->xs, xs, (size_t)nxs * sizeof *xs);
	c->nxs = nxs;
	c->def = d;
	profile_made(c);
	d->refs++;
	c->snap = ctx->snap;
	c->snap->refs++;
	c->failed = c->cancelled = c->superseded = 0;
	c->fast = 1;
	__atomic_store_n(&c->stop_asked, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->finished, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->handed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->state, CALL_QUEUED, __ATOMIC_RELAXED);
	ctx->inflight++;
	*gen = c->gen;
	batch_lock(ctx);
	int k = ctx->nbatch;
	ctx->batch[k++] = c;
	/* Held back only while the pool has more queued than the batch holds;
	 * otherwise (a worker idle or about to be) it goes now, as does a full
	 * batch. Sequentially consistent, as the worker's count of starts and
	 * its load of nbatch (batch_worker_check): either a worker starting a
	 * job sees this call held, or the load below sees that start, so the
	 * last job to start before the queue runs dry flushes. */
	__atomic_exchange_n(&ctx->nbatch, k, __ATOMIC_SEQ_CST);
	uint64_t queued = __atomic_load_n(&ctx->submitted, __ATOMIC_RELAXED) -
	                  __atomic_load_n(&ctx->started, __ATOMIC_SEQ_CST);
	if (queued <= (uint64_t)k || k == BATCH_MAX)
		flush_locked(ctx, 0);
	batch_unlock(ctx);
	return (int32_t)c->index;
}

/* A call the pool refused: it ends failed, delivered as any failure is,
 * never dropped. */
static void batch_refused(struct call *c, int rc)
{
	fail_res(&c->res, &c->failed, NULL, async_strerror(rc), "");
	__atomic_store_n(&c->state, CALL_RUNNING, __ATOMIC_RELAXED);
	call_done(c);
}

/* Submits the calls the FFI path holds, oldest first, under the batch
 * lock, as one async_pool_submit_list of the records' own jobs: one
 * publication and at most one wake-up, and each job stays in its own
 * record (a shared block of jobs put the records two workers were running
 * on one cache line, with a shared count to free it). A worker's
 * submission goes to its own deque, which it pops newest first: so from a
 * worker (`worker`) the list is laid out newest first, and the calls still
 * start oldest first. */
static void flush_locked(struct ctx *ctx, int worker)
{
	int n = ctx->nbatch;
	if (n == 0)
		return;
	__atomic_store_n(&ctx->nbatch, 0, __ATOMIC_RELAXED);
	async_job *jobs[BATCH_MAX];
	for (int i = 0; i < n; i++) {
		struct call *c = ctx->batch[worker ? n - 1 - i : i];
		async_job_init(&c->job, call_run, c);
		jobs[i] = &c->job;
	}
	/* Counted first: a worker may start one before the call returns. */
	__atomic_fetch_add(&ctx->submitted, (uint64_t)n, __ATOMIC_RELAXED);
	int rc = async_pool_submit_list(ctx->pool, jobs, (size_t)n);
	if (rc == 0)
		return;
	__atomic_fetch_sub(&ctx->submitted, (uint64_t)n, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++)
		batch_refused(ctx->batch[worker ? n - 1 - i : i], rc);
}

/* Main thread: submits what the FFI path holds (update, shutdown, before
 * any other submission). */
void batch_flush(struct ctx *ctx)
{
	if (__atomic_load_n(&ctx->nbatch, __ATOMIC_RELAXED) == 0)
		return;
	batch_lock(ctx);
	flush_locked(ctx, 0);
	batch_unlock(ctx);
}

/* A worker that has just started a call (and counted it in ctx->started,
 * a full barrier): when that emptied the queue while calls are held back,
 * it submits them itself, so that no worker idles while the game holds
 * calls until its next update(). */
void batch_worker_check(struct ctx *ctx)
{
	if (__atomic_load_n(&ctx->nbatch, __ATOMIC_SEQ_CST) == 0)
		return;
	if (__atomic_load_n(&ctx->submitted, __ATOMIC_RELAXED) != __atomic_load_n(&ctx->started, __ATOMIC_RELAXED))
		return; /* jobs are still queued: the worker that starts the last one checks again */
	batch_lock(ctx);
	flush_locked(ctx, 1);
	batch_unlock(ctx);
}

/* Fills *h with the oldest finished call; 0, or -1 when there is none. */
static int fast_peek(struct ctx *ctx, struct async_fast_head *h)
{
	if (ctx->closed)
		return -1;
	take_done(ctx);
	struct call *c = ctx->pending;
	if (c == NULL) {
		records_trim(ctx); /* update() has delivered all it will */
		return -1;
	}
	h->index = (int32_t)c->index;
	h->fast = c->fast;
	h->status = (c->cancelled || c->superseded) ? 2 : c->failed ? 1 : 0;
	h->p = c->res.p;
	h->n = c->res.n;
	return 0;
}

/* Takes the oldest finished call (an FFI-path one, peeked and decoded by
 * the Lua side) off the list, counts and releases it. Its values must be
 * decoded first: release may free the result. */
static void fast_pop(struct ctx *ctx)
{
	struct call *c = ctx->pending;
	pending_pop(ctx, c);
	if (c->cancelled || c->superseded)
		ctx->cancelled_count++;
	else if (c->failed)
		ctx->failed_count++;
	else
		ctx->delivered++;
	call_release(NULL, ctx, c); /* nothing in the registry to drop */
}

/* The record index at generation gen, or NULL once it is delivered. */
static struct call *fast_record(struct ctx *ctx, int32_t index, uint32_t gen)
{
	return ctx->closed ? NULL : record_at(ctx, index, gen);
}

static int fast_cancel(struct ctx *ctx, int32_t index, uint32_t gen)
{
	struct call *c = fast_record(ctx, index, gen);
	return c != NULL && cancel_call(c);
}

/* -1: done (delivered); else CALL_QUEUED, CALL_RUNNING or CALL_CANCELLED. */
static int fast_status(struct ctx *ctx, int32_t index, uint32_t gen)
{
	struct call *c = fast_record(ctx, index, gen);
	return c == NULL ? -1 : (int)__atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
}

static double fast_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The layout async_fast.lua declares with ffi.cdef: keep the two in step. */
struct async_fast_api {
	int32_t (*call)(struct ctx *, struct def *, double, const unsigned char *, size_t, uint32_t *, const struct xstr *,
	                int);
	int (*peek)(struct ctx *, struct async_fast_head *);
	void (*pop)(struct ctx *);
	int (*cancel)(struct ctx *, int32_t, uint32_t);
	int (*status)(struct ctx *, int32_t, uint32_t);
	double (*now)(void);
	double (*epoch)(struct ctx *);
	struct def *(*lookup)(struct ctx *, const char *);
	void (*flush)(struct ctx *);
};

static const struct async_fast_api fast_api = {
	fast_call, fast_peek, fast_pop, fast_cancel, fast_status, fast_now, fast_epoch, fast_lookup, batch_flush,
};

/* ctx:fastApi() -> lightuserdata context, lightuserdata API table, the
 * context's id (handles name it: a freed context's address is reused),
 * lightuserdata int32_t[2]: the context's busy flags (internal.h), the wire format's
 * constants (async_codec_push_format, with xstrMax and objStr). */
int l_fast_api(lua_State *L)
{
	struct ctx *ctx = ctx_of(L, 1);
	lua_pushlightuserdata(L, ctx);
	lua_pushlightuserdata(L, (void *)&fast_api);
	lua_pushnumber(L, (lua_Number)ctx->id);
	lua_pushlightuserdata(L, &ctx->busy);
	/* The format's constants, and this path's own: how many strings a call
	 * may pass by reference, and the payload bit that marks one. */
	async_codec_push_format(L);
	lua_pushinteger(L, XSTR_MAX);
	lua_setfield(L, -2, "xstrMax");
	lua_pushnumber(L, (lua_Number)OBJ_STR);
	lua_setfield(L, -2, "objStr");
	return 5;
}

/* ctx:setFastHook(fn, busy): fn(index, status, ...) delivers an
 * FFI-path record that the C side delivers (see deliver.c); busy() says
 * whether that file's windows are open (busy_now). */
int l_fast_hook(lua_State *L)
{
	struct ctx *ctx = ctx_of(L, 1);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	luaL_checktype(L, 3, LUA_TFUNCTION);
	if (ctx->closed)
		return luaL_error(L, MSG(POOL_SHUT_DOWN));
	lua_settop(L, 3);
	if (ctx->fast_busy != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, ctx->fast_busy);
	ctx->fast_busy = luaL_ref(L, LUA_REGISTRYINDEX);
	if (ctx->fast_hook != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, ctx->fast_hook);
	ctx->fast_hook = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}
