/* SPDX-License-Identifier: MIT (see LICENSE) */
/* codec_format.h: the tags and flags of the codec's format, shared by its
 * encoder (codec.c, whose header describes the format) and its decoder
 * (codec_decode.c). async_fast.lua writes the same tags: it reads them from
 * the table async_codec_push_format builds from these lists, so a tag is
 * added by one line here. */
#ifndef ASYNC_CODEC_FORMAT_H
#define ASYNC_CODEC_FORMAT_H

/* The tags, in the order of their byte values (from 0). */
#define ASYNC_CODEC_TAGS(X) X(NIL) X(FALSE) X(TRUE) X(INT) X(NUM) X(STR) X(TABLE) X(REF) X(OBJ) X(SDEF) X(SREF)
/* The flags byte's bits. */
#define ASYNC_CODEC_FLAGS(X) X(REFS, 1) X(SREFS, 2)

#define ASYNC_CODEC_TAG_ENUM(name) T_##name,
enum { ASYNC_CODEC_TAGS(ASYNC_CODEC_TAG_ENUM) };
#undef ASYNC_CODEC_TAG_ENUM
#define ASYNC_CODEC_FLAG_ENUM(name, bit) F_##name = bit,
enum { ASYNC_CODEC_FLAGS(ASYNC_CODEC_FLAG_ENUM) };
#undef ASYNC_CODEC_FLAG_ENUM

#endif
