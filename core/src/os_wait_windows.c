/* SPDX-License-Identifier: MIT (see LICENSE) */
/* os_wait_windows.c: os_wait.h on Windows 8 and later, with WaitOnAddress
 * (synchronization.lib / api-ms-win-core-synch-l1-2-0). */
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0602
#endif
#include "os_wait.h"

#include <windows.h>

void async_os_wait(uint32_t *addr, uint32_t expected)
{
	/* Returns at once when *addr != expected; spurious wakes are allowed. */
	(void)WaitOnAddress((volatile VOID *)addr, &expected, sizeof expected, INFINITE);
}

int async_os_wake_one(uint32_t *addr)
{
	WakeByAddressSingle(addr);
	return 0; /* unknown: see os_wait.h */
}

void async_os_wake_all(uint32_t *addr)
{
	WakeByAddressAll(addr);
}
