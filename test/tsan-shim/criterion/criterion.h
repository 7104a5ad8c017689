/* SPDX-License-Identifier: MIT (see LICENSE) */
/* criterion.h stand-in for ThreadSanitizer builds only.
 *
 * Criterion cannot start under TSan (its inheritable arena mmap collides
 * with TSan's shadow memory: Snaipe/Criterion#274, open), so the TSan
 * build compiles the very same test sources against this header: Test()
 * registers a function, the cr_assert family checks, and main() runs every
 * test in this process, one after another, printing a closing
 * "N passed, N failed" line. A failed assertion on the test's own thread
 * ends that test; on any other thread it aborts the process (so it is still
 * a failure). Only the macros our suites use are provided. */
#ifndef ASYNC_TSAN_CRITERION_SHIM_H
#define ASYNC_TSAN_CRITERION_SHIM_H

#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct crl_test {
	const char *suite, *name;
	void (*fn)(void);
	struct crl_test *next;
};

static struct crl_test *crl_tests, **crl_tail = &crl_tests;
static jmp_buf crl_jmp;
static pthread_t crl_main_thread;

static void crl_register(struct crl_test *t)
{
	*crl_tail = t;
	crl_tail = &t->next;
}

static void crl_fail(const char *file, int line, const char *expr,
                                                           const char *fmt, ...)
{
	fprintf(stderr, "[FAIL] %s:%d: %s", file, line, expr);
	if (fmt[0] != '\0') {
		__builtin_va_list ap;
		__builtin_va_start(ap, fmt);
		fputs(": ", stderr);
		vfprintf(stderr, fmt, ap);
		__builtin_va_end(ap);
	}
	fputc('\n', stderr);
	if (!pthread_equal(pthread_self(), crl_main_thread))
		abort();
	longjmp(crl_jmp, 1);
}

#define Test(suite, name, ...)                                                       \
	static void suite##_##name(void);                                            \
	static struct crl_test crl_t_##suite##_##name = { #suite, #name, suite##_##name, 0 }; \
	__attribute__((constructor)) static void crl_r_##suite##_##name(void)         \
	{                                                                            \
		crl_register(&crl_t_##suite##_##name);                               \
	}                                                                            \
	static void suite##_##name(void)

#define cr_assert(e, ...) do { if (!(e)) crl_fail(__FILE__, __LINE__, #e, "" __VA_ARGS__); } while (0)
#define crl_cmp(a, op, b, ...) \
	do { if (!((a)op(b))) crl_fail(__FILE__, __LINE__, #a " " #op " " #b, "" __VA_ARGS__); } while (0)
#define cr_assert_eq(a, b, ...) crl_cmp(a, ==, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) crl_cmp(a, !=, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) crl_cmp(a, <, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) crl_cmp(a, <=, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) crl_cmp(a, >, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) crl_cmp(a, >=, b, __VA_ARGS__)
#define cr_assert_null(a, ...) crl_cmp((const void *)(a), ==, NULL, __VA_ARGS__)
#define cr_assert_not_null(a, ...) crl_cmp((const void *)(a), !=, NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) cr_assert(strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_log_info(...) (fprintf(stderr, "[INFO] " __VA_ARGS__), fputc('\n', stderr))

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	crl_main_thread = pthread_self();
	volatile int passed = 0, failed = 0;
	for (struct crl_test *volatile t = crl_tests; t != NULL; t = t->next) {
		fprintf(stderr, "[RUN ] %s::%s\n", t->suite, t->name);
		if (setjmp(crl_jmp) == 0) {
			t->fn();
			fprintf(stderr, "[PASS] %s::%s\n", t->suite, t->name);
			passed++;
		} else {
			fprintf(stderr, "[FAIL] %s::%s\n", t->suite, t->name);
			failed++;
		}
	}
	printf("%d passed, %d failed\n", (int)passed, (int)failed);
	return failed != 0;
}

#endif
