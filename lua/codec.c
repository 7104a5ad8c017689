/* codec.c: encoder and decoder for async's value format (see codec.h).
 *
 * Format: varint count, then each value as a tag byte and its payload.
 *   NIL FALSE TRUE                  no payload
 *   INT   zigzag varint             doubles that are integers in int64, not -0
 *   NUM   8 bytes, the double's bits (NaN, infinities, -0 exactly)
 *   STR   varint length, bytes
 *   TABLE varint narray, narray values, varint nhash, nhash key/value pairs;
 *         every table gets the next number (from 0) as it is opened
 *   REF   varint table number: a table seen before (shared or cyclic)
 *   OBJ   8-byte payload: an object passed by reference through the hook
 *         (LÖVE objects, async buffers)
 * Metatables are not carried (as LÖVE's Channel). */
#include "codec.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_NUM, T_STR, T_TABLE, T_REF, T_OBJ };

void async_buf_free(struct async_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

static int buf_reserve(struct async_buf *b, size_t extra)
{
	if (b->cap - b->n >= extra)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap - b->n < extra)
		cap *= 2;
	unsigned char *p = realloc(b->p, cap);
	if (p == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* ---- encoder ----------------------------------------------------------- */

struct enc {
	lua_State *L;
	struct async_buf *b;
	const struct async_codec_objects *obj;
	int seen;      /* stack index of the table -> number map, 0 until needed */
	int ntables;
	const char *label; /* "argument", "result", ... for messages */
	int arg;           /* top-level position, for messages */
	size_t pathlen;
	char path[120]; /* where inside the argument: ".pos.x", "[3]" */
	char *err;
	size_t errlen;
};

static int fail(struct enc *e, const char *fmt, ...)
{
	char what[96];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (e->pathlen > 0)
		snprintf(e->err, e->errlen, "%s %d (at %s) %s", e->label, e->arg, e->path, what);
	else
		snprintf(e->err, e->errlen, "%s %d %s", e->label, e->arg, what);
	return -1;
}

static inline int put_byte(struct enc *e, unsigned char c)
{
	if (buf_reserve(e->b, 1))
		return fail(e, "could not be encoded (out of memory)");
	e->b->p[e->b->n++] = c;
	return 0;
}

static int put_varint(struct enc *e, uint64_t v)
{
	if (buf_reserve(e->b, 10))
		return fail(e, "could not be encoded (out of memory)");
	unsigned char *p = e->b->p + e->b->n;
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	e->b->n = (size_t)(p - e->b->p);
	return 0;
}

static int put_number(struct enc *e, double d)
{
	if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d &&
	    !(d == 0 && signbit(d))) {
		int64_t i = (int64_t)d;
		if (put_byte(e, T_INT))
			return -1;
		return put_varint(e, ((uint64_t)i << 1) ^ (uint64_t)(i >> 63));
	}
	if (put_byte(e, T_NUM) || buf_reserve(e->b, 8))
		return fail(e, "could not be encoded (out of memory)");
	memcpy(e->b->p + e->b->n, &d, 8);
	e->b->n += 8;
	return 0;
}

static int encode_value(struct enc *e, int idx, int depth);

/* Appends the key at kidx to the breadcrumb; returns the old length. */
static size_t path_push(struct enc *e, int kidx)
{
	lua_State *L = e->L;
	size_t old = e->pathlen, room = sizeof e->path - old;
	int n;
	if (lua_type(L, kidx) == LUA_TSTRING)
		n = snprintf(e->path + old, room, ".%.30s", lua_tostring(L, kidx));
	else if (lua_type(L, kidx) == LUA_TNUMBER)
		n = snprintf(e->path + old, room, "[%.14g]", lua_tonumber(L, kidx));
	else
		n = snprintf(e->path + old, room, "[%s key]", luaL_typename(L, kidx));
	e->pathlen = n < 0 || (size_t)n >= room ? sizeof e->path - 1 : old + (size_t)n;
	return old;
}

static void path_pop(struct enc *e, size_t old)
{
	e->pathlen = old;
	e->path[old] = '\0';
}

static int is_array_key(lua_State *L, int k, size_t narr)
{
	if (lua_type(L, k) != LUA_TNUMBER)
		return 0;
	lua_Number d = lua_tonumber(L, k);
	return d >= 1 && d <= (lua_Number)narr && d == (lua_Number)(size_t)d;
}

static int encode_table(struct enc *e, int idx, int depth)
{
	lua_State *L = e->L;
	if (depth >= ASYNC_CODEC_MAX_DEPTH)
		return fail(e, "is a table nested deeper than %d levels", ASYNC_CODEC_MAX_DEPTH);
	if (!lua_checkstack(L, 8))
		return fail(e, "could not be encoded (Lua stack exhausted)");
	if (e->seen == 0) {
		/* Created at the first table, before any traversal is under way,
		 * so it sits below every traversal's stack slots. */
		lua_newtable(L);
		e->seen = lua_gettop(L);
	}
	lua_pushvalue(L, idx);
	lua_rawget(L, e->seen);
	if (!lua_isnil(L, -1)) {
		int n = (int)lua_tointeger(L, -1);
		lua_pop(L, 1);
		if (put_byte(e, T_REF))
			return -1;
		return put_varint(e, (uint64_t)n);
	}
	lua_pop(L, 1);
	lua_pushvalue(L, idx);
	lua_pushinteger(L, e->ntables++);
	lua_rawset(L, e->seen);

	/* The array part: the prefix 1..n without holes. */
	size_t narr = 0, maxn = lua_objlen(L, idx);
	for (; narr < maxn; narr++) {
		lua_rawgeti(L, idx, (int)(narr + 1));
		int isnil = lua_isnil(L, -1);
		lua_pop(L, 1);
		if (isnil)
			break;
	}
	if (put_byte(e, T_TABLE) || put_varint(e, narr))
		return -1;
	for (size_t k = 0; k < narr; k++) {
		lua_pushnumber(L, (lua_Number)(k + 1));
		size_t old = path_push(e, lua_gettop(L));
		lua_rawgeti(L, idx, (int)(k + 1));
		int rc = encode_value(e, lua_gettop(L), depth + 1);
		lua_pop(L, 2);
		if (rc)
			return -1;
		path_pop(e, old);
	}
	/* The other pairs, counted first since the count precedes them. */
	size_t nhash = 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		nhash += !is_array_key(L, -1, narr);
	}
	if (put_varint(e, nhash))
		return -1;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int v = lua_gettop(L), key = v - 1;
		if (!is_array_key(L, key, narr)) {
			size_t old = path_push(e, key);
			if (encode_value(e, key, depth + 1) || encode_value(e, v, depth + 1)) {
				lua_pop(L, 2);
				return -1;
			}
			path_pop(e, old);
		}
		lua_pop(L, 1);
	}
	return 0;
}

