/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_fork_header.c: compiled, not run (test_fork_header.sh): every typed-task
 * arity and the untyped calls of async/fork.h, as the users' compilers see
 * them. */
#include "async/async.h"
struct pt { int x, y; };
ASYNC_TASK_0(int, t0) { (void)w; return 1; }
ASYNC_TASK_1(long, t1, int, n) { if (n < 2) return n; ASYNC_SPAWN(t1, n - 1); long b = ASYNC_CALL(t1, n - 2); return ASYNC_SYNC(t1) + b; }
ASYNC_VOID_TASK_2(vs, int *, p, int, n) { if (n == 0) return; ASYNC_SPAWN(vs, p, n - 1); ASYNC_CALL(vs, p, n - 1); ASYNC_SYNC(vs); *p += 1; }
ASYNC_TASK_2(struct pt, t2, int, a, int, b) { (void)w; struct pt p = { a, b }; return p; }
ASYNC_TASK_3(double, t3, double, a, float, b, char, c) { (void)w; return a + b + c; }
ASYNC_TASK_4(long, t4, long, a, long, b, long, c, long, d) { (void)w; return a + b + c + d; }
ASYNC_VOID_TASK_0(v0) { (void)w; }
ASYNC_VOID_TASK_1(v1, int *, p) { (void)w; *p = 1; }
ASYNC_VOID_TASK_2(v2, int *, p, int, v) { (void)w; *p = v; }
ASYNC_VOID_TASK_3(v3, int *, p, int, v, int, u) { (void)w; *p = v + u; }
ASYNC_VOID_TASK_4(v4, int *, p, int, v, int, u, int, z) { (void)w; *p = v + u + z; }
ASYNC_TASK_5(long, t5, long, a, long, b, long, c, long, d, long, e) { (void)w; return a + b + c + d + e; }
ASYNC_VOID_TASK_5(v5, void *, a, void *, b, void *, c, void *, d, long *, e) { (void)w; (void)a; (void)b; (void)c; (void)d; *e = 1; }
/* A leaf body that never names its worker, with arguments named as engine
 * code names them; in C++, trivially copyable types with default member
 * initializers (so without a trivial default constructor) as arguments and
 * result. */
ASYNC_TASK_2(int, leaf, int, t, int, h) { return t + h; }
#ifdef __cplusplus
struct vec2 { float x = 0, y = 0; };
ASYNC_TASK_2(vec2, addv, vec2, a, vec2, b) { vec2 r; r.x = a.x + b.x; r.y = a.y + b.y; return r; }
#endif
long use(async_worker *w);
long use(async_worker *w)
{
	int x = 0;
	t0_spawn(w); t1_spawn(w, 3); t2_spawn(w, 1, 2); t3_spawn(w, 1, 2, 3); t4_spawn(w, 1, 2, 3, 4);
	v0_spawn(w); v1_spawn(w, &x); v2_spawn(w, &x, 1); v3_spawn(w, &x, 1, 2); v4_spawn(w, &x, 1, 2, 3);
	v4_sync(w); v3_sync(w); v2_sync(w); v1_sync(w); v0_sync(w);
	double d = t3_sync(w);
	long r = t4_sync(w) + (d > 0) + t2_sync(w).x + t1_sync(w) + t0_sync(w);
	long e = 0;
	vs(w, &x, 3);
	t5_spawn(w, 1, 2, 3, 4, 5); v5_spawn(w, &x, &x, &x, &x, &e); v5_sync(w);
	r += t5_sync(w) + e;
	leaf_spawn(w, 1, 2);
	r += leaf_sync(w);
#ifdef __cplusplus
	vec2 a, b;
	addv_spawn(w, a, b);
	r += addv_sync(w).x > 0;
#endif
	return r + x + async_fork_error(w);
}
