-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_batch.lua: the FFI path holds calls back and submits them in
-- batches (fastpath.c, batch_flush); nothing may wait or be lost for it:
-- a call on an idle pool starts without update(), held calls run at
-- shutdown and can be cancelled, callback tables behave as on the C API
-- path. Runs under both paths (test/CMakeLists.txt sets ASYNC_PATH).

local function fresh(n)
  local async = require "async"
  async.load(n)
  async.define("id", function(...) return ... end)
  async.define("spin", function(s) local t = os.clock() + s; while os.clock() < t do end return s end)
  async.define("fail", function(v) error(v, 0) end)
  return async
end

-- Polls stats() (which neither submits nor delivers) until `ready` calls
-- wait for delivery.
local function waitReady(async, ready, what)
  local deadline = os.time() + 20
  while async.stats().ready < ready do
    if os.time() > deadline then error("timed out: " .. what, 2) end
  end
end

test("a call on an idle pool runs before the next update", function()
  local async = fresh(1)
  local got
  async.call(function(v) got = v end, "id", 7)
  waitReady(async, 1, "the call never ran without update()")
  async.update()
  eq(got, 7)
  -- Again after a burst, once the pool has gone idle.
  for i = 1, 300 do async.call(nil, "id", i) end
  drain(async)
  async.call(function(v) got = v end, "id", 8)
  waitReady(async, 1, "the call after a burst never ran without update()")
  async.update()
  eq(got, 8)
  async.shutdown()
end)

test("calls held behind a busy worker run once it is free, without update", function()
  local async = fresh(1)
  async.call(nil, "spin", 0.05)
  for i = 1, 300 do async.call(nil, "id", i) end
  waitReady(async, 301, "held calls waited for update() while the worker was idle")
  eq(async.update(), 301)
  async.shutdown()
end)

test("calls made behind a busy worker are each answered once at shutdown", function()
  local async = fresh(1)
  local n, cancelled = 0, 0
  local function no() cancelled = cancelled + 1 end
  local h = async.call({ success = function() n = n + 1 end, cancelled = no }, "spin", 0.05)
  while h:status() == "queued" do end
  for i = 1, 500 do async.call({ success = function() n = n + 1 end, cancelled = no }, "id", i) end
  async.shutdown()
  eq(n + cancelled, 501, "every callback once")
  ok(n >= 1, "the running call finished")
  ok(cancelled > 0, "the calls queued behind it were cancelled")
end)

test("a call held back can be cancelled; calls of both paths keep their order", function()
  local async = fresh(1)
  local order, cancelled = {}, 0
  async.call(nil, "spin", 0.05)
  local hs = {}
  for i = 1, 100 do
    local cb = { success = function() order[#order + 1] = i end, cancelled = function() cancelled = cancelled + 1 end }
    if i % 7 == 0 then
      cb.key = "own" .. i -- a keyed table: the C API path
      hs[#hs + 1] = async.call(cb, "id", i)
    else
      hs[#hs + 1] = async.call(cb, "id", i)
    end
  end
  eq(hs[50]:cancel(), true, "a queued call is cancelled")
  drain(async)
  eq(cancelled, 1)
  eq(#order, 99)
  for k = 2, #order do ok(order[k - 1] < order[k], "delivered in order") end
  async.shutdown()
end)

test("callback tables without a key take the FFI path and hear success, error, cancelled", function()
  local async = fresh(1)
  local got = {}
  local h = async.call({ success = function(v) got.ok = v end }, "id", 1)
  if async.getPath() == "ffi" then eq(type(h), "cdata", "the FFI path's handle") end
  async.call({ error = function(e) got.err = e end }, "fail", "boom")
  -- The love.thread backend calls only functions and checks no table (its
  -- gaps, test/love/suite/skip.lua).
  local native = async.backend ~= "thread"
  local called = setmetatable({}, { __call = function(_, v) got.callable = v end })
  if native then async.call({ success = called, extra = 5 }, "id", 3) end
  async.call({}, "id", 4) -- no fields: nothing to hear, nothing raised
  drain(async)
  eq(got.ok, 1)
  ok(tostring(got.err):find("boom", 1, true), "the error callback gets the message")
  if native then eq(got.callable, 3) end
  -- A keyed table supersedes on either path.
  async.call(nil, "spin", 0.05)
  local seen = {}
  for i = 1, 3 do
    async.call({ key = "k", success = function() seen[#seen + 1] = i end, cancelled = function() seen[#seen + 1] = -i end }, "id", i)
  end
  drain(async)
  eq(table.concat(seen, ","), "-1,-2,3")
  -- Refused tables raise the C API path's message on both paths.
  if native then
    raises("unknown field 'sucess'", function() async.call({ sucess = function() end }, "id") end)
    raises("success must be a function", function() async.call({ success = 1 }, "id") end)
  end
  async.shutdown()
end)

test("long strings passed by reference arrive whole, even when only the call holds them", function()
  local async = fresh(2)
  -- One digest for both sides: the job computes it from what arrived, the
  -- test from what it sent (no upvalues, so it can be defined as it is).
  local function want(...)
    local out = {}
    for i = 1, select("#", ...) do
      local s = select(i, ...)
      local h = 0
      for k = 1, #s, 97 do h = (h * 31 + s:byte(k)) % 1000003 end
      out[i] = #s .. ":" .. h .. ":" .. s:sub(-3)
    end
    return table.concat(out, " ")
  end
  async.define("sum", want)
  local got, expect = {}, {}
  for i = 1, 40 do
    -- Fresh strings nobody else holds; 1 to 6 of them (past 4, the C API path).
    local args = {}
    for k = 1, i % 6 + 1 do args[k] = ("%d-%d|"):format(i, k):rep(8000 + i) .. "end" end
    expect[i] = want(unpack(args))
    async.call(function(r) got[i] = r end, "sum", unpack(args))
    args = nil
    collectgarbage("collect")
  end
  drain(async)
  for i = 1, 40 do eq(got[i], expect[i], "call " .. i) end
  async.shutdown()
end)

test("a finalizer that calls async.call while a call is being encoded corrupts neither call", function()
  local ffi = require "ffi"
  local async = fresh(1)
  async.define("sumt", function(t) local s = 0 for i = 1, #t do s = s + t[i] end return #t, s end)
  local live, inner, n, bad = true, 0, 0, 0
  -- A collector that runs whole cycles on small allocations: the
  -- finalizers then run inside the encoding, not only by chance.
  collectgarbage("setpause", 1)
  local stepmul = collectgarbage("setstepmul", 10000)
  for _ = 1, 40 do
    -- Finalizers that call, as a game's resource manager might; encoding a
    -- big argument allocates, so the collector steps and runs them there.
    for _ = 1, 20 do
      ffi.gc(ffi.new("char[64]"), function()
        if live then inner = inner + 1; async.call(nil, "id", "from a finalizer", 1, 2, 3) end
      end)
    end
    local flat, nested = {}, {}
    for i = 1, 3000 do flat[i] = i end
    for i = 1, 2000 do nested[i] = { i } end
    async.call(function(k, s) n = n + 1; if k ~= 3000 or s ~= 3000 * 3001 / 2 then bad = bad + 1 end end, "sumt", flat, nested)
  end
  collectgarbage("setpause", 200)
  collectgarbage("setstepmul", stepmul)
  drain(async)
  live = false
  ok(inner > 0, "no finalizer ran during the calls")
  eq(n, 40, "outer calls answered")
  eq(bad, 0, "outer calls whose arguments arrived corrupted")
  async.shutdown()
end)