static int encode_value(struct enc *e, int idx, int depth)
{
	lua_State *L = e->L;
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return put_byte(e, T_NIL);
	case LUA_TBOOLEAN:
		return put_byte(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
	case LUA_TNUMBER:
		return put_number(e, lua_tonumber(L, idx));
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		if (put_byte(e, T_STR) || put_varint(e, len) || buf_reserve(e->b, len))
			return fail(e, "could not be encoded (out of memory)");
		memcpy(e->b->p + e->b->n, s, len);
		e->b->n += len;
		return 0;
	}
	case LUA_TTABLE:
		return encode_table(e, idx, depth);
	case LUA_TUSERDATA:
		if (e->obj != NULL && e->obj->put != NULL) {
			uint64_t payload = 0;
			lua_pushvalue(L, idx);
			if (e->obj->put(e->obj->ud, L, &payload) == 0) {
				if (put_byte(e, T_OBJ) || buf_reserve(e->b, 8))
					return fail(e, "could not be encoded (out of memory)");
				memcpy(e->b->p + e->b->n, &payload, 8);
				e->b->n += 8;
				return 0;
			}
			lua_pop(L, 1);
		}
		return fail(e, "is a userdata that is neither a LÖVE object nor an async buffer");
	default:
		return fail(e, "is a %s", luaL_typename(L, idx));
	}
}

int async_codec_encode(lua_State *L, int first, int last, struct async_buf *b, const char *label,
                       const struct async_codec_objects *objects, char *err, size_t errlen)
{
	struct enc e = { L, b, objects, 0, 0, label, 1, 0, "", err, errlen };
	int top = lua_gettop(L);
	b->n = 0;
	int count = last >= first ? last - first + 1 : 0;
	if (put_varint(&e, (uint64_t)count))
		return -1;
	for (int i = 0; i < count; i++) {
		e.arg = 1 + i;
		path_pop(&e, 0);
		if (encode_value(&e, first + i, 0)) {
			lua_settop(L, top);
			return -1;
		}
	}
	lua_settop(L, top);
	return 0;
}

/* ---- decoder ----------------------------------------------------------- */

struct dec {
	lua_State *L;
	const unsigned char *p, *end;
	const struct async_codec_objects *obj;
	int tables; /* stack index of the number -> table list, 0 if none yet */
	int ntables;
	char *err;
	size_t errlen;
};

static int dfail(struct dec *d, const char *what)
{
	snprintf(d->err, d->errlen, "malformed value data: %s", what);
	return -1;
}

