-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_reliability.lua: faults in jobs and in the game: jobs
-- that run out of memory under a memory limit, long-running jobs, update()
-- and shutdown() called from inside callbacks.
local ffi = require "ffi"

local MiB = 1024 * 1024

-- A job that allocates until it is stopped (here, by the memory limit).
local function hog()
  local t = {}
  for i = 1, 1e9 do t[i] = { i } end
  return #t
end

test("memoryLimit: bad options are refused by name", function()
  local async = require "async"
  raises("memoryLimit must be a whole number of bytes > 0, got -1", async.load, { memoryLimit = -1 })
  raises("memoryLimit must be a whole number of bytes > 0, got big", async.load, { memoryLimit = "big" })
  raises("unknown option 'wrokers'", async.load, { wrokers = 2 })
  ok(not async.isLoaded(), "nothing loaded")
end)

test("a job that runs out of memory fails with an error; its worker gets a fresh state", { needs = { "memoryLimit" } }, function()
  local async = require "async"
  local limit = 32 * MiB
  async.load { workers = 1, memoryLimit = limit }
  async.setWorkerInit(function(state) state.born = true end)
  async.define("hog", hog)
  async.define("mark", function() async.state.mark = "set"; return async.state.born end)
  async.define("peek", function() return async.state.mark, async.state.born end)
  async.define("sum", function(n) local s = 0; for i = 1, n do s = s + i end; return s end)
  local r
  async.call(function(b) r = b end, "mark")
  drain(async)
  eq(r, true, "init ran before the first job")
  for round = 1, 3 do
    local err, ok1
    async.call({ success = function() ok1 = true end, error = function(e) err = e end }, "hog")
    local sum
    async.call(function(s) sum = s end, "sum", 1000) -- queued behind the hog
    drain(async)
    ok(not ok1, "the hog cannot succeed")
    ok(type(err) == "string" and err:find("hog: out of memory", 1, true), "error names the job: " .. tostring(err))
    ok(err:find("memoryLimit of " .. limit .. " bytes", 1, true), "error names the limit: " .. err)
    eq(sum, 500500, "the next call runs on the fresh state (round " .. round .. ")")
    eq(async.stats().statesReplaced, round, "one replacement per out-of-memory job")
  end
  local mark, born
  async.call(function(m, b) mark, born = m, b end, "peek")
  drain(async)
  eq(mark, nil, "async.state starts empty in the fresh state")
  eq(born, true, "the worker init ran again")
  local s = async.stats()
  ok(s.memory > 0 and s.memory < limit, "stats().memory within the limit: " .. s.memory)
  eq(s.workers[1].memory, s.memory, "one worker holds it all")
  eq(s.failed, 3)
  async.shutdown()
end)

