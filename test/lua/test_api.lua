-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_api.lua: every function of the façade and every rule of its behaviour
-- (docs/lua-api.md), in plain LuaJIT.

local function fresh(n)
  local async = require "async"
  async.load(n or 2)
  return async
end

test("load, call, update, shutdown, load again", function()
  local async = require "async"
  raises("call async.load() first", async.call, nil, "x")
  raises("call async.load() first", async.update)
  raises("call async.load() first", async.getWorkerCount)
  raises("expected a number >= 0", async.load, -1)
  async.load()
  eq(async.getWorkerCount(), 1, "default workers")
  raises("already loaded with other options", async.load, { workers = 1, memoryLimit = 1e7 })
  local add = async.define("add", function(a, b) return a + b end)
  eq(type(add), "function", "define returns the shorthand")
  local got = {}
  add(function(r) got[#got + 1] = r end, 1, 2)
  async.call(function(r) got[#got + 1] = r end, "add", 3, 4)
  drain(async)
  table.sort(got)
  eq(got[1], 3); eq(got[2], 7)
  async.shutdown()
  ok(not async.isLoaded(), "unloaded")
  async.shutdown() -- harmless twice
  async.load(1)
  async.define("one", function() return 1 end)
  local r
  async.call(function(x) r = x end, "one")
  drain(async)
  eq(r, 1, "a fresh pool after reload")
  async.shutdown()
end)

test("callbacks: function, {success, error}, nil", function()
  local async = fresh()
  async.define("echo", function(...) return ... end)
  async.define("boom", function() error("kaboom") end)
  local a, b, c, e1, tb
  async.call(function(x) a = x end, "echo", "A")
  async.call({ success = function(x) b = x end, error = function() error("not expected") end }, "echo", "B")
  async.call(nil, "echo", "ignored")
  async.call({ error = function(m, t) e1, tb = m, t end }, "boom")
  async.call({ success = function(x) c = x end }, "echo", "C")
  drain(async)
  eq(a, "A"); eq(b, "B"); eq(c, "C")
  ok(tostring(e1):find("kaboom", 1, true), "error message: " .. tostring(e1))
  ok(tostring(tb):find("stack traceback", 1, true), "traceback given: " .. tostring(tb))
  raises("the callback must be a function", async.call, 42, "echo")
  async.shutdown()
end)

test("values cross both ways exactly", function()
  local async = fresh()
  async.define("echo", function(...) return select("#", ...), ... end)
  local function roundtrip(...)
    local got
    async.call(function(...) got = { n = select("#", ...), ... } end, "echo", ...)
    drain(async)
    return got
  end
  local r = roundtrip(nil, 1, nil, nil)
  eq(r[1], 4, "count seen by the worker"); eq(r.n, 5, "count seen back")
  eq(r[2], nil); eq(r[3], 1); eq(r[4], nil); eq(r[5], nil)
  r = roundtrip(true, false)
  eq(r[2], true); eq(r[3], false)
  local nums = { 0, -0.0, 1 / 0, -1 / 0, 0 / 0, 2 ^ 53, 2 ^ 53 + 2, -(2 ^ 53), 0.1, 1e308, 5e-324, -123456789012345, 2 ^ 63, 3.5 }
  r = roundtrip(unpack(nums))
  for i, x in ipairs(nums) do
    local y = r[i + 1]
    if x ~= x then ok(y ~= y, "NaN stays NaN")
    else
      eq(y, x, "number " .. i)
      eq(1 / y, 1 / x, "sign of number " .. i) -- tells -0 from 0
    end
  end
  local big = string.rep("a\0b", 400000)
  r = roundtrip("", "\0", big)
  eq(r[2], ""); eq(r[3], "\0"); eq(#r[4], #big); ok(r[4] == big, "1.2 MB string with zero bytes")
  local t = { 1, 2, nil, 4, x = { y = { z = "deep" } }, [true] = "t", [false] = "f", [2.5] = "float", [-1] = "neg" }
  r = roundtrip(t)
  local u = r[2]
  eq(u[1], 1); eq(u[2], 2); eq(u[3], nil); eq(u[4], 4)
  eq(u.x.y.z, "deep"); eq(u[true], "t"); eq(u[false], "f"); eq(u[2.5], "float"); eq(u[-1], "neg")
  async.shutdown()
end)

test("shared and cyclic tables keep their shape", { needs = { "cycles" } }, function()
  local async = fresh()
  async.define("shape", function(t)
    -- seen in the worker: the cycle and the sharing
    return t.self == t, t.a == t.b, t
  end)
  local shared = { "s" }
  local t = { a = shared, b = shared }
  t.self = t
  local cyc, same, back
  async.call(function(x, y, z) cyc, same, back = x, y, z end, "shape", t)
  drain(async)
  eq(cyc, true, "cycle in the worker"); eq(same, true, "sharing in the worker")
  ok(back.self == back, "cycle back"); ok(back.a == back.b and back.a[1] == "s", "sharing back")
  async.shutdown()
end)

test("refused values raise, name position and type, and queue nothing", function()
  local async = fresh()
  async.define("id", function(...) return ... end)
  local before = async.stats().inflight
  local e = raises("argument 2 is a function", async.call, nil, "id", 1, print)
  ok(e:find("async.call('id')", 1, true), "names the function called: " .. e)
  raises("argument 1 is a thread", async.call, nil, "id", coroutine.create(function() end))
  raises("argument 1 is a userdata that is neither a LÖVE object nor an async buffer", async.call, nil, "id", io.stdout)
  raises("argument 3 (at .pos.f) is a function", async.call, nil, "id", 1, 2, { pos = { f = print } })
  raises("argument 1 (at [2]) is a function", async.call, nil, "id", { 1, print })
  local deep = {}
  local cur = deep
  for _ = 1, async.maxDepth + 5 do cur.t = {}; cur = cur.t end
  raises("nested deeper than " .. async.maxDepth, async.call, nil, "id", deep)
  eq(async.stats().inflight, before, "nothing queued")
  -- results that cannot come back fail through the error path
  async.define("retfn", function() return function() end end)
  local msg
  async.call({ error = function(m) msg = m end }, "retfn")
  drain(async)
  ok(tostring(msg):find("result 1 is a function", 1, true), "result refused: " .. tostring(msg))
  async.shutdown()
end)

test("upvalues are copied, or define raises naming them", function()
  local async = fresh()
  local k, cfg = 3, { scale = 2 }
  async.define("up", function(x) return x * k * cfg.scale end)
  k = 100 -- a snapshot: later changes are not seen
  local r
  async.call(function(x) r = x end, "up", 5)
  drain(async)
  eq(r, 30)
  local fn = function() end
  raises("upvalue 'fn' is a function", async.define, "bad", function() return fn() end)
  raises("upvalue 'cfg2' (at .f) is a function", async.define, "bad2", (function()
    local cfg2 = { f = print }
    return function() return cfg2 end
  end)())
  raises("a C function", async.define, "c", print)
  raises("expected a function", async.define, "n", 42)
  raises("the name must be a string", async.define, 1, function() end)
  async.shutdown()
end)

test("errors: traceback, non-string errors, onerror, never silent", function()
  local async = fresh()
  async.define("fail", function(v) error(v) end)
  async.define("failfn", function() error(function() end) end)
  local seen = {}
  function async.onerror(m, tb) seen[#seen + 1] = { m = m, tb = tb } end
  async.call(function() error("must not run") end, "fail", "plain callback")
  async.call(nil, "fail", "no callback")
  local tm
  async.call({ error = function(m) tm = m end }, "fail", { code = 7 })
  local fm
  async.call({ error = function(m) fm = m end }, "failfn")
  drain(async)
  eq(#seen, 2, "both failures reached onerror")
  for _, s in ipairs(seen) do ok(s.tb:find("stack traceback", 1, true), "traceback") end
  eq(type(tm), "table", "a table error value arrives as a table"); eq(tm.code, 7)
  ok(tostring(fm):find("error object is a function value", 1, true), tostring(fm))
  -- the default onerror writes to stderr
  async.onerror = nil
  package.loaded.async = nil
  async.shutdown()
  async = require "async"
  async.load(1)
  async.define("fail", function() error("to stderr") end)
  local realstderr, written = io.stderr, {}
  io.stderr = { write = function(_, ...) for _, s in ipairs({ ... }) do written[#written + 1] = s end end }
  local okk, err = pcall(function()
    async.call(function() end, "fail")
    drain(async)
  end)
  io.stderr = realstderr
  ok(okk, tostring(err))
  ok(table.concat(written):find("to stderr", 1, true), "default onerror printed: " .. table.concat(written))
  async.shutdown()
end)

test("a callback that raises loses no other result", function()
  local async = fresh(1)
  async.define("id", function(x) return x end)
  local got = {}
  for i = 1, 10 do
    async.call(function(x)
      got[#got + 1] = x
      if x == 3 then error("callback error") end
    end, "id", i)
  end
  while async.stats().completed + async.stats().failed < 3 do
    local okk, err = pcall(async.update)
    if not okk then ok(tostring(err):find("callback error", 1, true), tostring(err)); break end
  end
  drain(async)
  table.sort(got)
  eq(#got, 10, "every callback ran once")
  for i = 1, 10 do eq(got[i], i) end
  async.shutdown()
end)

test("redefine and undefine: earlier calls keep their definition", function()
  local async = fresh(0) -- no workers: calls wait in the queue
  async.define("v", function() return "old" end)
  local r = {}
  async.call(function(x) r[#r + 1] = "1:" .. x end, "v")
  async.define("v", function() return "new" end)
  async.call(function(x) r[#r + 1] = "2:" .. x end, "v")
  async.undefine("v")
  raises("no function named 'v' is defined", async.call, nil, "v")
  raises("no function named 'v' is defined", async.undefine, "v")
  async.ensure.exactly(1)
  drain(async)
  table.sort(r)
  eq(r[1], "1:old"); eq(r[2], "2:new")
  local sh = async.define("w", function() return 1 end)
  async.undefine("w")
  raises("no function named 'w'", sh, nil)
  async.shutdown()
end)

test("each call gets a fresh global table", function()
  local async = fresh(1)
  async.define("setg", function() leaked = (leaked or 0) + 1; return leaked, math.floor(2.5) end)
  local a, b, m
  async.call(function(x, y) a, m = x, y end, "setg")
  drain(async)
  async.call(function(x) b = x end, "setg")
  drain(async)
  eq(a, 1); eq(b, 1, "the second call did not see the first's global"); eq(m, 2, "reads fall through to _G")
  eq(leaked, nil, "nothing leaked into the main state")
  async.shutdown()
end)

test("worker management reaches the asked count and loses no call", function()
  local async = fresh(2)
  eq(async.ensure.atLeast(4), async.ensure, "ensure chains")
  eq(async.getWorkerCount(), 4)
  async.ensure.atMost(1)
  eq(async.getWorkerCount(), 1, "atMost reaches n in one call")
  async.ensure.exactly(3).atMost(2).atLeast(2)
  eq(async.getWorkerCount(), 2)
  async.stopWorkers(10)
  eq(async.getWorkerCount(), 0, "never below zero")
  async.addWorker()
  sleep(0.05)
  eq(async.getWorkerCount(), 1, "no stale stop request killed the new worker")
  raises("expected a number >= 0", async.stopWorkers, -1)
  raises("expected a number >= 0", async.ensure.exactly, "x")
  -- stop and add while calls are queued
  async.define("sq", function(x) local s = 0; for i = 1, 2000 do s = s + i end; return x * x end)
  local sum, n = 0, 0
  for i = 1, 3000 do
    async.call(function(v) sum = sum + v; n = n + 1 end, "sq", i)
    if i % 500 == 0 then async.stopWorkers(1); async.addWorker(); async.update() end
  end
  async.stopWorkers(5)
  async.ensure.exactly(2)
  drain(async)
  eq(n, 3000, "every callback once")
  eq(sum, 3000 * 3001 * 6001 / 6)
  async.shutdown()
end)

test("shutdown cancels queued calls, waits for running ones and delivers every callback", function()
  local async = fresh(1)
  async.define("slow", function(x) local t = os.clock() + 0.002; while os.clock() < t do end; return x end)
  local ran, cancelled = 0, 0
  local cb = { success = function() ran = ran + 1 end, cancelled = function() cancelled = cancelled + 1 end }
  for i = 1, 50 do async.call(cb, "slow", i) end
  async.shutdown()
  eq(ran + cancelled, 50, "every callback delivered by shutdown")
  ok(cancelled > 0, "the queued calls were cancelled, not run")
  -- also with no worker left at all: the call is cancelled, not run
  async.load(0)
  async.define("id", function(x) return x end)
  local r
  async.call({ success = function(x) r = x end, cancelled = function() r = "cancelled" end }, "id", "late")
  async.shutdown()
  eq(r, "cancelled")
end)

test("each Lua state has its own pool", function()
  local async = fresh(1)
  -- A worker's state is another Lua state: it can load its own pool.
  async.define("nested", function(x)
    local inner = require "async"
    inner.load(1)
    inner.define("dbl", function(v) return v * 2 end)
    local r
    inner.call(function(v) r = v end, "dbl", x)
    while r == nil do inner.update() end
    inner.shutdown()
    return r, inner.isLoaded()
  end)
  local r, loaded
  async.call(function(v, l) r, loaded = v, l end, "nested", 21)
  drain(async)
  eq(r, 42); eq(loaded, false)
  eq(async.getWorkerCount(), 1, "the outer pool is untouched")
  async.shutdown()
end)

test("stats are cheap and consistent", function()
  local async = fresh(2)
  async.define("id", function(x) return x end)
  for i = 1, 100 do async.call(nil, "id", i) end
  local s = async.stats()
  ok(s.inflight == 100, "inflight counts calls not yet delivered")
  drain(async)
  s = async.stats()
  eq(s.completed, 100); eq(s.failed, 0); eq(s.inflight, 0); eq(s.queued, 0)
  local jobs = 0
  for _, w in ipairs(s.workers) do jobs = jobs + w.jobs; ok(w.busy >= 0 and w.idle >= 0) end
  eq(jobs, 100, "per-worker job counts add up")
  async.shutdown()
end)
