-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_edges.lua: values at the edges of what a call takes, on every path
-- and backend alike: names with a NUL byte, NULL-pointer and hostile cdata,
-- a callable table as the callback, a table raised in a coroutine, and
-- finalizers (__gc) that re-enter the library while it is busy.
local hasffi, ffi = pcall(require, "ffi")

local function both(t) -- a callback table that records what it hears
  return {
    success = function(...) t.ok = { n = select("#", ...), ... } end,
    error = function(e) t.err = e end,
  }
end

test("a name with a NUL byte finds no definition: call, await (both sides), undefine", function()
  local async = require "async"
  async.load(1)
  async.define("a", function() return "ran a" end)
  async.define("awaits", function(name) return async.await(name) end)
  async.define("awaitsAll", function(name) return async.awaitAll({ { name } })[1] end)
  raises("no function named", async.call, nil, "a\0evil")
  for _, job in ipairs({ "awaits", "awaitsAll" }) do
    local got = {}
    async.call(both(got), job, "a\0evil")
    drain(async)
    ok(got.ok == nil, job .. " ran 'a' for 'a\\0evil'")
    ok(tostring(got.err):find("no function named", 1, true), job .. ": " .. tostring(got.err))
  end
  local got
  async.go(function()
    got = { pcall(async.await, "a\0evil") }
  end)
  drain(async)
  eq(got[1], false, "await('a\\0evil') in a coroutine succeeded")
  ok(tostring(got[2]):find("no function named", 1, true), tostring(got[2]))
  raises("NUL byte", async.undefine, "a\0x")
  local r
  async.call(function(x) r = x end, "a") -- still defined
  drain(async)
  eq(r, "ran a", "'a' after undefine('a\\0x')")
  async.shutdown()
end)

test("a NULL-pointer cdata is refused as an argument, inside a table and as a key", function()
  if not hasffi then return end
  local async = require "async"
  async.load(1)
  async.define("count", function(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end)
  async.define("id", function(...) return select("#", ...) end)
  local null = ffi.cast("void *", 0)
  raises("cdata", async.call, nil, "id", null)
  raises("cdata", async.call, nil, "id", { 1, null, 3 })
  raises("cdata", async.call, nil, "id", { x = null })
  raises("cdata", async.call, nil, "count", { a = 1, [null] = 2, b = 3, c = 4 })
  async.shutdown()
end)

test("a cdata whose __eq raises is refused and leaves the call path as it was", function()
  if not hasffi then return end
  local async = require "async"
  async.load(1)
  async.define("id", function(x) return x end)
  local path = async.getPath()
  local function handleType() local h = async.call(nil, "id", 1); drain(async); return type(h) end
  local before = handleType()
  pcall(ffi.cdef, "struct async_test_eq_raises { int x; };")
  local T = ffi.metatype("struct async_test_eq_raises", { __eq = function() error("__eq ran") end })
  local v = T()
  raises("cdata", async.call, nil, "id", v)
  raises("cdata", async.call, nil, "id", { v })
  raises("cdata", async.call, nil, "id", { [v] = 1 })
  raises("callback", async.call, v, "id", 1)
  eq(async.getPath(), path, "path")
  eq(handleType(), before, "the handle's type (the path calls take)")
  local r
  async.call(function(x) r = x end, "id", 7)
  drain(async)
  eq(r, 7, "a later call's result")
  async.shutdown()
end)

test("a callable table as the whole callback is refused, not silently ignored", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(x) return x end)
  local callable = setmetatable({}, { __call = function() end })
  raises("callable table", async.call, callable, "id", 1)
  -- As a handler it is fine, and a callback table with a __call is a table.
  local r
  async.call({ success = setmetatable({}, { __call = function(_, x) r = x end }) }, "id", 2)
  async.call(setmetatable({ success = function() end }, { __call = function() end }), "id", 3)
  drain(async)
  eq(r, 2, "a callable table as success")
  async.shutdown()
end)

test("a table raised in an async.go coroutine reaches update() as the table", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(x) return x end)
  local e = { code = 42 }
  local okk, got = pcall(async.go, function() error(e) end)
  eq(okk, false, "go of a raising coroutine")
  eq(got, e, "the error value")
  async.go(function() async.await("id", 1); error(e) end)
  local raised
  local deadline = os.time() + 30
  while raised == nil and os.time() < deadline do
    local k, x = pcall(async.update)
    if not k then raised = x end
  end
  eq(raised, e, "the error value after an await")
  async.shutdown()
end)

test("an error value that cannot be sent back is named with the path to what is refused", function()
  local async = require "async"
  async.load(1)
  async.define("raisesTable", function() error({ retry = function() end }) end)
  async.define("raisesFunction", function() error(function() end) end)
  local got = {}
  async.call({ error = function(e) got.t = e end }, "raisesTable")
  async.call({ error = function(e) got.f = e end }, "raisesFunction")
  drain(async)
  ok(tostring(got.t):find("error object is a table value", 1, true), tostring(got.t))
  ok(tostring(got.t):find("(at .retry) is a function", 1, true), "no path in: " .. tostring(got.t))
  ok(tostring(got.f):find("error object is a function value", 1, true), tostring(got.f))
  async.shutdown()
end)

test("a job returning thousands of values delivers them or says there are too many", function()
  local async = require "async"
  async.load(1)
  async.define("many", function(n) local t = {} for i = 1, n do t[i] = i end return unpack(t, 1, n) end)
  for _, n in ipairs({ 1000, 7990 }) do
    local got, err
    async.call({ success = function(...) got = select("#", ...) end, error = function(e) err = e end }, "many", n)
    drain(async)
    ok(got == n or tostring(err):find("too many to send back", 1, true),
      n .. " values: got " .. tostring(got) .. ", error " .. tostring(err))
  end
  async.shutdown()
end)

test("a call made after ensure.exactly(0) stays queued until a worker is added", function()
  local async = require "async"
  async.load(1)
  async.define("id", function(x) return x end)
  local early = 0
  for i = 1, 40 do
    local warm
    async.call(function() warm = true end, "id", i)
    waitFor(async, function() return warm end, "the warm-up call") -- the worker now spins
    async.ensure.exactly(0)
    local got
    async.call(function(x) got = x end, "id", i)
    local t0 = os.clock()
    while os.clock() - t0 < 0.005 do async.update() end
    if got ~= nil then early = early + 1 end
    if got == nil then eq(async.stats().queued, 1, "calls queued while no worker runs") end
    async.ensure.exactly(1)
    waitFor(async, function() return got ~= nil end, "the call once a worker is back")
    eq(got, i, "its result")
  end
  eq(early, 0, "calls (of 40) that a stopping worker started")
  async.shutdown()
end)