test("out of memory: a string, a too-large argument, a job that catches it", { needs = { "memoryLimit" } }, function()
  local async = require "async"
  async.load { workers = 1, memoryLimit = 8 * MiB }
  async.define("grow", function() local s = "x"; while true do s = s .. s end end)
  async.define("id", function(t) return #t end)
  async.define("catch", function()
    local okk, e = pcall(function() local t = {}; for i = 1, 1e9 do t[i] = i end end)
    return okk, tostring(e)
  end)
  local errs = {}
  local function onerr(e) errs[#errs + 1] = e end
  async.call({ error = onerr }, "grow")
  -- 2,000,000 entries decode to more than 8 MiB in the worker (not in the
  -- game). Sized once: LuaJIT grows a big array with mremap, which TSan does
  -- not follow, and it would then blame the next owner of those pages.
  local big = require("table.new")(2000000, 0)
  for i = 1, 2000000 do big[i] = i + 0.5 end
  async.call({ error = onerr }, "id", big)
  local caught, msg
  async.call(function(a, b) caught, msg = a, b end, "catch")
  drain(async)
  eq(#errs, 2, "two failures")
  ok(errs[1]:find("grow: out of memory", 1, true), errs[1])
  ok(errs[2]:find("id: out of memory", 1, true), errs[2])
  eq(caught, false, "the job saw its own pcall fail")
  ok(msg:find("not enough memory", 1, true), msg)
  eq(async.stats().statesReplaced, 3, "a state that hit the limit is replaced even if the job recovered")
  local n
  async.call(function(x) n = x end, "id", { 1, 2, 3 })
  drain(async)
  eq(n, 3, "still working")
  async.shutdown()
end)

test("out of memory inside an awaited job, on one worker and on two", { needs = { "memoryLimit" } }, function()
  for _, workers in ipairs({ 1, 2 }) do
    local async = require "async"
    async.load { workers = workers, memoryLimit = 16 * MiB }
    async.define("hog", hog)
    async.define("small", function(x) return x end)
    async.define("outer", function()
      local okk, e = pcall(async.await, "hog")
      local okAll, eAll = pcall(async.awaitAll, { { "small", 1 }, { "hog" }, { "small", 2 } })
      return okk, e, okAll, eAll
    end)
    local okk, e, okAll, eAll
    async.call(function(a, b, c, d) okk, e, okAll, eAll = a, b, c, d end, "outer")
    drain(async)
    eq(okk, false, "await raised")
    ok(tostring(e):find("out of memory", 1, true), tostring(e))
    eq(okAll, false, "awaitAll raised")
    ok(tostring(eAll):find("hog: out of memory", 1, true), tostring(eAll))
    ok(async.stats().statesReplaced >= 1, "replaced after the outer job")
    local r
    async.define("one", function() return 1 end)
    async.call(function(x) r = x end, "one")
    drain(async)
    eq(r, 1)
    async.shutdown()
    package.loaded.async = nil
  end
end)

test("a memoryLimit too small to start a worker fails every job with a clear error", { needs = { "memoryLimit" } }, function()
  local async = require "async"
  async.load { workers = 1, memoryLimit = 4096 }
  async.define("one", function() return 1 end)
  local errs = {}
  for _ = 1, 3 do async.call({ error = function(e) errs[#errs + 1] = e end }, "one") end
  drain(async)
  eq(#errs, 3, "every call failed, none lost")
  ok(errs[1]:find("memoryLimit is too small", 1, true), errs[1])
  async.shutdown()
end)

test("a hook a job leaves behind does not break the worker", function()
  local async = require "async"
  async.load(1)
  -- A line hook, set and returned from on one line: it fires from the
  -- next line run in this state, which is the next job's.
  async.define("hook", function() debug.sethook(function() error("hooked") end, "l"); return "set" end)
  async.define("one", function() return 1 end)
  local a, b
  async.call(function(x) a = x end, "hook")
  async.call(function(x) b = x end, "one")
  drain(async)
  eq(a, "set")
  eq(b, 1, "the next job runs without the hook")
  async.shutdown()
end)

-- A flag the game sets and a job polls: plain memory through the FFI.
local function newFlag()
  local flag = ffi.new("int[1]")
  return flag, tonumber(ffi.cast("intptr_t", flag))
end

local function spinUntil(addr)
  local ffi = require "ffi"
  local p = ffi.cast("volatile int *", addr)
  local deadline = os.time() + 30 -- never hang the suite
  local spins = 0
  while p[0] == 0 and os.time() < deadline do spins = spins + 1 end
  return p[0]
end

-- Loads `workers`, starts a job that spins until the game sets its flag,
-- and waits until it runs. Returns async, the flag and a function that
-- returns the job's result once delivered (nil before).
local function startLong(workers)
  local async = require "async"
  async.load(workers)
  async.define("spin", spinUntil)
  async.define("id", function(x) return x end)
  local flag, addr = newFlag()
  local long
  async.call(function(v) long = v end, "spin", addr)
  waitFor(async, function() return async.stats().running == 1 end, "the long job to start")
  return async, flag, function() return long end
end

test("a long-running job occupies its worker only; the others go on", function()
  local async, flag, long = startLong(2)
  local n = 0
  for _ = 1, 200 do async.call(function(x) n = n + x end, "id", 1) end
  waitFor(async, function() return n == 200 end, "the short calls")
  eq(long(), nil, "the long job is still running")
  eq(async.stats().running, 1)
  flag[0] = 7
  waitFor(async, function() return long() ~= nil end, "the long job")
  eq(long(), 7)
  async.shutdown()
end)

test("a long-running job on the only worker: addWorker restores throughput", function()
  local async, flag, long = startLong(1)
  local n = 0
  for _ = 1, 50 do async.call(function(x) n = n + x end, "id", 1) end
  async.addWorker()
  waitFor(async, function() return n == 50 end, "the short calls on the added worker")
  eq(long(), nil, "the long job is still running")
  flag[0] = 1
  waitFor(async, function() return long() ~= nil end, "the long job")
  async.shutdown()
end)

test("cancelling a running job asks it to stop; async.cancelled() tells it", function()
  local async = require "async"
  async.load(2)
  -- Polls async.cancelled(), and gives up after 30 s so the suite never hangs.
  async.define("search", function(tag)
    local deadline = os.time() + 30
    local n = 0
    while not async.cancelled() and os.time() < deadline do n = n + 1 end
    return tag, async.cancelled()
  end)
  async.define("sub", function() return async.await("search", "inner") end)
  async.define("id", function(...) return ... end)
  local got = {}
  local function cb(tag, stopped) got[tag] = stopped end
  local h = async.call(cb, "search", "handle")
  async.call({ key = "unit", success = cb, cancelled = function() got.old = "cancelled" end }, "search", "old")
  waitFor(async, function() return async.stats().running == 2 end, "both jobs to start")
  eq(h:cancel(), false, "a running call is not cancelled")
  waitFor(async, function() return got.handle ~= nil end, "the cancelled job to stop")
  eq(got.handle, true, "the job saw async.cancelled()")
  -- a newer call with the same key asks the running one to stop
  local newer
  async.call({ key = "unit", success = function(x) newer = x end }, "id", "new")
  -- (it polls for 30 s unless told to stop; superseded, it ends as cancelled)
  waitFor(async, function() return got.old ~= nil end, "the superseded job to stop")
  eq(got.old, "cancelled", "a superseded running call ends as cancelled")
  drain(async)
  eq(newer, "new", "the newer call ran")
  -- an awaited job sees its caller's cancellation
  local h2 = async.call(function(tag, stopped) got.sub = stopped end, "sub")
  waitFor(async, function() return async.stats().running >= 1 end, "the awaiting job to start")
  h2:cancel()
  waitFor(async, function() return got.sub ~= nil end, "the awaited job to stop")
  eq(got.sub, true)
  -- a job nobody cancelled reads false
  async.define("plain", function() return async.cancelled() end)
  local plain
  async.call(function(v) plain = v end, "plain")
  drain(async)
  eq(plain, false)
  async.shutdown()
end)

test("shutdown waits for a running job that never checks cancelled() and delivers it", function()
  local async = require "async"
  async.load(1)
  async.define("busy", function(s)
    local t = os.time() + s
    while os.time() < t do end
    return "finished"
  end)
  local r
  async.call(function(v) r = v end, "busy", 1)
  while async.stats().running == 0 do end
  async.shutdown()
  eq(r, "finished")
end)

test("update() called from inside a callback delivers the rest, each once", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(x) return x end)
  local seen, order = {}, {}
  local nested = 0
  local function cb(x)
    seen[x] = (seen[x] or 0) + 1
    order[#order + 1] = x
    if x % 5 == 0 then nested = nested + async.update() end
    if x == 7 then nested = nested + async.update { budget = 0 } end
  end
  for i = 1, 40 do async.call(cb, "id", i) end
  -- Waits without update(): delivered one by one as a slow worker (ASan)
  -- finishes them, the nested updates would find nothing left to deliver.
  local deadline = os.time() + 30
  while async.stats().ready < 40 do
    if os.time() > deadline then error("timed out waiting for the 40 results") end
  end
  async.update()
  drain(async)
  for i = 1, 40 do eq(seen[i], 1, "callback " .. i .. " ran once") end
  ok(nested > 0, "the nested update delivered results itself")
  -- inside update(), calls keep their order: the single worker ran them in order
  for i = 1, 40 do eq(order[i], i, "order") end
  async.shutdown()
end)

test("shutdown() called from inside a callback still delivers every call", function()
  local async = require "async"
  async.load(2)
  async.define("id", function(x) return x end)
  local seen, count = {}, 0
  local function cb(i)
    return {
      success = function()
        seen[i] = (seen[i] or 0) + 1
        count = count + 1
        if count == 10 then async.shutdown() end
      end,
      cancelled = function() seen[i] = (seen[i] or 0) + 1 end,
    }
  end
  for i = 1, 100 do async.call(cb(i), "id", i) end
  waitFor(async, function() return not async.isLoaded() end, "the shutdown from a callback")
  for i = 1, 100 do eq(seen[i], 1, "callback " .. i .. " ran once") end
  raises("call async.load() first", async.update)
end)
