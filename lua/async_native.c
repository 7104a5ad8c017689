/* async_native.c: the native Lua module behind async.lua. It binds the C
 * core to Lua: worker Lua states, the definition registry, call records and
 * the delivery of results. It schedules nothing itself: jobs go to the core.
 *
 * Threads: everything named main_* or l_* runs on the thread that loaded the
 * module (the game's); worker_* and call_run run on the core's workers. They
 * share only: call records (handed over through the core's submit and back
 * through the lock-free `done` stack), definitions (immutable while a call
 * holds them) and the epoch counter. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "async/async.h"
#include "codec.h"
#include "os_mem.h" /* portability: aligned allocation (header-only, from core/src) */

#define CTX_MT "async.context"
#ifdef _WIN32 /* portability: a DLL exports what is marked dllexport, and then only that */
#define ASYNC_EXPORT __declspec(dllexport)
#else
#define ASYNC_EXPORT __attribute__((visibility("default")))
#endif

struct def {
	uint64_t id; /* unique per define: the worker cache key */
	char *name;
	struct async_buf code;   /* string.dump bytecode */
	struct async_buf upvals; /* the upvalues' values, encoded */
	int nupvals;
	unsigned char *is_async; /* per upvalue: it held the async table itself,
	                          * bound to the worker-side async in jobs */
	int refs; /* main thread only: the registry's + one per call in flight */
};

/* A value published with async.share: encoded once, decoded once per
 * worker per version. */
struct share {
	uint64_t id;
	char *name;
	struct async_buf val;
	int refs; /* main thread only */
};

/* An immutable view of the registry: every definition, shared value and the
 * worker-init function as they were when it was published. Each call holds
 * the snapshot current when it was made, so "calls already made keep their
 * version" holds for all three, and a job that starts a job looks names up
 * in its parent's snapshot. Published on define/undefine/share/init (rare);
 * refcounted by the main thread only. */
struct snap {
	int refs;
	uint64_t id; /* the epoch it was published at */
	int ndefs, nshares;
	struct def **defs;     /* sorted by name */
	struct share **shares; /* sorted by name */
	struct def *init;      /* async.setWorkerInit, or NULL */
};

/* async.newBuffer: raw memory seen through the FFI on both sides without a
 * copy. refs counts every proxy userdata and every call holding it (atomic:
 * proxies die in any state). lent counts calls in flight that the game
 * passed it to: while it is non-zero the game's proxies refuse access. */
struct abuf {
	uint32_t refs;
	uint32_t lent;
	size_t size;
	unsigned char *data;
};

struct bufproxy {
	struct abuf *b;
	int valid; /* a worker's proxy is valid for the job that received it */
	int main;  /* a proxy in the game's state: checks lent */
};

/* Buffers a call or job holds while in flight. */
struct lentlist {
	struct abuf **v;
	unsigned char *mainlent; /* 1: counted in v[i]->lent */
	int n, cap;
};

struct ctx;

enum { CALL_QUEUED = 0, CALL_RUNNING = 1, CALL_CANCELLED = 2 };

struct call {
	async_job job;
	struct ctx *ctx;
	struct def *def;
	struct snap *snap; /* the registry as it was when the call was made */
	struct lentlist bufs;
	int cb;        /* registry ref of the callback in the main state */
	int key;       /* registry ref of its "latest wins" key, or LUA_NOREF */
	uint32_t index; /* stable record number: names its LÖVE channel */
	uint32_t gen;   /* bumped at each use: a handle names (record, gen) */
	uint32_t state; /* CALL_*: the main thread's cancel and the worker's
	                 * start race by CAS from CALL_QUEUED */
	int failed;    /* res holds (error value, traceback) */
	int cancelled; /* the worker skipped it */
	int clear_objs; /* the job failed mid-encode: its LÖVE channel may
	                 * hold objects nobody will pop */
	uint32_t stop_asked; /* cancelled while running: async.cancelled() in
	                      * the job says so (atomic) */
	struct async_buf args, res;
	struct call *next;
};

struct preload {
	char *name;
	lua_CFunction fn;
	int required; /* loaded in the game's state: require it in workers too */
};

/* Wraps a worker state's allocator (LuaJIT's own, kept for speed) to count
 * its bytes and refuse growth past the limit: LuaJIT then raises "not enough
 * memory" at the allocation, as for a real malloc failure. Only the thread
 * that owns the state allocates; `used` is read by stats() on the main
 * thread, hence the atomic accesses. */
struct memacct {
	lua_Alloc f;
	void *ud;
	uint64_t *used;  /* ctx->mem[index], or `own` */
	uint64_t own;
	uint64_t limit;  /* 0: none */
	int refused;     /* the limit refused an allocation */
};

/* One per worker thread (and one on the main thread if shutdown has to run
 * leftovers there). */
struct wstate {
	struct memacct acct;
	int depth;    /* run_def nesting: await runs jobs inside a job */
	int dead;     /* ran out of memory: replaced once depth is back to 0 */
	lua_State *L;
	struct ctx *ctx;
	unsigned index;
	uint64_t epoch;
	uint64_t snap_id;  /* the snapshot whose shared values are decoded */
	uint64_t init_id;  /* the init function last run here */
	struct snap *cur;  /* the running job's snapshot (for await) */
	struct call *call; /* the game's call being run here (async.cancelled) */
	int cache;    /* registry ref: def id -> compiled function */
	int envmt;    /* registry ref: { __index = _G } */
	int api;      /* registry ref: the worker-side `async` table */
	int shareids; /* registry ref: name -> id of the decoded shared value */
	int proxies;  /* registry ref: buffer proxies handed to running jobs */
	char *init_error;
};

struct ctx {
	async_pool *pool;
	uint64_t epoch; /* moved by define/undefine (atomic); read by workers */
	uint64_t next_def_id;
	uint64_t id;    /* distinguishes contexts in LÖVE channel names */
	int defs;       /* registry ref: name -> lightuserdata def */
	int keys;       /* registry ref: key -> lightuserdata call (latest wins) */
	int shares;     /* registry ref: name -> lightuserdata share */
	struct def *init;
	struct snap *snap; /* the current registry snapshot */
	int handle_mt;  /* registry ref: metatable of call handles */
	int facade;     /* registry ref: the async table (onerror) */
	struct call *done; /* finished, pushed by workers (lock-free stack) */
	struct call *pending, *pending_tail; /* taken from done, not delivered */
	struct call *free;
	struct call **all;
	size_t nall, capall;
	size_t inflight; /* made and not yet delivered */
	uint64_t delivered, failed_count, cancelled_count;
	size_t npending;
	char *path, *cpath;
	struct preload *pre;
	int npre;
	int love;
	int closed;
	struct wstate *fallback;
	uint64_t mem_limit;  /* bytes per worker state; 0: none */
	uint64_t *mem;       /* bytes in use, per worker slot (ASYNC_MAX_SLOTS) */
	uint64_t replaced;   /* worker states replaced (atomic) */
};

#define ASYNC_MAX_SLOTS 4096

static __thread struct wstate *tls_ws;
static void wstate_replace(struct wstate *ws);
static uint64_t ctx_ids;

/* ---- LÖVE objects: by reference, through a per-record named Channel ---- */

/* Pushes the channel for record c in state L (cached per state). */
static int push_channel(lua_State *L, struct call *c)
{
	char name[64];
	snprintf(name, sizeof name, "async.%llu.%u", (unsigned long long)c->ctx->id, c->index);
	lua_getglobal(L, "love");
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return -1;
	}
	lua_getfield(L, -1, "thread");
	lua_remove(L, -2);
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return -1;
	}
	lua_getfield(L, -1, "getChannel");
	lua_remove(L, -2);
	lua_pushstring(L, name);
	if (lua_pcall(L, 1, 1, 0) != 0 || !lua_isuserdata(L, -1)) {
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

static int is_love_object(lua_State *L, int idx)
{
	if (!luaL_getmetafield(L, idx, "typeOf"))
		return 0;
	lua_pop(L, 1);
	return 1;
}

/* Calls channel:method(...) with the channel at -1-nargs: used for push,
 * pop and clear. Leaves nresults. */
static int channel_call(lua_State *L, const char *method, int nargs, int nresults)
{
	int ch = lua_gettop(L) - nargs;
	lua_getfield(L, ch, method);
	lua_insert(L, ch);
	return lua_pcall(L, nargs + 1, nresults, 0);
}

/* ---- async buffers ------------------------------------------------------- */

#define BUF_MT "async.buffer"

static void abuf_unref(struct abuf *b)
{
	if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		async_os_aligned_free(b->data); /* portability: core/src/os_mem.h */
		free(b);
	}
}

/* Pushes a proxy for b in L, taking a new reference. In the game's state
 * one proxy per buffer is kept (weakly), so a buffer that comes back from a
 * job is the same object. */
