/* SPDX-License-Identifier: MIT (see LICENSE) */
/* wstate.c: worker Lua states: creation (LuaJIT's allocator wrapped to
 * count bytes and enforce memoryLimit), the LÖVE set-up a love.thread gets,
 * what is put back after each job, replacement after running out of
 * memory, and the game's environment (paths, preloads) captured for them. */
#include "internal.h"

__thread struct wstate *tls_ws;

/* What a job may change that would break the later jobs of its worker,
 * checked and put back after each job by one Lua function made once per
 * state from this generator: the guard. It holds, as upvalues, every
 * global the state started with and its value, the string metatable and
 * its __index, package.loaded, and the environment calls run in: E, a
 * table whose metatable M = { __index = _G } makes reads fall through to
 * the globals. Each global is checked with its name as a constant and its
 * value as an upvalue, so the JIT compiles the guard to a slot test and a
 * compare a global, ~14 instructions (a loop over a list of keys cost ~50
 * a key); nothing is allocated unless something changed. A job writes its globals into E: E is reused by the next job
 * while it is still empty and keeps M, else a new E (and M, if a job
 * changed it) is made, so a job pays for its fresh environment only when
 * it wrote to it. Globals a job added to _G itself stay; replaced or
 * removed ones are put back. The guard reaches everything through
 * upvalues, so no job can replace what it uses; rawequal, not ~=, so that
 * a replaced value's __eq never runs. It also puts back the thread's
 * globals table (setfenv(0, {}) would leave every later job without
 * `type`) and takes away a metatable a job gave it. */
static const char GUARD[] =
	"local G, REG, envref, mtref, dsetmt, setfenv = ...\n"
	"local rawget, rawequal, type, format = rawget, rawequal, type, string.format\n"
	"local SK, SV, OK, OV, CK, lines = {}, {}, {}, {}, {}, {}\n"
	"for k, v in next, G do\n"
	"  if type(k) == 'string' then\n"
	"    SK[#SK + 1], SV[#SV + 1] = k, v\n"
	"  else\n"
	"    OK[#OK + 1], OV[#OV + 1] = k, v\n"
	"  end\n"
	"end\n"
	/* The expected values as upvalues, at most 48 to a function (LuaJIT
	 * allows 60): the JIT makes an upvalue that is never assigned a constant
	 * unless it holds a table, so most checks compare with a constant. */
	"for first = 1, #SK, 48 do\n"
	"  local last, names, body = math.min(first + 47, #SK), {}, {}\n"
	"  for i = first, last do\n"
	"    names[#names + 1] = 'v' .. i\n"
	"    body[#body + 1] = format('if not rawequal(rawget(G, %q), v%d) then rawset(G, %q, v%d) end', SK[i], i, SK[i], i)\n"
	"  end\n"
	"  local src = 'local G, rawget, rawset, rawequal, ' .. table.concat(names, ', ') .. ' = ...\\n'\n"
	"    .. 'return function()\\n' .. table.concat(body, '\\n') .. '\\nend\\n'\n"
	"  CK[#CK + 1] = assert(loadstring(src, '=async.guard'))(G, rawget, rawset, rawequal, unpack(SV, first, last))\n"
	"  lines[#lines + 1] = format('CK[%d]()', #CK)\n"
	"end\n"
	"if #OK > 0 then\n"
	"  lines[#lines + 1] = 'for i = 1, #OK do if not rawequal(rawget(G, OK[i]), OV[i]) then rawset(G, OK[i], OV[i]) end end'\n"
	"end\n"
	"local SM = getmetatable('')\n"
	"local STR = SM and rawget(SM, '__index')\n"
	"if SM then\n"
	"  lines[#lines + 1] = 'if not rawequal(getmetatable(\"\"), SM) then dsetmt(\"\", SM); rawset(SM, \"__metatable\", nil) end'\n"
	"  lines[#lines + 1] = 'if not rawequal(rawget(SM, \"__index\"), STR) then rawset(SM, \"__index\", STR) end'\n"
	"end\n"
	"local PKG = rawget(G, 'package')\n"
	"local LOADED = type(PKG) == 'table' and rawget(PKG, 'loaded')\n"
	"if type(LOADED) == 'table' then\n"
	"  lines[#lines + 1] = 'if not rawequal(rawget(PKG, \"loaded\"), LOADED) then rawset(PKG, \"loaded\", LOADED) end'\n"
	"end\n"
	"local src = 'local G, CK, OK, OV, SM, STR, PKG, LOADED, REG, envref, mtref, dsetmt, setfenv, '\n"
	"  .. 'rawget, rawset, rawequal, next, getmetatable, setmetatable = ...\\n'\n"
	"  .. 'local M, E\\n'\n"
	"  .. 'local function fresh(newmt)\\n'\n"
	"  .. '  if newmt then M = { __index = G }; REG[mtref] = M end\\n'\n"
	"  .. '  E = setmetatable({}, M); REG[envref] = E\\n'\n"
	"  .. 'end\\n'\n"
	"  .. 'fresh(true)\\n'\n"
	"  .. 'return function(cur)\\n'\n"
	"  .. 'if not rawequal(cur, G) then setfenv(0, G) end\\n'\n"
	"  .. 'if getmetatable(G) ~= nil then dsetmt(G, nil) end\\n'\n"
	"  .. table.concat(lines, '\\n') .. '\\n'\n"
	"  .. 'local bad = not rawequal(rawget(M, \"__index\"), G)\\n'\n"
	"  .. '  or next(M) ~= \"__index\" or next(M, \"__index\") ~= nil\\n'\n"
	"  .. 'if bad or next(E) ~= nil or not rawequal(getmetatable(E), M) then fresh(bad) end\\n'\n"
	"  .. 'end\\n'\n"
	"local make = assert(loadstring(src, '=async.guard'))\n"
	"return make(G, CK, OK, OV, SM, STR, PKG, LOADED, REG, envref, mtref, dsetmt, setfenv,\n"
	"  rawget, rawset, rawequal, next, getmetatable, setmetatable)\n";

