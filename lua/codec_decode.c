/* SPDX-License-Identifier: MIT (see LICENSE) */
/* codec_decode.c: the decoder of async's value format (codec.c describes
 * the format and holds the encoder). Never reads outside its input, and
 * refuses counts larger than the data before they size an allocation. */
#include "codec.h"
#include "codec_format.h"
#include "messages.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct dec {
	lua_State *L;
	const unsigned char *p, *end;
	const struct async_codec_objects *obj;
	int tables; /* stack index of the number -> table list, 0 if none yet */
	int strs;   /* stack index of the SDEF strings by number, or 0 */
	int nstrs;
	int ntables;
	char *err;
	size_t errlen;
};

static int dfail(struct dec *d, const char *what)
{
	snprintf(d->err, d->errlen, MSG(MALFORMED), what);
	return -1;
}

static int get_varint_long(struct dec *d, uint64_t *out)
{
	uint64_t v = 0;
	if (d->end - d->p >= 10) { /* no bounds check per byte */
		const unsigned char *p = d->p;
		for (int shift = 0; shift < 64; shift += 7) {
			unsigned char c = *p++;
			v |= (uint64_t)(c & 0x7f) << shift;
			if (!(c & 0x80)) {
				d->p = p;
				*out = v;
				return 0;
			}
		}
		return dfail(d, MSG(MALFORMED_VARINT));
	}
	for (int shift = 0; shift < 64; shift += 7) {
		if (d->p >= d->end)
			return dfail(d, MSG(MALFORMED_NUMBER));
		unsigned char c = *d->p++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return dfail(d, MSG(MALFORMED_VARINT));
}

/* Most varints (lengths, small integers) are one byte. */
static inline int get_varint(struct dec *d, uint64_t *out)
{
	if (d->p < d->end && *d->p < 0x80) {
		*out = *d->p++;
		return 0;
	}
	return get_varint_long(d, out);
}

/* A table's count: both encoders pad it to 5 bytes (put_varint5); read
 * that shape at once, any other varint as usual. */
static inline int get_count(struct dec *d, uint64_t *out)
{
	const unsigned char *p = d->p;
	if (d->end - p >= 5 && (p[0] & p[1] & p[2] & p[3] & 0x80) && !(p[4] & 0x80)) {
		*out = (uint64_t)(p[0] & 0x7f) | (uint64_t)(p[1] & 0x7f) << 7 | (uint64_t)(p[2] & 0x7f) << 14 |
		       (uint64_t)(p[3] & 0x7f) << 21 | (uint64_t)p[4] << 28;
		d->p = p + 5;
		return 0;
	}
	return get_varint(d, out);
}

static int decode_value(struct dec *d, int depth);

static int get_raw8(struct dec *d, void *out, const char *what)
{
	if (d->end - d->p < 8)
		return dfail(d, what);
	memcpy(out, d->p, 8);
	d->p += 8;
	return 0;
}

static int decode_table(struct dec *d, int depth)
{
	lua_State *L = d->L;
	uint64_t narr, nhash;
	if (depth >= ASYNC_CODEC_MAX_DEPTH)
		return dfail(d, MSG(MALFORMED_DEPTH));
	if (get_count(d, &narr) || get_count(d, &nhash))
		return -1;
	/* Each value takes at least one byte: counts larger than what is left
	 * are a lie, refused before they can size an allocation. */
	uint64_t left = (uint64_t)(d->end - d->p);
	if (narr > left)
		return dfail(d, MSG(MALFORMED_ARRAY));
	if (nhash > (left - narr) / 2)
		return dfail(d, MSG(MALFORMED_PAIRS));
	if (!lua_checkstack(L, 6))
		return dfail(d, MSG(MALFORMED_STACK));
	lua_createtable(L, (int)narr, (int)nhash);
	int t = lua_gettop(L);
	if (d->tables != 0) {
		lua_pushvalue(L, t);
		lua_rawseti(L, d->tables, ++d->ntables);
	}
	for (uint64_t i = 0; i < narr; i++) {
		if (decode_value(d, depth + 1))
			return -1;
		lua_rawseti(L, t, (int)(i + 1));
	}
	for (uint64_t i = 0; i < nhash; i++) {
		/* Only these tags can make a nil or NaN key (the object hook's
		 * by what it pushes). */
		unsigned char kt = d->p < d->end ? *d->p : T_STR; /* T_STR: truncated, said below */
		if (kt == T_NIL)
			return dfail(d, MSG(MALFORMED_KEY));
		if (decode_value(d, depth + 1))
			return -1;
		if ((kt == T_NUM || kt == T_OBJ) &&
		    (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER && isnan(lua_tonumber(L, -1)))))
			return dfail(d, MSG(MALFORMED_KEY));
		if (decode_value(d, depth + 1))
			return -1;
		lua_rawset(L, t);
	}
	return 0;
}

