-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_workers.lua: what a worker thread is, seen from inside a job (issue
-- 13): its CPU affinity (unpinned by default, async.load{pin = true} binds
-- worker k to one CPU), its Lua state's memory (big blocks a job frees
-- are kept for the next job, not handed back to the system and faulted in
-- again) and the order it takes calls in (oldest first). Each is observed
-- from the worker thread itself through the FFI: sched_getaffinity,
-- getrusage(RUSAGE_THREAD) and clock_gettime.
local ffi = require "ffi"

-- How many CPUs the calling thread may run on. As source text, so that a
-- job can carry it (an upvalue that is a function cannot be sent).
local CPUS = [[
  local ffi = require "ffi"
  pcall(ffi.cdef, "int sched_getaffinity(int pid, size_t size, void *mask);")
  local mask = ffi.new("uint8_t[128]") -- 1,024 CPUs
  assert(ffi.C.sched_getaffinity(0, 128, mask) == 0, "sched_getaffinity failed")
  local n = 0
  for i = 0, 127 do
    local b = mask[i]
    while b ~= 0 do n = n + b % 2; b = math.floor(b / 2) end
  end
  return n
]]
local cpusOfThisThread = loadstring(CPUS)

local function affinities(opts)
  local async = require "async"
  async.load(opts)
  local n = async.getWorkerCount()
  -- One call per worker, each busy long enough that every worker takes
  -- one (a worker that took two would just report itself twice).
  async.define("cpusSlow", function()
    local t = os.clock() + 0.05
    while os.clock() < t do end
    return async.workerIndex, loadstring(CPUS)()
  end)
  local seen = {}
  for _ = 1, 4 * n do
    async.call(function(w, c) seen[w] = c end, "cpusSlow")
  end
  drain(async, 30)
  async.shutdown()
  return seen, n
end

test("workers are not pinned by default: each may run on every CPU the process may", function()
  local all = cpusOfThisThread()
  local seen = affinities(2)
  for w, c in pairs(seen) do eq(c, all, "CPUs of worker " .. w) end
  seen = affinities { workers = 2 }
  for w, c in pairs(seen) do eq(c, all, "CPUs of worker " .. w .. " (table form)") end
  seen = affinities { workers = 2, pin = false }
  for w, c in pairs(seen) do eq(c, all, "CPUs of worker " .. w .. " (pin = false)") end
end)

test("async.load{pin = true} binds each worker to one CPU", { needs = { "pin" } }, function()
  if cpusOfThisThread() < 2 then
    print("  (one CPU: pinned and unpinned look the same here; nothing to observe)")
    return
  end
  local seen, n = affinities { workers = 2, pin = true }
  local count = 0
  for w, c in pairs(seen) do
    count = count + 1
    eq(c, 1, "CPUs of pinned worker " .. w)
  end
  ok(count >= 1, "some worker reported")
end)

test("async.load: the pin option is checked", function()
  local async = require "async"
  raises("pin must be a boolean, got string", async.load, { workers = 1, pin = "yes" })
  raises("unknown option 'pinned' (expected workers, memoryLimit, pin", async.load, { pinned = true })
  ok(not async.isLoaded(), "nothing loaded")
  async.load(1) -- the number form still works
  eq(async.getWorkerCount(), 1, "workers")
  async.shutdown()
end)

-- A job that builds and drops a big hash table (20,000 keys: a 768 KiB hash
-- part, 192 pages) `rounds` times, collecting after each, and returns the
-- minor page faults per round of its own thread after a warm-up.
local function churn(rounds)
  local ffi = require "ffi"
  pcall(ffi.cdef, [[
    struct tw_ru { long f[4]; long maxrss, ixrss, idrss, isrss, minflt, majflt, nswap, inblock, oublock,
                   msgsnd, msgrcv, nsignals, nvcsw, nivcsw; };
    int tw_getrusage(int who, struct tw_ru *ru) __asm__("getrusage");]])
  local ru = ffi.new("struct tw_ru")
  local function faults() ffi.C.tw_getrusage(1, ru); return tonumber(ru.minflt) end
  local function round()
    local t = {}
    for i = 1, 20000 do t[i * 7] = i end
    t = nil
    collectgarbage()
  end
  round(); round()
  local f0 = faults()
  for _ = 1, rounds do round() end
  return (faults() - f0) / rounds
end

