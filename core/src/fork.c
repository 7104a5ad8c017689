/* SPDX-License-Identifier: MIT (see LICENSE) */
/* fork.c: fork-join on a per-worker split deque (Lace): the slow paths of
 * the inline spawns and syncs of async/fork.h (untyped and typed), stealing,
 * leapfrogging, and the owner's moves of the split.
 *
 * References
 *   [CL]   D. Chase, Y. Lev. Dynamic circular work-stealing deque. SPAA 2005.
 *   [LPCN] N. M. Lê, A. Pop, A. Cohen, F. Zappa Nardelli. Correct and
 *          efficient work-stealing for weak memory models. PPoPP 2013.
 *   [Lace] T. van Dijk, J. van de Pol. Lace: non-blocking split deque for
 *          work-stealing. Euro-Par 2014 workshops (MuCoCoS), LNCS 8806.
 *          (After K.-F. Faxén's Wool: direct task stack, leapfrogging.)
 *
 * The structure
 *   Each worker owns a fixed array of frames. [base, head) are the spawned
 *   and not yet synced frames, oldest first. A split divides them: frames
 *   below the split are shared, those at or above it are private. The
 *   shared part's state is one 64-bit word, ts = (tail, split): frames
 *   [tail, split) may be stolen, frames below tail have been. The owner
 *   keeps its own copies of the split and of "every shared frame is taken"
 *   (allstolen) in plain fields; head is the owner's alone.
 *
 * Why it is correct (the invariants; x, y are array indices)
 *   I1 tail <= split <= head, always: a thief moves tail by one only when
 *      tail < split (its CAS checks the whole word); the owner moves split
 *      down only to a value >= tail it just read in the same word it
 *      CASes, and up only to <= head.
 *   I2 A frame is run by exactly one thread. A thief runs frame x only after
 *      its CAS moved ts from (x, s) to (x+1, s) with x < s. The owner runs
 *      frame x itself only when x >= split in its own copy, and its copy
 *      equals the split in ts whenever the owner is not in the middle of a
 *      move (only the owner writes the split). Moving the split down (to take
 *      frames back) is a CAS from the (tail, split) it read to (tail, new):
 *      if a thief's CAS came first, the word changed and the owner rereads;
 *      if the owner's came first, a thief's CAS on the old word fails. So no
 *      frame both is stolen and becomes private: [CL]'s race for the last
 *      item, decided by one CAS on one word instead of a CAS on top plus a
 *      StoreLoad fence between bottom and top. The owner's private pushes
 *      and pops touch neither word: no fence and no shared write at all on
 *      the fast path ([Lace] section 3).
 *   I3 ABA on ts is harmless: the word is the whole state of the shared
 *      part, so a thief whose CAS succeeds on a value it read long ago
 *      takes frame tail of that value, which is then stealable, and reads
 *      the frame only after its CAS.
 *   I4 Stolen frames are taken oldest first (tail only grows until the
 *      owner resets it), so when the owner finds its top frame x stolen
 *      (tail >= split in ts, and x = split - 1), every frame below x is
 *      stolen too: allstolen. Syncs then leapfrog without looking at ts,
 *      and the next spawn starts a new shared part (tail, split) = (x, x+1)
 *      at its own frame; no thief can change ts meanwhile (tail = split),
 *      so a plain store suffices.
 *   I5 A thief announces itself in the frame (thief = its worker) right
 *      after its CAS and sets thief = DONE after the call; the owner does not
 *      reuse a stolen slot before it read DONE, and then sets thief back to
 *      0 (so a spawn need not write it): while waiting it keeps
 *      head above the slot and runs work stolen back from that thief
 *      (leapfrogging, Wool), which can only be work the stolen call itself
 *      spawned, so the wait cannot depend on the waiter ([Lace] 4.2).
 *      When the wait ends every frame the leapfrogged work pushed is synced,
 *      tail = split = x + 1, and the frames below x are all stolen (I4), so
 *      the owner sets allstolen again.
 *
 * Weak memory (the fences [LPCN] derives for Chase–Lev, adapted)
 *   F1 The owner writes a frame with plain stores and publishes it by
 *      moving the split (a CAS on ts, or the store in I4's reset), after a
 *      release fence; a thief's successful CAS is followed by an acquire
 *      fence before it reads the frame. (Relaxed RMWs continue the release
 *      sequence, so the thief synchronises with the publication even when
 *      other thieves' CASes came between.)
 *   F2 A thief's call's effects are published by a release fence before its
 *      store of DONE; the owner's load of DONE is followed by an acquire
 *      fence (leapfrog), so sync returns with the callee's writes visible.
 *   F3 No StoreLoad fence is needed on the owner's side: [CL]/[LPCN]'s
 *      pop must order its store of bottom before its load of top, because
 *      the two live in different words; here the owner's take-back is a CAS
 *      on the one word the thieves CAS, and the coherence order of that word
 *      decides the race (I2). That CAS is the only locked instruction the
 *      owner pays, and only when it takes shared work back.
 *   F4 Sleepers (the eventcount). The spawn's fast path does not look at
 *      the sleeper count (that load was a third of its exit test);
 *      movesplit carries the request instead. A worker about to
 *      sleep announces itself (async_ec_prepare, StoreLoad fence) and then
 *      looks at every deque once more (worker.c, idle): it takes a shared
 *      frame if there is one, and on a deque with none it sets movesplit
 *      (async__fork_steal). A deque it skips as allstolen has its owner's
 *      limit at base, so that owner's next spawn leaves the fast path too.
 *      The owner's next spawn (or a sync with frames to share) sees the
 *      request, publishes, clears movesplit, and then, after a full fence,
 *      loads the sleeper count and wakes one (wake_sleepers). Dekker pairs
 *      on the way: the sleeper's announcement then its look at ts,
 *      pub_allstolen and movesplit, against the owner's publication and
 *      clear then its load of the count: either the sleeper sees the work
 *      (or the cleared flag, which it sets again), or the owner sees the
 *      sleeper and wakes it. A request is cleared only right after
 *      frames were shared, so one left set is always served by the next
 *      spawn. An owner about to wait (help_until_zero, which never runs
 *      its own shared frames) shares all and wakes the same way, whatever
 *      movesplit says (async__fork_share_all): a request left by a worker
 *      that slept after the spawn would otherwise wait for a spawn or sync
 *      that the waiter does not make. The owner's load of movesplit is relaxed: a request seen
 *      late costs parallelism until the next spawn, never a frame (the
 *      owner runs its private frames itself; an owner that waits has no
 *      private frame, I5).
 *
 * Typed frames (ASYNC_TASK_n in async/fork.h)
 *   T1 A typed spawn writes its record over the frame at head with plain
 *      stores: fn = the generated wrapper, arg = the frame itself, then the
 *      arguments in the data words; thief is left at 0 (I5), exactly as an
 *      untyped spawn leaves it. It then pushes through the same inline code
 *      (async_fork_push_h_), so I1-I5 and F1-F4 hold unchanged: to the deque
 *      and to a thief a typed frame is an untyped one whose call is
 *      wrapper(w, frame). The thief's acquire (F1) makes the arguments
 *      visible, since they were stored before the publication's release.
 *   T0 A typed body holds the worker's head in a register (its hidden
 *      parameter, as Lace passes its deque head), so that a spawn and a
 *      sync do not wait on each other's store and reload of w->head; every
 *      push and pop still stores w->head, so the out-of-line paths here,
 *      thieves' wrappers and untyped calls read the same head. Each body
 *      starts from w->head, and every call it makes returns with its
 *      spawns synced (fork-join order), so the two stay equal at each of
 *      the body's spawns and syncs; an untyped spawn left unsynced across
 *      one breaks that, which debug builds refuse (ASYNC_EINVAL).
 *   T2 The fast pop (async_fork_pop_h_) is the untyped sync's: the top frame
 *      is private (head - 1 >= split, I2) and the owner's alone. The typed
 *      sync then reads the arguments back and calls the known function
 *      directly; the frame is free from the pop on, and the arguments are
 *      read before the call (C's sequencing of a call's arguments), before
 *      any spawn of the callee can reuse the slot.
 *   T3 Stolen: the thief's wrapper stores the result in the frame's data
 *      words before its release fence and DONE (F2); leapfrog's acquire
 *      after reading DONE makes it visible, and the owner reads it before
 *      anything can reuse the slot (head = the slot after leapfrog, and the
 *      next spawn writes there only after the sync returned).
 *   T4 Leftovers (async__fork_drain) and untyped syncs run a typed frame as
 *      fn(w, arg) = wrapper(w, frame): its result goes unread.
 *   T5 Misuse. low = max(split, floor) is what the inline pop compares
 *      with, so one compare covers "private" (I2) and "of the current
 *      task": a sync with nothing spawned by its task (head <= floor)
 *      always reaches sync_prepare, which refuses it (ASYNC_EINVAL)
 *      instead of leapfrogging on a frame below the array or popping the
 *      enclosing task's frame. low is updated wherever split or floor
 *      moves (set_split here, fork_set_floor in pool_impl.h), all on slow
 *      paths.
 *   T6 Overflow. A typed spawn that finds the array full (head at end)
 *      runs its frame at once, there, and leaves it pushed, so that its
 *      sync (which callers cannot skip, having no fallback) returns the
 *      result from the frame. While head > end, low = head: every sync
 *      takes the slow path, which pops such a frame without running it.
 *      The run's floor is the frame above it, so the run's own syncs stay
 *      within its frames (T5). Frames past end are never shared
 *      (grow_shared stops at end): a thief never sees a frame that ran.
 *      Untyped spawns still refuse with ASYNC_ENOMEM at end.
 */
