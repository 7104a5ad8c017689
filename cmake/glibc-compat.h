/* SPDX-License-Identifier: MIT (see LICENSE) */
/* glibc-compat.h: force-included (-include) into every file of a release
 * Linux module and of its static hwloc, so that the module runs on glibc 2.28
 * (Debian 10; Ubuntu 20.04 has 2.31) although it is built against Debian
 * 12's 2.36. glibc 2.34 moved the pthread functions into libc.so.6 under a
 * new version, and 2.32-2.33 gave the affinity and stat functions new ones;
 * the old versions stay exported, so each reference is bound to the oldest
 * one the architecture has. The module also lists libpthread.so.0, where
 * those functions live before 2.34. test/release/check.sh fails the release
 * if a newer version slips in: add its function here then. */
#ifndef ASYNC_GLIBC_COMPAT_H
#define ASYNC_GLIBC_COMPAT_H
#if defined(__linux__) && !defined(__ASSEMBLER__)
#if defined(__x86_64__)
#define ASYNC_GLIBC_BASE "GLIBC_2.2.5"
#define ASYNC_GLIBC_SETNAME "GLIBC_2.12"
#define ASYNC_GLIBC_AFFINITY "GLIBC_2.3.4"
#define ASYNC_GLIBC_FXSTATAT "GLIBC_2.4"
#define ASYNC_STAT_VER 1 /* _STAT_VER_LINUX */
#elif defined(__aarch64__)
#define ASYNC_GLIBC_BASE "GLIBC_2.17" /* the first aarch64 glibc */
#define ASYNC_GLIBC_SETNAME "GLIBC_2.17"
#define ASYNC_GLIBC_AFFINITY "GLIBC_2.17"
#define ASYNC_GLIBC_FXSTATAT "GLIBC_2.17"
#define ASYNC_STAT_VER 0
#else
#error "glibc-compat.h: no symbol versions for this architecture"
#endif
__asm__(".symver pthread_create, pthread_create@" ASYNC_GLIBC_BASE);
__asm__(".symver pthread_join, pthread_join@" ASYNC_GLIBC_BASE);
__asm__(".symver pthread_once, pthread_once@" ASYNC_GLIBC_BASE);
__asm__(".symver pthread_attr_setstacksize, pthread_attr_setstacksize@" ASYNC_GLIBC_BASE);
__asm__(".symver pthread_key_create, pthread_key_create@" ASYNC_GLIBC_BASE);
__asm__(".symver pthread_key_delete, pthread_key_delete@" ASYNC_GLIBC_BASE);
__asm__(".symver pthread_getspecific, pthread_getspecific@" ASYNC_GLIBC_BASE);
__asm__(".symver pthread_setspecific, pthread_setspecific@" ASYNC_GLIBC_BASE);
__asm__(".symver pthread_setname_np, pthread_setname_np@" ASYNC_GLIBC_SETNAME);
__asm__(".symver pthread_getaffinity_np, pthread_getaffinity_np@" ASYNC_GLIBC_AFFINITY);
__asm__(".symver pthread_setaffinity_np, pthread_setaffinity_np@" ASYNC_GLIBC_AFFINITY);
/* stat, fstat and fstatat are functions only since 2.33; before, the headers
 * called __xstat and its kin with a version number. Those cannot be renamed
 * here (this file comes before the system headers, which declare them): the
 * link wraps them instead (--wrap, glibc-compat.c). */
#endif
#endif