static void push_buffer(lua_State *L, struct abuf *b, int main)
{
	if (main) {
		lua_getfield(L, LUA_REGISTRYINDEX, "async.buffers");
		lua_pushlightuserdata(L, b);
		lua_rawget(L, -2);
		if (!lua_isnil(L, -1)) {
			lua_remove(L, -2);
			return;
		}
		lua_pop(L, 1);
	}
	struct bufproxy *p = lua_newuserdata(L, sizeof *p);
	p->b = b;
	p->valid = 1;
	p->main = main;
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	luaL_getmetatable(L, BUF_MT);
	lua_setmetatable(L, -2);
	if (main) {
		lua_pushlightuserdata(L, b);
		lua_pushvalue(L, -2);
		lua_rawset(L, -4);
		lua_remove(L, -2);
	}
}

static struct bufproxy *to_buffer(lua_State *L, int idx)
{
	struct bufproxy *p = lua_touserdata(L, idx);
	if (p == NULL || !lua_getmetatable(L, idx))
		return NULL;
	luaL_getmetatable(L, BUF_MT);
	int same = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return same ? p : NULL;
}

/* The buffer at idx, usable now, or an error saying why not. */
static struct abuf *check_buffer(lua_State *L, int idx)
{
	struct bufproxy *p = to_buffer(L, idx);
	if (p == NULL)
		luaL_typerror(L, idx, "async buffer");
	if (!p->valid)
		luaL_error(L, "async buffer: this worker's view of it ended with the job that received it");
	if (p->main && __atomic_load_n(&p->b->lent, __ATOMIC_ACQUIRE) != 0)
		luaL_error(L, "async buffer: in use by a job until its callback has run");
	return p->b;
}

/* newBuffer(size) -> buffer: zeroed, 64-byte aligned. */
static int l_new_buffer(lua_State *L)
{
	lua_Number n = luaL_checknumber(L, 1);
	if (!(n >= 1) || n != floor(n) || n > (lua_Number)((size_t)1 << 40))
		return luaL_error(L, "async.newBuffer: expected a size in bytes >= 1, got %s", lua_tostring(L, 1));
	struct abuf *b = calloc(1, sizeof *b);
	if (b == NULL || async_os_aligned_alloc((void **)&b->data, 64, (size_t)n) != 0) { /* portability: os_mem.h */
		free(b);
		lua_pushnil(L);
		lua_pushstring(L, "async.newBuffer: out of memory");
		return 2;
	}
	memset(b->data, 0, (size_t)n);
	b->size = (size_t)n;
	lua_getfield(L, LUA_REGISTRYINDEX, "async.main");
	int main = lua_toboolean(L, -1);
	lua_pop(L, 1);
	push_buffer(L, b, main); /* the proxy holds the only reference */
	return 1;
}

static int l_buffer_size(lua_State *L)
{
	struct bufproxy *p = to_buffer(L, 1);
	if (p == NULL)
		return luaL_typerror(L, 1, "async buffer");
	lua_pushnumber(L, (lua_Number)p->b->size);
	return 1;
}

/* buffer:address() -> lightuserdata, for ffi.cast (buffer:ptr does that). */
static int l_buffer_address(lua_State *L)
{
	lua_pushlightuserdata(L, check_buffer(L, 1)->data);
	return 1;
}

static int l_buffer_lent(lua_State *L)
{
	struct bufproxy *p = to_buffer(L, 1);
	if (p == NULL)
		return luaL_typerror(L, 1, "async buffer");
	lua_pushboolean(L, __atomic_load_n(&p->b->lent, __ATOMIC_ACQUIRE) != 0);
	return 1;
}

static int l_buffer_gc(lua_State *L)
{
	struct bufproxy *p = to_buffer(L, 1);
	if (p != NULL && p->b != NULL) {
		abuf_unref(p->b);
		p->b = NULL;
	}
	return 0;
}

static int lent_add(struct lentlist *l, struct abuf *b, int mainlent)
{
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 4;
		struct abuf **v = realloc(l->v, sizeof *v * (size_t)cap);
		unsigned char *m = v ? realloc(l->mainlent, (size_t)cap) : NULL;
		if (v == NULL || m == NULL) {
			if (v != NULL)
				l->v = v;
			return -1;
		}
		l->v = v;
		l->mainlent = m;
		l->cap = cap;
	}
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	if (mainlent)
		__atomic_add_fetch(&b->lent, 1, __ATOMIC_RELEASE);
	l->v[l->n] = b;
	l->mainlent[l->n] = (unsigned char)mainlent;
	l->n++;
	return 0;
}

/* Releases what a finished (or refused) call held. Main thread for calls;
 * the awaiting worker for jobs started by jobs. */
static void lent_release(struct lentlist *l)
{
	for (int i = 0; i < l->n; i++) {
		if (l->mainlent[i])
			__atomic_sub_fetch(&l->v[i]->lent, 1, __ATOMIC_RELEASE);
		abuf_unref(l->v[i]);
	}
	l->n = 0;
}

static void lent_free(struct lentlist *l)
{
	lent_release(l);
	free(l->v);
	free(l->mainlent);
	l->v = NULL;
	l->mainlent = NULL;
	l->cap = 0;
}

/* ---- objects passed by reference ------------------------------------------ */

/* What the codec's hook needs: the record (for its LÖVE channel, NULL for a
 * job started by a job, which cannot carry LÖVE objects), the list that
 * holds the buffers, which side encodes, and where a worker lists the
 * proxies it hands to the running job. */
struct objctx {
	struct call *c;
	struct lentlist *bufs;
	int main;
	struct wstate *ws;
};

static int obj_put(void *ud, lua_State *L, uint64_t *payload)
{
	struct objctx *oc = ud;
	struct bufproxy *p = to_buffer(L, -1);
	if (p != NULL) {
		if (!p->valid || p->b == NULL || lent_add(oc->bufs, p->b, oc->main) != 0)
			return -1;
		*payload = (uint64_t)(uintptr_t)p->b;
		lua_pop(L, 1);
		return 0;
	}
	if (oc->c == NULL || !oc->c->ctx->love || !is_love_object(L, -1) || push_channel(L, oc->c) != 0)
		return -1;
	lua_insert(L, -2); /* channel, object */
	if (channel_call(L, "push", 1, 0) != 0) {
		lua_pop(L, 1);
		lua_pushnil(L); /* the caller pops one value on failure */
		return -1;
	}
	*payload = 0;
	return 0;
}