#define _GNU_SOURCE
#include "pool_impl.h"

#include <sched.h>
#include <stddef.h>

#include "os_mem.h" /* portability: the frame array's pages */

#define TS(tail, split) (((uint64_t)(split) << 32) | (uint64_t)(uint32_t)(tail))
static inline uint32_t ts_tail(uint64_t v) { return (uint32_t)v; }
static inline uint32_t ts_split(uint64_t v) { return (uint32_t)(v >> 32); }

static inline uint32_t idx(const async_worker *w, const async_frame *f)
{
	return (uint32_t)(f - w->base);
}

/* Owner: its copy of the split, and low, which follows it (T5). */
static inline void set_split(async_worker *w, async_frame *s)
{
	w->split = s;
	fork_update_low(w);
}

async_worker *async_worker_self(void)
{
	struct worker *w = async__self;
	return w != NULL ? &w->fk : NULL;
}

/* ---- life ----------------------------------------------------------------- */

int async__fork_init(async_worker *w, const uint32_t *sleepers)
{
	size_t bytes = sizeof(async_frame) * (ASYNC_FRAMES_MAX + 1);
	/* Reserved, not committed: pages are touched only as deep as the
	 * worker's fork-join recursion goes. */
	void *m = async_os_pages_alloc(bytes);
	if (m == NULL)
		return ASYNC_ENOMEM;
	/* The overflow of typed spawns past end (T6), and one frame past it:
	 * async_spawn writes a frame before its bounds check. Fresh pages are
	 * zero: every thief field starts at 0 (I5). */
	w->base = w->head = w->split = w->floor = w->low = m;
	w->end = w->limit = w->base + ASYNC_FRAMES;
	w->sleepers = sleepers;
	w->allstolen = 0;
	w->misuse = 0;
	w->ts = TS(0, 0);
	w->pub_allstolen = 0;
	w->movesplit = 0;
	return 0;
}

