/* SPDX-License-Identifier: MIT (see LICENSE) */
/* glibc-compat.c: stat, fstat and fstatat for a release module that must run
 * on glibc 2.28 (see glibc-compat.h). The module links with
 * --wrap=stat,--wrap=fstat,--wrap=fstatat, so hwloc's calls land here and go
 * to the versioned __xstat family every glibc since 2.2.5 (x86-64) or 2.17
 * (aarch64) exports; struct stat has the same layout either way. */
#include "glibc-compat.h"
#include <sys/stat.h>

extern int __xstat(int ver, const char *path, struct stat *buf);
extern int __fxstat(int ver, int fd, struct stat *buf);
extern int __fxstatat(int ver, int dirfd, const char *path, struct stat *buf, int flags);
__asm__(".symver __xstat, __xstat@" ASYNC_GLIBC_BASE);
__asm__(".symver __fxstat, __fxstat@" ASYNC_GLIBC_BASE);
__asm__(".symver __fxstatat, __fxstatat@" ASYNC_GLIBC_FXSTATAT);

int __wrap_stat(const char *path, struct stat *buf);
int __wrap_fstat(int fd, struct stat *buf);
int __wrap_fstatat(int dirfd, const char *path, struct stat *buf, int flags);

int __wrap_stat(const char *path, struct stat *buf) { return __xstat(ASYNC_STAT_VER, path, buf); }
int __wrap_fstat(int fd, struct stat *buf) { return __fxstat(ASYNC_STAT_VER, fd, buf); }
int __wrap_fstatat(int dirfd, const char *path, struct stat *buf, int flags) {
  return __fxstatat(ASYNC_STAT_VER, dirfd, path, buf, flags);
}
