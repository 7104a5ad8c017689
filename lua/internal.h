/* SPDX-License-Identifier: MIT (see LICENSE) */
/* internal.h: what the files of the native module share: the structs of
 * a pool context, call records, definitions and snapshots, worker states
 * and buffers, and the functions one file offers another. Not installed. */
#ifndef ASYNC_LUA_INTERNAL_H
#define ASYNC_LUA_INTERNAL_H
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "async/async.h"
#include "async/trace.h"
#include "codec.h"
#include "messages.h"

struct ctx;
struct defstat;
struct defstats;

#define CTX_MT "async.context"
#ifdef _WIN32 /* portability: a DLL exports what is marked dllexport, and then only that */
#define ASYNC_EXPORT __declspec(dllexport)
#else
#define ASYNC_EXPORT __attribute__((visibility("default")))
#endif

struct def {
	uint64_t id; /* unique per define: the worker cache key */
	char *name;
	struct async_buf code;   /* string.dump bytecode */
	struct async_buf upvals; /* the upvalues' values, encoded */
	int nupvals;
	unsigned char *is_async; /* per upvalue: it held the async table itself,
	                          * bound to the worker-side async in jobs */
	int refs; /* main thread only: the registry's + one per call in flight */
	/* The size of its results lately, up to RECORD_KEEP_BYTES (workers
	 * read and write it, relaxed): reserved at once before a result is
	 * encoded, so that a fresh record's buffer is not grown from 64 bytes
	 * by doubling, copying as it goes. */
	size_t res_hint;
	struct defstat *st; /* its name's figures (profile.c); NULL for none */
};

/* A definition name's figures for stats().defs (profile.c): counts since
 * the name was defined, times over the last DEFSTAT_WINDOW runs. Listed
 * (found by name) while the name is defined; kept alive by each struct def
 * that points at it, so that calls in flight of an undefined name deliver
 * into figures no longer listed. Main thread. */
#define DEFSTAT_WINDOW 256
struct defstat {
	struct defstat *hnext;      /* its hash bucket's chain, while listed */
	struct defstat *prev, *next; /* the listed ones, for stats().defs */
	uint32_t hash;
	int refs;   /* the defs pointing at it, + 1 while listed */
	int listed;
	uint32_t rng; /* draws the sampling interval (profile_made) */
	char *name;
	uint64_t calls, failures, cancels, runs, bytes_in, bytes_out;
	double run_total;  /* seconds: the timed runs times their weight */
	float run[DEFSTAT_WINDOW], wait[DEFSTAT_WINDOW]; /* seconds, a ring */
	uint32_t every; /* time a call with a chance of 1 in `every` (profile_made) */
	uint32_t below; /* a draw at or below it times the call: 2^32 / every */
	double run_avg;    /* seconds, a moving average that sets `every` */
	unsigned n, at;    /* filled, next slot */
	uint64_t summed;   /* `runs` when the figures below were worked out */
	double run_mean, run_p99, wait_mean, wait_p99;
};

/* Argument and result buffers above this are freed when the record is
 * recycled: one huge call must not pin its memory for the pool's life. */
#define RECORD_KEEP_BYTES (256u * 1024u)
/* Idle records kept past a burst: once the pool's queue is empty and more
 * than RECORDS_TRIM_AT are idle, update() frees all but RECORDS_KEEP, so a
 * burst of calls does not pin its records for the pool's life, and a game
 * that recycles fewer than RECORDS_TRIM_AT a frame never frees one. */
#define RECORDS_KEEP 256u
#define RECORDS_TRIM_AT 1024u

/* A value published with async.share: encoded once, decoded once per
 * worker per version. */
struct share {
	uint64_t id;
	char *name;
	struct async_buf val;
	int refs; /* main thread only */
};

/* An immutable view of the registry: every definition, shared value and the
 * worker-init function as they were when it was published. Each call holds
 * the snapshot current when it was made, so "calls already made keep their
 * version" holds for all three, and a job that starts a job looks names up
 * in its parent's snapshot. Published on define/undefine/share/init (rare);
 * refcounted by the main thread only. */