/* Makes the guard (above) and the first environment. Raises on failure
 * (a state out of memory): the set-up then fails as a whole. */
static void guard_new(struct wstate *ws)
{
	lua_State *L = ws->L;
	lua_pushboolean(L, 0);
	ws->env = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushboolean(L, 0);
	ws->envmt = luaL_ref(L, LUA_REGISTRYINDEX);
	if (luaL_loadbuffer(L, GUARD, sizeof GUARD - 1, "=async.guard") != 0)
		lua_error(L);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	lua_pushvalue(L, LUA_REGISTRYINDEX);
	lua_pushinteger(L, ws->env);
	lua_pushinteger(L, ws->envmt);
	lua_getglobal(L, "debug");
	lua_getfield(L, -1, "setmetatable");
	lua_remove(L, -2);
	lua_getglobal(L, "setfenv");
	lua_call(L, 6, 1);
	ws->globals = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Put back after each job what would break every later job of its worker:
 * a debug hook (one that raises would fail them all), a stopped collector
 * (collectgarbage "stop": the state would grow without bound), then,
 * under lua_pcall (a rawset or a new environment may allocate), the guard,
 * given the thread's globals table (setfenv(0, {}) would leave every later
 * job without `type`). */
void wstate_restore(struct wstate *ws)
{
	lua_State *L = ws->L;
	if (lua_gethook(L) != NULL)
		lua_sethook(L, NULL, 0, 0);
	/* Only when stopped: restarting resets the collector's threshold. */
	if (ws->gc_stopped) {
		lua_gc(L, LUA_GCRESTART, -1);
		ws->gc_stopped = 0;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, ws->globals);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	if (lua_pcall(L, 1, 0, 0) != 0) {
		lua_pop(L, 1);
		wstate_replace(ws);
	}
}

