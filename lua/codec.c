/* SPDX-License-Identifier: MIT (see LICENSE) */
/* codec.c: the encoder of async's value format (see codec.h; the decoder is
 * codec_decode.c).
 *
 * Format: a flags byte (bit 0: REF values occur, bit 1: SREF values
 * occur), varint count, then each
 * value as a tag byte and its payload.
 *   NIL FALSE TRUE                  no payload
 *   INT   zigzag varint             doubles that are integers in int64, not -0
 *   NUM   8 bytes, the double's bits (NaN, infinities, -0 exactly)
 *   STR   varint length, bytes
 *   TABLE varint narray, varint nhash, narray values, nhash key/value pairs
 *         (both counts first: the decoder sizes the table before filling
 *         it); every table gets the next number (from 0) as it is opened
 *   REF   varint table number: a table seen before (shared or cyclic)
 *   SDEF  as STR, and the string gets the next number (from 0)
 *   SREF  varint string number: an SDEF's string again (flags bit 1 says
 *         SREFs occur; without it an SDEF is a plain STR)
 *   OBJ   8-byte payload: an object passed by reference through the hook
 *         (LÖVE objects, async buffers)
 * Metatables are not carried (as LÖVE's Channel). */
#include "codec.h"
#include "codec_format.h"
#include "messages.h"

#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void async_buf_free(struct async_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