test("a worker's Lua state keeps memory its jobs free: no page faults per job once warm", { needs = { "nativeAllocator" } }, function()
  local async = require "async"
  async.load(1)
  async.define("churn", churn)
  local perRound
  async.call(function(f) perRound = f end, "churn", 20)
  drain(async, 60)
  async.shutdown()
  -- LuaJIT's own allocator maps each such hash part afresh and unmaps it
  -- when freed: every round faulted in all their pages (seen: 339). Kept
  -- blocks are not faulted in again (seen: 0).
  ok(perRound < 40, ("page faults per round %.0f, expected < 40 (memory handed back and re-faulted each job)"):format(perRound))
end)

test("kept blocks count in memory but never make a job run out of memory", { needs = { "memoryLimit" } }, function()
  local async = require "async"
  local MiB = 1024 * 1024
  async.load { workers = 1, memoryLimit = 12 * MiB }
  -- Grows one table through hash parts of 192 KiB .. 3 MiB, all kept once
  -- freed (about 5.5 MiB); then a 4 MiB string, built in a 4 MiB buffer,
  -- sizes nothing kept fits: over the limit with the kept blocks, under it
  -- without, so they must be given back rather than the string refused.
  async.define("grow", function()
    local t = {}
    for i = 1, 100000 do t[i * 7] = i end
    t = nil
    collectgarbage()
  end)
  async.define("big", function() local s = string.rep("x", 4 * 1024 * 1024); return #s end)
  local kept, got, err
  async.call(function() end, "grow")
  drain(async, 30)
  kept = async.stats().memory
  async.call({ success = function(n) got = n end, error = function(e) err = e end }, "big")
  drain(async, 30)
  async.shutdown()
  ok(kept > 4 * MiB, ("the freed hash parts are kept and counted (memory %d)"):format(kept))
  eq(err, nil, "error")
  eq(got, 4 * 1024 * 1024, "the big string's length")
end)

test("a job that fits under memoryLimit keeps fitting when run again", { needs = { "memoryLimit" } }, function()
  local async = require "async"
  local MiB = 1024 * 1024
  async.load { workers = 1, memoryLimit = 8 * MiB }
  -- Peaks near 6 MiB (its array part grows 2 -> 4 MiB) and leaves its 4 MiB
  -- table as garbage. LuaJIT paces its collector on its own count and never
  -- collects when an allocation is refused, so that garbage counted against
  -- the next run: every second run failed out of memory (seen: ok, err,
  -- ok, err), each failure costing the worker its state.
  async.define("fill", function(n)
    local t = {}
    for i = 1, n do t[i] = i end
    return #t
  end)
  local results = {}
  for i = 1, 4 do
    async.call({ success = function(n) results[i] = n end, error = function(e) results[i] = e end }, "fill", 400000)
    drain(async, 30)
  end
  local replaced = async.stats().statesReplaced
  async.shutdown()
  for i = 1, 4 do eq(results[i], 400000, "run " .. i) end
  eq(replaced, 0, "states replaced")
end)

-- Defines job `name` on a fresh 1-worker pool, runs it once and returns its
-- result (the tests' jobs return their state's live bytes after a full
-- collect) and the pool, still loaded.
local function liveAfter(name, job, secs)
  local async = require "async"
  async.load { workers = 1 }
  async.define(name, job)
  local live
  async.call(function(n) live = n end, name)
  drain(async, secs)
  return live, async
end

test("big blocks of sizes that do not recur are not kept", { needs = { "nativeAllocator" } }, function()
  local MiB = 1024 * 1024
  -- Twelve strings of about 1 MiB, each of its own length, as a save or a
  -- log line builder makes them, then dropped. No later request can take a
  -- block of those sizes: keeping them held 12 MiB for nothing, and under
  -- a steady load up to 64 MiB a worker (two workers making strings of
  -- 150 KiB-1 MiB peaked at 209-216 MiB against 91-97 MiB without keeping).
  local live, async = liveAfter("strings", function()
    local all = {}
    for k = 1, 12 do all[k] = string.rep("s", 1000000 + k * 4099) end
    all = nil
    collectgarbage()
    return collectgarbage("count") * 1024
  end, 30)
  local mem = async.stats().memory
  async.shutdown()
  ok(mem < live + 4 * MiB, ("memory %.1f MiB with %.1f MiB live: blocks of sizes that never recur kept"):format(mem / MiB, live / MiB))
end)

test("a burst's kept blocks are given back when the pool runs dry", function()
  local MiB = 1024 * 1024
  -- 24 tables of 100,000 keys live at once, then dropped: their hash parts
  -- (3 MiB each, and the smaller ones each grew through) are freed
  -- together, and up to KEEP_BYTES (64 MiB) of them are kept while calls
  -- are queued. With nothing left to start the worker gives back all but
  -- KEEP_IDLE_BYTES (16 MiB), after the callback's hand-over, so the game
  -- waits for it. Kept blocks count in stats().memory.
  local live, async = liveAfter("burst", function()
    local all = {}
    for k = 1, 24 do
      local t = {}
      for i = 1, 100000 do t[i * 7] = i end
      all[k] = t
    end
    all = nil
    collectgarbage()
    return collectgarbage("count") * 1024
  end, 60)
  local mem = async.stats().memory
  local t0 = os.clock()
  while mem > live + 17 * MiB and os.clock() - t0 < 5 do
    async.update()
    mem = async.stats().memory
  end
  async.shutdown()
  ok(mem <= live + 17 * MiB, ("memory %.1f MiB with %.1f MiB live in the state: kept blocks over 16 MiB not given back"):format(mem / MiB, live / MiB))
end)

-- Order: calls the game issues start oldest first, so
-- under load the oldest request does not wait longest. Each job reads
-- CLOCK_MONOTONIC when it starts; the calls' start ranks must follow their
-- issue order. Two workers each run a batch of the oldest calls side by
-- side (core/src/inject.h, ASYNC_BATCH = 32), so a call may start up to
-- two batches early or late and still be FIFO; a worker preempted between
-- taking a call and reading the clock displaces that one call, hence the
-- few allowed. Newest-first order displaces most of a backlog by hundreds.
test("calls issued at once start oldest first with 2 workers", function()
  local async = require "async"
  async.load { workers = 2 }
  async.define("stamp", function(i)
    local ffi = require "ffi"
    pcall(ffi.cdef, "struct tw_ts { long s, ns; }; int tw_clock(int clk, struct tw_ts *ts) __asm__(\"clock_gettime\");")
    local ts = ffi.new("struct tw_ts")
    ffi.C.tw_clock(1, ts) -- CLOCK_MONOTONIC: comparable across threads
    local t = tonumber(ts.s) * 1e9 + tonumber(ts.ns)
    -- some work, so that both workers are busy on the backlog
    local x = 0
    for k = 1, 20000 do x = (x + k) % 65521 end
    return i, t, x
  end)
  local n, rounds, far, worst = 2000, 3, 0, 0
  for _ = 1, rounds do
    local started = {}
    for i = 1, n do async.call(function(j, t) started[j] = t end, "stamp", i) end
    drain(async, 60)
    local byStart = {}
    for i = 1, n do byStart[i] = i end
    table.sort(byStart, function(a, b) return started[a] < started[b] end)
    for rank, i in ipairs(byStart) do
      local d = math.abs(rank - i)
      if d > 64 then far = far + 1 end
      if d > worst then worst = d end
    end
  end
  async.shutdown()
  print(("  order: %d of %d calls started more than 64 places from their issue order (worst %d)")
    :format(far, rounds * n, worst))
  ok(far <= rounds * n / 50, ("%d of %d calls started far out of issue order (worst %d places)"):format(far, rounds * n, worst))
end)

-- LuaJIT collects only as it allocates: a worker that goes idle after a job
-- that dropped a big structure would keep it for good.
test("a worker that goes idle collects what its last job left", { needs = { "nativeAllocator" } }, function()
  local async = require "async"
  async.load(1)
  async.define("garbage", function(n)
    local t = {}
    for i = 1, n do t[i] = { i, tostring(i) } end
    return #t, collectgarbage("count") * 1024
  end)
  local r, peak
  async.call(function(x, bytes) r, peak = x, bytes end, "garbage", 500000)
  drain(async)
  eq(r, 500000, "the job's result")
  ok(peak > 48 * 2 ^ 20, ("the job held only %.1f MB"):format(peak / 2 ^ 20))
  -- The worker collects after the delivery, when it finds the pool dry.
  local deadline, mem = os.time() + 30, nil
  repeat mem = async.stats().memory until mem < 32 * 2 ^ 20 or os.time() > deadline
  ok(mem < 32 * 2 ^ 20, ("the idle worker's state holds %.1f MB (the job held %.1f MB)"):format(mem / 2 ^ 20,
    peak / 2 ^ 20))
  async.shutdown()
end)
