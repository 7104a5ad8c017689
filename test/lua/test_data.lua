-- SPDX-License-Identifier: MIT (see LICENSE)
-- test_data.lua: shared read-only data, zero-copy buffers, map and
-- parallel-for, jobs that start jobs, persistent worker state.

local function fresh(n)
  local async = require "async"
  async.load(n)
  return async
end

test("share: published once, replaced for later calls, earlier calls keep theirs", function()
  local async = fresh(0)
  async.share("map", { w = 3, tiles = { 1, 2, 3 } })
  async.define("readmap", function(i) return async.shared.map.tiles[i], async.shared.map.w end)
  local r = {}
  async.call(function(t, w) r.old = { t, w } end, "readmap", 2)
  async.share("map", { w = 9, tiles = { 7, 8, 9 } })
  async.call(function(t, w) r.new = { t, w } end, "readmap", 2)
  async.ensure.exactly(1)
  drain(async)
  eq(r.old[1], 2, "a call made before the re-share keeps the old version"); eq(r.old[2], 3)
  eq(r.new[1], 8, "a call made after it sees the new one"); eq(r.new[2], 9)
  async.share("map", nil)
  async.define("has", function() return async.shared.map == nil end)
  local gone
  async.call(function(v) gone = v end, "has")
  drain(async)
  eq(gone, true, "share(name, nil) removes it")
  raises("async.share('f'): the value (at .cb) is a function", async.share, "f", { cb = print })
  raises("the name must be a string", async.share, 1, 2)
  async.shutdown()
end)

test("share: jobs read the worker's decoded copy, not a copy per call", function()
  local async = fresh(1)
  async.share("cache", { hits = 0 })
  -- The value is the same table across calls on a worker (read-only by
  -- contract; written here only to observe that it is not re-sent).
  async.define("touch", function() local c = async.shared.cache; c.hits = c.hits + 1; return c.hits end)
  local last
  for _ = 1, 5 do async.call(function(v) last = v end, "touch") end
  drain(async)
  eq(last, 5)
  async.shutdown()
end)

test("buffers: zero-copy through the FFI, the game's until the callback", { needs = { "buffers" } }, function()
  local async = fresh(2)
  local ffi = require "ffi"
  local n = 1000
  local buf = async.newBuffer(4 * n)
  eq(buf:size(), 4 * n)
  local p = buf:ptr("float")
  for i = 0, n - 1 do p[i] = i end
  async.define("scale", function(b, k)
    local q = b:ptr("float")
    for i = 0, b:size() / 4 - 1 do q[i] = q[i] * k end
    return b
  end)
  local back
  async.call(function(b) back = b end, "scale", buf, 2)
  eq(buf:isLent(), true)
  raises("in use by a job until its callback has run", buf.ptr, buf, "float")
  drain(async)
  eq(buf:isLent(), false)
  ok(back == buf, "the same buffer object comes back")
  local q = buf:ptr("float")
  eq(q[0], 0); eq(q[1], 2); eq(q[n - 1], 2 * (n - 1))
  ok(ffi.cast("intptr_t", q) % 64 == 0, "64-byte aligned")
  -- A worker can create one and return it.
  async.define("make", function(m) local b = async.newBuffer(m); local u = b:ptr(); for i = 0, m - 1 do u[i] = i % 256 end; return b end)
  local made
  async.call(function(b) made = b end, "make", 300)
  drain(async)
  eq(made:size(), 300); eq(made:ptr()[299], 299 % 256)
  -- A worker's view ends with the job that received it. One worker, from
  -- the start, so both jobs surely run on it (a worker asked to stop may
  -- still take one more job on its way out).
  async.shutdown()
  async.load(1)
  async.define("keep", function(b) async.state.kept = b; return true end)
  async.define("usekept", function() return async.state.kept:ptr()[0] end)
  local e
  async.call(nil, "keep", buf)
  async.call({ error = function(m) e = m end }, "usekept")
  drain(async)
  ok(tostring(e):find("ended with the job that received it", 1, true), tostring(e))
  raises("expected a size in bytes", async.newBuffer, 0)
  async.shutdown()
end)

test("newBuffer refuses a size that is not a whole number of bytes up to 4 GiB, naming it", { needs = { "buffers" } }, function()
  local async = fresh(1)
  for _, n in ipairs({ 0, -1, 0 / 0, 1.5, 1 / 0, 2 ^ 32 + 1, 2 ^ 40 }) do
    local err = raises("async.newBuffer: expected a size in bytes", async.newBuffer, n)
    ok(err:find("got " .. tostring(n), 1, true), "the error names the size: " .. err)
    ok(err:find("4 GiB", 1, true), "the error names the limit: " .. err)
  end
  eq(async.newBuffer(1):size(), 1, "the smallest")
  async.shutdown()
end)

-- An allocation the system refuses is an operational failure: nil and a
-- message. A child luajit under a 1 GiB address-space limit asks for 2 GiB.
test("newBuffer returns nil and a message when the memory cannot be had", { needs = { "buffers", "plainLuajit" } }, function()
  local preload = os.getenv("LD_PRELOAD") or ""
  if package.config:sub(1, 1) ~= "/" or preload ~= "" then return end -- a shell's ulimit; sanitizers reserve more
  local dir = package.path:match("^([^;]*)/%?%.lua;")
  local script = ("package.path = %q .. package.path; package.cpath = %q .. package.cpath; " ..
    "local a = require 'async'; a.load(1); local b, e = a.newBuffer(2 ^ 31); " ..
    "io.write(tostring(b), ' | ', tostring(e)); a.shutdown()"):format(dir .. "/?.lua;", dir .. "/?.so;")
  local exe, i = "luajit", -1
  while arg[i] ~= nil do exe, i = arg[i], i - 1 end -- the interpreter, before its options (-joff)
  local f = assert(io.popen(("ulimit -v 1048576; %q -e %q 2>&1"):format(exe, script)))
  local out = f:read("*a")
  f:close()
  ok(out:find("nil | async.newBuffer: out of memory (2147483648 bytes asked)", 1, true), "the child printed: " .. out)
end)