int async_buf_reserve(struct async_buf *b, size_t cap)
{
	b->n = 0;
	if (b->cap >= cap)
		return 0;
	async_buf_free(b);
	b->p = malloc(cap);
	if (b->p == NULL)
		return -1;
	b->cap = cap;
	return 0;
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

void async_codec_push_format(lua_State *L)
{
	lua_createtable(L, 0, 3);
	lua_createtable(L, 0, 16);
#define PUSH_TAG(name)              \
	lua_pushinteger(L, T_##name); \
	lua_setfield(L, -2, #name);
	ASYNC_CODEC_TAGS(PUSH_TAG)
#undef PUSH_TAG
	lua_setfield(L, -2, "tags");
	lua_createtable(L, 0, 2);
#define PUSH_FLAG(name, bit)     \
	lua_pushinteger(L, bit); \
	lua_setfield(L, -2, #name);
	ASYNC_CODEC_FLAGS(PUSH_FLAG)
#undef PUSH_FLAG
	lua_setfield(L, -2, "flags");
	lua_pushinteger(L, ASYNC_CODEC_MAX_DEPTH);
	lua_setfield(L, -2, "maxDepth");
}

/* ---- encoder ----------------------------------------------------------- */

/* Tables already encoded, by address: open addressing, grown by doubling.
 * Small messages stay in the inline slots (no allocation). */
struct seen {
	const void **keys;
	int *vals;
	size_t cap, n;
	const void *inline_keys[32];
	int inline_vals[32];
};

static void seen_init(struct seen *s)
{
	memset(s->inline_keys, 0, sizeof s->inline_keys);
	s->keys = s->inline_keys;
	s->vals = s->inline_vals;
	s->cap = 32;
	s->n = 0;
}

static void seen_free(struct seen *s)
{
	if (s->keys != s->inline_keys) {
		free(s->keys);
		free(s->vals);
	}
}

static size_t seen_slot(const struct seen *s, const void *k)
{
	size_t h = ((uintptr_t)k >> 4) * 0x9E3779B97F4A7C15ull;
	size_t i = h & (s->cap - 1);
	while (s->keys[i] != NULL && s->keys[i] != k)
		i = (i + 1) & (s->cap - 1);
	return i;
}

/* The value stored under k, or, when k is new, stores v and returns -1;
 * -2 when out of memory. One probe for both. */
static int seen_intern(struct seen *s, const void *k, int v)
{
	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap * 2;
		const void **keys = calloc(cap, sizeof *keys);
		int *vals = malloc(cap * sizeof *vals);
		if (keys == NULL || vals == NULL) {
			free(keys);
			free(vals);
			return -2;
		}
		struct seen old = *s;
		s->keys = keys;
		s->vals = vals;
		s->cap = cap;
		for (size_t i = 0; i < old.cap; i++)
			if (old.keys[i] != NULL) {
				size_t j = seen_slot(s, old.keys[i]);
				s->keys[j] = old.keys[i];
				s->vals[j] = old.vals[i];
			}
		if (old.keys != s->inline_keys && old.keys != old.inline_keys) {
			free(old.keys);
			free(old.vals);
		}
	}
	size_t i = seen_slot(s, k);
	if (s->keys[i] == k)
		return s->vals[i];
	s->keys[i] = k;
	s->vals[i] = v;
	s->n++;
	return -1;
}

/* Where in an argument the encoder is: recorded cheaply (a stack index or
 * an array index per level) and turned into text only for an error. */
struct pathstep {
	int key;      /* stack index of the key, or 0 */
	size_t index; /* array index when key == 0 */
};

struct enc {
	lua_State *L;
	struct async_buf *b;
	const struct async_codec_objects *obj;
	struct seen seen;
	int ntables;
	int refs;  /* a REF was written: the decoder must number its tables */
	int srefs; /* an SREF was written: the decoder must keep strings */
	/* Strings written as SDEF (their numbers), direct-mapped by address:
	 * a collision only costs a string written twice. slive marks the
	 * slots set in this encode (no clearing per call). */
	uint64_t slive;
	const char *skeys[64];
	int svals[64];
	int nsdef; /* SDEFs written */
	const char *label; /* "argument", "result", ... for messages */
	int arg;           /* top-level position, for messages */
	int depth;
	struct pathstep path[ASYNC_CODEC_MAX_DEPTH + 1];
	char *err;
	size_t errlen;
};

static int fail(struct enc *e, const char *fmt, ...)
{
	char what[96], where[160] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	size_t n = 0;
	for (int i = 0; i < e->depth && n < sizeof where - 1; i++) {
		const struct pathstep *st = &e->path[i];
		lua_State *L = e->L;
		int w;
		if (st->key == 0)
			w = snprintf(where + n, sizeof where - n, "[%zu]", st->index);
		else if (lua_type(L, st->key) == LUA_TSTRING)
			w = snprintf(where + n, sizeof where - n, ".%.30s", lua_tostring(L, st->key));
		else if (lua_type(L, st->key) == LUA_TNUMBER)
			w = snprintf(where + n, sizeof where - n, "[%.14g]", lua_tonumber(L, st->key));
		else
			w = snprintf(where + n, sizeof where - n, MSG(VALUE_KEY_STEP), luaL_typename(L, st->key));
		n = w < 0 || (size_t)w >= sizeof where - n ? sizeof where - 1 : n + (size_t)w;
	}
	if (e->depth > 0)
		snprintf(e->err, e->errlen, MSG(VALUE_AT), e->label, e->arg, where, what);
	else
		snprintf(e->err, e->errlen, MSG(VALUE), e->label, e->arg, what);
	return -1;
}

static int oom(struct enc *e)
{
	return fail(e, MSG(VALUE_NOT_ENCODED));
}

/* Writers: the caller has reserved the room (a value's tag and payload are
 * reserved at once, one check per value). */
static inline unsigned char *put_varint(unsigned char *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

/* A tag and its varint (INT, REF, SREF): 11 bytes at most. */
static inline int put_tagged_varint(struct enc *e, unsigned char tag, uint64_t v)
{
	if (buf_reserve(e->b, 11))
		return oom(e);
	unsigned char *p = e->b->p + e->b->n;
	*p++ = tag;
	e->b->n = (size_t)(put_varint(p, v) - e->b->p);
	return 0;
}

static inline int put_byte(struct enc *e, unsigned char c)
{
	if (buf_reserve(e->b, 1))
		return oom(e);
	e->b->p[e->b->n++] = c;
	return 0;
}

/* Eight raw bytes after a tag (a double's bits, an object's payload). */
static int put_raw8(struct enc *e, unsigned char tag, const void *bytes)
{
	if (buf_reserve(e->b, 9))
		return oom(e);
	e->b->p[e->b->n] = tag;
	memcpy(e->b->p + e->b->n + 1, bytes, 8);
	e->b->n += 9;
	return 0;
}

static inline int put_number(struct enc *e, double d)
{
	if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d &&
	    !(d == 0 && signbit(d))) {
		int64_t i = (int64_t)d;
		return put_tagged_varint(e, T_INT, ((uint64_t)i << 1) ^ (uint64_t)(i >> 63));
	}
	return put_raw8(e, T_NUM, &d);
}

/* Short strings inside tables go as SDEF, numbered, and when written again
 * in this message as SREF, that number: keys repeat in every table of a
 * list of records, and the decoder then neither copies nor interns them
 * again. Not long strings (they rarely repeat) nor top-level values (which
 * async_fast.lua's decoder reads). */
#define SREF_MIN 2
#define SREF_MAX 64

static inline int put_string(struct enc *e, lua_State *L, int idx, int depth)
{
	size_t len;
	const char *s = lua_tolstring(L, idx, &len);
	unsigned char tag = T_STR;
	if (depth > 0 && len >= SREF_MIN && len <= SREF_MAX && e->nsdef < INT_MAX) {
		/* Strings are interned: one address per content. */
		unsigned i = (unsigned)((((uintptr_t)s >> 4) * 0x9E3779B97F4A7C15ull) >> 58);
		uint64_t bit = (uint64_t)1 << i;
		if ((e->slive & bit) && e->skeys[i] == s) {
			e->srefs = 1;
			return put_tagged_varint(e, T_SREF, (uint64_t)e->svals[i]);
		}
		e->slive |= bit;
		e->skeys[i] = s;
		e->svals[i] = e->nsdef++;
		tag = T_SDEF;
	}
	if (buf_reserve(e->b, 11 + len))
		return oom(e);
	unsigned char *p = e->b->p + e->b->n;
	*p++ = tag;
	p = put_varint(p, len);
	memcpy(p, s, len);
	e->b->n = (size_t)(p + len - e->b->p);
	return 0;
}

static int encode_typed(struct enc *e, int idx, int type, int depth);
static int encode_value(struct enc *e, int idx, int depth);

/* Stack slots an object passed by reference may take: its copy and what
 * the hook pushes (objects.c: a channel and its method call). */
#define OBJ_SLOTS 8

/* A varint padded to exactly 5 bytes (continuation bits on the first
 * four): any reader of plain varints reads it. Counts here are < 2^35. */
static void put_varint5(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 4; i++) {
		p[i] = (unsigned char)((v & 0x7f) | 0x80);
		v >>= 7;
	}
	p[4] = (unsigned char)(v & 0x7f);
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
		return fail(e, MSG(VALUE_TOO_DEEP), ASYNC_CODEC_MAX_DEPTH);
	int ref = seen_intern(&e->seen, lua_topointer(L, idx), e->ntables);
	if (ref == -2)
		return oom(e);
	if (ref >= 0) {
		e->refs = 1;
		return put_tagged_varint(e, T_REF, (uint64_t)ref);
	}
	e->ntables++;
	/* A level holds a key and a value; a leaf may add an object's copy
	 * and what the object hook pushes (OBJ_SLOTS): room for four levels,
	 * checked every fourth rather than per table. */
	if ((depth & 3) == 0 && !lua_checkstack(L, 4 * 2 + OBJ_SLOTS))
		return fail(e, MSG(VALUE_STACK));

	/* Both counts come first, so that the decoder can size the table
	 * before filling it; they are written after the items, into fixed
	 * 5-byte varints reserved before them, so each element is visited
	 * once. */
	if (buf_reserve(e->b, 11))
		return oom(e);
	e->b->p[e->b->n++] = T_TABLE;
	size_t counts_at = e->b->n;
	e->b->n += 10;
	/* The array part: the prefix 1..n without holes. */
	struct pathstep *step = &e->path[e->depth++];
	size_t narr = 0, maxn = lua_objlen(L, idx);
	int top = lua_gettop(L);
	for (; narr < maxn; narr++) {
		lua_rawgeti(L, idx, (int)(narr + 1));
		int type = lua_type(L, top + 1);
		if (type == LUA_TNIL) {
			lua_pop(L, 1);
			break;
		}
		step->key = 0;
		step->index = narr + 1;
		int rc = encode_typed(e, top + 1, type, depth + 1);
		lua_pop(L, 1);
		if (rc)
			return -1;
	}
	size_t nhash = 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		/* A table with no array part (a record) has no key to skip. */
		if (narr == 0 || !is_array_key(L, top + 1, narr)) {
			step->key = top + 1;
			if (encode_value(e, top + 1, depth + 1) || encode_value(e, top + 2, depth + 1))
				return -1; /* the caller resets the stack */
			nhash++;
		}
		lua_pop(L, 1);
	}
	put_varint5(e->b->p + counts_at, narr);
	put_varint5(e->b->p + counts_at + 5, nhash);
	e->depth--;
	return 0;
}

static int encode_value(struct enc *e, int idx, int depth)
{
	return encode_typed(e, idx, lua_type(e->L, idx), depth);
}

static int encode_typed(struct enc *e, int idx, int type, int depth)
{
	lua_State *L = e->L;
	switch (type) {
	case LUA_TNIL:
		return put_byte(e, T_NIL);
	case LUA_TBOOLEAN:
		return put_byte(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
	case LUA_TNUMBER:
		return put_number(e, lua_tonumber(L, idx));
	case LUA_TSTRING:
		return put_string(e, L, idx, depth);
	case LUA_TTABLE:
		return encode_table(e, idx, depth);
	case LUA_TUSERDATA:
		if (e->obj != NULL && e->obj->put != NULL) {
			uint64_t payload = 0;
			lua_pushvalue(L, idx);
			if (e->obj->put(e->obj->ud, L, &payload) == 0)
				return put_raw8(e, T_OBJ, &payload);
			lua_pop(L, 1);
		}
		if (e->obj == NULL) /* async.share, upvalues: no object may cross */
			return fail(e, MSG(LOVE_CALL_ONLY));
		return fail(e, MSG(VALUE_USERDATA));
	default:
		return fail(e, MSG(VALUE_TYPE), luaL_typename(L, idx));
	}
}

int async_codec_encode(lua_State *L, int first, int last, struct async_buf *b, const char *label,
                       const struct async_codec_objects *objects, char *err, size_t errlen)
{
	struct enc enc; /* about 2.5 KiB, on the C stack: no allocation per call */
	struct enc *e = &enc;
	e->L = L;
	e->b = b;
	e->obj = objects;
	seen_init(&e->seen);
	e->ntables = e->refs = e->srefs = e->depth = 0;
	e->slive = 0;
	e->nsdef = 0;
	e->label = label;
	e->arg = 1;
	e->err = err;
	e->errlen = errlen;
	int top = lua_gettop(L), rc = 0;
	b->n = 0;
	int count = last >= first ? last - first + 1 : 0;
	if (lua_checkstack(L, OBJ_SLOTS) == 0)
		rc = fail(e, MSG(VALUE_STACK));
	else if (put_tagged_varint(e, 0, (uint64_t)count)) /* flags, then the count */
		rc = -1;
	for (int i = 0; rc == 0 && i < count; i++) {
		e->arg = 1 + i;
		e->depth = 0;
		rc = encode_value(e, first + i, 0);
	}
	if (rc == 0)
		b->p[0] |= (unsigned char)((e->refs ? F_REFS : 0) | (e->srefs ? F_SREFS : 0));
	seen_free(&e->seen);
	lua_settop(L, top);
	return rc;
}

int async_codec_encode_message(struct async_buf *b, const char *msg)
{
	size_t n = strlen(msg);
	b->n = 0;
	if (buf_reserve(b, n + 16))
		return -1;
	unsigned char *p = b->p;
	*p++ = 0;     /* flags */
	*p++ = 1;     /* one value */
	*p++ = T_STR; /* a string */
	size_t len = n;
	while (len >= 0x80) {
		*p++ = (unsigned char)(len | 0x80);
		len >>= 7;
	}
	*p++ = (unsigned char)len;
	memcpy(p, msg, n);
	b->n = (size_t)(p - b->p) + n;
	return 0;
}
