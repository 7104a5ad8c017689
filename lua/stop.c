/* SPDX-License-Identifier: MIT (see LICENSE) */
/* stop.c: how shutdown() and a closing game state stop the jobs: queued
 * calls are cancelled, running ones see async.cancelled(), and at a
 * deadline a debug hook stops those that run interpreted Lua. */
#include "internal.h"
#include <time.h>

static void hook_lock(struct call *c)
{
	while (__atomic_exchange_n(&c->hook_lock, 1, __ATOMIC_ACQUIRE))
		;
}

static void hook_unlock(struct call *c) { __atomic_store_n(&c->hook_lock, 0, __ATOMIC_RELEASE); }

/* Raised from the hook: the job fails with this message. It stays set, so
 * that a job catching the error with pcall is stopped again. */
static void stop_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	luaL_error(L, MSG(STOPPED));
}

static void set_stop_hook(lua_State *L) { lua_sethook(L, stop_hook, LUA_MASKCOUNT, 1000); }

/* Worker side: c starts running in L. Hooked at once when the deadline
 * has already passed. */
void run_enter(struct call *c, lua_State *L)
{
	hook_lock(c);
	c->runL = L;
	if (__atomic_load_n(&c->ctx->hard_stop, __ATOMIC_ACQUIRE)) {
		set_stop_hook(L);
		c->hooked = 1;
	}
	hook_unlock(c);
}

/* Worker side: c no longer runs in its state; the hook goes with it, so
 * that the state's next job runs unhooked. */
void run_leave(struct call *c)
{
	hook_lock(c);
	lua_State *L = c->runL;
	int hooked = c->hooked;
	c->runL = NULL;
	c->hooked = 0;
	hook_unlock(c);
	if (hooked)
		lua_sethook(L, NULL, 0, 0);
}

/* Queued calls will not run (their callbacks hear cancelled); running ones
 * see async.cancelled() true. */
void cancel_all(struct ctx *ctx)
{
	for (size_t i = 0; i < ctx->nall; i++)
		if (ctx->all[i] != NULL && ctx->all[i]->live)
			cancel_call(ctx->all[i]);
}

int any_running(struct ctx *ctx)
{
	for (size_t i = 0; i < ctx->nall; i++) {
		struct call *c = ctx->all[i];
		if (c != NULL && c->live && __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == CALL_RUNNING &&
		    !__atomic_load_n(&c->finished, __ATOMIC_ACQUIRE))
			return 1;
	}
	return 0;
}

/* The deadline: every job still running gets the stop hook. lua_sethook
 * from another thread only sets fields and flags (LuaJIT's own luajit.c
 * calls it from a signal handler for the same purpose); the lock keeps the
 * state from being closed meanwhile. Compiled traces run no hooks. */
void hook_running(struct ctx *ctx)
{
	__atomic_store_n(&ctx->hard_stop, 1, __ATOMIC_RELEASE);
	for (size_t i = 0; i < ctx->nall; i++) {
		struct call *c = ctx->all[i];
		if (c == NULL || !c->live)
			continue;
		hook_lock(c);
		if (c->runL != NULL && !c->hooked) {
			set_stop_hook(c->runL);
			c->hooked = 1;
		}
		hook_unlock(c);
	}
}

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}
