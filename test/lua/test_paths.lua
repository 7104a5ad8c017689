-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_paths.lua: what the FFI path (async_fast.lua) must keep identical to
-- the C API path: values at the edges of its own encoder and decoder, the
-- order of calls that mix both paths, arity, failures and shutdown. Runs
-- under both paths (test/CMakeLists.txt sets ASYNC_PATH).

local function fresh(n)
  local async = require "async"
  async.load(n)
  async.define("id", function(...) return ... end)
  async.define("count", function(...) return select("#", ...) end)
  async.define("fail", function(v) error(v, 0) end)
  return async
end

test("the path asked for is the path taken", function()
  local async = fresh(1)
  local want = os.getenv("ASYNC_PATH")
  if want then eq(async.getPath(), want) end
  async.shutdown()
end)

test("plain values cross exactly both ways, with their count", function()
  local async = fresh(1)
  local long = ("x\0y"):rep(3000) -- past the FFI encoder's short strings
  local big = 2 ^ 49 + 1          -- past the FFI decoder's short varints
  local cases = {
    { 0 }, { -0.0 }, { 0 / 0 }, { 1 / 0 }, { -1 / 0 }, { 2 ^ 53 }, { -2 ^ 53 }, { big }, { -big },
    { 2 ^ 47 }, { -2 ^ 47 - 1 }, { 0.1 }, { -5 }, { 127 }, { 128 }, { "" }, { "a\0b" }, { long },
    { 2 ^ 30 - 1 }, { -2 ^ 30 + 1 }, { 2 ^ 30 }, { -2 ^ 30 }, { 2 ^ 21 + 3 }, { -64 }, { -65 },
    { true }, { false }, { nil }, { two_nils = true }, { 1, nil, 3 }, { 1, 2, 3, 4, 5 }, {},
  }
  local got = {}
  for i, c in ipairs(cases) do
    local n = table.maxn(c)
    if c.two_nils then n = 2 end
    cases[i].n = n
    async.call(function(...) got[i] = { n = select("#", ...), ... } end, "id", unpack(c, 1, n))
  end
  drain(async)
  for i, c in ipairs(cases) do
    eq(got[i].n, c.n, "count of case " .. i)
    for k = 1, c.n do
      local a, b = got[i][k], c[k]
      eq(a, b, ("case %d value %d"):format(i, k))
      if a == 0 and b == 0 then eq(1 / a, 1 / b, "the sign of zero in case " .. i) end
    end
  end
  local counted
  async.call(function(n) counted = n end, "count", nil, nil, nil)
  drain(async)
  eq(counted, 3, "trailing nils are arguments")
  async.shutdown()
end)

