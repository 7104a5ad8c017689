/* SPDX-License-Identifier: MIT (see LICENSE) */
/* codec_format.h: the tags and flags of the codec's format, shared by its
 * encoder (codec.c, whose header describes the format) and its decoder
 * (codec_decode.c). async_fast.lua writes the same tags. */
#ifndef ASYNC_CODEC_FORMAT_H
#define ASYNC_CODEC_FORMAT_H

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_NUM, T_STR, T_TABLE, T_REF, T_OBJ, T_SDEF, T_SREF };
enum { F_REFS = 1, F_SREFS = 2 }; /* the flags byte */

#endif