struct snap {
	int refs;
	uint64_t id; /* the epoch it was published at */
	int ndefs, nshares;
	struct def **defs;     /* sorted by name */
	struct share **shares; /* sorted by name */
	struct def *init;      /* async.setWorkerInit, or NULL */
};

/* async.newBuffer: raw memory seen through the FFI on both sides without a
 * copy. refs counts every proxy userdata and every call holding it (atomic:
 * proxies die in any state). lent counts calls in flight that the game
 * passed it to: while it is non-zero the game's proxies refuse access. */
struct abuf {
	uint32_t refs;
	uint32_t lent;
	size_t size;
	unsigned char *data;
};

struct bufproxy {
	struct abuf *b;
	int valid; /* a worker's proxy is valid for the job that received it */
	int main;  /* a proxy in the game's state: checks lent */
};

/* Buffers a call or job holds while in flight. */
struct lentlist {
	struct abuf **v;
	unsigned char *mainlent; /* 1: counted in v[i]->lent */
	int n, cap;
};

#define XSTR_MAX 4
enum { CALL_QUEUED = 0, CALL_RUNNING = 1, CALL_CANCELLED = 2 };

struct call {
	async_job job;
	struct ctx *ctx;
	struct def *def;
	struct snap *snap; /* the registry as it was when the call was made */
	struct lentlist bufs;
	struct call *old; /* while encoding: the call this keyed call supersedes */
	int takes_old;    /* a buffer lent to `old` was lent again: cancel it */
	int cb;        /* registry ref of the callback in the main state */
	int key;       /* registry ref of its "latest wins" key, or LUA_NOREF */
	uint32_t index; /* stable record number */
	uint32_t chan;  /* names its LÖVE channel, async.ch.<chan>: see chan_take */
	uint32_t gen;   /* bumped at each use: a handle names (record, gen) */
	uint32_t state; /* CALL_*: the main thread's cancel and the worker's
	                 * start race by CAS from CALL_QUEUED */
	int failed;    /* res holds (error value, traceback) */
	int cancelled; /* the worker skipped it */
	uint32_t objs_pushed; /* LÖVE objects put on the record's channel for this call */
	uint32_t objs_popped; /* ... and taken off it: any difference is cleared at release */
	int superseded; /* main thread: a newer call took its key while it ran */
	int live;       /* main thread: made and not yet released */
	int fast;       /* made by the FFI path (fastpath.c): its callback lives
	                 * in async_fast.lua's table, not in the registry */
	uint32_t stop_asked; /* cancelled while running: async.cancelled() in
	                      * the job says so (atomic) */
	uint32_t finished;   /* the worker is done with it (atomic): shutdown
	                      * waits for records RUNNING and not finished */
	uint32_t hook_lock;  /* guards runL between its worker and shutdown's
	                      * deadline, which hooks the state running it */
	lua_State *runL;     /* the worker state running it, while it runs */
	uint32_t handed;     /* who hands a cancelled record back is claimed
	                      * (atomic): its worker, or shutdown abandoning
	                      * the pool while it is still in the pool's queue */
	int hooked;          /* the deadline's hook is set on runL */
	int interrupted;     /* main thread: an error raised while its result
	                      * was decoded; it stays pending, decoded again */
	struct async_buf args, res;
	/* For stats().defs, in a call that profile_made chose to time (weight
	 * != 0: it stands for `weight` calls): async_trace_now_ns when made
	 * (main thread), started and ended (its worker, before call_done's
	 * release); t_start 0 if it never ran or is not timed. */
	uint64_t t_call, t_start, t_end;
	uint32_t weight;
	struct call *next;
	/* Long strings the FFI path passes by reference: the game's own bytes
	 * (LuaJIT never moves a string), kept alive by async_fast.lua until
	 * the call is delivered; the arguments name them as OBJ_STR | index. */
	struct xstr { const char *p; size_t n; } xs[XSTR_MAX];
	int nxs;
};

struct preload {
	char *name;
	lua_CFunction fn;
	int required; /* loaded in the game's state: require it in workers too */
};