static int get_varint(struct dec *d, uint64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (d->p >= d->end)
			return dfail(d, "truncated number");
		unsigned char c = *d->p++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return dfail(d, "varint too long");
}

static int decode_value(struct dec *d, int depth);

static int decode_table(struct dec *d, int depth)
{
	lua_State *L = d->L;
	uint64_t narr, nhash;
	if (depth >= ASYNC_CODEC_MAX_DEPTH)
		return dfail(d, "tables nested too deep");
	if (get_varint(d, &narr))
		return -1;
	/* Each value takes at least one byte: a count larger than what is left
	 * is a lie, refused before it can size an allocation. */
	if (narr > (uint64_t)(d->end - d->p))
		return dfail(d, "array count exceeds the data");
	if (!lua_checkstack(L, 6))
		return dfail(d, "Lua stack exhausted");
	lua_createtable(L, (int)narr, 0);
	int t = lua_gettop(L);
	lua_pushvalue(L, t);
	lua_rawseti(L, d->tables, ++d->ntables);
	for (uint64_t i = 0; i < narr; i++) {
		if (decode_value(d, depth + 1))
			return -1;
		lua_rawseti(L, t, (int)(i + 1));
	}
	if (get_varint(d, &nhash))
		return -1;
	if (nhash > (uint64_t)(d->end - d->p) / 2)
		return dfail(d, "pair count exceeds the data");
	for (uint64_t i = 0; i < nhash; i++) {
		if (decode_value(d, depth + 1))
			return -1;
		if (decode_value(d, depth + 1))
			return -1;
		int kt = lua_type(L, -2);
		if (kt == LUA_TNIL || (kt == LUA_TNUMBER && isnan(lua_tonumber(L, -2))))
			return dfail(d, "nil or NaN table key");
		lua_rawset(L, t);
	}
	return 0;
}

static int decode_value(struct dec *d, int depth)
{
	lua_State *L = d->L;
	if (d->p >= d->end)
		return dfail(d, "truncated value");
	if (!lua_checkstack(L, 4))
		return dfail(d, "Lua stack exhausted");
	unsigned char tag = *d->p++;
	uint64_t u;
	switch (tag) {
	case T_NIL:
		lua_pushnil(L);
		return 0;
	case T_FALSE:
	case T_TRUE:
		lua_pushboolean(L, tag == T_TRUE);
		return 0;
	case T_INT:
		if (get_varint(d, &u))
			return -1;
		lua_pushnumber(L, (lua_Number)(int64_t)((u >> 1) ^ (~(u & 1) + 1)));
		return 0;
	case T_NUM: {
		double x;
		if (d->end - d->p < 8)
			return dfail(d, "truncated number");
		memcpy(&x, d->p, 8);
		d->p += 8;
		lua_pushnumber(L, x);
		return 0;
	}
	case T_STR:
		if (get_varint(d, &u))
			return -1;
		if (u > (uint64_t)(d->end - d->p))
			return dfail(d, "string longer than the data");
		lua_pushlstring(L, (const char *)d->p, (size_t)u);
		d->p += u;
		return 0;
	case T_TABLE:
		return decode_table(d, depth);
	case T_REF:
		if (get_varint(d, &u))
			return -1;
		if (u >= (uint64_t)d->ntables)
			return dfail(d, "reference to a table not yet seen");
		lua_rawgeti(L, d->tables, (int)u + 1);
		return 0;
	case T_OBJ: {
		uint64_t payload;
		if (d->end - d->p < 8)
			return dfail(d, "truncated object");
		memcpy(&payload, d->p, 8);
		d->p += 8;
		if (d->obj == NULL || d->obj->get == NULL || d->obj->get(d->obj->ud, L, payload) != 0)
			return dfail(d, "an object passed by reference that could not be received");
		return 0;
	}
	default:
		return dfail(d, "unknown tag");
	}
}

int async_codec_decode(lua_State *L, const unsigned char *p, size_t n,
                       const struct async_codec_objects *objects, char *err, size_t errlen)
{
	struct dec d = { L, p, p + n, objects, 0, 0, err, errlen };
	int base = lua_gettop(L);
	uint64_t count;
	if (get_varint(&d, &count))
		return -1;
	if (count > n || !lua_checkstack(L, (int)count + 8)) {
		dfail(&d, "value count exceeds the data");
		return -1;
	}
	lua_newtable(L); /* table number -> table, for REF */
	d.tables = lua_gettop(L);
	for (uint64_t i = 0; i < count; i++) {
		if (decode_value(&d, 0)) {
			lua_settop(L, base);
			return -1;
		}
	}
	if (d.p != d.end) {
		lua_settop(L, base);
		dfail(&d, "trailing bytes");
		return -1;
	}
	lua_remove(L, d.tables);
	return (int)count;
}
