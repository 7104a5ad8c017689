-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_gameloop.lua: the game-loop API: handles and cancel, "latest
-- request wins" keys, async.go/await, update(budget), stats.

local function fresh(n)
  local async = require "async"
  async.load(n)
  async.define("id", function(...) return ... end)
  return async
end

test("cancel removes a call that has not started", function()
  local async = fresh(0)
  local ran, heard = 0, 0
  local h = async.call(function() ran = ran + 1 end, "id", 1)
  eq(h:status(), "queued")
  eq(h:cancel(), true, "first cancel")
  eq(h:cancel(), false, "already cancelled")
  eq(h:status(), "cancelled")
  local h2 = async.call({ success = function() ran = ran + 1 end, cancelled = function() heard = heard + 1 end }, "id", 2)
  ok(h2:cancel())
  local h3 = async.call(function() ran = ran + 10 end, "id", 3) -- not cancelled
  async.ensure.exactly(1)
  drain(async)
  eq(ran, 10, "cancelled callbacks never ran, the other did")
  eq(heard, 1, "a table callback's `cancelled` is told")
  eq(async.stats().cancelled, 2)
  eq(h:status(), "done"); eq(h3:status(), "done")
  eq(h:cancel(), false, "a delivered call cannot be cancelled")
  -- A stale handle must not touch the record's next call.
  local later
  async.call(function(x) later = x end, "id", "reused")
  eq(h:cancel(), false)
  drain(async)
  eq(later, "reused")
  async.shutdown()
  eq(h3:cancel(), false, "a handle outliving its pool is harmless")
  raises("async call handle", h3.cancel, {})
end)

test("a call that started cannot be cancelled and completes", function()
  local async = fresh(1)
  async.define("spin", function(t) local e = os.clock() + t; while os.clock() < e do end; return "finished" end)
  local r
  local h = async.call(function(x) r = x end, "spin", 0.2)
  local t0 = os.time()
  while h:status() == "queued" and os.time() - t0 < 10 do end
  eq(h:status(), "running")
  eq(h:cancel(), false)
  drain(async)
  eq(r, "finished")
  async.shutdown()
end)

-- stats(): a call whose job has not started is queued, not running, even
-- once a worker has taken it (into its batch) behind a running job; so
-- waiting for `running` and then cancelling asks a running job to stop
-- instead of cancelling one that has not started.
test("stats(): only calls whose job runs count as running", function()
  local async = fresh(0) -- all queued first: the workers then take them in batches
  async.define("spin", function()
    local deadline = os.time() + 30
    while not async.cancelled() and os.time() < deadline do end
    return "stopped"
  end)
  local a = async.call(nil, "spin")
  local b = async.call(nil, "spin")
  local hs = {}
  for i = 1, 40 do hs[i] = async.call(nil, "id", i) end
  async.ensure.exactly(2)
  waitFor(async, function() return a:status() == "running" and b:status() == "running" end, "both spinners")
  local st = async.stats()
  eq(st.running, 2, "running")
  eq(st.queued, 40, "queued")
  for i = 1, 40 do eq(hs[i]:status(), "queued", "call " .. i) end
  eq(a:cancel(), false, "a running call is asked to stop, not cancelled")
  eq(b:cancel(), false, "a running call is asked to stop, not cancelled")
  drain(async)
  async.shutdown()
end)

