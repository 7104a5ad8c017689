/* SPDX-License-Identifier: MIT (see LICENSE) */
/* async/api.h: ASYNC_API, which marks the core's public functions: the only
 * symbols its shared library exports (it is built with hidden visibility). */
#ifndef ASYNC_API_H
#define ASYNC_API_H

/* Windows: the DLL exports them (ASYNC_BUILD_SHARED, set while building it)
 * and its users import them (ASYNC_SHARED, which CMake's async::core passes
 * on when the core is shared); a static core needs neither. Elsewhere the
 * attribute undoes the build's -fvisibility=hidden for these alone. */
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(ASYNC_BUILD_SHARED)
#define ASYNC_API __declspec(dllexport)
#elif defined(ASYNC_SHARED)
#define ASYNC_API __declspec(dllimport)
#else
#define ASYNC_API
#endif
#elif defined(__GNUC__)
#define ASYNC_API __attribute__((visibility("default")))
#else
#define ASYNC_API
#endif

#endif