void async__fork_free(async_worker *w)
{
	if (w->base != NULL)
		async_os_pages_free(w->base, sizeof(async_frame) * (ASYNC_FRAMES_MAX + 1));
	w->base = NULL;
}

/* ---- the owner's moves of the split --------------------------------------- */

/* Owner: share the private frames [split, to). */
static void grow_shared(async_worker *w, async_frame *to)
{
	if (to > w->end)
		to = w->end; /* frames past it ran already (T6): never shared */
	uint32_t ns = idx(w, to);
	/* Release (F1): the frames' plain stores before the split that
	 * publishes them. Pairs with the acquire fence after a thief's CAS in
	 * async__fork_steal. */
	ck_pr_fence_release();
	for (;;) {
		uint64_t v = ck_pr_load_64(&w->ts);
		if (ck_pr_cas_64(&w->ts, v, TS(ts_tail(v), ns)))
			break;
		/* A thief took a frame meanwhile: the tail moved, retry. */
	}
	set_split(w, to);
}

/* Owner, top frame shared (head - 1 == split - 1): take back the upper half
 * of what is left of the shared part. 0: the top frame is private now; 1:
 * every shared frame was stolen (allstolen set). */
static int shrink_shared(async_worker *w)
{
	for (;;) {
		uint64_t v = ck_pr_load_64(&w->ts);
		uint32_t tail = ts_tail(v), split = ts_split(v);
		if (tail >= split) {
			ck_pr_store_32(&w->pub_allstolen, 1);
			w->allstolen = 1;
			w->limit = w->base; /* the next spawn starts a shared part */
			return 1;
		}
		/* (tail + split) / 2 <= split - 1: the top frame comes back. The
		 * CAS decides the race with the thieves (I2, F3). */
		uint32_t ns = (tail + split) / 2;
		if (ck_pr_cas_64(&w->ts, v, TS(tail, ns))) {
			set_split(w, w->base + ns);
			return 0;
		}
	}
}

