/* SPDX-License-Identifier: MIT (see LICENSE) */
/* async/async.h: everything a C program needs from the async core. */
#ifndef ASYNC_ASYNC_H
#define ASYNC_ASYNC_H

#include "async/error.h"
#include "async/pool.h"
#include "async/fork.h"
#include "async/engine.h"
#include "async/trace.h"

#define ASYNC_VERSION_MAJOR 0
#define ASYNC_VERSION_MINOR 1
#define ASYNC_VERSION_PATCH 0

#endif
