/* SPDX-License-Identifier: MIT (see LICENSE) */
/* os_wait_linux.c: os_wait.h on Linux, with the private futex. */
#include "os_wait.h"

#include <limits.h>
#include <linux/futex.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

void async_os_wait(uint32_t *addr, uint32_t expected)
{
	/* EAGAIN (the word moved) and EINTR are the spurious returns the
	 * interface allows. */
	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

int async_os_wake_one(uint32_t *addr)
{
	return syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) > 0;
}

void async_os_wake_all(uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