/* Blocks of KEEP_MIN bytes or more, of a size that recurs (wstate.c,
 * kept_size), that a worker state frees are kept (up
 * to KEEP_SLOTS blocks, KEEP_BYTES in all) for its next request of the same
 * size. LuaJIT's allocator serves each such block with its own mmap, which
 * every page of faults in when LuaJIT clears it, and munmaps it when freed,
 * a TLB shoot-down on every core of a multi-threaded process. It takes one
 * from its heap only when free space there fits, and a worker's heap is
 * small: jobs that grow hash parts past 8,192 keys (192 KiB) paid this on
 * nearly every job (bench/ANALYSIS.md, "The worker tax"). Hash and array
 * parts come in powers of two, so exact sizes recur.
 * The garbage collector frees a job's blocks cycles later, often after the
 * next job has asked for its own, so one job's blocks are not enough: while
 * calls are queued a state keeps up to KEEP_BYTES, and when the pool runs
 * dry it gives back all but KEEP_IDLE_BYTES (wstate_trim), so a burst of
 * path requests does not pin its memory after the burst. */
#define KEEP_MIN ((size_t)128 * 1024) /* LuaJIT's mmap threshold (lj_alloc.c) */
#define KEEP_SLOTS 64
#define KEEP_BYTES ((size_t)64 * 1024 * 1024)
#define KEEP_IDLE_BYTES ((size_t)16 * 1024 * 1024)

/* Wraps a worker state's allocator (LuaJIT's own, kept for speed) to count
 * its bytes and refuse growth past the limit: LuaJIT then raises "not enough
 * memory" at the allocation, as for a real malloc failure. Only the thread
 * that owns the state allocates; `used` is read by stats() on the main
 * thread, hence the atomic accesses. `used` includes the kept blocks. */
struct memacct {
	lua_Alloc f;
	void *ud;
	uint64_t *used;  /* ctx->mem[index], or `own` */
	uint64_t own;
	uint64_t limit;  /* 0: none */
	int refused;     /* the limit refused an allocation */
	void *kept[KEEP_SLOTS];
	size_t keptn[KEEP_SLOTS];
	size_t kept_bytes;
	unsigned kept_next; /* the slot to fill (and evict) next */
};

/* One per worker thread (and one on the main thread if shutdown has to run
 * leftovers there). */
struct wstate {
	struct memacct acct;
	int depth;    /* run_def nesting: await runs jobs inside a job */
	int dead;     /* ran out of memory: replaced once depth is back to 0 */
	int gc_stopped; /* a job called collectgarbage("stop"): restarted after it */
	uint64_t gc_floor; /* bytes live after the last full collect (collect_near_limit, idle_collect) */
	lua_State *L;
	struct ctx *ctx;
	unsigned index;
	uint64_t epoch;
	uint64_t snap_id;  /* the snapshot whose shared values are decoded */
	uint64_t init_id;  /* the init function last run here */
	struct snap *cur;  /* the running job's snapshot (for await) */
	struct call *call; /* the game's call being run here (async.cancelled) */
	const struct def *def; /* the definition running here (the perf map's names) */
	int cache;    /* registry ref: def id -> compiled function */
	int handler;  /* registry ref: the traceback handler jobs run under (run.c) */
	int runner;   /* registry ref: the C function a job's run is protected by (run.c) */
	int env;      /* registry ref: the environment top-level calls run in (wstate.c, GUARD) */
	int envmt;    /* registry ref: its metatable, { __index = _G } */
	int globals;  /* registry ref: the guard, which puts back what a job changed (wstate.c) */
	int api;      /* registry ref: the worker-side `async` table */
	int shareids; /* registry ref: name -> id of the decoded shared value */
	int proxies;  /* registry ref: buffer proxies handed to running jobs */
	char *init_error;
};

/* FFI-path calls made and not yet submitted (fastpath.c): submitted as one
 * async_pool_submit_array at update(), before any other submission, at
 * once when the pool's queue is no longer than the batch, or by the worker
 * that starts the last queued job. */