test("calls on both paths are delivered in the order they were made", function()
  local async = fresh(1)
  local order = {}
  local function rec(i) return function() order[#order + 1] = i end end
  for i = 1, 200 do
    if i % 5 == 0 then
      async.call(rec(i), "id", { i })                     -- a table: the C API path
    elseif i % 7 == 0 then
      async.call({ success = rec(i), key = "k" .. i }, "id", i) -- a key: the C API path
    elseif i % 11 == 0 then
      async.call(rec(i), "id", { i }, i)                  -- a table result: C delivery
    else
      async.call(rec(i), "id", i)
    end
  end
  drain(async)
  eq(#order, 200)
  for i = 1, 200 do eq(order[i], i, "position " .. i) end
  async.shutdown()
end)

test("failures reach error, onerror and {error = error} alike", function()
  local async = fresh(1)
  local msg, tb, other
  async.call({ error = function(m, t) msg, tb = m, t end }, "fail", "boom")
  async.call({ error = function(m) other = m end }, "fail", 42)
  drain(async)
  eq(msg, "boom"); eq(type(tb), "string")
  eq(other, 42, "a non-string error value")
  local heard
  async.onerror = function(m) heard = m end
  async.call(nil, "fail", "to onerror")
  async.call(function() error("never") end, "fail", "to onerror too")
  drain(async)
  eq(heard, "to onerror too")
  async.call({ error = error }, "fail", "raised")
  local e = raises("raised", drain, async)
  ok(e:find("[worker]", 1, true), "the traceback follows the message")
  async.shutdown()
end)

test("shutdown delivers the queued calls of both paths as cancelled; handles then read done", function()
  local async = fresh(0)
  local got, cancelled = {}, 0
  local function cb(f) return { success = f, cancelled = function() cancelled = cancelled + 1 end } end
  local h = async.call(cb(function(x) got[#got + 1] = x end), "id", 1)
  async.call(cb(function(x) got[#got + 1] = x[1] end), "id", { 2 })
  async.call(cb(function() got[#got + 1] = "never" end), "id", 3):cancel()
  eq(h:status(), "queued")
  async.shutdown()
  eq(#got, 0, "no queued call ran")
  eq(cancelled, 3)
  eq(h:status(), "done")
  eq(h:cancel(), false)
end)

test("bad calls raise the C API path's errors on either path", function()
  local async = fresh(1)
  raises("no function named 'nope'", async.call, nil, "nope", 1)
  raises("the callback must be a function", async.call, 5, "id", 1)
  raises("argument 1 is a function", async.call, nil, "id", print)
  raises("async call handle", async.call(nil, "id", 1).status, {})
  drain(async)
  async.shutdown()
end)

test("tables cross with holes, shared and cyclic parts, odd keys, no metatables", { needs = { "cycles" } }, function()
  local async = fresh(1)
  async.define("probe", function(t)
    return t.shared1 == t.shared2, t.self == t, #t.arr, t.arr[5], t.holes[1], t.holes[3], t.holes[2] == nil,
      t[true], t[-0.5], t[2 ^ 60], t.nested.a.b.c, getmetatable(t) == nil, t.neg[-1], t.keyt ~= nil and t[t.keyt]
  end)
  local shared = { 1 }
  local arr = {}
  for i = 1, 100 do arr[i] = i * 1.5 end
  local keyt = {}
  local t = {
    shared1 = shared, shared2 = shared, arr = arr, holes = { "a", nil, "c" },
    [true] = "yes", [-0.5] = "half", [2 ^ 60] = "big", nested = { a = { b = { c = "deep" } } },
    neg = { [-1] = "minus" }, keyt = keyt, [keyt] = "by table",
  }
  t.self = t
  setmetatable(t, { __index = function() error("the encoder must read raw") end })
  local got
  async.call(function(...) got = { ... } end, "probe", t)
  drain(async)
  local want = { true, true, 100, 7.5, "a", "c", true, "yes", "half", "big", "deep", true, "minus", "by table" }
  for i = 1, #want do eq(got[i], want[i], "probe " .. i) end
  -- What the FFI encoder leaves to codec.c keeps codec.c's messages.
  raises("argument 1 (at .f) is a function", async.call, nil, "id", { f = print })
  local deep = {}
  local cur = deep
  for _ = 1, 200 do cur.x = {}; cur = cur.x end
  raises("nested deeper than", async.call, nil, "id", deep)
  local mid = {}
  cur = mid
  for _ = 1, 40 do cur.x = {}; cur = cur.x end
  cur.x = "bottom"
  local bottom
  async.call(function(r) bottom = r end, "id", mid)
  drain(async)
  cur = bottom
  for _ = 1, 40 do cur = cur.x end
  eq(cur.x, "bottom", "40 levels go through the C API path intact")
  -- A refused table after shared ones: the next call's tables are not REFs.
  pcall(async.call, nil, "id", shared, { shared, print })
  local again
  async.call(function(r) again = r end, "id", { shared })
  drain(async)
  eq(again[1][1], 1, "no stale table numbering across calls")
  async.shutdown()
end)

-- Both encoders (async_fast.lua's, codec.c's) write a table's two counts
-- before its items, for codec.c's decoder to size the table: a count or an
-- order that differs shows here as a wrong shape or a malformed message.
test("tables of every shape keep their array and hash counts", function()
  local async = fresh(1)
  async.define("shape", function(t)
    local out = {}
    for i, v in ipairs(t) do
      local narr, nall = #v, 0
      for _ in pairs(v) do nall = nall + 1 end
      out[i] = narr .. "/" .. (nall - narr)
    end
    return out, t
  end)
  local function arr(n, f) local a = {} for i = 1, n do a[i] = f(i) end return a end
  local function hash(n, a)
    local h = a or {}
    for i = 1, n do h["k" .. i] = { i } end
    return h
  end
  local shapes = {
    {}, arr(1, tostring), arr(127, tostring), arr(128, function(i) return { i } end), arr(300, tostring),
    hash(1), hash(128), hash(300), hash(5, arr(200, tostring)), hash(130, arr(3, tostring)),
  }
  local want = { "0/0", "1/0", "127/0", "128/0", "300/0", "0/1", "0/128", "0/300", "200/5", "3/130" }
  local got, back
  async.call(function(s, t) got, back = s, t end, "shape", shapes)
  drain(async)
  ok(got, "the worker decoded every shape")
  for i = 1, #want do eq(got[i], want[i], "shape " .. i .. " in the worker") end
  eq(back[4][128][1], 128, "a nested table in a long array part")
  eq(back[8].k300[1], 300, "a nested table in a long hash part")
  eq(back[9][200], "200", "the array part of a mixed table")
  async.shutdown()
end)

test("a redefined or undefined name is seen by the next call, shorthands too", function()
  local async = fresh(1)
  local v = async.define("v", function() return 1 end)
  local got = {}
  local function rec(x) got[#got + 1] = x end
  async.call(rec, "v"); v(rec)
  async.define("v", function() return 2 end)
  async.call(rec, "v"); v(rec)
  async.share("s", 1) -- a new snapshot with the same definitions
  async.call(rec, "v")
  drain(async)
  eq(table.concat(got, ","), "1,1,2,2,2")
  async.undefine("v")
  raises("no function named 'v'", async.call, rec, "v")
  raises("no function named 'v'", v, rec)
  async.define("v", function() return 3 end)
  v(rec)
  drain(async)
  eq(got[6], 3)
  async.shutdown()
end)

-- Allocation sinking is the JIT's: the interpreter boxes every FFI value.
test("a steady stream of big arguments leaves little garbage on the game's thread", { needs = { "jit" } }, function()
  local async = fresh(1)
  -- A 96 x 96 influence map (about 75 KiB encoded) sent with every call.
  -- The FFI path's scratch buffer went back to 256 bytes after every call
  -- over 64 KiB and grew again by doubling on the next: 259 KiB of garbage
  -- a call on the game's thread, whose collector then walks the game's
  -- whole heap (hostile gallery: the main thread's CPU for 150 such calls
  -- 0.05-0.63 s). The C API path leaves 0.1 KiB.
  local grid = {}
  for y = 1, 96 do
    local row = {}
    for x = 1, 96 do row[x] = x * 0.5 end
    grid[y] = row
  end
  local got = 0
  local function cb() got = got + 1 end
  for _ = 1, 3 do async.call(cb, "count", grid) end
  collectgarbage()
  collectgarbage("stop")
  local k0 = collectgarbage("count")
  for _ = 1, 40 do async.call(cb, "count", grid) end
  local perCall = (collectgarbage("count") - k0) / 40
  collectgarbage("restart")
  local t0 = os.clock()
  while got < 43 and os.clock() - t0 < 30 do async.update() end
  async.shutdown()
  eq(got, 43, "calls delivered")
  ok(perCall < 32, ("%.1f KiB of garbage a call on the game's thread, expected < 32"):format(perCall))
end)
