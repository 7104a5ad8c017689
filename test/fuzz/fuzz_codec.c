/* SPDX-License-Identifier: MIT (see LICENSE) */
/* fuzz_codec.c: libFuzzer target for the value codec (lua/codec.c).
 *  1. decode(arbitrary bytes) never crashes or reads outside the input
 *     (ASan+UBSan watch); what decodes, re-encodes, and decodes again to
 *     equal values (not the same bytes: table iteration order may differ).
 *  2. values generated from the input (numbers with any bit pattern,
 *     strings with zero bytes and strings that repeat, nested, shared and
 *     cyclic tables) survive encode -> decode unchanged. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static lua_State *L;

/* Deep equality; `a` and `b` are absolute stack indices. Tables are
 * compared structurally up to a depth (cycles are cut by the depth). */
static int equal(int a, int b, int depth)
{
	int t = lua_type(L, a);
	if (t != lua_type(L, b))
		return 0;
	switch (t) {
	case LUA_TNUMBER: {
		double x = lua_tonumber(L, a), y = lua_tonumber(L, b);
		return (x != x && y != y) || memcmp(&x, &y, 8) == 0 || (x == y && x != 0);
	}
	case LUA_TSTRING: {
		size_t n, m;
		const char *s = lua_tolstring(L, a, &n), *r = lua_tolstring(L, b, &m);
		return n == m && memcmp(s, r, n) == 0;
	}
	case LUA_TTABLE: {
		if (depth > 8)
			return 1;
		int ok = 1;
		lua_pushnil(L);
		while (ok && lua_next(L, a)) {
			int v = lua_gettop(L), k = v - 1;
			if (lua_type(L, k) == LUA_TTABLE) { /* table keys: identity differs across states */
				lua_pop(L, 1);
				continue;
			}
			lua_pushvalue(L, k);
			lua_rawget(L, b);
			ok = equal(v, lua_gettop(L), depth + 1);
			lua_pop(L, 2);
		}
		if (!ok)
			lua_pop(L, 1);
		return ok;
	}
	default:
		return lua_toboolean(L, a) == lua_toboolean(L, b);
	}
}

struct gen {
	const uint8_t *p, *end;
	int tables; /* stack index of a list of tables made so far */
};

static uint8_t next(struct gen *g) { return g->p < g->end ? *g->p++ : 0; }

static void gen_value(struct gen *g, int depth)
{
	uint8_t k = next(g) % 9;
	if (depth > 6 && k >= 6)
		k = 3;
	switch (k) {
	case 0: lua_pushnil(L); break;
	case 1: lua_pushboolean(L, next(g) & 1); break;
	case 2: { double d; uint8_t b[8]; for (int i = 0; i < 8; i++) b[i] = next(g); memcpy(&d, b, 8); lua_pushnumber(L, d); break; }
	case 3: lua_pushnumber(L, (double)(int8_t)next(g) * 1000.0); break;
	case 4: { /* half of them from a few words, so that strings repeat (SDEF, SREF) */
		static const char *words[] = { "height", "kind", "ab", "x", "walkable" };
		uint8_t c = next(g);
		if (c & 1) { lua_pushstring(L, words[(c >> 1) % 5]); break; }
		size_t n = c % 40; char buf[40]; for (size_t i = 0; i < n; i++) buf[i] = (char)next(g); lua_pushlstring(L, buf, n); break;
	}
	case 5: case 6: {
		lua_newtable(L);
		int t = lua_gettop(L);
		lua_pushvalue(L, t);
		lua_rawseti(L, g->tables, (int)lua_objlen(L, g->tables) + 1);
		int n = next(g) % 6;
		for (int i = 0; i < n; i++) {
			gen_value(g, depth + 1); /* key */
			if (lua_isnil(L, -1) || (lua_isnumber(L, -1) && lua_tonumber(L, -1) != lua_tonumber(L, -1))) {
				lua_pop(L, 1);
				lua_pushinteger(L, i + 1);
			}
			gen_value(g, depth + 1);
			lua_rawset(L, t);
		}
		break;
	}
	default: { /* a table seen before: shared or cyclic */
		int n = (int)lua_objlen(L, g->tables);
		if (n == 0) { lua_pushinteger(L, 7); break; }
		lua_rawgeti(L, g->tables, 1 + next(g) % n);
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (L == NULL) {
		L = luaL_newstate();
		luaL_openlibs(L);
	}
	char err[256];
	struct async_buf b1 = { 0 };
	int base = lua_gettop(L);
	/* 1: arbitrary bytes */
	int n = async_codec_decode(L, data, size, NULL, err, sizeof err);
	if (n >= 0) {
		if (async_codec_encode(L, base + 1, base + n, &b1, "value", NULL, err, sizeof err) != 0)
			abort(); /* everything decodable is encodable */
		int m = async_codec_decode(L, b1.p, b1.n, NULL, err, sizeof err);
		if (m != n)
			abort();
		for (int i = 1; i <= n; i++)
			if (!equal(base + i, base + n + i, 0))
				abort(); /* the round trip keeps the values */
	}
	lua_settop(L, base);
	/* 2: generated values round trip */
	struct gen g = { data, data + size, 0 };
	lua_newtable(L);
	g.tables = lua_gettop(L);
	int count = 1 + (int)(next(&g) % 4);
	for (int i = 0; i < count; i++)
		gen_value(&g, 0);
	int first = g.tables + 1, last = lua_gettop(L);
	if (async_codec_encode(L, first, last, &b1, "value", NULL, err, sizeof err) == 0) {
		int m = async_codec_decode(L, b1.p, b1.n, NULL, err, sizeof err);
		if (m != count)
			abort();
		for (int i = 0; i < count; i++)
			if (!equal(first + i, last + 1 + i, 0))
				abort();
	} else if (strstr(err, "nested deeper") == NULL) {
		fprintf(stderr, "refused: %s\n", err);
		abort(); /* only depth may refuse generated values */
	}
	lua_settop(L, base);
	async_buf_free(&b1);
	if (size % 64 == 0)
		lua_gc(L, LUA_GCCOLLECT, 0);
	return 0;
}
