/* SPDX-License-Identifier: MIT (see LICENSE) */
/* codec.h: the binary format in which Lua values cross between Lua states
 * (arguments to a worker, results back). Own format rather than
 * string.buffer so that it is bit-exact for every double, keeps nil holes,
 * keeps shared and cyclic tables, names what it refuses, and can hand LÖVE
 * objects across by reference. */
#ifndef ASYNC_CODEC_H
#define ASYNC_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* Nesting deeper than this is refused (the decoder recurses on the C
 * stack). */
#define ASYNC_CODEC_MAX_DEPTH 128

struct async_buf {
	unsigned char *p;
	size_t n, cap;
};

/* Userdata the codec cannot copy but may pass by reference (LÖVE objects,
 * async buffers). put is called with the object at the top of the stack; it
 * pops it and returns 0, setting *payload (stored with the value), or leaves
 * it and returns -1 (refused). get receives the payload and must push the
 * object, returning 0, or return -1. */
struct async_codec_objects {
	int (*put)(void *ud, lua_State *L, uint64_t *payload);
	int (*get)(void *ud, lua_State *L, uint64_t payload);
	void *ud;
};

void async_buf_free(struct async_buf *b);

/* Empties b and makes room for at least cap bytes in one allocation (what
 * it held is not copied). Returns 0, or -1 when out of memory (b is then
 * empty). */
int async_buf_reserve(struct async_buf *b, size_t cap);

/* Encodes the values at stack indices [first, last] (last < first: none)
 * into b, which is reset first. Returns 0; on a value it cannot carry it
 * returns -1 and writes into err (errlen bytes) a message naming the value
 * by label and position and saying what it is, e.g.
 * "argument 2 (at .pos.x) is a function". objects may be NULL. */
int async_codec_encode(lua_State *L, int first, int last, struct async_buf *b, const char *label,
                       const struct async_codec_objects *objects, char *err, size_t errlen);

/* Encodes one string without a Lua state (for failures where there is
 * none). Returns 0, or -1 when out of memory. */
int async_codec_encode_message(struct async_buf *b, const char *msg);

/* Decodes b, pushing its values. Returns how many, or -1 with a message in
 * err for malformed input (nothing is left on the stack then). Never reads
 * outside [b->p, b->p + b->n). */
int async_codec_decode(lua_State *L, const unsigned char *p, size_t n,
                       const struct async_codec_objects *objects, char *err, size_t errlen);

/* Pushes the format's constants for the Lua side (async_fast.lua) to
 * read instead of declaring them again: {tags = {NIL = 0, ...}, flags =
 * {REFS = 1, ...}, maxDepth = ASYNC_CODEC_MAX_DEPTH}. */
void async_codec_push_format(lua_State *L);

#endif
