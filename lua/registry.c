/* SPDX-License-Identifier: MIT (see LICENSE) */
/* registry.c: definitions, shared values and the worker-init function,
 * and the immutable snapshot of them that each call carries ("calls
 * already made keep their version"). Main thread, except the lookups in a
 * snapshot, which any thread may do. */
#include "internal.h"

void def_unref(struct def *d)
{
	if (--d->refs > 0)
		return;
	async_buf_free(&d->code);
	async_buf_free(&d->upvals);
	free(d->is_async);
	free(d->name);
	defstat_unref(d->st);
	free(d);
}

static void epoch_bump(struct ctx *ctx, int defs_changed)
{
	__atomic_store_n(&ctx->epoch, ctx->epoch + 1, __ATOMIC_RELAXED);
	/* Only a change of definitions lets workers drop their compiled
	 * functions: share and setWorkerInit keep them. Release: pairs with
	 * the acquire load in run_def_body. */
	if (defs_changed)
		__atomic_store_n(&ctx->def_epoch, ctx->def_epoch + 1, __ATOMIC_RELEASE);
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

static void share_unref(struct share *sh)
{
	if (--sh->refs > 0)
		return;
	async_buf_free(&sh->val);
	free(sh->name);
	free(sh);
}

void snap_unref(struct snap *sn)
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
struct def *snap_find_def(const struct snap *sn, const char *name)
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

int snap_has_share(const struct snap *sn, const char *name)
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
				luaL_error(L, MSG(OUT_OF_MEMORY), "async");
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
void snap_publish(lua_State *L, struct ctx *ctx, int defs_changed)
{
	struct snap *sn = calloc(1, sizeof *sn);
	if (sn == NULL)
		luaL_error(L, MSG(OUT_OF_MEMORY), "async");
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
	epoch_bump(ctx, defs_changed);
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

struct def *lookup_def(lua_State *L, struct ctx *ctx, const char *name)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->defs);
	lua_getfield(L, -1, name);
	struct def *d = lua_touserdata(L, -1);
	lua_pop(L, 2);
	return d;
}

/* Builds a definition from the Lua function at fnidx: its bytecode and a
 * snapshot of its upvalues. `what` names it in errors ("async.define('f')").
 * Raises on a C function, a dump failure, or an upvalue that cannot travel
 * (named, never silently nil in the worker). */
static struct def *make_def(lua_State *L, struct ctx *ctx, int fnidx, const char *name, const char *what)
{
	if (lua_type(L, fnidx) != LUA_TFUNCTION)
		luaL_error(L, MSG(DEF_NOT_FUNCTION), what, luaL_typename(L, fnidx));
	if (lua_iscfunction(L, fnidx))
		luaL_error(L, MSG(DEF_C_FUNCTION), what);
	struct def *d = calloc(1, sizeof *d);
	if (d == NULL || (d->name = strdup(name)) == NULL) {
		free(d);
		luaL_error(L, MSG(OUT_OF_MEMORY), what);
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
			luaL_error(L, MSG(OUT_OF_MEMORY), what);
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
			snprintf(msg, sizeof msg, MSG(DEF_NOT_DUMPED), what);
		else if (sscanf(err, "upvalue %d", &k) == 1 && k >= 1 && k <= n) {
			const char *rest = strchr(err + 8, ' '); /* after the number */
			snprintf(msg, sizeof msg, MSG(DEF_UPVALUE), what, lua_getupvalue(L, fnidx, k), rest ? rest : "");
			lua_pop(L, 1);
		} else
			snprintf(msg, sizeof msg, MSG(PREFIXED), what, err);
		def_unref(d);
		lua_settop(L, base);
		lua_pushstring(L, msg);
		lua_error(L);
	}
	lua_settop(L, base);
	d->id = ++ctx->next_def_id;
	return d;
}

int l_define(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	const char *name = luaL_checkstring(L, 2);
	if (name[0] == '\0')
		return luaL_error(L, MSG(NAME_EMPTY), "async.define");
	lua_settop(L, 3);
	char what[200];
	snprintf(what, sizeof what, MSG(DEFINE_WHAT), name);
	struct def *d = make_def(L, ctx, 3, name, what);
	d->st = defstat_for(ctx, name);
	struct def *old = registry_swap(L, ctx->defs, name, d);
	if (old != NULL)
		def_unref(old); /* calls already made keep theirs */
	snap_publish(L, ctx, 1);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, l_shorthand, 2);
	return 1;
}

int l_undefine(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct def *old = registry_swap(L, ctx->defs, name, NULL);
	if (old == NULL)
		return luaL_error(L, MSG(UNDEFINE_MISSING), name);
	def_unref(old);
	profile_undefined(ctx, name);
	snap_publish(L, ctx, 1);
	return 0;
}

/* share(name, value): publish a read-only value to every job; nil removes
 * it. Encoded once here, decoded once per worker per version. */
int l_share(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	const char *name = luaL_checkstring(L, 2);
	if (name[0] == '\0')
		return luaL_error(L, MSG(NAME_EMPTY), "async.share");
	lua_settop(L, 3);
	struct share *sh = NULL;
	if (!lua_isnil(L, 3)) {
		sh = calloc(1, sizeof *sh);
		if (sh == NULL || (sh->name = strdup(name)) == NULL) {
			free(sh);
			return luaL_error(L, MSG(SHARE_OUT_OF_MEMORY), name);
		}
		sh->refs = 1;
		char err[256];
		if (async_codec_encode(L, 3, 3, &sh->val, "value", NULL, err, sizeof err) != 0) {
			share_unref(sh);
			/* "value 1 (at .x) is a function" -> "the value (at .x) ..." */
			return luaL_error(L, MSG(SHARE_REFUSED), name,
			                  strncmp(err, "value 1", 7) == 0 ? err + 7 : err);
		}
		sh->id = ++ctx->next_def_id;
	}
	struct share *old = registry_swap(L, ctx->shares, name, sh);
	if (old != NULL)
		share_unref(old); /* calls already made keep theirs */
	snap_publish(L, ctx, 0);
	return 0;
}

/* setWorkerInit(fn | nil): fn(state, workerIndex) runs on every worker,
 * present and future, before its next job, once per worker per version. */
int l_set_init(lua_State *L)
{
	struct ctx *ctx = check_ctx(L, 1);
	lua_settop(L, 2);
	struct def *d = lua_isnil(L, 2) ? NULL : make_def(L, ctx, 2, "worker init", "async.setWorkerInit");
	if (ctx->init != NULL)
		def_unref(ctx->init);
	ctx->init = d;
	snap_publish(L, ctx, 0);
	return 0;
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


/* Drops the context's references to the snapshot, the init function and
 * every definition and shared value; with unref, the registry tables too
 * (not from a collector). The defs table itself goes with the other refs
 * in ctx_free_all. */
void registry_free(lua_State *L, struct ctx *ctx, int unref)
{
	snap_unref(ctx->snap);
	ctx->snap = NULL;
	if (ctx->init != NULL)
		def_unref(ctx->init);
	ctx->init = NULL;
	release_entries(L, ctx->shares, unref_share_entry);
	if (unref && ctx->shares != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, ctx->shares);
	ctx->shares = LUA_NOREF;
	if (ctx->defs != LUA_NOREF)
		release_entries(L, ctx->defs, unref_def_entry);
}