/* require(name) in L; returns lua_pcall's code, the error on the stack. */
static int require_module(lua_State *L, const char *name)
{
	lua_getglobal(L, "require");
	lua_pushstring(L, name);
	return lua_pcall(L, 1, 0, 0);
}

/* collectgarbage in a worker: the standard one (upvalue 1), noting "stop"
 * so that the collector is restarted once the job ends. */
static int l_w_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");
	struct wstate *ws = tls_ws;
	if (ws != NULL && strcmp(opt, "stop") == 0)
		ws->gc_stopped = 1;
	else if (ws != NULL && strcmp(opt, "restart") == 0)
		ws->gc_stopped = 0;
	int n = lua_gettop(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, n, LUA_MULTRET);
	return lua_gettop(L);
}

/* The name of the definition the state's worker is running; nil between
 * jobs (the perf map names traces after it). */
static int l_w_jobname(lua_State *L)
{
	const struct wstate *ws = lua_touserdata(L, lua_upvalueindex(1));
	if (ws->def == NULL)
		return 0;
	lua_pushstring(L, ws->def->name);
	return 1;
}

/* Runs ctx->boot (async_perfmap.lua's install) with the job name function.
 * It only names code for perf: a failure is said, and the worker goes on. */
static void run_boot(struct wstate *ws)
{
	lua_State *L = ws->L;
	int rc = luaL_loadbuffer(L, ws->ctx->boot, ws->ctx->nboot, "=async perf map");
	if (rc == 0) {
		lua_pushlightuserdata(L, ws);
		lua_pushcclosure(L, l_w_jobname, 1);
		lua_createtable(L, 2, 0);
		lua_pushstring(L, MSG(PERF_MAP_JIT_OFF));
		lua_rawseti(L, -2, 1);
		lua_pushstring(L, MSG(PERF_MAP_OS));
		lua_rawseti(L, -2, 2);
		rc = lua_pcall(L, 2, 2, 0);
	}
	if (rc == 0 && lua_toboolean(L, -2)) {
		lua_pop(L, 2);
		return;
	}
	const char *m = lua_tostring(L, -1);
	fprintf(stderr, MSG(PERF_MAP_WORKER), (int)ws->index, m ? m : "error");
	lua_pop(L, rc == 0 ? 2 : 1);
}

static void worker_env(struct wstate *ws)
{
	struct ctx *ctx = ws->ctx;
	lua_State *L = ws->L;
	luaL_openlibs(L);
	lua_getglobal(L, "collectgarbage");
	lua_pushcclosure(L, l_w_collectgarbage, 1);
	lua_setglobal(L, "collectgarbage");
	lua_pushboolean(L, 0);
	lua_setfield(L, LUA_REGISTRYINDEX, "async.main");
	register_buffer_type(L);
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
		if (rc == 0) {
			/* LÖVE's own threads run love.jitsetup first (it turns the
			 * JIT off on arm and arm64). */
			lua_getglobal(L, "love");
			lua_getfield(L, -1, "jitsetup");
			lua_remove(L, -2);
			if (lua_isfunction(L, -1))
				rc = lua_pcall(L, 0, 0, 0);
			else
				lua_pop(L, 1);
		}
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
			ws->init_error = strdup(m ? m : MSG(LOVE_MODULES));
			lua_pop(L, 1);
		}
	}
	lua_newtable(L);
	ws->cache = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	ws->shareids = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	ws->proxies = luaL_ref(L, LUA_REGISTRYINDEX);
	ws->api = worker_api_open(L, ws);
	run_refs_new(ws);
	if (ctx->boot != NULL)
		run_boot(ws);
	guard_new(ws);
}

static void used_sub(struct memacct *m, size_t n)
{
	uint64_t used = __atomic_load_n(m->used, __ATOMIC_RELAXED);
	/* The starting count is LuaJIT's own; never let a block it counted
	 * differently wrap the total below zero. */
	__atomic_store_n(m->used, used > n ? used - n : 0, __ATOMIC_RELAXED);
}

