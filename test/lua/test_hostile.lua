-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_hostile.lua: what a game that uses the library in unexpected ways
-- must get: a cancelled empty map, jobs that break their worker's globals,
-- buffers of cancelled calls, deep await chains and endless ones, parallelFor's limits,
-- messages at the caller's line, NUL in names, mistaken callback tables,
-- a fraction of a worker.

-- An empty map/parallelFor cancelled before its deferred finish ends once.
test("an empty map or parallelFor that is cancelled calls only cancelled", function()
  local async = require "async"
  async.load(1)
  async.define("f", function(x) return x end)
  local s, c = 0, 0
  local cb = { success = function() s = s + 1 end, cancelled = function() c = c + 1 end }
  async.map(cb, "f", {}):cancel()
  async.parallelFor(cb, "f", 5, 1, 1):cancel()
  async.update(); async.update()
  eq(s, 0, "success calls")
  eq(c, 2, "cancelled calls")
  async.shutdown()
end)

-- A job that replaces its thread's globals or removes a standard global
-- does not break the later jobs of its worker.
test("setfenv(0, {}) or removing a global in one job leaves the worker sane", function()
  local async = require "async"
  async.load(1)
  async.define("probe", function()
    return type(math) == "table" and type(string.format) == "function" and type(async) == "table"
  end)
  async.define("setfenv0", function() setfenv(0, {}) end)
  async.define("noasync", function() rawset(_G, "async", nil) end)
  async.define("strict", function() setmetatable(_G, { __index = function() error("strict") end }) end)
  async.define("nomath", function() rawset(_G, "math", nil) end)
  async.define("retype", function() _G.type = function() return "x" end end)
  async.define("addglobal", function() rawset(_G, "kept", 42) end)
  async.define("readglobal", function() return kept end)
  for _, name in ipairs({ "setfenv0", "noasync", "strict", "nomath", "retype" }) do
    async.call(nil, name)
    local r, e
    async.call({ success = function(x) r = x end, error = function(m) e = m end }, "probe")
    drain(async)
    ok(r == true, name .. " broke the worker: " .. tostring(r) .. " " .. tostring(e))
  end
  -- Globals a job adds are not taken away.
  local v
  async.call(nil, "addglobal")
  async.call(function(x) v = x end, "readglobal")
  drain(async)
  eq(v, 42, "a global added by a job")
  async.shutdown()
end)