/* Owner, right after it shared frames and cleared movesplit: if workers
 * sleep, share every private frame below top and wake one (F4). */
static void wake_sleepers(async_worker *w, async_frame *top)
{
	/* StoreLoad: the clear of movesplit (and the publication before it)
	 * before the load of the sleeper count. Pairs with the StoreLoad
	 * fence in async_ec_prepare, which a sleeper issues before its last
	 * look at this deque (where it sets movesplit again). */
	ck_pr_fence_memory();
	if (ck_pr_load_32(w->sleepers) == 0)
		return;
	if (!w->allstolen && w->split < top)
		grow_shared(w, top);
	/* notify_one's full fence orders the CAS above before its load of the
	 * waiter count. */
	async_ec_notify_one(&worker_of(w)->pool->work_ec);
}

/* Owner about to wait (help_until_zero, the record spawn): share every
 * private frame, and serve a sleeper's request as a spawn would. A waiter
 * never runs its own shared frames, so a worker that went to sleep after
 * they were spawned (leaving movesplit, F4) must be woken here: nothing
 * else would (the waiter neither spawns nor syncs meanwhile). */
void async__fork_share_all(async_worker *w)
{
	if (w->allstolen || w->split >= w->head)
		return;
	grow_shared(w, w->head);
	if (ck_pr_load_32(&w->movesplit))
		ck_pr_store_32(&w->movesplit, 0);
	wake_sleepers(w, w->head);
}

/* Owner, the frame just pushed (head - 1), with allstolen set or movesplit
 * seen: publish (at least that frame), then wake a sleeper if any. */
void async_fork_spawn_slow_(async_worker *w)
{
	async_frame *t = w->head - 1;
	if (w->allstolen) {
		/* I4: a new shared part holding just this frame. Release (F1):
		 * the frame before ts; pairs with the acquire fence after a
		 * thief's CAS. */
		uint32_t h = idx(w, t);
		ck_pr_fence_release();
		ck_pr_store_64(&w->ts, TS(h, h + 1));
		/* Store order: a thief that sees the flag cleared finds the new
		 * ts (one that sees it set just skips this deque). Pairs with the
		 * load order in async__fork_steal. */
		ck_pr_fence_store();
		ck_pr_store_32(&w->pub_allstolen, 0);
		set_split(w, t + 1);
		w->allstolen = 0;
		w->limit = w->end;
		if (ck_pr_load_32(&w->movesplit))
			ck_pr_store_32(&w->movesplit, 0);
	} else if (ck_pr_load_32(&w->movesplit)) {
		/* A thief found nothing: share half the private frames, at
		 * least one ([Lace]'s split growth). */
		grow_shared(w, w->split + (w->head - w->split + 1) / 2);
		ck_pr_store_32(&w->movesplit, 0);
	} else {
		return; /* not reached: only the owner clears movesplit */
	}
	wake_sleepers(w, w->head);
}