static void kept_evict(struct memacct *m, unsigned i)
{
	if (m->kept[i] == NULL)
		return;
	m->f(m->ud, m->kept[i], m->keptn[i], 0);
	used_sub(m, m->keptn[i]);
	m->kept_bytes -= m->keptn[i];
	m->kept[i] = NULL;
}

/* Gives every kept block back to LuaJIT's allocator. */
static __attribute__((noinline)) void kept_flush(struct memacct *m)
{
	for (unsigned i = 0; i < KEEP_SLOTS; i++)
		kept_evict(m, i);
}

/* Gives kept blocks back, oldest first, until KEEP_IDLE_BYTES remain: the
 * worker's own thread, when the pool has no call left to start. */
void wstate_trim(struct wstate *ws)
{
	struct memacct *m = &ws->acct;
	for (unsigned i = 0; m->kept_bytes > KEEP_IDLE_BYTES && i < KEEP_SLOTS; i++)
		kept_evict(m, (m->kept_next + i) % KEEP_SLOTS);
}

static int pow2(size_t n)
{
	return n != 0 && (n & (n - 1)) == 0;
}

/* Whether blocks of n bytes come back: LuaJIT grows array parts to 2^k + 1
 * slots of 8 bytes (slot 0 included), hash parts to 2^k nodes of 24 and
 * its string buffers by doubling, so those sizes recur from job to job (in
 * the gallery's A*: 196,608, 262,152, 393,216 and 524,296). A string's block
 * has its own length, and keeping those held up to KEEP_BYTES a worker that
 * no request could take (test_workers). */
static int kept_size(size_t n)
{
	return pow2(n) || pow2(n - 8) || (n % 3 == 0 && pow2(n / 3));
}

/* Frees block p of n bytes for LuaJIT, keeping it if it is big and of a
 * size that recurs. */
static void kept_free(struct memacct *m, void *p, size_t n)
{
	if (n < KEEP_MIN || n > KEEP_BYTES || !kept_size(n)) {
		m->f(m->ud, p, n, 0);
		used_sub(m, n);
		return;
	}
	kept_evict(m, m->kept_next);
	for (unsigned i = 0; m->kept_bytes + n > KEEP_BYTES && i < KEEP_SLOTS; i++)
		kept_evict(m, i);
	m->kept[m->kept_next] = p;
	m->keptn[m->kept_next] = n;
	m->kept_bytes += n;
	m->kept_next = (m->kept_next + 1) % KEEP_SLOTS;
}

static void *kept_take(struct memacct *m, size_t n)
{
	for (unsigned i = 0; i < KEEP_SLOTS; i++) {
		if (m->kept[i] != NULL && m->keptn[i] == n) {
			void *p = m->kept[i];
			m->kept[i] = NULL;
			m->kept_bytes -= n;
			return p;
		}
	}
	return NULL;
}

static void *acct_over(struct memacct *m, void *ptr, size_t osize, size_t nsize);

/* The counting and the limit, on LuaJIT's allocator. */
static inline void *acct_plain(struct memacct *m, void *ptr, size_t osize, size_t nsize)
{
	uint64_t used = __atomic_load_n(m->used, __ATOMIC_RELAXED);
	size_t old = ptr != NULL ? osize : 0;
	/* The starting count is LuaJIT's own; never let a block it counted
	 * differently wrap the total below zero. */
	uint64_t rest = used > old ? used - old : 0;
	if (nsize > old && m->limit != 0 && rest + nsize > m->limit)
		return acct_over(m, ptr, osize, nsize);
	void *q = m->f(m->ud, ptr, osize, nsize);
	if (q == NULL && nsize > 0)
		return NULL;
	__atomic_store_n(m->used, rest + nsize, __ATOMIC_RELAXED);
	return q;
}

/* An allocation that would pass the limit: kept blocks go before the state
 * is refused anything. */
static __attribute__((noinline)) void *acct_over(struct memacct *m, void *ptr, size_t osize, size_t nsize)
{
	if (m->kept_bytes == 0) {
		m->refused = 1;
		return NULL;
	}
	kept_flush(m);
	return acct_plain(m, ptr, osize, nsize);
}