static int obj_get(void *ud, lua_State *L, uint64_t payload)
{
	struct objctx *oc = ud;
	if (payload != 0) {
		push_buffer(L, (struct abuf *)(uintptr_t)payload, oc->main);
		if (!oc->main && oc->ws != NULL) {
			/* Remember it: its view ends with the job. */
			lua_rawgeti(L, LUA_REGISTRYINDEX, oc->ws->proxies);
			lua_pushvalue(L, -2);
			lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
			lua_pop(L, 1);
		}
		return 0;
	}
	if (oc->c == NULL || push_channel(L, oc->c) != 0)
		return -1;
	if (channel_call(L, "pop", 0, 1) != 0 || lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

/* After a failed encode, objects already pushed must not reach the next
 * user of the record. */
static void obj_clear(lua_State *L, struct call *c)
{
	if (!c->ctx->love || push_channel(L, c) != 0)
		return;
	if (channel_call(L, "clear", 0, 0) != 0)
		lua_pop(L, 1);
}

static struct async_codec_objects codec_objects(struct objctx *oc)
{
	struct async_codec_objects o = { obj_put, obj_get, oc };
	return o;
}

/* ---- definitions -------------------------------------------------------- */

static void def_unref(struct def *d)
{
	if (--d->refs > 0)
		return;
	async_buf_free(&d->code);
	async_buf_free(&d->upvals);
	free(d->is_async);
	free(d->name);
	free(d);
}

static void epoch_bump(struct ctx *ctx)
{
	/* Release: the new definition is complete before a worker sees the
	 * epoch move (pairs with the acquire load in call_run). */
	__atomic_store_n(&ctx->epoch, ctx->epoch + 1, __ATOMIC_RELEASE);
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
	(void)L;
	struct async_buf *b = ud;
	if (b->cap - b->n < n) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->n < n)
			cap *= 2;
		unsigned char *q = realloc(b->p, cap);
		if (q == NULL)
			return 1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
	return 0;
}

/* ---- the registry snapshot ------------------------------------------------- */

static void share_unref(struct share *sh)
{
	if (--sh->refs > 0)
		return;
	async_buf_free(&sh->val);
	free(sh->name);
	free(sh);
}

static void snap_unref(struct snap *sn)
{
	if (sn == NULL || --sn->refs > 0)
		return;
	for (int i = 0; i < sn->ndefs; i++)
		def_unref(sn->defs[i]);
	for (int i = 0; i < sn->nshares; i++)
		share_unref(sn->shares[i]);
	if (sn->init)
		def_unref(sn->init);
	free(sn->defs);
	free(sn->shares);
	free(sn);
}

static int cmp_def(const void *a, const void *b)
{
	return strcmp((*(struct def *const *)a)->name, (*(struct def *const *)b)->name);
}

static int cmp_share(const void *a, const void *b)
{
	return strcmp((*(struct share *const *)a)->name, (*(struct share *const *)b)->name);
}

/* Any thread: the snapshot is immutable. */
static struct def *snap_find_def(const struct snap *sn, const char *name)
{
	int lo = 0, hi = sn->ndefs - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2, c = strcmp(name, sn->defs[mid]->name);
		if (c == 0)
			return sn->defs[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int snap_has_share(const struct snap *sn, const char *name)
{
	struct share key = { 0, (char *)name, { 0 }, 0 }, *kp = &key;
	return sn->nshares > 0 && bsearch(&kp, sn->shares, (size_t)sn->nshares, sizeof *sn->shares, cmp_share) != NULL;
}

/* Collects the lightuserdata values of the registry table `ref` into an
 * array, taking a reference on each. */
static void **collect(lua_State *L, int ref, int *n, int is_def)
{
	void **v = NULL;
	int cap = 0;
	*n = 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			void **nv = realloc(v, sizeof *v * (size_t)cap);
			if (nv == NULL) {
				lua_pop(L, 3);
				luaL_error(L, "async: out of memory");
			}
			v = nv;
		}
		void *x = lua_touserdata(L, -1);
		if (is_def)
			((struct def *)x)->refs++;
		else
			((struct share *)x)->refs++;
		v[(*n)++] = x;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return v;
}

/* Main thread: publish the registry as it is now. */
static void snap_publish(lua_State *L, struct ctx *ctx)
{
	struct snap *sn = calloc(1, sizeof *sn);
	if (sn == NULL)
		luaL_error(L, "async: out of memory");
	sn->refs = 1;
	sn->id = ctx->epoch + 1;
	sn->defs = (struct def **)collect(L, ctx->defs, &sn->ndefs, 1);
	sn->shares = (struct share **)collect(L, ctx->shares, &sn->nshares, 0);
	if (sn->ndefs > 1) /* qsort with an empty (NULL) array is undefined */
		qsort(sn->defs, (size_t)sn->ndefs, sizeof *sn->defs, cmp_def);
	if (sn->nshares > 1)
		qsort(sn->shares, (size_t)sn->nshares, sizeof *sn->shares, cmp_share);
	if ((sn->init = ctx->init) != NULL)
		sn->init->refs++;
	struct snap *old = ctx->snap;
	ctx->snap = sn;
	snap_unref(old);
	epoch_bump(ctx);
}

/* ---- worker side -------------------------------------------------------- */

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
static void fail_res(struct async_buf *res, int *failed, lua_State *L, const char *msg, const char *tb)
{
	*failed = 1;
	if (L == NULL) {
		async_codec_encode_message(res, msg);
		return;
	}
	int top = lua_gettop(L);
	lua_pushstring(L, msg);
	lua_pushstring(L, tb ? tb : "");
	char err[160];
	async_codec_encode(L, top + 1, top + 2, res, "error", NULL, err, sizeof err);
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
		lua_pushcfunction(L, traceback_handler);
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
			snprintf(err, errlen, "the worker init function failed: %s", m);
			lua_settop(L, top);
			return -1; /* retried before the next job */
		}
		ws->init_id = sn->init->id;
	}
	ws->snap_id = sn->id;
	lua_settop(L, top);
	return 0;
}

/* The body of run_def, under lua_cpcall: any Lua API call here may raise
 * "not enough memory" once a memory limit is reached. */
