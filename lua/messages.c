/* SPDX-License-Identifier: MIT (see LICENSE) */
/* messages.c: the table of messages.def's texts that MSG(KEY) reads. */
#include "messages.h"

#define ASYNC_MSG(key, text) [MSG_##key] = text,
const char *const async_messages[ASYNC_MSG_COUNT] = {
#include "messages.def"
};
#undef ASYNC_MSG