/* Owner: the spawn's one compare failed: the frame array is full, or
 * every shared frame was stolen (limit == base, I4). */
int async_fork_spawn_limit_(async_worker *w)
{
	async_frame *t = w->head; /* fn and arg are written already */
	if (t >= w->end)
		return ASYNC_ENOMEM;
	w->head = t + 1;
	async_fork_spawn_slow_(w);
	return 0;
}

/* Owner: a typed spawn's compare failed. Below end, as an untyped one; past
 * it, the frame runs at once and stays pushed for its sync (T6). */
int async_fork_spawn_eager_(async_worker *w)
{
	async_frame *t = w->head; /* the record is written already */
	if (t < w->end)
		return async_fork_spawn_limit_(w);
	if (t >= w->base + ASYNC_FRAMES_MAX)
		return ASYNC_ENOMEM;
	async_frame *saved = w->floor;
	w->head = t + 1;
	w->floor = w->head; /* its syncs stay within its own frames */
	fork_update_low(w);
	t->fn(w, t->arg);
	w->floor = saved;
	fork_update_low(w);
	return 0;
}

/* ---- stealing ------------------------------------------------------------- */

/* Thief me, victim v: the oldest shared frame of v, claimed and announced
 * (run it with async__fork_run_stolen), or NULL. *contended: lost a race. */
async_frame *async__fork_steal(async_worker *v, async_worker *me, int *contended)
{
	if (ck_pr_load_32(&v->pub_allstolen))
		return NULL;
	/* Load order: pairs with the store fence in async_fork_spawn_slow_. */
	ck_pr_fence_load();
	uint64_t val = ck_pr_load_64(&v->ts);
	uint32_t tail = ts_tail(val), split = ts_split(val);
	if (tail < split) {
		if (!ck_pr_cas_64(&v->ts, val, TS(tail + 1, split))) {
			*contended = 1;
			return NULL;
		}
		/* Acquire (F1): pairs with the release fence before the owner's
		 * publication (grow_shared, or the reset in async_fork_spawn_slow_). */
		ck_pr_fence_acquire();
		async_frame *t = v->base + tail;
		/* I5: the owner waits for this before it leapfrogs. */
		ck_pr_store_ptr(&t->thief, me);
		return t;
	}
	/* Nothing shared: ask the owner to share more on its next move. */
	if (!ck_pr_load_32(&v->movesplit))
		ck_pr_store_32(&v->movesplit, 1);
	return NULL;
}

/* Thief w: runs a frame it claimed, then tells the owner (I5). */
void async__fork_run_stolen(struct worker *w, async_frame *t)
{
	async_task_fn fn = t->fn;
	void *arg = t->arg;
	/* Counted as a steal; as a job only if it is a record (run_job). */
	stat_add(&w->steals, 1);
	async_frame *saved = w->fk.floor;
	fork_set_floor(&w->fk, w->fk.head);
	/* Traced as a job of its own, so the thief's track shows the subtree
	 * it runs (a spawned record is traced by run_job inside fn). */
	struct async_trace_frame tf;
	int traced = ASYNC_UNLIKELY_(ck_pr_load_32(&w->pool->tracing)) && fn != async__spawned_job;
	if (traced)
		async__trace_task_begin(w, &tf);
	fn(&w->fk, arg);
	if (w->fk.head != w->fk.floor)
		async__fork_drain(&w->fk); /* spawns the call did not sync */
	if (traced)
		async__trace_job_end(&tf);
	fork_set_floor(&w->fk, saved);
	/* Release (F2): the call's effects before DONE. Pairs with the acquire
	 * fence in leapfrog. */
	ck_pr_fence_release();
	ck_pr_store_ptr(&t->thief, ASYNC_FRAME_DONE);
}

/* ---- syncing -------------------------------------------------------------- */

