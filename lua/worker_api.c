/* SPDX-License-Identifier: MIT (see LICENSE) */
/* worker_api.c: the `async` table a job sees: await and awaitAll (jobs
 * that start jobs, fork-join through the core), cancelled, shared, state,
 * newBuffer. Runs on the workers. */
#include "internal.h"

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
		fail_res(&sc->res, &sc->failed, NULL, ws ? ws->init_error : MSG(NO_STATE_HERE), NULL);
		return;
	}
	struct objctx oc = { NULL, &sc->bufs, 0, ws, NULL };
	async_trace_label(sc->def->name);
	run_def(ws, sc->call, sc->def, sc->snap, &sc->args, &sc->res, &sc->failed, &oc);
}

#define AWAITED_JOB MSG(AWAITED_JOB)
#define AWAITED_FROM MSG(AWAITED_FROM)
#define AWAITED_MORE MSG(AWAITED_MORE)
#define AWAITED_NOTES 10

/* Raises an awaited job's failure, (error value, traceback) at idx and
 * idx + 1: a string gets the traceback appended; other values, and
 * failures with no traceback (out of memory), go as they are. Through a
 * chain of awaits only the innermost traceback is kept; each outer level
 * adds a one-line note, the first AWAITED_NOTES of them, then a count:
 * the message stays bounded however deep the chain (it grew by a
 * traceback per level, quadratic in time). `what` names what was awaited. */
static int raise_awaited(lua_State *L, int idx, const char *what)
{
	if (lua_type(L, idx) == LUA_TSTRING && lua_type(L, idx + 1) == LUA_TSTRING) {
		size_t len;
		const char *m = lua_tolstring(L, idx, &len);
		if (strstr(m, AWAITED_JOB) != NULL) {
			const char *more = strstr(m, AWAITED_MORE);
			if (more != NULL) {
				long k = strtol(more + strlen(AWAITED_MORE), NULL, 10);
				lua_pushlstring(L, m, (size_t)(more - m));
				lua_pushfstring(L, MSG(AWAITED_MORE_LEVELS), (int)k + 1);
			} else {
				int notes = 0;
				for (const char *p = m; (p = strstr(p, AWAITED_FROM)) != NULL; p++)
					notes++;
				lua_pushvalue(L, idx);
				if (notes < AWAITED_NOTES)
					lua_pushfstring(L, MSG(AWAITED_FROM_JOB), what);
				else
					lua_pushfstring(L, MSG(AWAITED_MORE_LEVELS), 1);
			}
			lua_concat(L, 2);
			return lua_error(L);
		}
		lua_pushvalue(L, idx);
		lua_pushstring(L, AWAITED_JOB);
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

/* How deep jobs may nest on one worker: each level (an await, or a job
 * run while waiting for one) holds about 2.4 KB of the worker thread's C
 * stack, and a recursion without an end overflowed it (SIGSEGV past about
 * 3,500 levels on Linux's 8 MB thread stack). Past this, await raises. */
#define AWAIT_MAX_DEPTH 1000

static int too_deep(lua_State *L, const char *what)
{
	return luaL_error(L, MSG(TOO_DEEP), what, AWAIT_MAX_DEPTH);
}

/* Worker side: async.await(name, ...) runs another defined function as a
 * job of its own (fork-join through the core: it may be stolen by an idle
 * worker) and returns its results; meanwhile this worker runs other jobs
 * instead of blocking. A failure raises here. */
static int l_w_await(lua_State *L)
{
	struct wstate *ws = tls_ws;
	if (ws == NULL || ws->cur == NULL)
		return luaL_error(L, MSG(AWAIT_OUTSIDE_JOB));
	if (ws->depth >= AWAIT_MAX_DEPTH)
		return too_deep(L, "async.await");
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	/* Names are C strings here: "a\0x" must not find "a". */
	if (strlen(name) != len)
		return luaL_error(L, MSG(AWAIT_NAME_NUL), name);
	struct def *d = snap_find_def(ws->cur, name);
	if (d == NULL)
		return luaL_error(L, MSG(AWAIT_UNDEFINED), name);
	int last = lua_gettop(L);
	struct subcalls *s = subcalls_new(L, 1);
	struct subcall *sc = &s->sc[0];
	sc->def = d;
	sc->snap = ws->cur;
	sc->call = ws->call;
	char err[256];
	struct objctx oc = { NULL, &sc->bufs, 0, ws, NULL };
	struct async_codec_objects objs = codec_objects(&oc);
	if (async_codec_encode(L, 2, last, &sc->args, "argument", &objs, err, sizeof err) != 0) {
		obj_name_refused(&oc, err, sizeof err);
		return luaL_error(L, MSG(AWAIT_NOT_SENT), name, err);
	}
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
		return luaL_error(L, MSG(AWAIT_REFUSED), name, err);
	if (!failed)
		return n;
	lua_settop(L, top + 2);
	return raise_awaited(L, top + 1, lua_pushfstring(L, "'%s'", name));
}

/* Worker side: async.awaitAll({ {name, args...}, ... }) starts every call
 * as a job (idle workers steal them), waits for all, and returns the list of
 * their first results; the first failure raises after all have finished. */
static int l_w_await_all(lua_State *L)
{
	struct wstate *ws = tls_ws;
	if (ws == NULL || ws->cur == NULL)
		return luaL_error(L, MSG(AWAITALL_OUTSIDE_JOB));
	if (ws->depth >= AWAIT_MAX_DEPTH)
		return too_deep(L, "async.awaitAll");
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
			return luaL_error(L, MSG(AWAITALL_ENTRY), k + 1);
		size_t len;
		const char *name = lua_tolstring(L, -1, &len);
		struct def *d = strlen(name) == len ? snap_find_def(ws->cur, name) : NULL;
		if (d == NULL)
			return luaL_error(L, MSG(AWAITALL_UNDEFINED), name);
		int t = list + 1, nargs = (int)lua_objlen(L, t) - 1;
		lua_pop(L, 1);
		for (int a = 2; a <= nargs + 1; a++)
			lua_rawgeti(L, t, a);
		sc[k].def = d;
		sc[k].snap = ws->cur;
		sc[k].call = ws->call;
		struct objctx oc = { NULL, &sc[k].bufs, 0, ws, NULL };
		struct async_codec_objects objs = codec_objects(&oc);
		char e2[256];
		if (async_codec_encode(L, t + 1, t + nargs, &sc[k].args, "argument", &objs, e2, sizeof e2) != 0) {
			obj_name_refused(&oc, e2, sizeof e2);
			return luaL_error(L, MSG(AWAITALL_NOT_SENT), k + 1, e2);
		}
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
		struct objctx oc = { NULL, &sc[k].bufs, 0, ws, NULL };
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
		return raise_awaited(L, out + 1, "async.awaitAll");
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

/* Builds the worker-side API, global `async` in jobs, in the worker state
 * ws is setting up; returns its registry ref. */
int worker_api_open(lua_State *L, struct wstate *ws)
{
	luaL_newmetatable(L, SUBCALLS_MT);
	lua_pushcfunction(L, subcalls_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	lua_createtable(L, 0, 8);
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
	return luaL_ref(L, LUA_REGISTRYINDEX);
}
