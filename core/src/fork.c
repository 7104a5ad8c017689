/* fork.c: fork-join on a per-worker split deque (Lace): the slow paths of
 * async_spawn/async_sync (async/fork.h), stealing, leapfrogging, and the
 * owner's moves of the split.
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

async_worker *async_worker_self(void)
{
	struct worker *w = async__self;
	return w != NULL ? &w->fk : NULL;
}

/* ---- life ----------------------------------------------------------------- */

int async__fork_init(async_worker *w, const uint32_t *sleepers)
{
	size_t bytes = sizeof(async_frame) * (ASYNC_FRAMES + 1);
	/* Reserved, not committed: pages are touched only as deep as the
	 * worker's fork-join recursion goes. */
	void *m = async_os_pages_alloc(bytes);
	if (m == NULL)
		return ASYNC_ENOMEM;
	/* One frame past end: async_spawn writes a frame before its bounds
	 * check. Fresh pages are zero: every thief field starts at 0 (I5). */
	w->base = w->head = w->split = w->floor = m;
	w->end = w->limit = w->base + ASYNC_FRAMES;
	w->sleepers = sleepers;
	w->allstolen = 0;
	w->ts = TS(0, 0);
	w->pub_allstolen = 0;
	w->movesplit = 0;
	return 0;
}

void async__fork_free(async_worker *w)
{
	if (w->base != NULL)
		async_os_pages_free(w->base, sizeof(async_frame) * (ASYNC_FRAMES + 1));
	w->base = NULL;
}

/* ---- the owner's moves of the split --------------------------------------- */

/* Owner: share the private frames [split, to). */
static void grow_shared(async_worker *w, async_frame *to)
{
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
	w->split = to;
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
			w->split = w->base + ns;
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
void async__spawn_slow(async_worker *w)
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
		w->split = t + 1;
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
int async__spawn_limit(async_worker *w)
{
	async_frame *t = w->head; /* fn and arg are written already */
	if (t == w->end)
		return ASYNC_ENOMEM;
	w->head = t + 1;
	async__spawn_slow(w);
	return 0;
}

/* ---- stealing ------------------------------------------------------------- */

/* Thief me, victim v: the oldest shared frame of v, claimed and announced
 * (run it with async__fork_run_stolen), or NULL. *contended: lost a race. */
async_frame *async__fork_steal(async_worker *v, async_worker *me, int *contended)
{
	if (ck_pr_load_32(&v->pub_allstolen))
		return NULL;
	/* Load order: pairs with the store fence in async__spawn_slow. */
	ck_pr_fence_load();
	uint64_t val = ck_pr_load_64(&v->ts);
	uint32_t tail = ts_tail(val), split = ts_split(val);
	if (tail < split) {
		if (!ck_pr_cas_64(&v->ts, val, TS(tail + 1, split))) {
			*contended = 1;
			return NULL;
		}
		/* Acquire (F1): pairs with the release fence before the owner's
		 * publication (grow_shared, or the reset in async__spawn_slow). */
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
	w->fk.floor = w->fk.head;
	fn(&w->fk, arg);
	if (w->fk.head != w->fk.floor)
		async__fork_drain(&w->fk); /* spawns the call did not sync */
	w->fk.floor = saved;
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

void async__sync_slow(async_worker *w)
{
	async_frame *t = w->head - 1;
	if (w->allstolen || (t < w->split && shrink_shared(w))) {
		leapfrog(w, t);
		return;
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
	async_task_fn fn = t->fn;
	void *arg = t->arg;
	w->head = t;
	fn(w, arg);
}

/* Owner: sync every frame above the floor (spawns a call left unsynced). */
void async__fork_drain(async_worker *w)
{
	while (w->head > w->floor)
		async_sync(w);
}