static void run_def_body(struct wstate *ws, struct def *d, struct snap *sn, const struct async_buf *args,
                         struct async_buf *res, int *failed, struct objctx *oc, int *errmem)
{
	lua_State *L = ws->L;
	struct ctx *ctx = ws->ctx;
	int base = lua_gettop(L);
	char err[256];
	*failed = 0;
	uint64_t epoch = __atomic_load_n(&ctx->epoch, __ATOMIC_ACQUIRE);
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
	lua_pushcfunction(L, traceback_handler);
	int msgh = lua_gettop(L);
	if (push_compiled(ws, d, err, sizeof err) != 0) {
		fail_res(res, failed, L, err, NULL);
		goto out;
	}
	int fn = lua_gettop(L);
	/* A fresh global table per call whose reads fall through to the
	 * worker's globals; the previous one is put back afterwards, so a call
	 * nested in this one (await) does not change ours. */
	lua_getfenv(L, fn);
	int oldenv = lua_gettop(L);
	lua_newtable(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ws->envmt);
	lua_setmetatable(L, -2);
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
	if (rc == 0) {
		if (async_codec_encode(L, callbase, lua_gettop(L), res, "result", &objs, err, sizeof err) != 0) {
			if (oc->c)
				obj_clear(L, oc->c);
			char msg[300];
			snprintf(msg, sizeof msg, "%s: %s, which cannot be sent back", d->name, err);
			fail_res(res, failed, L, msg, NULL);
		}
	} else if (rc == LUA_ERRRUN && lua_istable(L, -1)) {
		int t = lua_gettop(L);
		lua_rawgeti(L, t, 1); /* the error value */
		lua_rawgeti(L, t, 2); /* the traceback */
		*failed = 1;
		if (async_codec_encode(L, t + 1, t + 2, res, "error", &objs, err, sizeof err) != 0) {
			/* An error value we cannot send (a function, say): describe it. */
			if (oc->c)
				obj_clear(L, oc->c);
			char msg[120];
			snprintf(msg, sizeof msg, "%s: error object is a %s value", d->name, luaL_typename(L, t + 1));
			fail_res(res, failed, L, msg, lua_tostring(L, t + 2));
		}
	} else {
		/* Memory or error-handler failure: no traceback to be had. */
		*errmem = rc == LUA_ERRMEM;
		const char *m = lua_tostring(L, -1);
		fail_res(res, failed, L, m ? m : "error in error handling", NULL);
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

static int run_def_p(lua_State *L)
{
	struct run_args *a = lua_touserdata(L, 1);
	lua_pop(L, 1);
	run_def_body(a->ws, a->d, a->sn, a->args, a->res, a->failed, a->oc, &a->errmem);
	return 0;
}

static void run_def_guarded(struct wstate *ws, struct def *d, struct snap *sn, const struct async_buf *args,
                            struct async_buf *res, int *failed, struct objctx *oc);

/* Runs definition d on ws for the game's call `owner` (what
 * async.cancelled() reads) with the encoded arguments, against snapshot sn,
 * and writes the results, or (error value, traceback), into res. Shared by
 * the game's calls and by jobs that start jobs. Running out of memory fails
 * the job with a message saying so; the state is replaced once no job runs
 * in it (await runs jobs inside a job). */
static void run_def(struct wstate *ws, struct call *owner, struct def *d, struct snap *sn,
                    const struct async_buf *args, struct async_buf *res, int *failed, struct objctx *oc)
{
	struct call *outer = ws->call; /* a call run while another awaits */
	ws->call = owner;
	ws->depth++;
	run_def_guarded(ws, d, sn, args, res, failed, oc);
	ws->depth--;
	ws->call = outer;
	if (ws->depth > 0)
		return;
	if (ws->dead)
		wstate_replace(ws);
	/* A hook a job left behind (debug.sethook) would run in every later
	 * job of this worker, and one that raises would fail them all. */
	else if (lua_gethook(ws->L) != NULL)
		lua_sethook(ws->L, NULL, 0, 0);
}

/* run_def's body under lua_cpcall, and the translation of its failures. */
static void run_def_guarded(struct wstate *ws, struct def *d, struct snap *sn, const struct async_buf *args,
                            struct async_buf *res, int *failed, struct objctx *oc)
{
	struct run_args a = { ws, d, sn, args, res, failed, oc, 0 };
	struct snap *cur = ws->cur;
	int rc = lua_cpcall(ws->L, run_def_p, &a);
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
		 * replaced: give it the room the failed job's garbage holds.
		 * Protected, since a finalizer may raise; without the limit,
		 * since lua_cpcall itself allocates. */
		uint64_t limit = ws->acct.limit;
		ws->acct.limit = 0;
		if (lua_cpcall(ws->L, gc_p, NULL) != 0)
			lua_pop(ws->L, 1);
		ws->acct.limit = limit;
	}
	if (rc == 0 && !a.errmem)
		return;
	char msg[320];
	if (oom && ws->acct.limit != 0)
		snprintf(msg, sizeof msg,
		         "%s: out of memory: the worker's Lua state reached its memoryLimit of %llu bytes "
		         "(the worker gets a fresh Lua state)",
		         d->name, (unsigned long long)ws->acct.limit);
	else if (oom)
		snprintf(msg, sizeof msg, "%s: out of memory (the worker gets a fresh Lua state)", d->name);
	else
		snprintf(msg, sizeof msg, "%s: %s", d->name, why ? why : "error while running the job");
	/* Whatever was half encoded goes (fail_res resets res), LÖVE objects
	 * included. */
	if (oc->c != NULL)
		oc->c->clear_objs = 1;
	fail_res(res, failed, NULL, msg, NULL);
}

/* A job started by a job (worker-side async.await). */
struct subcall {
	async_job job;
	struct def *def;
	struct snap *snap;
	struct async_buf args, res;
	struct lentlist bufs;
	int failed;
	int spawned; /* queued on the core (else it ran inline) */
	struct call *call; /* the game's call it serves (async.cancelled) */
};

static void subcall_run(void *arg)
{
	struct subcall *sc = arg;
	struct wstate *ws = tls_ws;
	if (ws == NULL || ws->init_error != NULL) {
		fail_res(&sc->res, &sc->failed, NULL, ws ? ws->init_error : "no Lua state on this thread", NULL);
		return;
	}
	struct objctx oc = { NULL, &sc->bufs, 0, ws };
	run_def(ws, sc->call, sc->def, sc->snap, &sc->args, &sc->res, &sc->failed, &oc);
}

/* Raises an awaited job's failure, (error value, traceback) at idx and
 * idx + 1: a string gets the traceback appended; other values, and
 * failures with no traceback (out of memory), go as they are. */
static int raise_awaited(lua_State *L, int idx)
{
	if (lua_type(L, idx) == LUA_TSTRING && lua_type(L, idx + 1) == LUA_TSTRING) {
		lua_pushvalue(L, idx);
		lua_pushstring(L, "\n[awaited job] ");
		lua_pushvalue(L, idx + 1);
		lua_concat(L, 3);
		return lua_error(L);
	}
	lua_pushvalue(L, idx);
	return lua_error(L);
}

/* The subcalls of an await live in a userdata whose __gc frees their
 * buffers: any Lua API call below may raise "not enough memory" under a
 * memory limit, and nothing may leak then. Jobs are spawned only after
 * every argument is encoded, and synced before anything else can raise, so
 * a raise never leaves a spawned job behind. */
#define SUBCALLS_MT "async.subcalls"

struct subcalls {
	int n;
	struct subcall sc[];
};

static void subcalls_free(struct subcalls *s)
{
	for (int k = 0; k < s->n; k++) {
		lent_free(&s->sc[k].bufs);
		async_buf_free(&s->sc[k].args);
		async_buf_free(&s->sc[k].res);
	}
}

static int subcalls_gc(lua_State *L)
{
	subcalls_free(lua_touserdata(L, 1));
	return 0;
}

static struct subcalls *subcalls_new(lua_State *L, int n)
{
	struct subcalls *s = lua_newuserdata(L, sizeof *s + (size_t)n * sizeof s->sc[0]);
	memset(s, 0, sizeof *s + (size_t)n * sizeof s->sc[0]);
	s->n = n;
	luaL_getmetatable(L, SUBCALLS_MT);
	lua_setmetatable(L, -2);
	return s;
}

/* Worker side: async.await(name, ...) runs another defined function as a
 * job of its own (fork-join through the core: it may be stolen by an idle
 * worker) and returns its results; meanwhile this worker runs other jobs
 * instead of blocking. A failure raises here. */
static int l_w_await(lua_State *L)
{
	struct wstate *ws = tls_ws;
	if (ws == NULL || ws->cur == NULL)
		return luaL_error(L, "async.await: only a running job can await another job");
	const char *name = luaL_checkstring(L, 1);
	struct def *d = snap_find_def(ws->cur, name);
	if (d == NULL)
		return luaL_error(L, "async.await: no function named '%s' is defined", name);
	int last = lua_gettop(L);
	struct subcalls *s = subcalls_new(L, 1);
	struct subcall *sc = &s->sc[0];
	sc->def = d;
	sc->snap = ws->cur;
	sc->call = ws->call;
	char err[256];
	struct objctx oc = { NULL, &sc->bufs, 0, ws };
	struct async_codec_objects objs = codec_objects(&oc);
	if (async_codec_encode(L, 2, last, &sc->args, "argument", &objs, err, sizeof err) != 0)
		return luaL_error(L, "async.await('%s'): %s, which cannot be sent to a worker", name, err);
	async_job_init(&sc->job, subcall_run, sc);
	if (async_job_spawn(&sc->job) == 0)
		async_job_sync(&sc->job);
	else
		subcall_run(sc); /* not on a worker (shutdown's fallback): run here */
	int top = lua_gettop(L);
	int n = async_codec_decode(L, sc->res.p, sc->res.n, &objs, err, sizeof err);
	int failed = sc->failed;
	subcalls_free(s);
	s->n = 0;
	if (n < 0)
		return luaL_error(L, "async.await('%s'): %s", name, err);
	if (!failed)
		return n;
	lua_settop(L, top + 2);
	return raise_awaited(L, top + 1);
}

/* Worker side: async.awaitAll({ {name, args...}, ... }) starts every call
 * as a job (idle workers steal them), waits for all, and returns the list of
 * their first results; the first failure raises after all have finished. */
static int l_w_await_all(lua_State *L)
{
	struct wstate *ws = tls_ws;
	if (ws == NULL || ws->cur == NULL)
		return luaL_error(L, "async.awaitAll: only a running job can await other jobs");
	luaL_checktype(L, 1, LUA_TTABLE);
	int n = (int)lua_objlen(L, 1);
	struct subcalls *s = subcalls_new(L, n);
	struct subcall *sc = s->sc;
	int list = lua_gettop(L);
	char err[512] = "";
	/* Encode every entry first: a refused entry raises before any job
	 * has started. */
	for (int k = 0; k < n; k++) {
		lua_settop(L, list);
		lua_rawgeti(L, 1, k + 1);
		if (!lua_istable(L, -1) || (lua_rawgeti(L, -1, 1), lua_type(L, -1) != LUA_TSTRING))
			return luaL_error(L, "async.awaitAll: entry %d must be a table {name, args...}", k + 1);
		const char *name = lua_tostring(L, -1);
		struct def *d = snap_find_def(ws->cur, name);
		if (d == NULL)
			return luaL_error(L, "async.awaitAll: no function named '%s' is defined", name);
		int t = list + 1, nargs = (int)lua_objlen(L, t) - 1;
		lua_pop(L, 1);
		for (int a = 2; a <= nargs + 1; a++)
			lua_rawgeti(L, t, a);
		sc[k].def = d;
		sc[k].snap = ws->cur;
		sc[k].call = ws->call;
		struct objctx oc = { NULL, &sc[k].bufs, 0, ws };
		struct async_codec_objects objs = codec_objects(&oc);
		char e2[256];
		if (async_codec_encode(L, t + 1, t + nargs, &sc[k].args, "argument", &objs, e2, sizeof e2) != 0)
			return luaL_error(L, "async.awaitAll: entry %d: %s, which cannot be sent to a worker", k + 1, e2);
	}
	lua_settop(L, list);
	/* No Lua API call from here to the last sync: nothing can raise
	 * while a spawned job is outstanding. */
	for (int k = 0; k < n; k++) {
		async_job_init(&sc[k].job, subcall_run, &sc[k]);
		sc[k].spawned = async_job_spawn(&sc[k].job) == 0;
		if (!sc[k].spawned)
			subcall_run(&sc[k]); /* not on a worker: run it here */
	}
	/* Fork-join order: sync the newest first. */
	for (int k = n; k-- > 0;)
		if (sc[k].spawned)
			async_job_sync(&sc[k].job);
	int failed = 0;
	lua_createtable(L, n, 0);
	int out = lua_gettop(L);
	lua_pushnil(L); /* out + 1, out + 2: the first failure's error and traceback */
	lua_pushnil(L);
	for (int k = 0; k < n; k++) {
		int top = lua_gettop(L);
		struct objctx oc = { NULL, &sc[k].bufs, 0, ws };
		struct async_codec_objects objs = codec_objects(&oc);
		int m = async_codec_decode(L, sc[k].res.p, sc[k].res.n, &objs, err, sizeof err);
		if (m < 0)
			break;
		if (sc[k].failed) {
			if (!failed) {
				failed = 1;
				lua_settop(L, top + 2);
				lua_replace(L, out + 2);
				lua_replace(L, out + 1);
			}
		} else if (m > 0) {
			lua_settop(L, top + 1);
			lua_rawseti(L, out, k + 1);
		}
		lua_settop(L, top);
	}
	subcalls_free(s);
	s->n = 0;
	if (err[0] != '\0')
		return luaL_error(L, "%s", err);
	if (failed)
		return raise_awaited(L, out + 1);
	lua_settop(L, out);
	return 1;
}

/* Worker side: async.cancelled() -> true once the game has cancelled the
 * running call (handle:cancel(), a newer call with its key, a group's
 * cancel). A long job polls it to stop early; what it returns is still
 * delivered. */
static int l_w_cancelled(lua_State *L)
{
	struct wstate *ws = tls_ws;
	struct call *c = ws != NULL ? ws->call : NULL;
	lua_pushboolean(L, c != NULL && __atomic_load_n(&c->stop_asked, __ATOMIC_RELAXED));
	return 1;
}

static void register_buffer_type(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "size", l_buffer_size }, { "address", l_buffer_address }, { "isLent", l_buffer_lent }, { NULL, NULL },
	};
	if (luaL_newmetatable(L, BUF_MT)) {
		lua_pushcfunction(L, l_buffer_gc);
		lua_setfield(L, -2, "__gc");
		lua_newtable(L);
		luaL_register(L, NULL, methods);
		lua_setfield(L, -2, "__index");
		lua_pushstring(L, "async.buffer");
		lua_setfield(L, -2, "__metatable");
		const char *ptr = "local mt = ...\n"
		                  "local ffi = require 'ffi'\n"
		                  "mt.__index.ptr = function(self, ct)\n"
		                  "  return ffi.cast((ct or 'uint8_t') .. '*', self:address())\n"
		                  "end\n";
		if (luaL_loadstring(L, ptr) == 0) {
			lua_pushvalue(L, -2);
			if (lua_pcall(L, 1, 0, 0) != 0)
				lua_pop(L, 1);
		} else {
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
}

/* require(name) in L; returns lua_pcall's code, the error on the stack. */
static int require_module(lua_State *L, const char *name)
{
	lua_getglobal(L, "require");
	lua_pushstring(L, name);
	return lua_pcall(L, 1, 0, 0);
}

static void worker_env(struct wstate *ws)
{
	struct ctx *ctx = ws->ctx;
	lua_State *L = ws->L;
	luaL_openlibs(L);
	lua_pushboolean(L, 0);
	lua_setfield(L, LUA_REGISTRYINDEX, "async.main");
	register_buffer_type(L);
	luaL_newmetatable(L, SUBCALLS_MT);
	lua_pushcfunction(L, subcalls_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	lua_getglobal(L, "package");
	if (ctx->path) {
		lua_pushstring(L, ctx->path);
		lua_setfield(L, -2, "path");
	}
	if (ctx->cpath) {
		lua_pushstring(L, ctx->cpath);
		lua_setfield(L, -2, "cpath");
	}
	lua_getfield(L, -1, "preload");
	for (int i = 0; i < ctx->npre; i++) {
		lua_pushcfunction(L, ctx->pre[i].fn);
		lua_setfield(L, -2, ctx->pre[i].name);
	}
	lua_pop(L, 2);
	if (ctx->love) {
		/* What LÖVE's own thread start-up does: the love table, then
		 * love.filesystem, which installs the game's require loaders. */
		int rc = require_module(L, "love");
		if (rc == 0)
			rc = require_module(L, "love.filesystem");
		if (rc == 0)
			rc = require_module(L, "love.thread");
		/* The game's modules (love.math, love.image, ...): a job uses
		 * them as the game does, and a LÖVE object's methods exist in a
		 * state only once its module is loaded there. */
		for (int i = 0; rc == 0 && i < ctx->npre; i++) {
			if (ctx->pre[i].required)
				rc = require_module(L, ctx->pre[i].name);
		}
		if (rc != 0) {
			const char *m = lua_tostring(L, -1);
			ws->init_error = strdup(m ? m : "LÖVE modules failed to load in a worker");
			lua_pop(L, 1);
		}
	}
	lua_newtable(L);
	ws->cache = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_createtable(L, 0, 1);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	lua_setfield(L, -2, "__index");
	ws->envmt = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	ws->shareids = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	ws->proxies = luaL_ref(L, LUA_REGISTRYINDEX);
	/* The worker-side API, global `async` in jobs. */
	lua_createtable(L, 0, 6);
	lua_newtable(L);
	lua_setfield(L, -2, "shared");
	lua_newtable(L);
	lua_setfield(L, -2, "state");
	lua_pushinteger(L, (lua_Integer)ws->index);
	lua_setfield(L, -2, "workerIndex");
	lua_pushcfunction(L, l_w_await);
	lua_setfield(L, -2, "await");
	lua_pushcfunction(L, l_w_await_all);
	lua_setfield(L, -2, "awaitAll");
	lua_pushcfunction(L, l_w_cancelled);
	lua_setfield(L, -2, "cancelled");
	lua_pushcfunction(L, l_new_buffer);
	lua_setfield(L, -2, "newBuffer");
	lua_pushboolean(L, 1);
	lua_setfield(L, -2, "isWorker");
	lua_pushvalue(L, -1);
	lua_setglobal(L, "async");
	ws->api = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void *acct_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct memacct *m = ud;
	uint64_t used = __atomic_load_n(m->used, __ATOMIC_RELAXED);
	size_t old = ptr != NULL ? osize : 0;
	/* The starting count is LuaJIT's own; never let a block it counted
	 * differently wrap the total below zero. */
	uint64_t rest = used > old ? used - old : 0;
	if (nsize > old && m->limit != 0 && rest + nsize > m->limit) {
		m->refused = 1;
		return NULL;
	}
	void *q = m->f(m->ud, ptr, osize, nsize);
	if (q == NULL && nsize > 0)
		return NULL;
	__atomic_store_n(m->used, rest + nsize, __ATOMIC_RELAXED);
	return q;
}

/* Creates ws->L and the worker environment in it. Under lua_cpcall: with a
 * memory limit, even luaL_openlibs may run out, which must not panic. */
static int worker_env_p(lua_State *L)
{
	worker_env(lua_touserdata(L, 1));
	return 0;
}

static void wstate_open(struct wstate *ws)
{
	struct ctx *ctx = ws->ctx;
	ws->epoch = (uint64_t)-1;
	ws->snap_id = (uint64_t)-1;
	ws->init_id = 0;
	ws->cur = NULL;
	ws->dead = 0;
	ws->L = luaL_newstate();
	if (ws->L == NULL) {
		ws->init_error = strdup("could not create a Lua state for the worker (out of memory)");
		return;
	}
	memset(&ws->acct, 0, sizeof ws->acct);
	ws->acct.f = lua_getallocf(ws->L, &ws->acct.ud);
	ws->acct.used = ws->index < ASYNC_MAX_SLOTS && ctx->mem != NULL ? &ctx->mem[ws->index] : &ws->acct.own;
	ws->acct.limit = ctx->mem_limit;
	/* What the new state already holds, as LuaJIT counts it. */
	uint64_t start = (uint64_t)lua_gc(ws->L, LUA_GCCOUNT, 0) * 1024 + (uint64_t)lua_gc(ws->L, LUA_GCCOUNTB, 0);
	__atomic_store_n(ws->acct.used, start, __ATOMIC_RELAXED);
	lua_setallocf(ws->L, acct_alloc, &ws->acct);
	int rc = lua_cpcall(ws->L, worker_env_p, ws);
	if (rc != 0 && ws->init_error == NULL) {
		const char *m = lua_tostring(ws->L, -1);
		char buf[300];
		snprintf(buf, sizeof buf, "the worker's Lua state could not be set up: %s%s", m ? m : "error",
		         ws->acct.refused ? " (its memoryLimit is too small)" : "");
		ws->init_error = strdup(buf);
	}
}

static void wstate_close(struct wstate *ws)
{
	if (ws->L != NULL) {
		/* LuaJIT frees its own arena at close only when it sees its own
		 * allocator (lj_state.c, close_state). */
		lua_setallocf(ws->L, ws->acct.f, ws->acct.ud);
		lua_close(ws->L);
		ws->L = NULL;
		__atomic_store_n(ws->acct.used, 0, __ATOMIC_RELAXED);
	}
	free(ws->init_error);
	ws->init_error = NULL;
}

static struct wstate *wstate_new(struct ctx *ctx, unsigned index)
{
	struct wstate *ws = calloc(1, sizeof *ws);
	if (ws == NULL)
		return NULL;
	ws->ctx = ctx;
	ws->index = index;
	wstate_open(ws);
	return ws;
}

/* A state that ran out of memory may hold the garbage or the live data that
 * filled it, and whatever a job was building is half done: a fresh state is
 * the only one we can vouch for. async.state starts empty again and the
 * worker init function runs again before the next job. */
static void wstate_replace(struct wstate *ws)
{
	wstate_close(ws);
	wstate_open(ws);
	__atomic_add_fetch(&ws->ctx->replaced, 1, __ATOMIC_RELAXED);
}

static void wstate_free(struct wstate *ws)
{
	if (ws == NULL)
		return;
	wstate_close(ws);
	free(ws);
}

static void worker_start(void *ud, unsigned index)
{
	tls_ws = wstate_new(ud, index);
}

static void worker_stop(void *ud, unsigned index)
{
	(void)ud;
	(void)index;
	wstate_free(tls_ws);
	tls_ws = NULL;
}

/* Finishes a call: hand it back to the main thread. */
static void call_done(struct call *c)
{
	struct ctx *ctx = c->ctx;
	struct call *head = __atomic_load_n(&ctx->done, __ATOMIC_RELAXED);
	do {
		c->next = head;
		/* Release: the results are complete before the main thread can
		 * take the record (pairs with the exchange in take_done). */
	} while (!__atomic_compare_exchange_n(&ctx->done, &head, c, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

static void call_run(void *arg)
{
	struct call *c = arg;
	struct ctx *ctx = c->ctx;
	uint32_t queued = CALL_QUEUED;
	if (!__atomic_compare_exchange_n(&c->state, &queued, CALL_RUNNING, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		/* Cancelled before it started: hand the record back unrun. */
		c->cancelled = 1;
		call_done(c);
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
	c->failed = 0;
	if (ws == NULL || ws->init_error != NULL) {
		fail_res(&c->res, &c->failed, NULL, ws ? ws->init_error : "no Lua state for the worker (out of memory)", NULL);
	} else {
		struct objctx oc = { c, &c->bufs, 0, ws };
		run_def(ws, c, c->def, c->snap, &c->args, &c->res, &c->failed, &oc);
	}
	call_done(c);
}

/* ---- main thread: records ----------------------------------------------- */

static struct ctx *check_ctx(lua_State *L, int idx)
{
	struct ctx *ctx = luaL_checkudata(L, idx, CTX_MT);
	if (ctx->closed)
		luaL_error(L, "async: the pool is shut down (call async.load() again)");
	return ctx;
}

static struct call *record_get(lua_State *L, struct ctx *ctx)
{
	struct call *c = ctx->free;
	if (c != NULL) {
		ctx->free = c->next;
		return c;
	}
	if (ctx->nall == ctx->capall) {
		size_t cap = ctx->capall ? ctx->capall * 2 : 64;
		struct call **all = realloc(ctx->all, cap * sizeof *all);
		if (all == NULL)
			luaL_error(L, "async.call: out of memory");
		ctx->all = all;
		ctx->capall = cap;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL)
		luaL_error(L, "async.call: out of memory");
	c->ctx = ctx;
	c->index = (uint32_t)ctx->nall;
	c->cb = LUA_NOREF;
	c->key = LUA_NOREF;
	ctx->all[ctx->nall++] = c;
	return c;
}

static void record_put(struct ctx *ctx, struct call *c)
{
	c->gen++; /* handles to the call just finished now read "done" */
	if (c->def != NULL) {
		def_unref(c->def);
		c->def = NULL;
	}
	snap_unref(c->snap);
	c->snap = NULL;
	lent_release(&c->bufs);
	c->next = ctx->free;
	ctx->free = c;
}

/* Sets registry table `ref`[name] to v (a lightuserdata; NULL removes the
 * entry) and returns what was there: define, undefine and share each drop
 * their reference to it afterwards. */
static void *registry_swap(lua_State *L, int ref, const char *name, void *v)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	lua_getfield(L, -1, name);
	void *old = lua_touserdata(L, -1);
	lua_pop(L, 1);
	if (v != NULL)
		lua_pushlightuserdata(L, v);
	else
		lua_pushnil(L);
	lua_setfield(L, -2, name);
	lua_pop(L, 1);
	return old;
}

static struct def *lookup_def(lua_State *L, struct ctx *ctx, const char *name)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->defs);
	lua_getfield(L, -1, name);
	struct def *d = lua_touserdata(L, -1);
	lua_pop(L, 2);
	return d;
}

struct handle {
	struct ctx *ctx;
	uint64_t ctx_id; /* a freed context's address may be reused: ids are not */
	struct call *c;
	uint32_t gen;
};

/* Cancels c if it has not started. Main thread. */
/* Cancels a queued call. A running one cannot be stopped from outside;
 * it is asked to stop instead, which the job sees through
 * async.cancelled(). Returns whether the call will not run. */
static int cancel_call(struct call *c)
{
	uint32_t queued = CALL_QUEUED;
	if (__atomic_compare_exchange_n(&c->state, &queued, CALL_CANCELLED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return 1;
	if (queued == CALL_RUNNING)
		__atomic_store_n(&c->stop_asked, 1, __ATOMIC_RELAXED);
	return 0;
}

/* "Latest request wins": a call whose table callback has a key cancels the
 * call still queued under that key. Leaves the key's registry ref in c. */
static void take_key(lua_State *L, struct ctx *ctx, struct call *c, int cbidx)
{
	lua_getfield(L, cbidx, "key");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->keys);
	lua_pushvalue(L, -2);
	lua_rawget(L, -2);
	struct call *old = lua_touserdata(L, -1);
	lua_pop(L, 1);
	if (old != NULL)
		cancel_call(old); /* no effect if it already started */
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

/* The call path shared by async.call and the define shorthand: the
 * callback at cbidx, the arguments from argidx to the top. Returns a
 * handle. */
static int do_call(lua_State *L, struct ctx *ctx, int cbidx, const char *name, int argidx)
{
	int t = lua_type(L, cbidx);
	if (t != LUA_TFUNCTION && t != LUA_TTABLE && t != LUA_TNIL && t != LUA_TNONE)
		return luaL_error(L, "async.call('%s'): the callback must be a function, a table "
		                     "{success = f, error = f} or nil, not a %s", name, lua_typename(L, t));
	struct def *d = lookup_def(L, ctx, name);
	if (d == NULL)
		return luaL_error(L, "async.call: no function named '%s' is defined (async.define it first)", name);
	int top = lua_gettop(L);
	struct call *c = record_get(L, ctx);
	char err[256];
	struct objctx oc = { c, &c->bufs, 1, NULL };
	struct async_codec_objects objs = codec_objects(&oc);
	if (async_codec_encode(L, argidx, top, &c->args, "argument", &objs, err, sizeof err) != 0) {
		obj_clear(L, c);
		record_put(ctx, c);
		return luaL_error(L, "async.call('%s'): %s, which cannot be sent to a worker", name, err);
	}
	c->def = d;
	d->refs++;
	c->snap = ctx->snap;
	c->snap->refs++;
	c->gen++;
	c->failed = c->cancelled = 0;
	__atomic_store_n(&c->stop_asked, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->state, CALL_QUEUED, __ATOMIC_RELAXED);
	if (t == LUA_TTABLE)
		take_key(L, ctx, c, cbidx);
	async_job_init(&c->job, call_run, c);
	int rc = async_pool_submit(ctx->pool, &c->job);
	if (rc != 0) {
		drop_key(L, ctx, c);
		obj_clear(L, c);
		record_put(ctx, c);
		return luaL_error(L, "async.call('%s'): %s", name, async_strerror(rc));
	}
	if (t == LUA_TFUNCTION || t == LUA_TTABLE) {
		lua_pushvalue(L, cbidx);
		c->cb = luaL_ref(L, LUA_REGISTRYINDEX);
	} else {
		c->cb = LUA_NOREF;
	}
	ctx->inflight++;
	struct handle *h = lua_newuserdata(L, sizeof *h);
	h->ctx = ctx;
	h->ctx_id = ctx->id;
	h->c = c;
	h->gen = c->gen;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->handle_mt);
	lua_setmetatable(L, -2);
	return 1;
}

static struct handle *check_handle(lua_State *L)
{
	struct handle *h = lua_touserdata(L, 1);
	if (h == NULL || !lua_getmetatable(L, 1))
		luaL_typerror(L, 1, "async call handle");
	lua_getfield(L, -1, "__async_handle");
	int okh = lua_toboolean(L, -1);
	lua_pop(L, 2);
	if (!okh)
		luaL_typerror(L, 1, "async call handle");
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
	if (!live || h->c->gen != h->gen)
		return NULL;
	return h->c;
}

/* handle:cancel() -> true if the call had not started (it never will). */
static int l_handle_cancel(lua_State *L)
{
	struct handle *h = check_handle(L);
	struct call *c = handle_call(L, h);
	lua_pushboolean(L, c != NULL && cancel_call(c));
	return 1;
}

/* handle:status() -> "queued", "running", "cancelled" or "done" (delivered). */
static int l_handle_status(lua_State *L)
{
	struct handle *h = check_handle(L);
	struct call *c = handle_call(L, h);
	static const char *names[] = { "queued", "running", "cancelled" };
	lua_pushstring(L, c == NULL ? "done" : names[__atomic_load_n(&c->state, __ATOMIC_ACQUIRE)]);
	return 1;
}

/* async.call(callback, name, ...) — upvalue 1: the context */
static int l_call(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, lua_upvalueindex(1));
	const char *name = luaL_checkstring(L, 2);
	return do_call(L, ctx, 1, name, 3);
}

/* The shorthand returned by define: f(callback, ...) — upvalues: the
 * context and the name. */
static int l_shorthand(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, lua_upvalueindex(1));
	return do_call(L, ctx, 1, lua_tostring(L, lua_upvalueindex(2)), 2);
}

/* ---- main thread: delivery ---------------------------------------------- */

static void take_done(struct ctx *ctx)
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

static void default_onerror(lua_State *L, int base)
{
	const char *msg = lua_tostring(L, base + 1);
	const char *tb = lua_tostring(L, base + 2);
	fprintf(stderr, "async: a job failed: %s\n%s\n", msg ? msg : luaL_typename(L, base + 1), tb ? tb : "");
}

/* Delivers one record. Everything about the record is settled before any
 * callback runs, so a callback that raises loses nothing else. */
static void deliver(lua_State *L, struct ctx *ctx, struct call *c)
{
	int base = lua_gettop(L);
	ctx->pending = c->next;
	if (ctx->pending == NULL)
		ctx->pending_tail = NULL;
	ctx->npending--;
	ctx->inflight--;
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->cb);
	luaL_unref(L, LUA_REGISTRYINDEX, c->cb);
	c->cb = LUA_NOREF;
	int cb = base + 1;
	drop_key(L, ctx, c);
	if (c->cancelled) {
		/* Never ran: a table callback's `cancelled` hears of it. */
		record_put(ctx, c);
		ctx->cancelled_count++;
		if (lua_type(L, cb) == LUA_TTABLE) {
			lua_getfield(L, cb, "cancelled");
			if (lua_isfunction(L, -1))
				lua_call(L, 0, 0);
		}
		lua_settop(L, base);
		return;
	}
	char err[256];
	if (c->clear_objs) {
		obj_clear(L, c);
		c->clear_objs = 0;
	}
	struct objctx oc = { c, &c->bufs, 1, NULL };
	struct async_codec_objects objs = codec_objects(&oc);
	int n = async_codec_decode(L, c->res.p, c->res.n, &objs, err, sizeof err);
	int failed = c->failed;
	if (n < 0) {
		lua_pushstring(L, err);
		lua_pushstring(L, "");
		n = 2;
		failed = 1;
	}
	record_put(ctx, c);
	if (!failed) {
		ctx->delivered++;
		if (lua_type(L, cb) == LUA_TTABLE) {
			lua_getfield(L, cb, "success");
			lua_replace(L, cb);
		}
		if (lua_isfunction(L, cb)) {
			lua_call(L, n, 0);
		}
		lua_settop(L, base);
		return;
	}
	ctx->failed_count++;
	if (lua_type(L, cb) == LUA_TTABLE) {
		lua_getfield(L, cb, "error");
		if (lua_isfunction(L, -1)) {
			lua_replace(L, cb);
			lua_call(L, n, 0);
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
		lua_call(L, n, 0);
	} else {
		default_onerror(L, base);
	}
	lua_settop(L, base);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* update([budget]) -> number delivered. upvalue 1: the context. */
static int l_update(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, lua_upvalueindex(1));
	double budget = -1;
	if (!lua_isnoneornil(L, 1)) {
		budget = luaL_checknumber(L, 1);
		if (!(budget >= 0))
			return luaL_error(L, "async.update: the budget must be a number of seconds >= 0, not %f", budget);
	}
	take_done(ctx);
	double t0 = budget >= 0 ? now_s() : 0;
	int n = 0;
	while (ctx->pending != NULL) {
		deliver(L, ctx, ctx->pending);
		n++;
		if (budget >= 0 && now_s() - t0 >= budget)
			break;
	}
	lua_pushinteger(L, n);
	return 1;
}

/* ---- main thread: definitions and workers -------------------------------- */

/* Builds a definition from the Lua function at fnidx: its bytecode and a
 * snapshot of its upvalues. `what` names it in errors ("async.define('f')").
 * Raises on a C function, a dump failure, or an upvalue that cannot travel
 * (named, never silently nil in the worker). */
static struct def *make_def(lua_State *L, struct ctx *ctx, int fnidx, const char *name, const char *what)
{
	if (lua_type(L, fnidx) != LUA_TFUNCTION)
		luaL_error(L, "%s: expected a function, got a %s", what, luaL_typename(L, fnidx));
	if (lua_iscfunction(L, fnidx))
		luaL_error(L, "%s: a C function has no bytecode to send to a worker", what);
	struct def *d = calloc(1, sizeof *d);
	if (d == NULL || (d->name = strdup(name)) == NULL) {
		free(d);
		luaL_error(L, "%s: out of memory", what);
	}
	d->refs = 1;
	int base = lua_gettop(L);
	lua_pushvalue(L, fnidx);
	int rc = lua_dump(L, dump_writer, &d->code);
	lua_pop(L, 1);
	int n = 0;
	while (lua_getupvalue(L, fnidx, n + 1) != NULL)
		n++;
	d->nupvals = n;
	/* `async` captured from `local async = require "async"` means, inside a
	 * job, the worker-side API (async.shared, async.await, ...): it is not
	 * sent, but bound in the worker. */
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->facade);
	for (int i = 1; i <= n; i++) {
		if (!lua_rawequal(L, base + i, -1))
			continue;
		if (d->is_async == NULL && (d->is_async = calloc((size_t)n, 1)) == NULL) {
			def_unref(d);
			luaL_error(L, "%s: out of memory", what);
		}
		d->is_async[i - 1] = 1;
		lua_pushnil(L);
		lua_replace(L, base + i);
	}
	lua_pop(L, 1);
	char err[256] = "";
	int erc = rc != 0 ? -1 : (n > 0 ? async_codec_encode(L, base + 1, base + n, &d->upvals, "upvalue", NULL, err, sizeof err) : 0);
	if (erc != 0) {
		char msg[400];
		int k = 0;
		if (rc != 0)
			snprintf(msg, sizeof msg, "%s: could not dump the function", what);
		else if (sscanf(err, "upvalue %d", &k) == 1 && k >= 1 && k <= n) {
			const char *rest = strchr(err + 8, ' '); /* after the number */
			snprintf(msg, sizeof msg, "%s: upvalue '%s'%s, which cannot be sent to a worker",
			         what, lua_getupvalue(L, fnidx, k), rest ? rest : "");
			lua_pop(L, 1);
		} else
			snprintf(msg, sizeof msg, "%s: %s", what, err);
		def_unref(d);
		lua_settop(L, base);
		lua_pushstring(L, msg);
		lua_error(L);
	}
	lua_settop(L, base);
	d->id = ++ctx->next_def_id;
	return d;
}

static int l_define(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	const char *name = luaL_checkstring(L, 2);
	if (name[0] == '\0')
		return luaL_error(L, "async.define: the name must not be empty");
	lua_settop(L, 3);
	char what[200];
	snprintf(what, sizeof what, "async.define('%s')", name);
	struct def *d = make_def(L, ctx, 3, name, what);
	struct def *old = registry_swap(L, ctx->defs, name, d);
	if (old != NULL)
		def_unref(old); /* calls already made keep theirs */
	snap_publish(L, ctx);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, l_shorthand, 2);
	return 1;
}

static int l_undefine(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct def *old = registry_swap(L, ctx->defs, name, NULL);
	if (old == NULL)
		return luaL_error(L, "async.undefine: no function named '%s' is defined", name);
	def_unref(old);
	snap_publish(L, ctx);
	return 0;
}

/* share(name, value): publish a read-only value to every job; nil removes
 * it. Encoded once here, decoded once per worker per version. */
static int l_share(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	const char *name = luaL_checkstring(L, 2);
	if (name[0] == '\0')
		return luaL_error(L, "async.share: the name must not be empty");
	lua_settop(L, 3);
	struct share *sh = NULL;
	if (!lua_isnil(L, 3)) {
		sh = calloc(1, sizeof *sh);
		if (sh == NULL || (sh->name = strdup(name)) == NULL) {
			free(sh);
			return luaL_error(L, "async.share('%s'): out of memory", name);
		}
		sh->refs = 1;
		char err[256];
		if (async_codec_encode(L, 3, 3, &sh->val, "value", NULL, err, sizeof err) != 0) {
			share_unref(sh);
			/* "value 1 (at .x) is a function" -> "the value (at .x) ..." */
			return luaL_error(L, "async.share('%s'): the value%s, which cannot be shared with workers", name,
			                  strncmp(err, "value 1", 7) == 0 ? err + 7 : err);
		}
		sh->id = ++ctx->next_def_id;
	}
	struct share *old = registry_swap(L, ctx->shares, name, sh);
	if (old != NULL)
		share_unref(old); /* calls already made keep theirs */
	snap_publish(L, ctx);
	return 0;
}

/* setWorkerInit(fn | nil): fn(state, workerIndex) runs on every worker,
 * present and future, before its next job, once per worker per version. */
static int l_set_init(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	lua_settop(L, 2);
	struct def *d = lua_isnil(L, 2) ? NULL : make_def(L, ctx, 2, "worker init", "async.setWorkerInit");
	if (ctx->init != NULL)
		def_unref(ctx->init);
	ctx->init = d;
	snap_publish(L, ctx);
	return 0;
}

static unsigned check_count(lua_State *L, int idx, const char *fn)
{
	lua_Number n = luaL_checknumber(L, idx);
	if (!(n >= 0) || n != floor(n) || n > 4096)
		return (unsigned)luaL_error(L, "%s: expected a whole number of workers from 0 to 4096, got %s",
		                            fn, lua_tostring(L, idx));
	return (unsigned)n;
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
	if (lua_istable(L, 2))
		lua_settop(L, 2);
	else {
		lua_settop(L, 1);
		lua_createtable(L, 0, 10);
	}
	int t = 2;
	async_worker_stats st[256];
	int n = async_pool_stats(ctx->pool, st, 256);
	if (n > 256)
		n = 256;
	take_done(ctx); /* so that finished-but-undelivered calls are counted */
	int64_t queued = async_pool_queued(ctx->pool);
	int64_t running = (int64_t)ctx->inflight - queued - (int64_t)ctx->npending;
	set_num(L, t, "queued", (lua_Number)queued);
	set_num(L, t, "running", (lua_Number)(running < 0 ? 0 : running));
	set_num(L, t, "ready", (lua_Number)ctx->npending);
	set_num(L, t, "inflight", (lua_Number)ctx->inflight);
	set_num(L, t, "completed", (lua_Number)ctx->delivered);
	set_num(L, t, "failed", (lua_Number)ctx->failed_count);
	set_num(L, t, "cancelled", (lua_Number)ctx->cancelled_count);
	set_num(L, t, "workerCount", (lua_Number)async_pool_worker_count(ctx->pool));
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
		uint64_t m = __atomic_load_n(&ctx->mem[i], __ATOMIC_RELAXED);
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
	set_num(L, t, "statesReplaced", (lua_Number)__atomic_load_n(&ctx->replaced, __ATOMIC_RELAXED));
	return 1;
}

static void unref_share_entry(void *x) { share_unref(x); }
static void unref_def_entry(void *x) { def_unref(x); }

/* Drops the reference held by each lightuserdata value of the registry
 * table `ref` (name -> definition or shared value). */
static void release_entries(lua_State *L, int ref, void (*unref)(void *))
{
	if (ref == LUA_NOREF)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		unref(lua_touserdata(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static void ctx_free_all(lua_State *L, struct ctx *ctx, int unref)
{
	if (ctx->pool != NULL) {
		async_pool_destroy(ctx->pool);
		ctx->pool = NULL;
	}
	lua_getfield(L, LUA_REGISTRYINDEX, "async.live");
	if (lua_istable(L, -1)) {
		lua_pushlightuserdata(L, ctx);
		lua_pushnil(L);
		lua_rawset(L, -3);
	}
	lua_pop(L, 1);
	for (size_t i = 0; i < ctx->nall; i++) {
		struct call *c = ctx->all[i];
		if (unref && c->cb != LUA_NOREF)
			luaL_unref(L, LUA_REGISTRYINDEX, c->cb);
		if (unref && c->key != LUA_NOREF)
			luaL_unref(L, LUA_REGISTRYINDEX, c->key);
		if (c->def)
			def_unref(c->def);
		snap_unref(c->snap);
		lent_free(&c->bufs);
		async_buf_free(&c->args);
		async_buf_free(&c->res);
		free(c);
	}
	free(ctx->all);
	ctx->all = NULL;
	ctx->nall = ctx->capall = 0;
	ctx->free = ctx->pending = ctx->pending_tail = ctx->done = NULL;
	snap_unref(ctx->snap);
	ctx->snap = NULL;
	if (ctx->init != NULL)
		def_unref(ctx->init);
	ctx->init = NULL;
	release_entries(L, ctx->shares, unref_share_entry);
	if (unref && ctx->shares != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, ctx->shares);
	ctx->shares = LUA_NOREF;
	if (ctx->defs != LUA_NOREF) {
		release_entries(L, ctx->defs, unref_def_entry);
		if (unref) {
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->defs);
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->facade);
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->keys);
			luaL_unref(L, LUA_REGISTRYINDEX, ctx->handle_mt);
		}
		ctx->defs = ctx->facade = ctx->keys = ctx->handle_mt = LUA_NOREF;
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
	free(ctx->mem); /* after the pool and the fallback: their states count into it */
	ctx->mem = NULL;
	ctx->closed = 1;
}

/* shutdown(): waits for every call, delivers every callback, frees all. A
 * callback that raises interrupts it; calling shutdown again goes on. */
static int l_shutdown(lua_State *L)
{
	struct ctx *ctx = luaL_checkudata(L, 1, CTX_MT);
	if (ctx->closed)
		return 0;
	/* Jobs need a worker's Lua state: keep one worker if calls remain. */
	if (ctx->inflight > 0 && async_pool_worker_count(ctx->pool) == 0)
		async_pool_add_workers(ctx->pool, 1);
	int rc = async_pool_shutdown(ctx->pool);
	if (rc != 0)
		return luaL_error(L, "async.shutdown: %s", async_strerror(rc));
	for (;;) {
		take_done(ctx);
		if (ctx->pending == NULL)
			break;
		deliver(L, ctx, ctx->pending);
	}
	ctx_free_all(L, ctx, 1);
	return 0;
}

static int l_gc(lua_State *L)
{
	struct ctx *ctx = luaL_checkudata(L, 1, CTX_MT);
	if (!ctx->closed)
		ctx_free_all(L, ctx, 0); /* no callbacks from a collector */
	return 0;
}

/* A LÖVE module the game has loaded and a thread may use (LÖVE forbids
 * graphics and window off the main thread). */
static int is_loaded_love_module(lua_State *L, const char *name)
{
	if (strncmp(name, "love.", 5) != 0 || strcmp(name, "love.graphics") == 0 ||
	    strcmp(name, "love.window") == 0)
		return 0;
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaded");
	lua_getfield(L, -1, name);
	int loaded = !lua_isnil(L, -1);
	lua_pop(L, 3);
	return loaded;
}

/* Copies package.preload's C functions (LÖVE's modules, luasocket, ...) and
 * the package paths, for worker states. */
static void capture_environment(lua_State *L, struct ctx *ctx)
{
	lua_getglobal(L, "package");
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "path");
		if (lua_isstring(L, -1))
			ctx->path = strdup(lua_tostring(L, -1));
		lua_pop(L, 1);
		lua_getfield(L, -1, "cpath");
		if (lua_isstring(L, -1))
			ctx->cpath = strdup(lua_tostring(L, -1));
		lua_pop(L, 1);
		lua_getfield(L, -1, "preload");
		if (lua_istable(L, -1)) {
			lua_pushnil(L);
			while (lua_next(L, -2)) {
				lua_CFunction f = lua_tocfunction(L, -1);
				if (f != NULL && lua_type(L, -2) == LUA_TSTRING) {
					struct preload *p = realloc(ctx->pre, sizeof *p * (size_t)(ctx->npre + 1));
					if (p != NULL) {
						const char *name = lua_tostring(L, -2);
						ctx->pre = p;
						p[ctx->npre].name = strdup(name);
						p[ctx->npre].fn = f;
						p[ctx->npre].required = is_loaded_love_module(L, name);
						ctx->npre += p[ctx->npre].name != NULL;
					}
				}
				lua_pop(L, 1);
			}
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_getglobal(L, "love");
	ctx->love = lua_istable(L, -1);
	lua_pop(L, 1);
}

/* new(workers, facade[, memoryLimit]) -> context, call, update */
static int l_new(lua_State *L)
{
	lua_Number n = luaL_optnumber(L, 1, 1);
	if (!(n >= 0) || n != floor(n) || n > 4096)
		return luaL_error(L, "async.load: expected a whole number of workers from 0 to 4096, got %s",
		                  lua_tostring(L, 1));
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_Number limit = luaL_optnumber(L, 3, 0);
	if (!(limit >= 0) || limit != floor(limit) || limit > 9.0e15)
		return luaL_error(L, "async.load: memoryLimit must be a whole number of bytes > 0, got %s",
		                  lua_tostring(L, 3));
	uint64_t *mem = calloc(ASYNC_MAX_SLOTS, sizeof *mem);
	if (mem == NULL)
		return luaL_error(L, "async.load: out of memory");
	struct ctx *ctx = lua_newuserdata(L, sizeof *ctx);
	memset(ctx, 0, sizeof *ctx);
	ctx->defs = ctx->facade = ctx->keys = ctx->handle_mt = ctx->shares = LUA_NOREF;
	ctx->closed = 1; /* until the pool exists */
	ctx->mem = mem;
	ctx->mem_limit = (uint64_t)limit;
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
	snap_publish(L, ctx); /* the empty registry */
	luaL_getmetatable(L, "async.handle");
	ctx->handle_mt = luaL_ref(L, LUA_REGISTRYINDEX);
	capture_environment(L, ctx);
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = (unsigned)n;
	cfg.on_worker_start = worker_start;
	cfg.on_worker_stop = worker_stop;
	cfg.userdata = ctx;
	int rc = async_pool_create(&ctx->pool, &cfg);
	if (rc != 0) {
		ctx_free_all(L, ctx, 1);
		return luaL_error(L, "async.load: %s", async_strerror(rc));
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
	{ NULL, NULL },
};

static const luaL_Reg handle_methods[] = {
	{ "cancel", l_handle_cancel },
	{ "status", l_handle_status },
	{ NULL, NULL },
};

/* encode(...) -> string: the values in async's wire format (no objects).
 * For benchmarks, tests and the fuzzer; raises like async.call. */
static int l_encode(lua_State *L)
{
	struct async_buf b = { 0 };
	char err[256];
	if (async_codec_encode(L, 1, lua_gettop(L), &b, "argument", NULL, err, sizeof err) != 0) {
		async_buf_free(&b);
		return luaL_error(L, "async.encode: %s", err);
	}
	lua_pushlstring(L, (const char *)b.p, b.n);
	async_buf_free(&b);
	return 1;
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
	{ "encode", l_encode },
	{ "decode", l_decode },
	{ "newBuffer", l_new_buffer },
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
	lua_pushinteger(L, ASYNC_CODEC_MAX_DEPTH);
	lua_setfield(L, -2, "max_depth");
	return 1;
}