/* acct_alloc for a big block: keeps it when freed, or serves it from the
 * kept ones. Out of line, so that the path of small blocks, nearly all of
 * them, stays as cheap as it was. */
static __attribute__((noinline)) void *acct_big(struct memacct *m, void *ptr, size_t osize, size_t nsize)
{
	size_t old = ptr != NULL ? osize : 0;
	if (nsize == 0) {
		kept_free(m, ptr, old);
		return NULL;
	}
	/* A kept block is already counted in `used`. */
	void *q = nsize != old ? kept_take(m, nsize) : NULL;
	if (q == NULL)
		return acct_plain(m, ptr, osize, nsize);
	if (ptr != NULL) {
		memcpy(q, ptr, old < nsize ? old : nsize);
		kept_free(m, ptr, old);
	}
	return q;
}

static void *acct_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	if (__builtin_expect(nsize >= KEEP_MIN || (ptr != NULL && osize >= KEEP_MIN), 0))
		return acct_big(ud, ptr, osize, nsize);
	return acct_plain(ud, ptr, osize, nsize);
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
	ws->gc_floor = 0;
	ws->globals = LUA_NOREF;
	ws->L = luaL_newstate();
	if (ws->L == NULL) {
		ws->init_error = strdup(MSG(STATE_OUT_OF_MEMORY));
		return;
	}
	memset(&ws->acct, 0, sizeof ws->acct);
	ws->acct.f = lua_getallocf(ws->L, &ws->acct.ud);
	ws->acct.used = ws->index < ASYNC_MAX_SLOTS && ctx->mem != NULL ? ASYNC_MEM(ctx, ws->index) : &ws->acct.own;
	ws->acct.limit = ctx->mem_limit;
	/* What the new state already holds, as LuaJIT counts it. */
	uint64_t start = (uint64_t)lua_gc(ws->L, LUA_GCCOUNT, 0) * 1024 + (uint64_t)lua_gc(ws->L, LUA_GCCOUNTB, 0);
	__atomic_store_n(ws->acct.used, start, __ATOMIC_RELAXED);
	lua_setallocf(ws->L, acct_alloc, &ws->acct);
	int rc = lua_cpcall(ws->L, worker_env_p, ws);
	if (rc != 0 && ws->init_error == NULL) {
		const char *m = lua_tostring(ws->L, -1);
		char buf[300];
		snprintf(buf, sizeof buf, MSG(STATE_SETUP), m ? m : "error", ws->acct.refused ? MSG(STATE_LIMIT_SMALL) : "");
		ws->init_error = strdup(buf);
	}
}

static void wstate_close(struct wstate *ws)
{
	if (ws->L != NULL) {
		/* LuaJIT frees its own arena at close only when it sees its own
		 * allocator (lj_state.c, close_state); blocks mapped on their own
		 * are not part of it, so the kept ones go first. */
		kept_flush(&ws->acct);
		lua_setallocf(ws->L, ws->acct.f, ws->acct.ud);
		lua_close(ws->L);
		ws->L = NULL;
		__atomic_store_n(ws->acct.used, 0, __ATOMIC_RELAXED);
	}
	free(ws->init_error);
	ws->init_error = NULL;
}

struct wstate *wstate_new(struct ctx *ctx, unsigned index)
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
void wstate_replace(struct wstate *ws)
{
	wstate_close(ws);
	wstate_open(ws);
	__atomic_add_fetch(&ws->ctx->replaced, 1, __ATOMIC_RELAXED);
}

void wstate_free(struct wstate *ws)
{
	if (ws == NULL)
		return;
	wstate_close(ws);
	free(ws);
}

void worker_start(void *ud, unsigned index)
{
	tls_ws = wstate_new(ud, index);
}

void worker_stop(void *ud, unsigned index)
{
	(void)ud;
	(void)index;
	wstate_free(tls_ws);
	tls_ws = NULL;
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
void capture_environment(lua_State *L, struct ctx *ctx)
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