static int decode_value(struct dec *d, int depth)
{
	lua_State *L = d->L;
	/* The stack was checked for this value's slot by its table (or for
	 * all top-level values). */
	if (d->p >= d->end)
		return dfail(d, MSG(MALFORMED_VALUE));
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
		if (get_raw8(d, &x, MSG(MALFORMED_NUMBER)))
			return -1;
		lua_pushnumber(L, x);
		return 0;
	}
	case T_STR:
	case T_SDEF:
		if (get_varint(d, &u))
			return -1;
		if (u > (uint64_t)(d->end - d->p))
			return dfail(d, MSG(MALFORMED_STRING));
		lua_pushlstring(L, (const char *)d->p, (size_t)u);
		d->p += u;
		if (tag == T_SDEF && d->strs != 0) {
			lua_pushvalue(L, -1);
			lua_rawseti(L, d->strs, ++d->nstrs);
		}
		return 0;
	case T_SREF:
		if (get_varint(d, &u))
			return -1;
		if (u >= (uint64_t)d->nstrs)
			return dfail(d, MSG(MALFORMED_SREF));
		lua_rawgeti(L, d->strs, (int)u + 1);
		return 0;
	case T_TABLE:
		return decode_table(d, depth);
	case T_REF:
		if (get_varint(d, &u))
			return -1;
		if (d->tables == 0 || u >= (uint64_t)d->ntables)
			return dfail(d, MSG(MALFORMED_REF));
		lua_rawgeti(L, d->tables, (int)u + 1);
		return 0;
	case T_OBJ: {
		uint64_t payload;
		if (get_raw8(d, &payload, MSG(MALFORMED_OBJECT)))
			return -1;
		if (d->obj == NULL || d->obj->get == NULL || d->obj->get(d->obj->ud, L, payload) != 0)
			return dfail(d, MSG(MALFORMED_OBJECT_LOST));
		return 0;
	}
	default:
		return dfail(d, MSG(MALFORMED_TAG));
	}
}

int async_codec_decode(lua_State *L, const unsigned char *p, size_t n,
                       const struct async_codec_objects *objects, char *err, size_t errlen)
{
	struct dec d = { L, p, p + n, objects, 0, 0, 0, 0, err, errlen };
	int base = lua_gettop(L);
	uint64_t count;
	if (n < 1) {
		dfail(&d, MSG(MALFORMED_EMPTY));
		return -1;
	}
	unsigned flags = *d.p++;
	if (flags > (F_REFS | F_SREFS)) {
		dfail(&d, MSG(MALFORMED_FLAGS));
		return -1;
	}
	if (get_varint(&d, &count))
		return -1;
	if (count > n || !lua_checkstack(L, (int)count + 8)) {
		dfail(&d, MSG(MALFORMED_COUNT));
		return -1;
	}
	if (flags & F_REFS) {
		lua_newtable(L); /* table number -> table, for REF */
		d.tables = lua_gettop(L);
	}
	if (flags & F_SREFS) {
		lua_newtable(L); /* SDEF strings by number + 1, for SREF */
		d.strs = lua_gettop(L);
	}
	for (uint64_t i = 0; i < count; i++) {
		if (decode_value(&d, 0)) {
			lua_settop(L, base);
			return -1;
		}
	}
	if (d.p != d.end) {
		lua_settop(L, base);
		dfail(&d, MSG(MALFORMED_TRAILING));
		return -1;
	}
	if (d.strs != 0) /* above d.tables when both are there */
		lua_remove(L, d.strs);
	if (d.tables != 0)
		lua_remove(L, d.tables);
	return (int)count;
}
