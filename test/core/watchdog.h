/* watchdog.h: for the core's test suites: a hang becomes a failure. A
 * test arms it around anything that could block forever; SIGALRM then
 * names what hung and aborts, instead of stalling CI. */
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