test("map and parallelFor: one callback when all parts are done", function()
  local async = fresh(2)
  async.define("sq", function(x, add) return x * x + (add or 0) end)
  local list = {}
  for i = 1, 200 do list[i] = i end
  local res
  async.map(function(r) res = r end, "sq", list, 1)
  drain(async)
  eq(#res, 200)
  for i = 1, 200 do eq(res[i], i * i + 1) end
  -- one failure: reported once, success not called
  async.define("odd", function(x) if x == 7 then error("seven") end return x end)
  local errs, succ = 0, false
  async.map({ success = function() succ = true end, error = function(m) errs = errs + 1; ok(m:find("seven", 1, true)) end }, "odd", list)
  drain(async)
  eq(errs, 1); eq(succ, false)
  -- empty input still calls back, from update()
  local empty
  async.map(function(r) empty = r end, "sq", {})
  eq(empty, nil, "not synchronously")
  async.update()
  eq(type(empty), "table"); eq(#empty, 0)
  -- 1D tiles
  async.define("sum", function(i0, i1) local s = 0; for i = i0, i1 do s = s + i end; return s end)
  local tiles
  async.parallelFor(function(r) tiles = r end, "sum", 1, 1000, 64)
  drain(async)
  eq(#tiles, 16)
  local total = 0
  for _, t in ipairs(tiles) do total = total + t end
  eq(total, 500500)
  -- 2D tiles cover the rectangle exactly once
  async.define("area", function(x0, y0, x1, y1) return (x1 - x0 + 1) * (y1 - y0 + 1) end)
  local areas
  async.parallelFor2D(function(r) areas = r end, "area", 0, 0, 99, 49, 16, 16)
  drain(async)
  eq(#areas, 7 * 4)
  local a = 0
  for _, v in ipairs(areas) do a = a + v end
  eq(a, 100 * 50)
  -- cancel a group
  async.ensure.exactly(0)
  local cancelled, ran = false, false
  local g = async.map({ success = function() ran = true end, cancelled = function() cancelled = true end }, "sq", list)
  ok(g:cancel())
  async.ensure.exactly(1)
  drain(async)
  eq(ran, false); eq(cancelled, true)
  raises("argument 1 is a function", async.map, nil, "sq", { 1, print })
  raises("grain must be >= 1", async.parallelFor, nil, "sum", 1, 10, 0)
  async.shutdown()
end)

test("jobs that start jobs: await and awaitAll, on one worker too", function()
  -- With one worker, a job that waited by blocking would deadlock: this
  -- passes only because the waiting worker runs the awaited jobs itself.
  for _, workers in ipairs({ 1, 2 }) do
    local async = fresh(workers)
    async.define("fib", function(n)
      if n < 2 then return n end
      local r = async.awaitAll({ { "fib", n - 1 }, { "fib", n - 2 } })
      return r[1] + r[2]
    end)
    async.define("twice", function(x) return async.await("double", async.await("double", x)) end)
    async.define("double", function(x) return 2 * x end)
    async.define("bad", function() return async.await("boom") end)
    async.define("boom", function() error("deep failure") end)
    local f, t, e
    async.call(function(v) f = v end, "fib", 15)
    async.call(function(v) t = v end, "twice", 5)
    async.call({ error = function(m) e = m end }, "bad")
    drain(async, 60)
    eq(f, 610, "fib(15) with " .. workers .. " worker(s)")
    eq(t, 20)
    ok(tostring(e):find("deep failure", 1, true) and tostring(e):find("[awaited job]", 1, true), tostring(e))
    async.shutdown()
  end
  local async = fresh(1)
  async.define("outside", function() return pcall(async.await, "nope") end)
  local okk, msg
  async.call(function(a, b) okk, msg = a, b end, "outside")
  drain(async)
  eq(okk, false); ok(tostring(msg):find("no function named 'nope'", 1, true), tostring(msg))
  async.shutdown()
end)

test("persistent worker state: init on every worker, present and future", function()
  local async = fresh(2)
  local base = 100
  async.setWorkerInit(function(state, index)
    state.inits = (state.inits or 0) + 1
    state.index = index
    state.cache = { base = base }
    warmed = true -- a worker global, readable by jobs
  end)
  async.define("probe", function()
    local s = async.state
    s.calls = (s.calls or 0) + 1
    return s.index, s.inits, s.cache.base, warmed, async.workerIndex
  end)
  local seen = {}
  local function run(k)
    for _ = 1, k do
      async.call(function(idx, inits, b, w, wi)
        eq(inits, seen.expectInits, "init count"); eq(b, 100); eq(w, true); eq(idx, wi)
        seen[idx] = true
      end, "probe")
    end
    drain(async)
  end
  seen.expectInits = 1
  run(50)
  async.ensure.exactly(3) -- a future worker gets it too
  run(50)
  async.setWorkerInit(function(state) state.inits = state.inits + 1 end)
  seen.expectInits = 2 -- a new version runs again, once per worker
  async.ensure.exactly(2)
  run(50)
  async.setWorkerInit(function() error("init broke") end)
  local e
  async.call({ error = function(m) e = m end }, "probe")
  drain(async)
  ok(tostring(e):find("the worker init function failed", 1, true) and tostring(e):find("init broke", 1, true), tostring(e))
  async.shutdown()
end)
