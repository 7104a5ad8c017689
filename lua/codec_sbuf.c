/* SPDX-License-Identifier: MIT (see LICENSE) */
/* codec_sbuf.c: the codec's SBUF values: a plain table (numbers, strings,
 * booleans and tables of those, no table reached twice) carried in
 * LuaJIT's own string.buffer serialization, which its C decoder turns into
 * tables faster than any decoder made of Lua API calls can. The work is
 * done by a small Lua chunk run in the state itself (the module does not
 * link LuaJIT, so string.buffer is only reachable through Lua); a state
 * whose LuaJIT has no string.buffer never writes SBUF. */
#include "codec.h"
#include "codec_format.h"
#include "messages.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The chunk gets the string.buffer module and returns encode, decode.
 *   encode(v) -> dict, data: v serialized, or nil when v is not a plain
 *     tree. String keys that repeat across tables (a list of records) go
 *     in a dict, itself serialized into `dict` ("" when none), so that
 *     the decoder neither copies nor interns them per table.
 *   decode(dict, data) -> v, raising on bytes that do not decode, on
 *     trailing bytes and on values other than plain ones (string.buffer
 *     also knows int64 cdata and light userdata, which the codec
 *     refuses).
 * The walk is breadth first with an explicit queue, and iterates with
 * `for k, v in next, t`, which the JIT compiles (explicit next() calls and
 * recursion it does not). Marks are by generation in a weak-keyed table:
 * no clearing per call, and nothing held. */
static const char chunk[] =
	"local buffer = ...\n"
	"local type, next, setmetatable = type, next, setmetatable\n"
	"local DEPTH, NKEYS, NBUFS = 100, 64, 16\n"
	"local marks, gen, nmarked = setmetatable({}, { __mode = 'k' }), 0, 0\n"
	"local q, qd, counts, keys = {}, {}, {}, {}\n"
	"local walking = false\n"
	"local function walk(t, collect)\n"
	/* A finalizer run by an allocation here may encode or decode too:
	 * the inner walk gets its own queue and marks. */
	"  if walking then\n"
	"    local m, qq, qqd, c, kk = marks, q, qd, counts, keys\n"
	"    marks, q, qd, counts, keys = setmetatable({}, { __mode = 'k' }), {}, {}, {}, {}\n"
	"    walking = false\n"
	"    local ok, nk = walk(t, collect)\n"
	"    local inner = keys\n"
	"    marks, q, qd, counts, keys, walking = m, qq, qqd, c, kk, true\n"
	"    return ok, nk, inner\n"
	"  end\n"
	"  walking = true\n"
	"  gen = gen + 1\n"
	"  if nmarked > 4096 then marks, nmarked = setmetatable({}, { __mode = 'k' }), 0 end\n"
	"  marks[t] = gen\n"
	"  q[1], qd[1] = t, 1\n"
	"  local n, i, nk, ok = 1, 1, 0, true\n"
	"  while ok and i <= n do\n"
	"    local u, d = q[i], qd[i] + 1\n"
	"    q[i] = nil\n"
	"    i = i + 1\n"
	"    for k, v in next, u do\n"
	"      local tv, tk = type(v), type(k)\n"
	"      if tv == 'table' then\n"
	"        if d > DEPTH or marks[v] == gen then ok = false; break end\n"
	"        marks[v] = gen; n = n + 1; q[n], qd[n] = v, d\n"
	"      elseif tv ~= 'number' and tv ~= 'string' and tv ~= 'boolean' then ok = false; break end\n"
	"      if tk == 'string' then\n"
	"        if collect then\n"
	"          local c = counts[k]\n"
	"          if c == nil then counts[k] = 1\n"
	"          elseif c == 1 and nk < NKEYS then counts[k] = 2; nk = nk + 1; keys[nk] = k end\n"
	"        end\n"
	"      elseif tk == 'table' then\n"
	"        if d > DEPTH or marks[k] == gen then ok = false; break end\n"
	"        marks[k] = gen; n = n + 1; q[n], qd[n] = k, d\n"
	"      elseif tk ~= 'number' and tk ~= 'boolean' then ok = false; break end\n"
	"    end\n"
	"  end\n"
	"  for j = i, n do q[j] = nil end\n"
	"  nmarked = nmarked + n\n"
	"  if collect then for k in next, counts do counts[k] = nil end end\n"
	"  walking = false\n"
	"  return ok, nk, keys\n"
	"end\n"
	"local plainEnc, plainDec = buffer.new(), buffer.new()\n"
	"local encoders, decoders, nenc, ndec = {}, {}, 0, 0\n"
	"local function encode(v)\n"
	"  local ok, nk, keys = walk(v, true)\n"
	"  if not ok then for j = 1, nk do keys[j] = nil end return nil end\n"
	"  local b, dict = plainEnc, ''\n"
	"  if nk > 0 then\n"
	"    dict = buffer.encode(keys)\n"
	"    b = encoders[dict]\n"
	"    if b == nil then\n"
	"      if nenc >= NBUFS then encoders, nenc = {}, 0 end\n"
	"      local list = {}\n"
	"      for j = 1, nk do list[j] = keys[j] end\n"
	"      b = buffer.new({ dict = list }); encoders[dict] = b; nenc = nenc + 1\n"
	"    end\n"
	"    for j = 1, nk do keys[j] = nil end\n"
	"  end\n"
	"  b:reset(); b:encode(v)\n"
	"  local s = b:tostring()\n"
	/* A big result's buffer is let go (reset keeps its memory). */
	"  if #s > 1048576 then b:free() else b:reset() end\n"
	"  return dict, s\n"
	"end\n"
	"local function decode(dict, data)\n"
	"  local b = plainDec\n"
	"  if dict ~= '' then\n"
	"    b = decoders[dict]\n"
	"    if b == nil then\n"
	"      local list = buffer.decode(dict)\n"
	"      if type(list) ~= 'table' then error('dict', 0) end\n"
	"      for _, s in next, list do if type(s) ~= 'string' then error('dict', 0) end end\n"
	"      if ndec >= NBUFS then decoders, ndec = {}, 0 end\n"
	"      b = buffer.new({ dict = list }); decoders[dict] = b; ndec = ndec + 1\n"
	"    end\n"
	"  end\n"
	"  b:set(data)\n"
	"  local ok, v = pcall(b.decode, b)\n"
	"  local left = #b\n"
	"  b:reset()\n"
	"  if not ok then error(v, 0) end\n"
	"  if left ~= 0 then error('trailing bytes', 0) end\n"
	"  if type(v) ~= 'table' or not walk(v, false) then error('not a plain table', 0) end\n"
	"  return v\n"
	"end\n"
	"return encode, decode\n";