#define BATCH_MAX 64
struct ctx {
	async_pool *pool;
	uint64_t epoch; /* moved by define/undefine (atomic); read by workers */
	uint64_t next_def_id;
	uint64_t id;    /* distinguishes contexts in LÖVE channel names */
	int defs;       /* registry ref: name -> lightuserdata def */
	int keys;       /* registry ref: key -> lightuserdata call (latest wins) */
	int shares;     /* registry ref: name -> lightuserdata share */
	struct def *init;
	struct snap *snap; /* the current registry snapshot */
	int handle_mt;  /* registry ref: metatable of call handles */
	int facade;     /* registry ref: the async table (onerror) */
	struct call *done; /* finished, pushed by workers (lock-free stack) */
	struct call *pending, *pending_tail; /* taken from done, not delivered */
	struct call *free;
	size_t nfree;     /* records on the free list */
	struct call **all; /* by record index; NULL where records_trim freed one */
	size_t nall, capall;
	size_t hole;      /* every index below it holds a record */
	uint32_t gen_floor; /* above every generation a freed record handed out:
	                     * where a record made in its slot starts */
	size_t inflight; /* made and not yet delivered */
	uint64_t delivered, failed_count, cancelled_count;
	size_t npending;
	char *path, *cpath;
	char *boot;     /* bytecode each worker state runs once made (the perf map); NULL: none */
	size_t nboot;
	struct preload *pre;
	int npre;
	int love;
	int closed;
	int shutting;   /* shutdown() is delivering: new calls end cancelled */
	int joined;     /* shutdown(): no job runs any more, the pool is shut down */
	int abandoned;  /* a job outlived shutdown's deadline: the context, its
	                 * pool and records are left to the process's exit */
	uint32_t hard_stop; /* the deadline passed: jobs get the stop hook (atomic) */
	struct ctx *prev_ctx, *next_ctx; /* every context of the process (async_native.c) */
	double stop_deadline; /* shutdown(): when jobs are hooked; < 0: never */
	int error_fn;   /* registry ref: the game's `error` builtin ({error = error}) */
	uint64_t def_epoch; /* moved by define/undefine only: workers drop compiled code */
	struct wstate *fallback;
	uint64_t mem_limit;  /* bytes per worker state; 0: none */
	uint64_t *mem;       /* bytes in use, per worker slot: ASYNC_MEM(ctx, i) */
	uint64_t replaced;   /* worker states replaced (atomic) */
	int fast_hook;       /* registry ref: async_fast.lua's delivery of FFI-path
	                      * records that the C side delivers (shutdown,
	                      * results the Lua decoder leaves to C) */
	int fast_busy;       /* registry ref: async_fast.lua's own answer to
	                      * busy_now for its windows (busy[0]) */
	int window_fn;       /* registry ref: the C function window_run calls */
	int32_t busy[2];     /* while a call is encoded or a result decoded, a
	                      * finalizer that runs must not deliver nor shut
	                      * down: [0] is async_fast.lua's flag (fastApi),
	                      * [1] the depth of window_run, exact */
	struct call *batch[BATCH_MAX]; /* made by the FFI path, not yet submitted */
	int nbatch;          /* atomic: read by workers; the batch under batch_lock */
	uint32_t batch_lock;
	uint64_t submitted;  /* calls handed to the pool (atomic) */
	struct defstats *defstats; /* the names defined now, by name (profile.c) */
	/* Written by every worker for every job: a line of its own, away from
	 * the fields the main thread writes per call. */
	char pad_started[64];
	uint64_t started;    /* of those, started by a worker (atomic) */
	char pad_end[56];
};

#define ASYNC_MAX_SLOTS 4096
/* Worker i's byte count in ctx->mem, one cache line apart: every
 * allocation of a worker's Lua state writes its count, and adjacent counts
 * made two busy workers trade the line on each allocation (the worker tax
 * at 2 workers, bench/ANALYSIS.md). */
#define ASYNC_MEM_STRIDE 8
#define ASYNC_MEM(ctx, i) (&(ctx)->mem[(size_t)(i) * ASYNC_MEM_STRIDE])
/* On the same line, owned by worker i too: the game's calls it is running
 * now (more than one while an awaiting job helps run others), for
 * stats().running. */
#define ASYNC_RUNNING(ctx, i) (&(ctx)->mem[(size_t)(i) * ASYNC_MEM_STRIDE + 1])

