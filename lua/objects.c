/* SPDX-License-Identifier: MIT (see LICENSE) */
/* objects.c: values the codec cannot copy but passes by reference: async
 * buffers (by index in the call's lent list) and LÖVE objects (through the
 * record's named Channel, each named by its ordinal there). A payload never
 * holds an address; objects left unread are cleared at the call's release. */
#include "internal.h"

/* Pushes the channel for record c in state L (cached per state). */
/* LÖVE never frees a named channel: a name per pool and record grew the
 * process at every load/shutdown. Names come from one process-wide free
 * list (every pool, every Lua state), a record's name goes back when its
 * pool is freed with its channel empty. The lock pairs with itself. */
static int chan_lock;
static uint32_t *chan_free, chan_nfree, chan_cap, chan_next;

static void chan_lock_take(void)
{
	while (__atomic_exchange_n(&chan_lock, 1, __ATOMIC_ACQUIRE))
		;
}

static void chan_lock_drop(void)
{
	__atomic_store_n(&chan_lock, 0, __ATOMIC_RELEASE);
}

uint32_t chan_take(void)
{
	chan_lock_take();
	uint32_t n = chan_nfree > 0 ? chan_free[--chan_nfree] : chan_next++;
	chan_lock_drop();
	return n;
}

void chan_give(uint32_t n)
{
	chan_lock_take();
	if (chan_nfree == chan_cap) {
		uint32_t cap = chan_cap ? chan_cap * 2 : 64;
		uint32_t *v = realloc(chan_free, sizeof *v * cap);
		if (v != NULL) {
			chan_free = v;
			chan_cap = cap;
		}
	}
	if (chan_nfree < chan_cap) /* else the name is never reused */
		chan_free[chan_nfree++] = n;
	chan_lock_drop();
}

/* The module is unloaded (lua_close of the last state): the free list goes
 * with it. */
__attribute__((destructor)) static void chan_list_free(void)
{
	free(chan_free);
	chan_free = NULL;
	chan_nfree = chan_cap = 0;
}

/* Distinct channel names used so far (async.stats().channels). */
uint32_t chan_count(void)
{
	chan_lock_take();
	uint32_t n = chan_next;
	chan_lock_drop();
	return n;
}

static int push_channel(lua_State *L, struct call *c)
{
	char name[64];
	snprintf(name, sizeof name, "async.ch.%u", c->chan);
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

static int obj_put(void *ud, lua_State *L, uint64_t *payload)
{
	struct objctx *oc = ud;
	struct bufproxy *p = to_buffer(L, -1);
	if (p != NULL) {
		if (!p->valid || p->b == NULL)
			return -1;
		/* One owner at a time: a buffer lent to a call in flight is not
		 * the game's to lend again until that call's callback. */
		uint32_t lent = oc->main ? __atomic_load_n(&p->b->lent, __ATOMIC_ACQUIRE) : 0;
		/* Latest wins: lent only to the queued call this keyed call
		 * supersedes, it is ours once do_call cancels that one. */
		struct call *old = lent != 0 && oc->c != NULL ? oc->c->old : NULL;
		if (old != NULL && (int)lent == lent_count(&old->bufs, p->b) &&
		    __atomic_load_n(&old->state, __ATOMIC_ACQUIRE) == CALL_QUEUED) {
			oc->c->takes_old = 1;
		} else if (lent != 0 && !lent_has(oc->bufs, p->b)) {
			oc->why = MSG(BUFFER_LENT);
			return -1;
		}
		if (lent_add(oc->bufs, p->b, oc->main) != 0)
			return -1;
		*payload = (uint64_t)oc->bufs->n; /* 1 + its index */
		if (!oc->main && oc->c != NULL && oc->ws != NULL) {
			/* Sent back to the game: the job's own view (kept in
			 * async.state, say) ends with the job. */
			lua_rawgeti(L, LUA_REGISTRYINDEX, oc->ws->proxies);
			lua_pushvalue(L, -2);
			lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
		return 0;
	}
	if (oc->c == NULL && is_love_object(L, -1))
		oc->why = MSG(LOVE_NOT_AWAIT);
	if (oc->c == NULL || !oc->c->ctx->love || !is_love_object(L, -1) || push_channel(L, oc->c) != 0)
		return -1;
	lua_insert(L, -2); /* channel, object */
	if (channel_call(L, "push", 1, 0) != 0) {
		lua_pop(L, 1);
		lua_pushnil(L); /* the caller pops one value on failure */
		return -1;
	}
	*payload = OBJ_LOVE | oc->c->objs_pushed++;
	return 0;
}

static int obj_get(void *ud, lua_State *L, uint64_t payload)
{
	struct objctx *oc = ud;
	if (payload & OBJ_STR) {
		/* Only a worker reads a call's arguments, and only its own list. */
		uint64_t i = payload & ~OBJ_STR;
		if (oc->main || oc->c == NULL || i >= (uint64_t)oc->c->nxs)
			return -1;
		lua_pushlstring(L, oc->c->xs[i].p, oc->c->xs[i].n);
		return 0;
	}
	if ((payload & OBJ_LOVE) == 0) {
		if (payload == 0 || payload > (uint64_t)oc->bufs->n)
			return -1;
		push_buffer(L, oc->bufs->v[payload - 1], oc->main);
		if (!oc->main && oc->ws != NULL) {
			/* Remember it: its view ends with the job. */
			lua_rawgeti(L, LUA_REGISTRYINDEX, oc->ws->proxies);
			lua_pushvalue(L, -2);
			lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
			lua_pop(L, 1);
		}
		return 0;
	}
	/* Objects are popped in the order they were pushed: the ordinal
	 * proves this is the object this payload names. */
	if (oc->c == NULL || (payload & ~OBJ_LOVE) != oc->c->objs_popped || push_channel(L, oc->c) != 0)
		return -1;
	if (channel_call(L, "pop", 0, 1) != 0 || lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return -1;
	}
	oc->c->objs_popped++;
	return 0;
}

/* Objects pushed for c and never popped (a call that ended unread, a
 * failed encode) must not reach the next call on the record: clears its
 * channel. Whoever owns the record calls it (a worker before it pushes
 * results, the main thread at release). */
void obj_clear(lua_State *L, struct call *c)
{
	if (c->objs_pushed == c->objs_popped)
		return;
	c->objs_popped = c->objs_pushed;
	if (L == NULL || !c->ctx->love || push_channel(L, c) != 0)
		return;
	if (channel_call(L, "clear", 0, 0) != 0)
		lua_pop(L, 1);
}

struct async_codec_objects codec_objects(struct objctx *oc)
{
	struct async_codec_objects o = { obj_put, obj_get, oc };
	return o;
}

void obj_name_refused(const struct objctx *oc, char *err, size_t errlen)
{
	const char *tail = MSG(VALUE_USERDATA);
	size_t n = strlen(err), t = strlen(tail);
	if (oc->why == MSG(LOVE_NOT_AWAIT) && n >= t && strcmp(err + n - t, tail) == 0)
		snprintf(err + n - t, errlen - (n - t), MSG(VALUE_LOVE_OBJECT), oc->why);
}
