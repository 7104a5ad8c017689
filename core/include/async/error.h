/* SPDX-License-Identifier: MIT (see LICENSE) */
/* async/error.h: the one table of error codes every core function returns.
 * 0 means success; failures are small negative numbers, stable across releases. */
#ifndef ASYNC_ERROR_H
#define ASYNC_ERROR_H

#include "async/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message): the table is the single source of truth for the
 * enum and for async_strerror(). */
#define ASYNC_ERRNO_MAP(X)                                                     \
	X(EINVAL, -1, "invalid argument")                                      \
	X(ENOMEM, -2, "out of memory")                                         \
	X(ESHUTDOWN, -3, "the pool is shut down")                              \
	X(ELIMIT, -4, "the pool already has its maximum number of workers or helping threads") \
	X(ETHREAD, -5, "a worker thread could not be started")                 \
	X(ENOTWORKER, -6, "the calling thread is not a worker of this pool")   \
	X(EBUSY, -7, "the job is busy: queued and not started (to submit), or started (to cancel)") \
	X(ETOPOLOGY, -8, "the hardware topology could not be read")            \
	X(EONWORKER, -9, "called from a worker of this pool")                  \
	X(EDEADLK, -10, "the calling job belongs to the group it would wait for") \
	X(EIO, -11, "a file could not be written")

typedef enum {
	ASYNC_OK = 0,
#define ASYNC_ERRNO_ENUM(name, value, msg) ASYNC_##name = value,
	ASYNC_ERRNO_MAP(ASYNC_ERRNO_ENUM)
#undef ASYNC_ERRNO_ENUM
} async_errno;

/* Any thread, never blocks. A static message for a code from the table;
 * "unknown error" for anything else. Never NULL. */
ASYNC_API const char *async_strerror(int code);

/* Any thread, never blocks. The code's short name ("ASYNC_EINVAL"). */
ASYNC_API const char *async_err_name(int code);

#ifdef __cplusplus
}
#endif
#endif