#define BUF_MT "async.buffer"

/* What the codec's hook needs: the record (for its LÖVE channel, NULL for a
 * job started by a job, which cannot carry LÖVE objects), the list that
 * holds the buffers, which side encodes, and where a worker lists the
 * proxies it hands to the running job. */
struct objctx {
	struct call *c;
	struct lentlist *bufs;
	int main;
	struct wstate *ws;
	const char *why; /* set when a put is refused for a reason worth naming */
};

/* Payloads name an object by its place in the call's own lists, never by
 * address: a buffer is 1 + its index in the call's lent list; a LÖVE object
 * is OBJ_LOVE | its ordinal on the call's channel, checked when popped. */
#define OBJ_LOVE ((uint64_t)1 << 62)
#define OBJ_STR ((uint64_t)1 << 61) /* | index in c->xs (FFI path, arguments only) */



struct handle {
	struct ctx *ctx;
	uint64_t ctx_id; /* a freed context's address may be reused: ids are not */
	int64_t index; /* the record's; it may be freed, never reached by address */
	uint32_t gen;
};

/* The worker state of the running thread (NULL off the workers). */
extern __thread struct wstate *tls_ws;

/* objects.c: LÖVE channel names, reused process-wide */
uint32_t chan_take(void);
void chan_give(uint32_t n);
uint32_t chan_count(void);

/* buffers.c */
int l_new_buffer(lua_State *L);
int lent_add(struct lentlist *l, struct abuf *b, int mainlent);
void lent_free(struct lentlist *l);
int lent_has(const struct lentlist *l, const struct abuf *b);
int lent_count(const struct lentlist *l, const struct abuf *b);
void lent_release(struct lentlist *l);
void lent_giveback(struct lentlist *l);
void push_buffer(lua_State *L, struct abuf *b, int main);
void register_buffer_type(lua_State *L);
struct bufproxy *to_buffer(lua_State *L, int idx);

/* objects.c */
struct async_codec_objects codec_objects(struct objctx *oc);
/* err, a refusal the codec wrote with oc's hooks, names a LÖVE object the
 * hooks refused as one (the codec alone calls it a userdata it cannot
 * carry), in the words the thread backend uses too. */
void obj_name_refused(const struct objctx *oc, char *err, size_t errlen);
void obj_clear(lua_State *L, struct call *c);

/* registry.c */
void registry_free(lua_State *L, struct ctx *ctx, int unref);
void def_unref(struct def *d);
int l_define(lua_State *L);
int l_set_init(lua_State *L);
int l_share(lua_State *L);
int l_undefine(lua_State *L);
struct def *lookup_def(lua_State *L, struct ctx *ctx, const char *name);
struct def *snap_find_def(const struct snap *sn, const char *name);
int snap_has_share(const struct snap *sn, const char *name);
void snap_publish(lua_State *L, struct ctx *ctx, int defs_changed);
void snap_unref(struct snap *sn);

/* wstate.c */
void capture_environment(lua_State *L, struct ctx *ctx);
void worker_start(void *ud, unsigned index);
void worker_stop(void *ud, unsigned index);
void wstate_free(struct wstate *ws);
struct wstate *wstate_new(struct ctx *ctx, unsigned index);
void wstate_replace(struct wstate *ws);
void wstate_restore(struct wstate *ws);
void wstate_trim(struct wstate *ws);

/* run.c */
void call_done(struct call *c);
void call_run(void *arg);
void fail_res(struct async_buf *res, int *failed, lua_State *L, const char *msg, const char *tb);
void run_refs_new(struct wstate *ws);
void run_def(struct wstate *ws, struct call *owner, struct def *d, struct snap *sn,
             const struct async_buf *args, struct async_buf *res, int *failed, struct objctx *oc);

/* worker_api.c */
int worker_api_open(lua_State *L, struct wstate *ws);

