/* SPDX-License-Identifier: MIT (see LICENSE) */
/* error.c: messages and names for the error table in async/error.h. */
#include "async/error.h"

const char *async_strerror(int code)
{
	switch (code) {
	case ASYNC_OK:
		return "success";
#define ASYNC_ERRNO_MSG(name, value, msg) \
	case ASYNC_##name:                \
		return msg;
		ASYNC_ERRNO_MAP(ASYNC_ERRNO_MSG)
#undef ASYNC_ERRNO_MSG
	}
	return "unknown error";
}

const char *async_err_name(int code)
{
	switch (code) {
	case ASYNC_OK:
		return "ASYNC_OK";
#define ASYNC_ERRNO_NAME(name, value, msg) \
	case ASYNC_##name:                 \
		return "ASYNC_" #name;
		ASYNC_ERRNO_MAP(ASYNC_ERRNO_NAME)
#undef ASYNC_ERRNO_NAME
	}
	return "ASYNC_UNKNOWN";
}
