/* SPDX-License-Identifier: MIT (see LICENSE) */
/* watchdog.h: for the core's test suites: a hang becomes a failure. A
 * test arms it around anything that could block forever; SIGALRM (a timer
 * thread on Windows) then names what hung and aborts, instead of stalling CI. */
#ifndef ASYNC_TEST_WATCHDOG_H
#define ASYNC_TEST_WATCHDOG_H

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *volatile watchdog_what = "?";

static void watchdog_fire(int sig)
{
	(void)sig;
	static const char head[] = "\n[FAIL] watchdog: hung in: ";
	ssize_t r = write(2, head, sizeof head - 1);
	r = write(2, watchdog_what, strlen(watchdog_what));
	r = write(2, "\n", 1);
	(void)r;
	abort();
}

#ifdef _WIN32
/* Portability: mingw has no SIGALRM. A timer thread per arm; a disarm
 * bumps the generation, so a stale timer does nothing. */
#include <windows.h>
static volatile LONG watchdog_gen;
struct watchdog_timer {
	LONG gen;
	unsigned seconds;
};
static DWORD WINAPI watchdog_thread(LPVOID arg)
{
	struct watchdog_timer t = *(struct watchdog_timer *)arg;
	free(arg);
	Sleep(t.seconds * 1000u);
	if (InterlockedCompareExchange(&watchdog_gen, t.gen, t.gen) == t.gen)
		watchdog_fire(0);
	return 0;
}
static inline void watchdog_arm(unsigned seconds, const char *what)
{
	watchdog_what = what;
	struct watchdog_timer *t = malloc(sizeof *t);
	t->gen = InterlockedIncrement(&watchdog_gen);
	t->seconds = seconds;
	HANDLE h = CreateThread(NULL, 0, watchdog_thread, t, 0, NULL);
	if (h != NULL)
		CloseHandle(h);
}
static inline void watchdog_disarm(void)
{
	InterlockedIncrement(&watchdog_gen);
}
#else
static inline void watchdog_arm(unsigned seconds, const char *what)
{
	watchdog_what = what;
	signal(SIGALRM, watchdog_fire);
	alarm(seconds);
}

static inline void watchdog_disarm(void)
{
	alarm(0);
}
#endif

#endif