-- What a job changes by the back doors (rawset, getfenv, debug, the string
-- metatable, package.loaded, its own environment's metatable) is put back
-- before the next job of its worker; each case is followed by a probe.
test("a job's changes through rawset, getfenv, debug and metatables do not reach the next job", function()
  local async = require "async"
  async.load(1)
  async.define("probe", function()
    return type(math) == "table" and type(string.format) == "function" and ("%d"):format(7) == "7"
      and rawequal(package.loaded, debug.getregistry()._LOADED) and getmetatable(_G) == nil
      and rawget(getfenv(1), "leak") == nil and leak == nil and rawget(_G, "leak") == nil
      and rawequal(getmetatable(""), debug.getmetatable("")) and type(getmetatable(getfenv(1))) == "table"
  end)
  local cases = {
    rawsetenv = function() rawset(getfenv(1), "leak", 1) end,
    envmeta = function() setmetatable(getfenv(1), { __index = function() error("strict env") end }) end,
    envmt = function() getmetatable(getfenv(1)).__newindex = function() error("no globals") end end,
    envmtprotect = function() getmetatable(getfenv(1)).__metatable = false end,
    threadglobals = function() rawset(getfenv(0), "math", nil) end,
    cfunctionenv = function() getfenv(print).type = nil end,
    registry = function() debug.getregistry()._LOADED._G.string = nil end,
    gmetadebug = function() debug.setmetatable(_G, { __index = function() error("strict") end, __metatable = false }) end,
    strindex = function() getmetatable("").__index = {} end,
    strmeta = function() debug.setmetatable("", nil) end,
    strprotect = function() getmetatable("").__metatable = "no" end,
    loaded = function() package.loaded = {} end,
  }
  local names = {}
  for name, f in pairs(cases) do async.define(name, f); names[#names + 1] = name end
  table.sort(names)
  -- Twice: the second round runs where the first left a new environment.
  local leaked = {}
  for round = 1, 2 do
    for _, name in ipairs(names) do
      local r, e
      async.call(nil, name)
      async.call({ success = function(x) r = x end, error = function(m) e = m end }, "probe")
      drain(async)
      if r ~= true then leaked[#leaked + 1] = round .. ":" .. name .. " (" .. tostring(e or r) .. ")" end
    end
  end
  eq(table.concat(leaked, ", "), "", "changes that reached the next job")
  async.shutdown()
end)

-- A call cancelled before it started gives its buffers back at once:
-- by handle:cancel(), or superseded under its key by a newer call that
-- lends the same buffer (latest wins).
test("a queued call that is cancelled or superseded gives its buffer back at once", { needs = { "buffers" } }, function()
  local async = require "async"
  async.load(1)
  async.define("spin", function()
    local deadline = os.time() + 20
    while not async.cancelled() and os.time() < deadline do end
  end)
  async.define("use", function(buf, tag) buf:ptr("int32_t")[0] = tag; return tag end)
  local blocker = async.call(nil, "spin") -- the only worker is busy: later calls stay queued
  waitFor(async, function() return async.stats().running == 1 end, "the blocker to run")
  local buf = async.newBuffer(16)
  local h = async.call(nil, "use", buf, 0)
  ok(h:cancel(), "the queued call is cancelled")
  ok(not buf:isLent(), "a cancelled queued call still holds its buffer")
  local unit, got, cancelled = {}, {}, 0
  for frame = 1, 3 do
    local okk, e = pcall(async.call, { key = unit, success = function(x) got[#got + 1] = x end,
      cancelled = function() cancelled = cancelled + 1 end }, "use", buf, frame)
    ok(okk, "re-lending under the same key raised: " .. tostring(e))
  end
  blocker:cancel()
  drain(async)
  eq(table.concat(got, ","), "3", "only the latest keyed call delivers")
  eq(cancelled, 2, "the superseded calls end as cancelled")
  eq(buf:ptr("int32_t")[0], 3, "the latest call wrote the buffer")
  ok(not buf:isLent(), "the buffer is the game's again")
  async.shutdown()
end)

-- A failure deep in a chain of worker-side awaits keeps one traceback
-- (the innermost) and a bounded note of the levels above it.
test("a failure through 300 nested awaits arrives with a bounded message", function()
  local async = require "async"
  async.load(2)
  async.define("rec", function(n)
    if n == 0 then error("no path: blocked") end
    return 1 + async.await("rec", n - 1)
  end)
  local msg
  async.call({ error = function(e) msg = e end }, "rec", 300)
  drain(async, 60)
  ok(type(msg) == "string", "the failure was delivered")
  ok(msg:find("no path: blocked", 1, true), "the innermost message is kept: " .. msg:sub(1, 200))
  eq(select(2, msg:gsub("%[awaited job%]", "")), 1, "tracebacks in the message")
  ok(msg:find("... and 289 more levels", 1, true), "the levels past the first 10 are counted: " .. msg:sub(-300))
  ok(#msg < 4096, ("the message is %d bytes"):format(#msg))
  async.shutdown()
end)

-- A recursion of awaits without an end fails the call with a message;
-- it used to overflow the worker's C stack and kill the process.
test("awaits nested without end fail the call instead of crashing", function()
  local async = require "async"
  async.load(1)
  async.define("down", function(n) return 1 + async.await("down", n - 1) end)
  async.define("downAll", function() return #async.awaitAll({ { "downAll" } }) end)
  for _, name in ipairs({ "down", "downAll" }) do
    local msg
    async.call({ error = function(e) msg = e end }, name, 0)
    drain(async, 60)
    ok(type(msg) == "string", name .. ": the failure was delivered")
    -- the thread backend runs an awaited job in the awaiting one: its Lua stack overflows first
    local why = async.backend == "thread" and "stack overflow" or "jobs nested more than 1000 deep on one worker"
    ok(msg:find(why, 1, true), name .. ": says why: " .. tostring(msg):sub(1, 200))
  end
  async.shutdown()
end)

-- parallelFor refuses up front, naming itself, what it cannot do:
-- one buffer for every tile, or more tiles than async.maxParts.
test("parallelFor names a shared buffer and too many tiles before issuing any", { needs = { "buffers" } }, function()
  local async = require "async"
  async.load(1)
  async.define("fill", function(i0, i1, out) return i1 - i0 + 1 end)
  local out = async.newBuffer(64)
  local e = raises("async.parallelFor: extra argument 1 is an async buffer", async.parallelFor, nil, "fill", 1, 16, 4, out)
  ok(not e:find("async.call", 1, true), "the message names async.call: " .. e)
  ok(not out:isLent(), "no tile kept the buffer")
  raises("async.parallelFor2D: extra argument 1 is an async buffer", async.parallelFor2D, nil, "fill", 0, 0, 7, 7, 4, 4, out)
  raises("more than async.maxParts", async.parallelFor, nil, "fill", 1, 1e6, 1)
  raises("more than async.maxParts", async.parallelFor2D, nil, "fill", 0, 0, 999, 999, 1, 1)
  eq(async.stats().inflight, 0, "calls issued by refused parallelFors")
  -- One tile may have the buffer.
  local n
  async.parallelFor(function(r) n = r[1] end, "fill", 1, 16, 16, out)
  drain(async)
  eq(n, 16, "a single tile with the buffer")
  async.shutdown()
end)

-- Messages name the function, the argument and the element, and
-- point at the caller's line, not at the library.
test("async.call(nil) and a refused map element are named, at the caller's line", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  local e = raises("async.call: argument 2 (the name) must be a string, got nil", function() async.call(nil) end)
  ok(e:find("test_hostile.lua", 1, true), "position: " .. e)
  e = raises("no function named 'nope'", function() async.call(nil, "nope") end)
  ok(e:find("test_hostile.lua", 1, true), "position: " .. e)
  raises("async.map: element 3 refused", async.map, nil, "id", { 1, 2, function() end })
  drain(async)
  async.shutdown()
end)

-- A name with a NUL byte would be cut at it by the native side.
test("define and share refuse a name containing NUL", function()
  local async = require "async"
  async.load(1)
  async.define("a", function() return "a" end)
  raises("contains a NUL byte", async.define, "a\0b", function() return "a\0b" end)
  local r
  async.call(function(v) r = v end, "a")
  drain(async)
  eq(r, "a", "the definition of 'a'")
  -- share's name too: the native side published "a\0b" as "a", silently
  -- replacing what the game shared under "a".
  async.share("a", "the value of 'a'")
  raises("async.share: the name \"a\\0b\" contains a NUL byte", async.share, "a\0b", 1)
  async.define("readA", function() return async.shared.a end)
  async.call(function(v) r = v end, "readA")
  drain(async)
  eq(r, "the value of 'a'", "the value shared under 'a'")
  async.shutdown()
end)

-- Callback tables with mistakes are refused at the call; a callable
-- table is a callback.
test("misspelt or non-callable callback fields are refused, callable tables are called", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(...) return ... end)
  async.define("fail", function() error("job failed") end)
  raises("unknown field 'sucess'", async.call, { sucess = function() end }, "id", 1)
  raises("the callback's success must be a function, not a string", async.call, { success = "oops" }, "id", 1)
  raises("the callback's error must be a function, not a number", async.call, { error = 42 }, "fail")
  -- The fan-out helpers' one callback is checked the same way (it was not:
  -- {sucess = f} to async.map ran the parts and never called back).
  raises("async.map: the callback table has an unknown field 'sucess'", async.map, { sucess = function() end }, "id", { 1 })
  raises("async.parallelFor: the callback's error must be a function, not a number",
         async.parallelFor, { error = 1 }, "id", 1, 10, 5)
  raises("unknown field 'onDone'", async.parallelFor2D, { onDone = function() end }, "id", 0, 0, 3, 3, 2, 2)
  eq(async.stats().inflight, 0, "refused calls in flight")
  local got, failed, cancelled
  local function callable(f) return setmetatable({}, { __call = function(_, ...) f(...) end }) end
  async.call({ success = callable(function(x) got = x end), key = "k", data = 7 }, "id", 5)
  async.call({ error = callable(function(e) failed = e end) }, "fail")
  drain(async)
  eq(got, 5, "a callable table as success")
  ok(tostring(failed):find("job failed", 1, true), "a callable table as error: " .. tostring(failed))
  async.shutdown()
end)

-- A fraction of one worker still starts one.
test("async.load(0.5) starts one worker", function()
  local async = require "async"
  async.load(0.5)
  eq(async.getWorkerCount(), 1, "workers")
  async.shutdown()
end)