/* call.c */
struct call *record_take(struct ctx *ctx);
struct call *record_at(struct ctx *ctx, int64_t index, uint32_t gen);
void records_trim(struct ctx *ctx);
void call_release(lua_State *L, struct ctx *ctx, struct call *c);
int cancel_call(struct call *c);
int l_call(lua_State *L);
int l_handle_cancel(lua_State *L);
int l_handle_status(lua_State *L);
int l_shorthand(lua_State *L);

/* deliver.c */
int l_deliver_one(lua_State *L);
int busy_now(lua_State *L, struct ctx *ctx);
/* A codec run inside a window (busy_now): protected, so that an error a
 * finalizer raises in it leaves the context as it was, and the busy count
 * is restored. Encodes the values at [first, last] into c->args, or (decode)
 * pushes c->res's values. Returns lua_pcall's status: on an error its
 * value is on the top of the stack. */
struct window {
	int decode;
	struct call *c;
	struct async_codec_objects objs;
	char *err;
	size_t errlen;
	int rc; /* the codec's: 0 or -1 for encode; the count or -1 for decode */
};
int window_run(lua_State *L, struct ctx *ctx, struct window *w, int first, int last);
int l_window(lua_State *L);
void pending_pop(struct ctx *ctx, struct call *c);
int l_shutdown(lua_State *L);
int l_update(lua_State *L);
void take_done(struct ctx *ctx);

/* fastpath.c */
int l_fast_api(lua_State *L);
int l_fast_hook(lua_State *L);
void batch_flush(struct ctx *ctx);
void batch_worker_check(struct ctx *ctx);

/* profile.c */
/* Main thread, as a call of c->def is made: whether to time it. Three
 * clock reads (~30 ns each) are 2-8 % of a short job's round trip, so a
 * definition whose runs are short has each call timed with a chance of
 * one in `every`, `every` chosen at each delivery so that the clock costs
 * under 0.5 % of its run time (profile_delivered); the first call is
 * always timed. A timed call stands for `every` calls (its weight), which
 * keeps runTotal unbiased whatever `every` was before. Drawn at random: a
 * fixed one call in `every` locks onto a phase of a game's regular call
 * order (a costly call every other one, timed always or never). */
static inline void profile_made(struct call *c)
{
	struct defstat *s = c->def->st;
	c->t_start = 0;
	c->weight = 0;
	if (s == NULL)
		return;
	if (s->every > 1) {
		uint32_t x = s->rng; /* xorshift32: never 0 from a seed other than 0 */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		s->rng = x;
		if (x > s->below)
			return;
	}
	c->weight = s->every;
	c->t_call = async_trace_now_ns();
}
struct defstat *defstat_for(struct ctx *ctx, const char *name);
void defstat_unref(struct defstat *s);
void profile_undefined(struct ctx *ctx, const char *name);
void profile_delivered(struct ctx *ctx, struct call *c);
int l_stats_defs(lua_State *L);
void profile_free(struct ctx *ctx);
int l_trace_start(lua_State *L);
int l_trace_stop(lua_State *L);
int l_trace_on(lua_State *L);
int l_trace_record(lua_State *L);
int l_trace_write(lua_State *L);
int l_trace_collect(lua_State *L);
int l_trace_api(lua_State *L);
int l_now(lua_State *L);

/* async_native.c */
struct ctx *check_ctx(lua_State *L, int idx);
/* The context behind the userdata at idx, open or closed. */
struct ctx *ctx_of(lua_State *L, int idx);
/* Shutdown's stop of running jobs (deliver.c). */
void run_enter(struct call *c, lua_State *L);
void run_leave(struct call *c);
void cancel_all(struct ctx *ctx);
void ctx_forget(lua_State *L, struct ctx *ctx);
void pending_push(struct ctx *ctx, struct call *c);
int any_running(struct ctx *ctx);
void hook_running(struct ctx *ctx);
double now_s(void);
void nap_ms(int ms);
/* How long a shutdown waits, after hooking the jobs still running at its
 * deadline, before it leaves them to the process's exit. */
#define HOOK_GRACE_S 0.1
/* A state that closes without shutdown() (a game that quits) gives its
 * running jobs this long to see async.cancelled() before the hook. */
#define QUIT_GRACE_S 0.5
void ctx_free_all(lua_State *L, struct ctx *ctx, int unref);

#endif
