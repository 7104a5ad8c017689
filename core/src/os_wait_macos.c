/* SPDX-License-Identifier: MIT (see LICENSE) */
/* os_wait_macos.c: os_wait.h on macOS. os_sync_wait_on_address is the public
 * API from macOS 14.4; older systems get __ulock_wait/__ulock_wake, the
 * private calls libc++'s std::atomic::wait is built on (since 10.12).
 * Not compiled on this project's Linux CI (no macOS SDK there): the condvar
 * implementation (os_wait_condvar.c) is the tested fallback, selectable with
 * -DASYNC_OS_WAIT=condvar. */
#include "os_wait.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__has_include)
#if __has_include(<os/os_sync_wait_on_address.h>)
#include <os/os_sync_wait_on_address.h>
#define ASYNC_HAVE_OS_SYNC 1
#endif
#endif

/* From xnu's bsd/sys/ulock.h (stable ABI since 10.12). */
#define ASYNC_UL_COMPARE_AND_WAIT 1
#define ASYNC_ULF_WAKE_ALL 0x00000100
#define ASYNC_ULF_NO_ERRNO 0x01000000
extern int __ulock_wait(uint32_t operation, void *addr, uint64_t value, uint32_t timeout_us);
extern int __ulock_wake(uint32_t operation, void *addr, uint64_t wake_value);

void async_os_wait(uint32_t *addr, uint32_t expected)
{
#ifdef ASYNC_HAVE_OS_SYNC
	if (__builtin_available(macOS 14.4, iOS 17.4, *)) {
		(void)os_sync_wait_on_address(addr, expected, sizeof *addr, OS_SYNC_WAIT_ON_ADDRESS_NONE);
		return;
	}
#endif
	(void)__ulock_wait(ASYNC_UL_COMPARE_AND_WAIT | ASYNC_ULF_NO_ERRNO, addr, expected, 0);
}

int async_os_wake_one(uint32_t *addr)
{
	/* Both return an error (ENOENT) when nobody waited: 0 woken. */
#ifdef ASYNC_HAVE_OS_SYNC
	if (__builtin_available(macOS 14.4, iOS 17.4, *))
		return os_sync_wake_by_address_any(addr, sizeof *addr, OS_SYNC_WAKE_BY_ADDRESS_NONE) == 0;
#endif
	return __ulock_wake(ASYNC_UL_COMPARE_AND_WAIT | ASYNC_ULF_NO_ERRNO, addr, 0) >= 0;
}

void async_os_wake_all(uint32_t *addr)
{
#ifdef ASYNC_HAVE_OS_SYNC
	if (__builtin_available(macOS 14.4, iOS 17.4, *)) {
		(void)os_sync_wake_by_address_all(addr, sizeof *addr, OS_SYNC_WAKE_BY_ADDRESS_NONE);
		return;
	}
#endif
	(void)__ulock_wake(ASYNC_UL_COMPARE_AND_WAIT | ASYNC_ULF_WAKE_ALL | ASYNC_ULF_NO_ERRNO, addr, 0);
}