/* Its address is the registry key of this state's {encode, decode}, or
 * false when the state has no string.buffer. */
static const char key;

/* Pushes this state's encode (which = 1) or decode (which = 2) function;
 * returns 0, or -1 with nothing pushed when there is none. */
static int push_fn(lua_State *L, int which)
{
	lua_pushlightuserdata(L, (void *)&key);
	lua_rawget(L, LUA_REGISTRYINDEX);
	if (lua_istable(L, -1)) {
		lua_rawgeti(L, -1, which);
		lua_remove(L, -2);
		return 0;
	}
	int known = lua_isboolean(L, -1);
	lua_pop(L, 1);
	if (known)
		return -1;
	/* First use in this state: string.buffer, loaded or preloaded (the
	 * state's globals are not trusted: a job may have replaced require). */
	int top = lua_gettop(L);
	int ok = 0;
	lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "string.buffer");
		if (!lua_istable(L, -1)) {
			lua_pop(L, 1);
			lua_getfield(L, LUA_REGISTRYINDEX, "_PRELOAD");
			if (lua_istable(L, -1)) {
				lua_getfield(L, -1, "string.buffer");
				lua_remove(L, -2);
				if (lua_isfunction(L, -1)) {
					lua_pushliteral(L, "string.buffer");
					if (lua_pcall(L, 1, 1, 0) != 0) {
						lua_pop(L, 1);
						lua_pushnil(L);
					}
				}
			}
		}
		if (lua_istable(L, -1) &&
		    luaL_loadbuffer(L, chunk, sizeof chunk - 1, "=async codec (string.buffer)") == 0) {
			lua_insert(L, -2);
			if (lua_pcall(L, 1, 2, 0) == 0 && lua_isfunction(L, -2) && lua_isfunction(L, -1)) {
				lua_createtable(L, 2, 0);
				lua_insert(L, -3);
				lua_rawseti(L, -3, 2);
				lua_rawseti(L, -2, 1);
				ok = 1;
			}
		}
	}
	if (!ok) {
		lua_settop(L, top);
		lua_pushboolean(L, 0);
	} else {
		lua_replace(L, top + 1);
		lua_settop(L, top + 1);
	}
	lua_pushlightuserdata(L, (void *)&key);
	lua_pushvalue(L, -2);
	lua_rawset(L, LUA_REGISTRYINDEX);
	lua_pop(L, 1);
	return push_fn(L, which);
}

static unsigned char *put_varint(unsigned char *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

int async_codec_sbuf_encode(lua_State *L, int idx, struct async_buf *b)
{
	if (!lua_checkstack(L, 4) || push_fn(L, 1) != 0)
		return 0;
	lua_pushvalue(L, idx);
	if (lua_pcall(L, 1, 2, 0) != 0 || !lua_isstring(L, -2)) {
		lua_pop(L, 2);
		return 0; /* not plain (or out of memory): the codec's own tags take it */
	}
	size_t nd, n;
	const char *dict = lua_tolstring(L, -2, &nd), *data = lua_tolstring(L, -1, &n);
	size_t need = 1 + 10 + nd + 10 + n;
	if (b->cap - b->n < need) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap - b->n < need)
			cap *= 2;
		unsigned char *p = realloc(b->p, cap);
		if (p == NULL) {
			lua_pop(L, 2);
			return -1;
		}
		b->p = p;
		b->cap = cap;
	}
	unsigned char *p = b->p + b->n;
	*p++ = T_SBUF;
	p = put_varint(p, nd);
	memcpy(p, dict, nd);
	p = put_varint(p + nd, n);
	memcpy(p, data, n);
	b->n = (size_t)(p + n - b->p);
	lua_pop(L, 2);
	return 1;
}

int async_codec_sbuf_decode(lua_State *L, const unsigned char *dict, size_t nd, const unsigned char *data,
                            size_t n, char *err, size_t errlen)
{
	if (!lua_checkstack(L, 4)) {
		snprintf(err, errlen, "%s", MSG(MALFORMED_STACK));
		return -1;
	}
	if (push_fn(L, 2) != 0) {
		snprintf(err, errlen, "%s", MSG(MALFORMED_SBUF_MISSING));
		return -1;
	}
	lua_pushlstring(L, (const char *)dict, nd);
	lua_pushlstring(L, (const char *)data, n);
	if (lua_pcall(L, 2, 1, 0) != 0) {
		const char *m = lua_tostring(L, -1);
		snprintf(err, errlen, MSG(MALFORMED_SBUF), m ? m : "?");
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}
