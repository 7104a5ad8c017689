/* SPDX-License-Identifier: MIT (see LICENSE) */
/* messages.h: the module's user-facing texts, by key, from messages.def
 * (which the Lua files read too, through async_messages.lua): MSG(KEY) is
 * the text, a format for luaL_error and its kin where it has %s or %d. */
#ifndef ASYNC_MESSAGES_H
#define ASYNC_MESSAGES_H

#define ASYNC_MSG(key, text) MSG_##key,
enum async_msg {
#include "messages.def"
	ASYNC_MSG_COUNT
};
#undef ASYNC_MSG

extern const char *const async_messages[ASYNC_MSG_COUNT];

#define MSG(key) (async_messages[MSG_##key])

#endif
