/* SPDX-License-Identifier: MIT (see LICENSE) */
/* probes.h: static probes for perf and other USDT readers (provider "async":
 * perf names them sdt_async:job_start ...). Each probe is a nop and an ELF
 * note (.note.stapsdt) saying where its arguments live; nothing runs until
 * a tool places a breakpoint there. Where systemtap's <sys/sdt.h> is
 * missing (Windows, macOS, a build machine without systemtap-sdt-dev) or
 * ASYNC_NO_PROBES is defined, the probes compile to nothing. The Lua layer
 * includes this header too, for its definition-named probes. */
#ifndef ASYNC_PROBES_H
#define ASYNC_PROBES_H

#if defined(__linux__) && !defined(ASYNC_NO_PROBES) && defined(__has_include)
#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#endif
#endif

#ifdef STAP_PROBE2
#define ASYNC_PROBES 1
#define ASYNC_PROBE1(name, a) STAP_PROBE1(async, name, a)
#define ASYNC_PROBE2(name, a, b) STAP_PROBE2(async, name, a, b)
#else
#define ASYNC_PROBES 0
#define ASYNC_PROBE1(name, a) ((void)(a))
#define ASYNC_PROBE2(name, a, b) ((void)(a), (void)(b))
#endif

#endif
