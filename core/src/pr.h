/* SPDX-License-Identifier: MIT (see LICENSE) */
/* pr.h: the atomics the core uses are concurrencykit's ck_pr; this header
 * includes them, and under ThreadSanitizer only, swaps in compiler builtins.
 *
 * Why: on x86-64 ck_pr is inline assembly and volatile accesses, which TSan
 * cannot see, so it would report every lock-free hand-off as a data race.
 * Under TSan each ck_pr operation below becomes the __atomic builtin of the
 * same width with sequentially consistent order (at least as strong as the
 * ck_pr one it replaces), and the standalone fences become compiler barriers
 * (TSan does not model fences; with every access seq_cst they add nothing).
 * The algorithms are therefore checked by TSan under a stronger model than
 * they run under, which is what TSan can do; the fence comments in the
 * sources carry the argument for the weaker one. */
#ifndef ASYNC_PR_H
#define ASYNC_PR_H

#include <ck_pr.h>
#include <ck_epoch.h>

#if defined(__SANITIZE_THREAD__)
#define ASYNC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ASYNC_TSAN 1
#endif
#endif

#ifdef ASYNC_TSAN
/* ck_epoch's grace periods happen inside libck.so, which TSan does not
 * instrument; these annotations state the one happens-before edge it
 * provides us (a reader's section ends before the deferred free). */
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define ASYNC_TSAN_RELEASE(p) __tsan_release((void *)(p))
#define ASYNC_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define ASYNC_SC __ATOMIC_SEQ_CST
#undef ck_pr_load_64
#define ck_pr_load_64(p) __atomic_load_n((p), ASYNC_SC)
#undef ck_pr_store_64
#define ck_pr_store_64(p, v) __atomic_store_n((p), (v), ASYNC_SC)
#undef ck_pr_load_32
#define ck_pr_load_32(p) __atomic_load_n((p), ASYNC_SC)
#undef ck_pr_store_32
#define ck_pr_store_32(p, v) __atomic_store_n((p), (v), ASYNC_SC)
#undef ck_pr_load_uint
#define ck_pr_load_uint(p) __atomic_load_n((p), ASYNC_SC)
#undef ck_pr_store_uint
#define ck_pr_store_uint(p, v) __atomic_store_n((p), (v), ASYNC_SC)
#undef ck_pr_load_ptr
#define ck_pr_load_ptr(p) __atomic_load_n((void **)(p), ASYNC_SC)
#undef ck_pr_store_ptr
#define ck_pr_store_ptr(p, v) __atomic_store_n((void **)(p), (void *)(v), ASYNC_SC)
#undef ck_pr_cas_64
#define ck_pr_cas_64(p, o, n) \
	({ uint64_t o_ = (o); __atomic_compare_exchange_n((p), &o_, (n), 0, ASYNC_SC, ASYNC_SC); })
#undef ck_pr_cas_32
#define ck_pr_cas_32(p, o, n) \
	({ uint32_t o_ = (o); __atomic_compare_exchange_n((p), &o_, (n), 0, ASYNC_SC, ASYNC_SC); })
#undef ck_pr_cas_ptr
#define ck_pr_cas_ptr(p, o, n) \
	({ void *o_ = (void *)(o); __atomic_compare_exchange_n((void **)(p), &o_, (void *)(n), 0, ASYNC_SC, ASYNC_SC); })
#undef ck_pr_fas_ptr
#define ck_pr_fas_ptr(p, v) __atomic_exchange_n((void **)(p), (void *)(v), ASYNC_SC)
#undef ck_pr_fas_32
#define ck_pr_fas_32(p, v) __atomic_exchange_n((p), (v), ASYNC_SC)
#undef ck_pr_faa_64
#define ck_pr_faa_64(p, v) __atomic_fetch_add((p), (v), ASYNC_SC)
#undef ck_pr_faa_32
#define ck_pr_faa_32(p, v) __atomic_fetch_add((p), (v), ASYNC_SC)
#undef ck_pr_faa_uint
#define ck_pr_faa_uint(p, v) __atomic_fetch_add((p), (v), ASYNC_SC)
#undef ck_pr_inc_uint
#define ck_pr_inc_uint(p) ((void)__atomic_fetch_add((p), 1u, ASYNC_SC))
#undef ck_pr_dec_uint
#define ck_pr_dec_uint(p) ((void)__atomic_fetch_sub((p), 1u, ASYNC_SC))
#undef ck_pr_inc_32
#define ck_pr_inc_32(p) ((void)__atomic_fetch_add((p), 1u, ASYNC_SC))
#undef ck_pr_inc_64
#define ck_pr_inc_64(p) ((void)__atomic_fetch_add((p), 1u, ASYNC_SC))
#undef ck_pr_fence_memory
#define ck_pr_fence_memory() __asm__ __volatile__("" ::: "memory")
#undef ck_pr_fence_store
#define ck_pr_fence_store() __asm__ __volatile__("" ::: "memory")
#undef ck_pr_fence_load
#define ck_pr_fence_load() __asm__ __volatile__("" ::: "memory")
#undef ck_pr_fence_store_load
#define ck_pr_fence_store_load() __asm__ __volatile__("" ::: "memory")
#undef ck_pr_fence_atomic_load
#define ck_pr_fence_atomic_load() __asm__ __volatile__("" ::: "memory")
#undef ck_pr_fence_load_store
#define ck_pr_fence_load_store() __asm__ __volatile__("" ::: "memory")
#undef ck_pr_fence_atomic_store
#define ck_pr_fence_atomic_store() __asm__ __volatile__("" ::: "memory")
#undef ck_pr_fence_acquire
#define ck_pr_fence_acquire() __asm__ __volatile__("" ::: "memory")
#undef ck_pr_fence_release
#define ck_pr_fence_release() __asm__ __volatile__("" ::: "memory")
#else
#define ASYNC_TSAN_RELEASE(p) ((void)0)
#define ASYNC_TSAN_ACQUIRE(p) ((void)0)
#endif

/* Test builds only (ASYNC_TEST_HOOKS, the races suite): named points where
 * a test may stall the calling thread to force an interleaving that is
 * otherwise a nanosecond window. Compiled out of the library. */
#ifdef ASYNC_TEST_HOOKS
extern void (*async_test_hook)(const char *point);
#define TEST_POINT(name) do { \
	void (*hook_)(const char *) = __atomic_load_n(&async_test_hook, __ATOMIC_ACQUIRE); \
	if (hook_ != NULL) \
		hook_(name); \
} while (0)
#else
#define TEST_POINT(name) ((void)0)
#endif

#endif
