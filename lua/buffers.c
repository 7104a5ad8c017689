/* SPDX-License-Identifier: MIT (see LICENSE) */
/* buffers.c: async.newBuffer, raw memory both sides see through the FFI
 * without a copy, and the lists of buffers a call or job holds while in
 * flight. Owns the rule "one owner at a time": a buffer lent to a call is
 * not the game's (nor another call's) until that call's callback. */
#include "internal.h"
#include "os_mem.h" /* portability: aligned allocation (header-only, from core/src) */

/* The largest buffer: past any one array a game hands a job, and far
 * enough below what a size_t or a double holds exactly that a size over
 * it is a mistake to name, not an allocation to try (MSG(BUFFER_SIZE) says
 * the same number). */
#define BUFFER_MAX_BYTES ((size_t)1 << 32)

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
void push_buffer(lua_State *L, struct abuf *b, int main)
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

struct bufproxy *to_buffer(lua_State *L, int idx)
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
		luaL_error(L, MSG(BUFFER_VIEW_ENDED));
	if (p->main && __atomic_load_n(&p->b->lent, __ATOMIC_ACQUIRE) != 0)
		luaL_error(L, MSG(BUFFER_IN_USE));
	return p->b;
}

/* newBuffer(size) -> buffer: zeroed, 64-byte aligned. */
int l_new_buffer(lua_State *L)
{
	lua_Number n = luaL_checknumber(L, 1);
	if (!(n >= 1) || n != floor(n) || n > (lua_Number)BUFFER_MAX_BYTES)
		return luaL_error(L, MSG(BUFFER_SIZE), lua_tostring(L, 1));
	struct abuf *b = calloc(1, sizeof *b);
	if (b == NULL || async_os_aligned_alloc((void **)&b->data, 64, (size_t)n) != 0) { /* portability: os_mem.h */
		free(b);
		lua_pushnil(L);
		lua_pushfstring(L, MSG(BUFFER_OUT_OF_MEMORY), lua_tostring(L, 1));
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

int lent_add(struct lentlist *l, struct abuf *b, int mainlent)
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
void lent_release(struct lentlist *l)
{
	for (int i = 0; i < l->n; i++) {
		if (l->mainlent[i])
			__atomic_sub_fetch(&l->v[i]->lent, 1, __ATOMIC_RELEASE);
		abuf_unref(l->v[i]);
	}
	l->n = 0;
}

/* A call cancelled before it started gives its buffers back to the game
 * at once, not at its delivery: the job will never see them. The
 * references stay until call_release. Main thread. */
void lent_giveback(struct lentlist *l)
{
	for (int i = 0; i < l->n; i++) {
		if (l->mainlent[i])
			__atomic_sub_fetch(&l->v[i]->lent, 1, __ATOMIC_RELEASE);
		l->mainlent[i] = 0;
	}
}

void lent_free(struct lentlist *l)
{
	lent_release(l);
	free(l->v);
	free(l->mainlent);
	l->v = NULL;
	l->mainlent = NULL;
	l->cap = 0;
}

/* Whether this call already lent b (the same buffer twice in one call). */
int lent_has(const struct lentlist *l, const struct abuf *b)
{
	for (int i = 0; i < l->n; i++)
		if (l->v[i] == b && l->mainlent[i])
			return 1;
	return 0;
}

/* How many times this call lent b (counted in b->lent). */
int lent_count(const struct lentlist *l, const struct abuf *b)
{
	int n = 0;
	for (int i = 0; i < l->n; i++)
		n += l->v[i] == b && l->mainlent[i];
	return n;
}

void register_buffer_type(lua_State *L)
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
		/* address()'s error names the line that called it: here, this
		 * chunk's; ptr raises it again at its own caller's line. */
		const char *ptr = "local mt = ...\n"
		                  "local ffi = require 'ffi'\n"
		                  "local address = mt.__index.address\n"
		                  "mt.__index.ptr = function(self, ct)\n"
		                  "  local ok, a = pcall(address, self)\n"
		                  "  if not ok then error((tostring(a):gsub('^=?async buffer:%d+: ', '')), 2) end\n"
		                  "  return ffi.cast((ct or 'uint8_t') .. '*', a)\n"
		                  "end\n";
		if (luaL_loadbuffer(L, ptr, strlen(ptr), "=async buffer") == 0) {
			lua_pushvalue(L, -2);
			if (lua_pcall(L, 1, 0, 0) != 0)
				lua_pop(L, 1);
		} else {
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
}