test("latest request wins per key", function()
  local async = fresh(0)
  local got, cancelled = {}, {}
  local function cb(unit, n)
    return { key = unit, success = function(x) got[#got + 1] = x end,
             cancelled = function() cancelled[#cancelled + 1] = unit .. n end }
  end
  for n = 1, 3 do async.call(cb("u1", n), "id", "u1-path" .. n) end
  async.call(cb("u2", 1), "id", "u2-path1")
  async.call(cb(7, 1), "id", "seven") -- keys may be any value
  async.ensure.exactly(2)
  drain(async)
  table.sort(got)
  eq(#got, 3); eq(got[1], "seven"); eq(got[2], "u1-path3"); eq(got[3], "u2-path1")
  table.sort(cancelled)
  eq(#cancelled, 2); eq(cancelled[1], "u11"); eq(cancelled[2], "u12")
  -- once delivered, the key is free: a new call is not cancelled by anything
  async.call(cb("u1", 4), "id", "u1-path4")
  drain(async)
  eq(got[#got], "u1-path4")
  async.shutdown()
end)

test("async.go and async.await read top to bottom", function()
  local async = fresh(2)
  local add = async.define("add", function(a, b) return a + b end)
  async.define("fail", function(m) error(m) end)
  local result, caught
  async.go(function(x)
    local a = async.await("add", x, 2)
    local b = async.await(add, a, 3)
    result = b
    local okk, err = pcall(async.await, "fail", "bad path")
    caught = { okk, err }
  end, 1)
  drain(async)
  eq(result, 6)
  eq(caught[1], false)
  ok(tostring(caught[2]):find("bad path", 1, true) and tostring(caught[2]):find("stack traceback", 1, true),
     "the job's error with its traceback: " .. tostring(caught[2]))
  raises("inside async.go", async.await, "add", 1, 2)
  raises("expected a defined name", function() async.go(function() async.await(print) end) end)
  -- a table error value is raised as it is
  async.define("failt", function() error({ code = 3 }) end)
  local e
  async.go(function() local _, err = pcall(async.await, "failt"); e = err end)
  drain(async)
  eq(type(e), "table"); eq(e.code, 3)
  -- a coroutine that fails raises out of update(), with its traceback
  async.go(function() async.await("add", 1, 1); error("coroutine broke") end)
  local okk, err = pcall(drain, async)
  eq(okk, false)
  ok(tostring(err):find("coroutine broke", 1, true), tostring(err))
  async.shutdown()
end)

test("update(budget) leaves the rest for the next frame", function()
  local async = fresh(0)
  local n = 0
  -- The spin reads the monotonic wall clock, as the budget does: os.clock
  -- is the process's CPU time, which the workers' threads advance too (seen:
  -- 4 callbacks delivered within a 5 ms budget inside LÖVE).
  -- (On Windows, msvcrt's clock() behind os.clock is already wall time.)
  local ffi = require "ffi"
  local now = os.clock
  if ffi.os ~= "Windows" then
    pcall(ffi.cdef, "struct async_test_ts { long sec, nsec; }; int clock_gettime(int, struct async_test_ts *);")
    local ts = ffi.new("struct async_test_ts")
    now = function() ffi.C.clock_gettime(1, ts); return tonumber(ts.sec) + tonumber(ts.nsec) * 1e-9 end
  end
  local function cb() n = n + 1; local e = now() + 0.002; while now() < e do end end
  for i = 1, 40 do async.call(cb, "id", i) end
  async.ensure.exactly(2)
  local t0 = os.time()
  while async.stats().ready < 40 and os.time() - t0 < 10 do end
  eq(async.stats().ready, 40, "all finished, none delivered yet")
  eq(async.update { budget = 0 }, 1, "a zero budget delivers one callback")
  -- Each callback takes at least 2 ms, so a 5 ms budget stops after 3 at most.
  local d = async.update { budget = 0.005 }
  ok(d >= 1 and d <= 3, "budget 5 ms delivered " .. d)
  eq(n, 1 + d)
  local rest = 40 - n
  eq(async.update(), rest, "no budget delivers the rest")
  raises("budget must be a number of seconds >= 0", async.update, { budget = -1 })
  -- async.update(dt), common in games, is not a budget: it delivers everything.
  for i = 1, 5 do async.call(cb, "id", i) end
  local t1 = os.time()
  while async.stats().ready < 5 and os.time() - t1 < 10 do end
  eq(async.update(0.016), 5, "update(dt) delivers all")
  async.shutdown()
end)

test("stats: every counter, refilled in place", function()
  local async = fresh(2)
  local s = async.stats()
  -- Every counter docs/lua-api.md lists, on both backends: a HUD that formats
  -- them with %d must not meet a nil.
  for _, k in ipairs({ "queued", "running", "ready", "inflight", "completed", "failed", "cancelled", "steals", "workerCount",
                       "memory", "statesReplaced", "recordBytes", "records", "channels" }) do
    eq(type(s[k]), "number", k)
  end
  eq(s.workerCount, 2)
  async.define("f", function() error("x") end)
  async.onerror = function() end
  for i = 1, 20 do async.call(nil, "id", i) end
  async.call(nil, "f")
  drain(async)
  local s2 = async.stats(s)
  ok(s2 == s, "the table passed in is reused")
  eq(s.completed, 20); eq(s.failed, 1); eq(s.inflight, 0)
  local w = s.workers[1]
  eq(type(w.busy), "number"); eq(type(w.idle), "number"); eq(type(w.jobs), "number"); eq(type(w.steals), "number")
  local w1 = s.workers[1]
  async.stats(s)
  ok(s.workers[1] == w1, "worker subtables are reused too")
  async.shutdown()
end)
