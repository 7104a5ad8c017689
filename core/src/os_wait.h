/* SPDX-License-Identifier: MIT (see LICENSE) */
/* os_wait.h: the portability layer for sleeping: block on a 32-bit word
 * until it changes, and wake the threads blocked on it (futex semantics).
 * One implementation per OS, chosen by CMake (ASYNC_OS_WAIT):
 *   os_wait_linux.c    futex(2)
 *   os_wait_windows.c  WaitOnAddress / WakeByAddress* (Windows 8+)
 *   os_wait_macos.c    os_sync_wait_on_address (macOS 14.4+), else __ulock
 *   os_wait_condvar.c  any pthreads system: hashed mutex + condition variable
 * The eventcount (eventcount.h) is the only caller. */
#ifndef ASYNC_OS_WAIT_H
#define ASYNC_OS_WAIT_H

#include <stdint.h>

/* Sleep while *addr == expected. The comparison and the sleep are atomic
 * with respect to async_os_wake_*: a waker that changed *addr before its wake
 * call cannot be missed. May return spuriously; callers loop and re-check. */
void async_os_wait(uint32_t *addr, uint32_t expected);

/* Wake at least one thread sleeping on addr (if any). Returns how many it
 * woke where the OS says (futex, condvar, __ulock), else 0 (Windows'
 * WakeByAddressSingle cannot tell): the eventcount clears its "wake in
 * flight" flag on 0, which is always safe and costs at most an extra wake. */
int async_os_wake_one(uint32_t *addr);

/* Wake every thread sleeping on addr. */
void async_os_wake_all(uint32_t *addr);

#endif