/* Owner: frame t was stolen; run the thief's work until it is done (I5). */
static void leapfrog(async_worker *fk, async_frame *t)
{
	struct worker *w = worker_of(fk);
	unsigned spins = 0;
	void *th;
	/* The thief is between its CAS and its announcement. */
	while ((th = ck_pr_load_ptr(&t->thief)) == NULL) {
		if (++spins < 1024)
			ck_pr_stall();
		else
			sched_yield();
	}
	fk->head = t + 1; /* keep the stolen slot: leapfrogged spawns go above */
	spins = 0;
	while (th != ASYNC_FRAME_DONE) {
		int contended = 0;
		async_frame *f = async__fork_steal((async_worker *)th, fk, &contended);
		if (f != NULL) {
			stolen(w, worker_of((async_worker *)th));
			async__fork_run_stolen(w, f);
			spins = 0;
		} else if ((++spins & 63) == 0) {
			/* The thief has nothing to share yet (its frames are private
			 * or it is deep in a call): other work meanwhile. */
			async_job *j = async__find_work(w, &contended);
			if (j != NULL) {
				async__run_found(w, j);
				spins = 0;
			} else if (spins > 4096) {
				sched_yield();
			}
		} else {
			ck_pr_stall();
		}
		th = ck_pr_load_ptr(&t->thief);
	}
	/* Acquire (F2): pairs with the release fence before the thief's store
	 * of DONE. */
	ck_pr_fence_acquire();
	/* I5: the slot is free again, its thief field back to 0 for its next
	 * spawn (which writes no thief field). No thief touches it before the
	 * owner publishes it anew, after a release fence (F1). */
	ck_pr_store_ptr(&t->thief, NULL);
	/* I5: tail = split = t + 1 and everything below t is stolen. */
	if (!fk->allstolen) {
		ck_pr_store_32(&fk->pub_allstolen, 1);
		fk->allstolen = 1;
		fk->limit = fk->base;
	}
	fk->head = t;
}

/* Owner, the inline pop failed. 1: the top frame t has run (stolen, and
 * leapfrog waited; or run at its spawn, T6): head = t, a typed result is
 * in t (T3). 0: t is private and
 * popped (head = t): the caller runs it. ASYNC_EINVAL: the current task has
 * nothing to sync (T5). */
static int sync_prepare(async_worker *w)
{
	if (w->head <= w->floor)
		return ASYNC_EINVAL;
	async_frame *t = w->head - 1;
	if (t >= w->end) {
		/* A typed frame that ran when it was spawned (T6). */
		w->head = t;
		fork_update_low(w);
		return 1;
	}
	if (w->allstolen || (t < w->split && shrink_shared(w))) {
		leapfrog(w, t);
		return 1;
	}
	/* t is private. A thief asked for work: share half of the private
	 * frames below t (t itself stays private). With none to share the
	 * request stays set, for the next spawn to serve (a sleeper may be
	 * waiting on it, F4). */
	if (ck_pr_load_32(&w->movesplit)) {
		async_frame *to = w->split + (t - w->split + 1) / 2;
		if (to > w->split) {
			grow_shared(w, to);
			ck_pr_store_32(&w->movesplit, 0);
			wake_sleepers(w, t);
		}
	}
	w->head = t;
	return 0;
}

int async_fork_sync_slow_(async_worker *w)
{
	int rc = sync_prepare(w);
	if (rc == 0) {
		async_frame *t = w->head;
		t->fn(w, t->arg);
	}
	return rc < 0 ? rc : 0;
}

int async_fork_sync_typed_(async_worker *w)
{
	int rc = sync_prepare(w);
	if (rc < 0)
		w->misuse = rc; /* the typed sync returns a zeroed result */
	return rc;
}

int async_fork_error(async_worker *w)
{
	if (w == NULL)
		return ASYNC_EINVAL;
	int rc = w->misuse;
	w->misuse = 0;
	return rc;
}

/* Owner: sync every frame above the floor (spawns a call left unsynced). */
void async__fork_drain(async_worker *w)
{
	while (w->head > w->floor)
		async_sync(w);
}
