-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_lifecycle.lua: in plain LuaJIT: one call lifecycle (every way a
-- call ends releases what it held), the lifecycle's edge cases, and the Async 1.1 idioms that must keep
-- working. LÖVE-object cases are in test/love/integration.
local ffi = require "ffi"

-- Runs fn with an instruction-count watchdog: a loop that never ends fails
-- instead of hanging the suite.
local function watchdog(fn, ...)
  jit.off()
  debug.sethook(function() error("watchdog: still running after 5e7 instructions", 2) end, "", 5e7)
  local res = { pcall(fn, ...) }
  debug.sethook()
  jit.on()
  return unpack(res)
end

-- One huge call does not pin its memory in the record.
test("a record does not keep a huge call's buffers", { needs = { "plainLuajit" } }, function()
  local async = require "async"
  async.load(1)
  async.define("len", function(s) return #s end)
  async.define("gc", function() collectgarbage(); collectgarbage(); return true end)
  do
    local s = string.rep("y", 96 * 1024 * 1024)
    local n
    async.call(function(x) n = x end, "len", s)
    drain(async)
    eq(n, #s)
  end
  async.call(nil, "gc")
  drain(async)
  -- Counted, not the process's RSS, which moves with the allocator and
  -- whatever else the machine runs: the idle records' argument and result
  -- buffers, and the worker's Lua heap once the string is collected.
  local st = async.stats()
  ok(st.recordBytes < 1024 * 1024, ("the records keep %.0f MB after the call ended"):format(st.recordBytes / 2 ^ 20))
  ok(st.memory < 48 * 1024 * 1024, ("the worker keeps %.0f MB after the call ended"):format(st.memory / 2 ^ 20))
  async.shutdown()
end)

-- A burst's call records go back once it is over; handles to them stay
-- safe, also once a later call reuses the slot.
test("a burst's call records are freed after it, and its handles still answer", { needs = { "callRecords" } }, function()
  local async = require "async"
  async.load(2)
  async.define("id", function(x) return x end)
  local N, heard = 20000, 0
  local old = {}
  for i = 1, N do
    local h = async.call(function() heard = heard + 1 end, "id", i)
    if i % 500 == 0 then old[#old + 1] = h end
  end
  local peak = async.stats().records -- nothing delivered yet: one record a call
  ok(peak >= N, "records during the burst: " .. peak)
  waitFor(async, function() return heard == N end, "the burst's callbacks")
  async.update()
  local s = async.stats()
  ok(s.records <= N / 10, ("%d of the burst's %d records kept after it"):format(s.records, peak))
  ok(s.recordBytes < 256 * 1024, "bytes idle records keep: " .. s.recordBytes)
  for _, h in ipairs(old) do
    eq(h:status(), "done", "a delivered call's handle")
    eq(h:cancel(), false, "cancel() of a delivered call")
  end
  -- A second burst, held queued, reuses the freed slots: the old handles
  -- must not reach the calls now there.
  async.ensure.exactly(0)
  local again, fresh = 0, {}
  for i = 1, N do fresh[i] = async.call(function() again = again + 1 end, "id", i) end
  for _, h in ipairs(old) do
    eq(h:status(), "done", "an old handle once its slot is reused")
    eq(h:cancel(), false, "cancel() through an old handle")
  end
  eq(fresh[N]:status(), "queued", "a new call's handle")
  async.ensure.exactly(2)
  waitFor(async, function() return again == N end, "the second burst's callbacks (none cancelled by an old handle)")
  eq(fresh[1]:status(), "done", "a new handle once delivered")
  async.shutdown()
end)

-- Latest request wins, also against a call that already runs.
test("a superseded running call never delivers success after the newer call", function()
  local async = require "async"
  async.load(2)
  async.define("spin", function(tag)
    local deadline = os.time() + 20
    while not async.cancelled() and os.time() < deadline do end
    return tag
  end)
  async.define("id", function(...) return ... end)
  local log = {}
  async.call({ key = "k", success = function(x) log[#log + 1] = "success " .. x end,
               cancelled = function() log[#log + 1] = "cancelled old" end }, "spin", "old")
  waitFor(async, function() return async.stats().running == 1 end, "the old call to run")
  async.call({ key = "k", success = function(x) log[#log + 1] = "success " .. x end }, "id", "new")
  drain(async)
  local s = table.concat(log, ", ")
  ok(not s:find("success old", 1, true), "the superseded call's success ran: " .. s)
  ok(s:find("cancelled old", 1, true), "the superseded call ends as cancelled: " .. s)
  ok(s:find("success new", 1, true), "the newer call delivered: " .. s)
  eq(async.stats().cancelled, 1, "counted as cancelled")
  -- The key is free again once both ended: a third call is not superseded.
  local third
  async.call({ key = "k", success = function(x) third = x end }, "id", "third")
  drain(async)
  eq(third, "third")
  async.shutdown()
end)

-- Deferred callbacks: one that raises leaves the rest; shutdown runs them.
test("deferred callbacks survive one that raises, and shutdown delivers them", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  local ran = {}
  async.map(function() error("the first raises") end, "id", {})
  async.map(function() ran.second = true end, "id", {})
  local okk, err = pcall(async.update)
  eq(okk, false, "the raise reaches update")
  ok(tostring(err):find("the first raises", 1, true), tostring(err))
  async.update()
  eq(ran.second, true, "the second empty map's callback ran at the next update")
  -- Not yet delivered when shutdown() is called: shutdown delivers them.
  async.map(function() ran.empty = true end, "id", {})
  local g = async.map({ cancelled = function() ran.cancelled = true end }, "id", { 1, 2, 3 })
  g:cancel()
  async.shutdown()
  eq(ran.empty, true, "an empty map's callback ran in shutdown")
  eq(ran.cancelled, true, "a group's cancelled callback ran in shutdown")
end)

-- Calls made while shutdown() delivers end as cancelled; shutdown never raises for them.
test("a callback or a coroutine that calls during shutdown does not make it raise", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  local log = {}
  async.call(function()
    local okk, h = pcall(async.call, { success = function() log.ran = true end,
                                       cancelled = function() log.cancelled = true end }, "id", 1)
    log.ok, log.h = okk, h
  end, "id", 0)
  settle(async) -- its callback runs in shutdown only if the call ran
  local reached
  async.go(function()
    async.await("id", 1)
    async.await("id", 2) -- made during shutdown: cancelled, the coroutine stays suspended
    reached = true
  end)
  local okk, err = pcall(async.shutdown)
  ok(okk, "shutdown raised: " .. tostring(err))
  eq(log.ok, true, "the call made in a callback did not raise")
  eq(log.cancelled, true, "it was delivered as cancelled")
  eq(log.ran, nil, "it did not run")
  eq(log.h:status(), "done")
  eq(reached, nil)
  ok(not async.isLoaded(), "shut down")
  async.load(1) -- not half loaded: a new pool starts
  async.shutdown()
end)

-- A NaN key, or a callback table whose __index raises: a clear error, nothing leaked.
test("a NaN key or a raising callback table leaks no record and lends no buffer", { needs = { "buffers" } }, function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  local b = async.newBuffer(16)
  raises("the callback's key is NaN", async.call, { key = 0 / 0 }, "id", b)
  eq(b:isLent(), false, "the buffer is not left lent")
  local cb = setmetatable({}, { __index = function(_, k) if k == "key" then error("index raised") end end })
  raises("index raised", async.call, cb, "id", b)
  eq(b:isLent(), false, "the buffer is not left lent")
  eq(async.stats().inflight, 0, "no record left in flight")
  local r
  async.call(function(x) r = x end, "id", b)
  drain(async)
  eq(r, b, "the buffer still goes to a job")
  async.shutdown()
end)

-- Buffer ownership: one call at a time, and a job cannot keep what it hands over.
test("a lent buffer cannot be lent again; a job cannot keep a buffer it returned", { needs = { "buffers" } }, function()
  local async = require "async"
  async.load(1)
  async.define("hold", function(b, flag)
    local f = require("ffi").cast("volatile int32_t *", flag:ptr())
    local deadline = os.time() + 20
    while f[0] == 0 and os.time() < deadline do end
    return true
  end)
  async.define("id", function(...) return ... end)
  local b, flag = async.newBuffer(64), async.newBuffer(4)
  -- A raw pointer taken before the loan lets the test release the job.
  local fp = ffi.cast("volatile int32_t *", flag:ptr())
  async.call(nil, "hold", b, flag)
  raises("lent to a call still in flight", async.call, nil, "id", b)
  eq(async.stats().inflight, 1, "the refused call left nothing")
  -- The same buffer twice in one call is one loan, not a conflict.
  local c = async.newBuffer(8)
  local got1, got2
  async.call(function(x, y) got1, got2 = x, y end, "id", c, c)
  fp[0] = 1
  drain(async)
  eq(got1, c); eq(got2, c)
  eq(b:isLent(), false)

  -- A buffer made in a job, kept in async.state and returned: the game's now.
  async.define("make", function() local nb = async.newBuffer(8); async.state.kept = nb; return nb end)
  async.define("poke", function()
    local p = async.state.kept:ptr("uint8_t")
    p[0] = 42
    return true
  end)
  local mine
  async.call(function(x) mine = x end, "make")
  drain(async)
  local perr, pok
  async.call({ success = function() pok = true end, error = function(e) perr = e end }, "poke")
  drain(async)
  eq(pok, nil, "the job wrote into a buffer it handed to the game")
  ok(tostring(perr):find("view of it ended", 1, true), tostring(perr))
  eq(mine:ptr("uint8_t")[0], 0, "the game's buffer is untouched")
  async.shutdown()
end)

-- A pool loaded inside a callback that shutdown() delivers stays loaded.
test("load() inside a callback that shutdown delivers keeps the new pool", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  async.call(function()
    async.shutdown()
    async.load(1)
  end, "id", 1)
  settle(async) -- its callback runs in shutdown only if the call ran
  async.shutdown()
  ok(async.isLoaded(), "the pool loaded in the callback was discarded")
  async.define("one", function() return 1 end)
  local r
  async.call(function(x) r = x end, "one")
  drain(async)
  eq(r, 1, "the new pool works")
  async.shutdown()
end)

-- The fallback printer when async.onerror is not a function.
-- portability: the Windows C runtime (msvcrt, under Wine) has the same
-- calls with a leading underscore and its own flag values.
local win = ffi.os == "Windows"
local function crt(name) return win and (' __asm__("_' .. name .. '")') or "" end
ffi.cdef(([[
int open(const char *path, int flags, int mode)%s;
int close(int fd)%s;
int dup(int fd)%s;
int dup2(int from, int to)%s;
]]):format(crt "open", crt "close", crt "dup", crt "dup2"))
-- O_WRONLY | O_CREAT | O_TRUNC, 0644 (msvcrt: _S_IREAD | _S_IWRITE)
local O_CREATE_TRUNC, MODE_RW = 577, 420
if win then O_CREATE_TRUNC, MODE_RW = 0x301, 0x180 end
test("with async.onerror not a function, stderr gets the message and the traceback", function()
  local async = require "async"
  async.load(1)
  async.define("boom", function() error("kaboom-8") end)
  async.onerror = false
  local path = os.tmpname()
  local fd = ffi.C.open(path, O_CREATE_TRUNC, MODE_RW)
  ok(fd >= 0, "open " .. path)
  io.stderr:flush()
  local saved = ffi.C.dup(2)
  ffi.C.dup2(fd, 2)
  local okk, err = pcall(function()
    async.call(nil, "boom")
    drain(async)
  end)
  ffi.C.dup2(saved, 2)
  ffi.C.close(saved)
  ffi.C.close(fd)
  local f = io.open(path)
  local out = f:read("*a")
  f:close()
  os.remove(path)
  ok(okk, tostring(err))
  ok(out:find("a job failed: [^\n]*kaboom%-8"), "the message on the first line: " .. out)
  ok(out:find("stack traceback", 1, true), "the traceback follows: " .. out)
  async.shutdown()
end)

-- What one job changes in its worker does not break the next.
test("collectgarbage('stop') and a broken environment metatable do not outlive the job", { needs = { "memoryLimit" } }, function()
  local async = require "async"
  async.load { workers = 1, memoryLimit = 48 * 1024 * 1024 }
  async.define("stopgc", function() collectgarbage("stop") return true end)
  -- About 200 MB of garbage in 1 MB pieces: fine with a collector, out of
  -- memory without one.
  async.define("churn", function()
    for _ = 1, 200 do local s = string.rep("x", 1024 * 1024 - 64) .. tostring(_) end
    return true
  end)
  async.define("breakenv", function()
    local mt = getmetatable(getfenv(1))
    mt.__index = nil
    mt.__newindex = function() error("no globals") end
    return true
  end)
  async.define("usemath", function() x = 1; return math.floor(2.5) + x end)
  local res = {}
  local function cb(name) return { success = function(v) res[name] = v end,
                                   error = function(e) res[name] = "error: " .. tostring(e) end } end
  async.call(cb("stopgc"), "stopgc")
  drain(async)
  async.call(cb("churn"), "churn")
  drain(async)
  eq(res.churn, true, "the next job ran with a collector")
  eq(async.stats().statesReplaced, 0, "no state ran out of memory")
  async.call(cb("breakenv"), "breakenv")
  drain(async)
  async.call(cb("usemath"), "usemath")
  drain(async)
  eq(res.usemath, 3, "the next job sees its globals")
  async.shutdown()
end)

-- parallelFor with an end it can never reach is refused, not looped on.
test("parallelFor refuses math.huge and 2^53", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  for _, last in ipairs({ math.huge, 2 ^ 53 }) do
    local okk, err = watchdog(async.parallelFor, nil, "id", 1, last, 1)
    eq(okk, false)
    ok(tostring(err):find("between -2^52 and 2^52", 1, true), tostring(err))
  end
  local okk, err = watchdog(async.parallelFor2D, nil, "id", 0, 0, math.huge, 1, 1, 1)
  eq(okk, false)
  ok(tostring(err):find("between -2^52 and 2^52", 1, true), tostring(err))
  eq(async.stats().inflight, 0)
  async.shutdown()
end)

-- The lifecycle itself: each way a call can end gives its buffer back and
-- leaves nothing in flight.
test("lifecycle: every terminal path gives the call's buffer back", { needs = { "buffers" } }, function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  async.define("boom", function() error("boom") end)
  async.define("spin", function()
    local deadline = os.time() + 20
    while not async.cancelled() and os.time() < deadline do end
  end)
  local b = async.newBuffer(8)
  local function settled(what)
    drain(async)
    eq(b:isLent(), false, what .. ": the buffer is the game's again")
    eq(async.stats().inflight, 0, what .. ": nothing in flight")
  end
  async.call(nil, "id", b); settled("delivered")
  async.call({ error = function() end }, "boom", b); settled("failed")
  -- A spinner holds the one worker, so the calls below stay queued; it is
  -- asked to stop (handle:cancel on a running call) before settling.
  local spinner = async.call(nil, "spin")
  waitFor(async, function() return async.stats().running == 1 end, "the spinner")
  local h = async.call(nil, "id", b)
  eq(h:cancel(), true)
  spinner:cancel(); settled("cancelled by handle")
  spinner = async.call(nil, "spin")
  waitFor(async, function() return async.stats().running == 1 end, "the spinner")
  local old = async.call({ key = "q" }, "id", b)
  async.call({ key = "q" }, "id", 1)
  eq(old:status(), "cancelled", "superseded while queued")
  spinner:cancel(); settled("superseded while queued")
  raises("is a function", async.call, nil, "id", b, print); settled("refused at encode")
  async.setWorkerInit(function() error("init fails") end)
  async.call({ error = function() end }, "id", b); settled("worker init failed")
  async.setWorkerInit(nil)
  async.undefine("id")
  async.define("id", function(...) return ... end)
  async.call(function()
    async.call(nil, "id", b) -- made while shutdown delivers: cancelled
  end, "id", 1)
  async.shutdown()
  eq(b:isLent(), false, "made during shutdown: the buffer is the game's again")
end)

-- Async 1.1 idioms.
test("idiom: async.call and define's shorthands taken early keep working across shutdown/load", function()
  local async = require "async"
  local call = async.call
  async.load(1)
  local sq = async.define("sq", function(x) return x * x end)
  local r = {}
  call(function(x) r[#r + 1] = x end, "sq", 3)
  drain(async)
  async.shutdown()
  async.load(1)
  async.define("sq", function(x) return x * x end)
  call(function(x) r[#r + 1] = x end, "sq", 4)
  sq(function(x) r[#r + 1] = x end, 5)
  drain(async)
  eq(r[1], 9); eq(r[2], 16); eq(r[3], 25)
  raises("no function named 'nope' is defined", call, nil, "nope")
  async.shutdown()
  raises("call async.load() first", call, nil, "sq")
end)

test("idiom: fractional worker counts are floored; load above the maximum clamps", function()
  local async = require "async"
  async.load(2.7)
  eq(async.getWorkerCount(), 2, "load(2.7)")
  async.ensure.atLeast(3.9)
  eq(async.getWorkerCount(), 3, "ensure.atLeast(3.9)")
  async.ensure.exactly(1.5)
  eq(async.getWorkerCount(), 1, "ensure.exactly(1.5)")
  async.shutdown()
  async.load(100000)
  local n = async.getWorkerCount()
  ok(n >= 1 and n < 100000, "clamped to the pool's maximum: " .. n)
  -- ensure.atLeast above the maximum starts the maximum and warns (it
  -- raised on the thread backend, which refused the whole request).
  async.ensure.exactly(1)
  async.ensure.atLeast(100000)
  eq(async.getWorkerCount(), n, "ensure.atLeast(100000) starts the maximum")
  async.shutdown()
end)

test("idiom: {error = error} raises the job's message with its traceback", function()
  local async = require "async"
  async.load(1)
  async.define("boom", function() error("kaboom-e") end)
  async.call({ error = error }, "boom")
  local okk, err
  local deadline = os.time() + 20
  repeat okk, err = pcall(async.update) until not okk or os.time() > deadline
  eq(okk, false)
  ok(tostring(err):find("kaboom-e", 1, true), tostring(err))
  ok(tostring(err):find("stack traceback", 1, true), "traceback appended: " .. tostring(err))
  -- The message as the job raised it: no position of the library's own in
  -- front (the thread backend's error(e) added "async_thread_calls.lua:N: ").
  ok(tostring(err):find("^[^\n]*test_lifecycle%.lua:%d+: kaboom%-e"), "the job's message first: " .. tostring(err))
  ok(not tostring(err):find("async_", 1, true), "no library file named: " .. tostring(err))
  local printed
  async.call({ error = function(...) printed = select("#", ...) end }, "boom")
  drain(async)
  eq(printed, 2, "other handlers get (message, traceback)")
  async.shutdown()
end)

test("idiom: share and setWorkerInit keep the compiled definitions", function()
  local async = require "async"
  async.load(1)
  local n = 0
  async.define("count", function() n = n + 1; return n end)
  local got = {}
  local function cb(x) got[#got + 1] = x end
  async.call(cb, "count"); drain(async)
  async.call(cb, "count"); drain(async)
  async.share("x", 1)
  async.call(cb, "count"); drain(async)
  async.setWorkerInit(function() end)
  async.call(cb, "count"); drain(async)
  eq(table.concat(got, ","), "1,2,3,4", "the compiled function (and its upvalue) survived")
  async.define("count", function() n = n + 1; return n end)
  async.call(cb, "count"); drain(async)
  eq(got[5], 1, "a new definition starts afresh")
  async.shutdown()
end)

-- A stand-in for LÖVE (plain Lua modules on package.path): worker states
-- run love.jitsetup as LÖVE's own threads do.
test("idiom: worker states run love.jitsetup where it exists", { needs = { "plainLuajit" } }, function()
  -- Stand-ins beside this file: love.lua (with love.jitsetup), love/*.lua.
  local dir = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") .. "/fakelove"
  local oldpath = package.path
  package.path = dir .. "/?.lua;" .. package.path
  local oldlove = love -- inside LÖVE, the real one: put it back after
  love = {}
  local okk, err = pcall(function()
    local async = require "async"
    async.load(1)
    async.define("ran", function() return JITSETUP_RAN end)
    local r
    async.call({ success = function(x) r = x end, error = function(e) r = e end }, "ran")
    drain(async)
    async.shutdown()
    eq(r, true, "love.jitsetup ran in the worker")
  end)
  love = oldlove
  package.path = oldpath
  ok(okk, tostring(err))
end)

-- Async 1.1 accepted a second load() (a game whose love.load runs again to
-- restart a level): the pool stays, with its definitions and calls in
-- flight, and gets the worker count asked.
test("a second load keeps the pool, its definitions and calls in flight, and sets the worker count", function()
  local async = require "async"
  async.load(1)
  local sq = async.define("sq", function(x) return x * x end)
  async.share("scale", 3)
  local got = {}
  for i = 1, 20 do sq(function(v) got[#got + 1] = v end, i) end
  async.load(3)
  eq(async.isLoaded(), true)
  eq(async.getWorkerCount(), 3, "the worker count the second load asked")
  async.load() -- as a first load: one worker
  eq(async.getWorkerCount(), 1)
  async.define("scaled", function(x) return x * async.shared.scale end)
  sq(function(v) got[#got + 1] = v end, 100)
  async.call(function(v) got[#got + 1] = v end, "scaled", 2)
  drain(async)
  eq(#got, 22, "every call made before and after the second load delivered")
  local seen = {}
  for _, v in ipairs(got) do seen[v] = true end
  ok(seen[10000], "the definition made before the second load still runs")
  ok(seen[6], "the shared value published before it is still seen")
  async.shutdown()
end)

test("a second load with options a running pool cannot change raises; the pool goes on", function()
  local async = require "async"
  async.load { workers = 1 }
  raises("already loaded with other options", async.load, { workers = 1, pin = true })
  raises("already loaded with other options", async.load, { workers = 1, backend = async.backend == "native" and "thread" or "native" })
  async.load { workers = 2, pin = false }
  eq(async.getWorkerCount(), 2)
  async.shutdown()
end)
